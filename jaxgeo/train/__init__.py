"""Training: score matching, VAEs (ELBO, calibrated variance) and `fit` with checkpoints
and resume: `jaxgeo.train`."""

from .._train import (
    calibrate_variance as calibrate_variance,
    denoising_score_matching as denoising_score_matching,
    elbo_loss as elbo_loss,
    ensemble_loss as ensemble_loss,
    extrapolating_decoder as extrapolating_decoder,
    fit as fit,
    fit_extrapolating_decoder as fit_extrapolating_decoder,
    FitResult as FitResult,
    multiscale_denoising_score_matching as multiscale_denoising_score_matching,
    noise_levels as noise_levels,
    rbf_precision as rbf_precision,
    sliced_score_matching as sliced_score_matching,
)
