from ._base import AbstractPolylineSolver
from ._energy import EnergyDescent
from ._newton import EnergyNewton


# A Newton step differentiates the metric along D + 1 directions at every segment
# (forward-over-reverse; 2D + 1 when the table below was measured, so Newton's times
# there are upper bounds) where an L-BFGS step needs one gradient, and the ratio of
# L-BFGS to Newton iterations grows only slowly with D (about 4-40 measured), so the
# metric's cost cancels and D decides. Measured (64-point geodesics, float64, 2-core
# CPU, run time after compiling, Newton / L-BFGS): the Stein metric of the rho = 0.8
# Gaussian, D = 2: 1.2 / 10.5 ms;
# Stein metrics of trained `MLPScore`s: ring D = 2: 12 / 22 ms, digits PCA D = 4: 28 /
# 18 ms, D = 8: 45 / 44 ms, D = 16: 124 / 108 ms, D = 32: 514 / 178 ms, digits D = 64:
# 1.7 / 0.55 s; Gaussian Stein metrics D = 4: 7 / 4 ms, D = 8: 32 / 57 ms, D = 16:
# 85 / 95 ms, D = 64: 0.99 / 0.79 s. Newton also converges to tight tolerances in few
# steps, so it is kept up to the crossover.
NEWTON_MAX_DIM = 8


def default_polyline_solver(dim: int) -> AbstractPolylineSolver:
    """[`jaxgeo.EnergyNewton`][] up to `NEWTON_MAX_DIM`, else [`jaxgeo.EnergyDescent`][]."""
    return EnergyNewton() if dim <= NEWTON_MAX_DIM else EnergyDescent()


# Where the log map's velocity is resolved, the levels stop at 1e-10 and refine further
# (the velocity needs finer levels than the length): L-BFGS converges linearly to such
# tolerances. On a 64-D Stein metric of a score trained on the digits (images 0 -> 10)
# the default log map with L-BFGS levels spent its 4,096 steps at 64 segments (velocity
# 4.5e-5 off); with Newton levels it resolves at 256 segments in 115 steps. Above this
# dimension the dense (D, D) Hessian blocks cost more than L-BFGS's extra steps.
VELOCITY_NEWTON_MAX_DIM = 64


def velocity_polyline_solver(dim: int, tol: float) -> AbstractPolylineSolver:
    """The levels' solver where the initial velocity is resolved (tolerance `tol`):
    [`jaxgeo.EnergyNewton`][] up to `VELOCITY_NEWTON_MAX_DIM`, else
    [`jaxgeo.EnergyDescent`][]."""
    if dim <= VELOCITY_NEWTON_MAX_DIM:
        return EnergyNewton(rtol=tol, atol=tol)
    return EnergyDescent(rtol=tol, atol=tol)
