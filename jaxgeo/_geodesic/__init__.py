from ._base import (
    AbstractBoundarySolver as AbstractBoundarySolver,
    AbstractPolylineSolver as AbstractPolylineSolver,
    BoundaryProblem as BoundaryProblem,
)
from ._bvp import geodesic_bvp as geodesic_bvp, geodesic_bvp_batch as geodesic_bvp_batch
from ._distance import (
    distance as distance,
    log_map as log_map,
    pairwise_distances as pairwise_distances,
)
from ._energy import energy_descent_trace as energy_descent_trace, EnergyDescent as EnergyDescent
from ._ensemble import ensemble_geodesics as ensemble_geodesics
from ._graph import (
    GeodesicGraph as GeodesicGraph,
    graph_geodesic as graph_geodesic,
    knn_graph as knn_graph,
)
from ._ivp import exp_map as exp_map, geodesic_ivp as geodesic_ivp
from ._newton import EnergyNewton as EnergyNewton
from ._richardson import Richardson as Richardson
from ._shooting import Shooting as Shooting
from ._shortest import Shortest as Shortest
