"""Equinox score networks (and, later, VAEs): `jaxgeo.nn`."""

from .._nn import (
    EnergyScore as EnergyScore,
    MLPScore as MLPScore,
    NoiseConditionalScore as NoiseConditionalScore,
    NoiseLevel as NoiseLevel,
)
