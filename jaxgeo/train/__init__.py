"""Training: score-matching losses and `fit` with checkpoints and resume: `jaxgeo.train`."""

from .._train import (
    denoising_score_matching as denoising_score_matching,
    ensemble_loss as ensemble_loss,
    fit as fit,
    FitResult as FitResult,
    multiscale_denoising_score_matching as multiscale_denoising_score_matching,
    noise_levels as noise_levels,
    sliced_score_matching as sliced_score_matching,
)
