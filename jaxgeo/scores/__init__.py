r"""Stein scores $s(x) = \nabla_x \log p(x)$ of analytic densities and Flax models. Any
function `x -> s(x)` (or Equinox module) from `(D,)` to `(D,)` can serve as a score."""

from ._analytic import (
    from_log_density as from_log_density,
    gaussian as gaussian,
    gmm as gmm,
)
from ._flax import from_flax as from_flax
