"""Equinox score networks and variational autoencoders: `jaxgeo.nn`."""

from .._nn import (
    EnergyScore as EnergyScore,
    MLPScore as MLPScore,
    NoiseConditionalScore as NoiseConditionalScore,
    NoiseLevel as NoiseLevel,
)
from .._vae import (
    BernoulliDecoder as BernoulliDecoder,
    CalibratedGaussianDecoder as CalibratedGaussianDecoder,
    CategoricalDecoder as CategoricalDecoder,
    Encoder as Encoder,
    ExtrapolatingDecoder as ExtrapolatingDecoder,
    GaussianDecoder as GaussianDecoder,
    RBFPrecision as RBFPrecision,
    VAE as VAE,
)
