"""jaxgeo: the Riemannian geometry of data in JAX."""

import importlib.metadata

from . import (
    data as data,
    families as families,
    nn as nn,
    plot as plot,
    sampling as sampling,
    scores as scores,
    stats as stats,
    train as train,
)
from ._curve import (
    curve_energy as curve_energy,
    curve_length as curve_length,
    curve_velocities as curve_velocities,
    straight_line as straight_line,
)
from ._fisher_info import (
    empirical_fisher as empirical_fisher,
    fisher_information as fisher_information,
    fisher_vector_product as fisher_vector_product,
)
from ._functional import (
    christoffel as christoffel,
    christoffel_contraction as christoffel_contraction,
    gaussian_curvature as gaussian_curvature,
    geodesic_acceleration as geodesic_acceleration,
    ricci_tensor as ricci_tensor,
    riemann_tensor as riemann_tensor,
    scalar_curvature as scalar_curvature,
)
from ._geodesic import (
    AbstractBoundarySolver as AbstractBoundarySolver,
    AbstractPolylineSolver as AbstractPolylineSolver,
    BoundaryProblem as BoundaryProblem,
    distance as distance,
    energy_descent_trace as energy_descent_trace,
    EnergyDescent as EnergyDescent,
    EnergyNewton as EnergyNewton,
    ensemble_geodesics as ensemble_geodesics,
    exp_map as exp_map,
    geodesic_bvp as geodesic_bvp,
    geodesic_bvp_batch as geodesic_bvp_batch,
    geodesic_ivp as geodesic_ivp,
    GeodesicGraph as GeodesicGraph,
    graph_geodesic as graph_geodesic,
    knn_graph as knn_graph,
    log_map as log_map,
    pairwise_distances as pairwise_distances,
    Richardson as Richardson,
    Shooting as Shooting,
    Shortest as Shortest,
)
from ._metric import (
    AbstractMetric as AbstractMetric,
    AbstractPullbackMetric as AbstractPullbackMetric,
    AbstractSecantMetric as AbstractSecantMetric,
    EnsembleMetric as EnsembleMetric,
    Euclidean as Euclidean,
    ExpectedPullbackMetric as ExpectedPullbackMetric,
    FisherRaoMetric as FisherRaoMetric,
    MatrixMetric as MatrixMetric,
    MongeMetric as MongeMetric,
    PullbackFisherRaoMetric as PullbackFisherRaoMetric,
    PullbackMetric as PullbackMetric,
    ScoreJacobianMetric as ScoreJacobianMetric,
    SteinMetric as SteinMetric,
)
from ._solution import (
    GeodesicSolution as GeodesicSolution,
    result_name as result_name,
    RESULTS as RESULTS,
)


__version__ = importlib.metadata.version("jaxgeo")
