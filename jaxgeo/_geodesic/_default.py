from ._base import AbstractPolylineSolver
from ._energy import EnergyDescent
from ._newton import EnergyNewton


# Above this dimension a Newton step's dense (D, D) Hessian blocks are taken to cost more
# than the extra iterations of L-BFGS (a rule of thumb, not yet a measurement).
NEWTON_MAX_DIM = 64


def default_polyline_solver(dim: int) -> AbstractPolylineSolver:
    """[`jaxgeo.EnergyNewton`][] up to `NEWTON_MAX_DIM`, else [`jaxgeo.EnergyDescent`][]."""
    return EnergyNewton() if dim <= NEWTON_MAX_DIM else EnergyDescent()
