"""Stein scores $s(x) = \\nabla_x \\log p(x)$: analytic ones here, learned ones in `jg.nn`."""

from .._scores import (
    from_log_density as from_log_density,
    gaussian as gaussian,
    GaussianScore as GaussianScore,
    gmm as gmm,
    GMMScore as GMMScore,
    LogDensityScore as LogDensityScore,
)
