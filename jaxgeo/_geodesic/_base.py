import abc

import equinox as eqx
import numpy as np
from jaxtyping import Array, Int

from .._custom_types import Curve, Point
from .._metric._base import AbstractMetric
from .._solution import RESULTS


class AbstractBoundarySolver(eqx.Module):
    """A method for the geodesic boundary-value problem: find the curve of least energy
    between two points. Solvers hold configuration only; [`jaxgeo.geodesic_bvp`][]
    is the entry point."""

    @abc.abstractmethod
    def solve(
        self,
        metric: AbstractMetric,
        x0: Point,
        x1: Point,
        init: Curve,
        *,
        max_steps: int,
        rtol: float,
        atol: float,
    ) -> tuple[Curve, RESULTS, Int[Array, ""]]:
        """Return the solved polyline (with `init`'s number of points), the result,
        and the number of steps taken."""


def sine_basis(num_points: int, dtype) -> np.ndarray:
    r"""Preconditioned coordinates for the interior points of a polyline.

    The discrete Dirichlet Laplacian $\mathrm{tridiag}(-1, 2, -1)$ on the $n =$
    `num_points - 2` interior points has eigenvectors
    $\phi_k(i) = \sqrt{2/(n+1)}\sin(\pi i k/(n+1))$ and eigenvalues
    $\mu_k = 2 - 2\cos(\pi k/(n+1))$. With interior offsets $w = B z$ from the straight
    line and $B = \Phi\,\mathrm{diag}(N\mu)^{-1/2}$, the Euclidean energy of the curve is
    $E_0 + \tfrac12|z|^2$: descent in $z$ is descent preconditioned by the inverse
    Laplacian (a Sobolev gradient), and is as well conditioned as the metric itself.
    """
    n = num_points - 2
    k = np.arange(1, n + 1)
    phi = np.sqrt(2 / (n + 1)) * np.sin(np.pi * np.outer(k, k) / (n + 1))
    mu = 2 - 2 * np.cos(np.pi * k / (n + 1))
    return (phi / np.sqrt((num_points - 1) * mu)).astype(dtype)
