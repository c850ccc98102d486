import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from .._curve import curve_energy, curve_length, curve_velocities
from .._custom_types import Curve, Point
from .._metric._base import AbstractMetric
from .._solution import GeodesicSolution, RESULTS


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

    def geodesic(
        self,
        metric: AbstractMetric,
        x0: Point,
        x1: Point,
        init: Curve,
        *,
        max_steps: int,
        rtol: float,
        atol: float,
    ) -> GeodesicSolution:
        """The [`jaxgeo.GeodesicSolution`][] returned by [`jaxgeo.geodesic_bvp`][]
        (before its `throw`). By default the polyline of `solve`, with its midpoint-rule
        length and energy; solvers that find the exact geodesic override this."""
        if init.shape[0] == 2:
            xs, result, num_steps = init, RESULTS.successful, jnp.array(0)
        else:
            xs, result, num_steps = self.solve(
                metric, x0, x1, init, max_steps=max_steps, rtol=rtol, atol=atol
            )
        return polyline_solution(metric, xs, result, num_steps, max_steps)


def polyline_solution(
    metric: AbstractMetric, xs: Curve, result: RESULTS, num_steps, max_steps: int
) -> GeodesicSolution:
    """A polyline on the uniform grid as a [`jaxgeo.GeodesicSolution`][], with the
    convergence diagnostics `grad_norm` and `constant_speed_ratio` in `stats`."""
    energy = curve_energy(metric, xs)
    length = curve_length(metric, xs)
    grad = jax.grad(lambda c: curve_energy(metric, c))(xs)
    grad_norm = jnp.max(jnp.abs(grad[1:-1])) if xs.shape[0] > 2 else jnp.zeros((), xs.dtype)
    speed_ratio = length**2 / (2 * energy)
    stats = dict(
        num_steps=num_steps,
        max_steps=max_steps,
        grad_norm=jax.lax.stop_gradient(grad_norm),
        constant_speed_ratio=speed_ratio,
    )
    # A converged discrete geodesic has nearly constant speed (ratio -> 1). (Zero energy
    # is not flagged: where the metric vanishes, zero may be the true distance.)
    result = RESULTS.where(
        (result == RESULTS.successful) & (energy > 0) & (speed_ratio < 0.5),
        RESULTS.unresolved_curve,
        result,
    )
    return GeodesicSolution(
        ts=jnp.linspace(0, 1, xs.shape[0], dtype=xs.dtype),
        xs=xs,
        vs=curve_velocities(xs),
        length=length,
        energy=energy,
        result=RESULTS.where(jnp.isfinite(energy), result, RESULTS.nonfinite_energy),
        stats=stats,
    )


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
