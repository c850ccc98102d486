from .._custom_types import Input
from .._metric._ensemble import EnsembleMetric
from .._solution import GeodesicSolution
from ._bvp import geodesic_bvp


def ensemble_geodesics(
    metric: EnsembleMetric, x0: Input, x1: Input, **kwargs
) -> tuple[GeodesicSolution, GeodesicSolution]:
    """The geodesics from `x0` to `x1` under each member of an ensemble metric and under
    the averaged (Bayesian) metric.

    Returns `(members, mean)`: `members` is one [`jaxgeo.GeodesicSolution`][] whose
    arrays carry a leading member axis (solved in one vmapped program), `mean` the
    geodesic of the [`jaxgeo.EnsembleMetric`][] itself. The spread of the member
    geodesics shows the model's uncertainty about the geometry. Keyword arguments go
    to [`jaxgeo.geodesic_bvp`][]; solves do not raise: check each `result`.
    """
    if not isinstance(metric, EnsembleMetric):
        raise ValueError(f"ensemble_geodesics needs an EnsembleMetric, got {type(metric).__name__}")
    kwargs["throw"] = False
    members = metric.map_members(lambda m: geodesic_bvp(m, x0, x1, **kwargs))
    return members, geodesic_bvp(metric, x0, x1, **kwargs)
