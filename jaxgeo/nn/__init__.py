"""Equinox score networks and variational autoencoders: `jaxgeo.nn`."""

from ._decoders import (
    AbstractDecoder as AbstractDecoder,
    AbstractGaussianDecoder as AbstractGaussianDecoder,
    BernoulliDecoder as BernoulliDecoder,
    CalibratedGaussianDecoder as CalibratedGaussianDecoder,
    CategoricalDecoder as CategoricalDecoder,
    ExtrapolatingDecoder as ExtrapolatingDecoder,
    GaussianDecoder as GaussianDecoder,
    RBFPrecision as RBFPrecision,
)
from ._pose import PoseDecoder as PoseDecoder
from ._score import (
    EnergyScore as EnergyScore,
    MLPScore as MLPScore,
    NoiseConditionalScore as NoiseConditionalScore,
    NoiseLevel as NoiseLevel,
)
from ._vae import Encoder as Encoder, VAE as VAE
