r"""Stein scores $s(x) = \nabla_x \log p(x)$ of analytic densities. Any function
`x -> s(x)` (or Equinox module) from `(D,)` to `(D,)` can serve as a score."""

from .._flax import from_flax as from_flax, LinenScore as LinenScore, NNXScore as NNXScore
from .._scores import (
    from_log_density as from_log_density,
    gaussian as gaussian,
    GaussianScore as GaussianScore,
    gmm as gmm,
    GMMScore as GMMScore,
    LogDensityScore as LogDensityScore,
)
