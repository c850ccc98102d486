"""Statistics on any metric: Fréchet means and parallel transport (tangent PCA and
geodesic clustering are still to come)."""

from ._frechet import frechet_mean as frechet_mean, FrechetMean as FrechetMean
from ._transport import (
    christoffel_contraction as christoffel_contraction,
    parallel_transport as parallel_transport,
    Transport as Transport,
    transport_along as transport_along,
)
