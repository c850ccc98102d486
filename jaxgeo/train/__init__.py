"""Training: score matching, VAEs (ELBO, calibrated variance) and `fit` with checkpoints
and resume: `jaxgeo.train`."""

from ._fit import fit as fit, FitResult as FitResult
from ._latent import (
    calibrate_pose_decoder as calibrate_pose_decoder,
    calibrate_variance as calibrate_variance,
    extrapolating_decoder as extrapolating_decoder,
    fit_extrapolating_decoder as fit_extrapolating_decoder,
    pose_noise_mle as pose_noise_mle,
    rbf_precision as rbf_precision,
)
from ._losses import (
    denoising_score_matching as denoising_score_matching,
    elbo_loss as elbo_loss,
    ensemble_loss as ensemble_loss,
    multiscale_denoising_score_matching as multiscale_denoising_score_matching,
    noise_levels as noise_levels,
    sliced_score_matching as sliced_score_matching,
)
