import equinox as eqx
import jax.numpy as jnp
import optax
import optimistix as optx
from jaxtyping import Array, Int

from .._curve import curve_energy
from .._custom_types import Curve, Point
from .._metric._base import AbstractMetric
from .._solution import RESULTS
from ._base import AbstractBoundarySolver, sine_basis


class EnergyDescent(AbstractBoundarySolver):
    r"""Minimise the discrete curve energy $E = \frac{N}{2}\sum_i
    \langle\Delta_i,\Delta_i\rangle_{G(m_i)}$ over the interior points, by optimistix.

    The interior points are optimised in preconditioned coordinates (see
    `sine_basis`): offsets from the straight line in the sine eigenbasis of the
    discrete Laplacian, scaled so that the Euclidean energy is $\frac12|z|^2$. This
    removes the $O(N^2)$ ill-conditioning of the raw point coordinates, so the number
    of iterations does not grow with the number of points.

    **Arguments:**

    - `optimizer`: an optax `GradientTransformation` (first-order descent, e.g.
      `optax.adam(1e-2)`, run through `optimistix.OptaxMinimiser`) or an optimistix
      minimiser (default: `optimistix.LBFGS`). Its tolerances are replaced by
      those given to [`jaxgeo.geodesic_bvp`][].
    - `precondition`: optimise in the preconditioned coordinates (default) or in
      the raw point coordinates.
    - `adjoint`: how to differentiate through the solve; the default
      `optimistix.ImplicitAdjoint()` uses the implicit function theorem at the minimum.
    """

    optimizer: optax.GradientTransformation | optx.AbstractMinimiser = optx.LBFGS(
        rtol=1e-6, atol=1e-6
    )
    precondition: bool = eqx.field(static=True, default=True)
    adjoint: optx.AbstractAdjoint = optx.ImplicitAdjoint()

    def _minimiser(self, rtol: float, atol: float) -> optx.AbstractMinimiser:
        if isinstance(self.optimizer, optx.AbstractMinimiser):
            return eqx.tree_at(lambda s: (s.rtol, s.atol), self.optimizer, (rtol, atol))
        if isinstance(self.optimizer, optax.GradientTransformation):
            return optx.OptaxMinimiser(self.optimizer, rtol=rtol, atol=atol)
        raise ValueError(
            "EnergyDescent(optimizer) needs an optax GradientTransformation or an "
            f"optimistix minimiser, got {type(self.optimizer).__name__}"
        )

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
        num_points = init.shape[0]
        ts = jnp.linspace(0, 1, num_points, dtype=init.dtype)[1:-1, None]
        if self.precondition:
            basis = jnp.asarray(sine_basis(num_points, init.dtype))
        else:
            basis = jnp.eye(num_points - 2, dtype=init.dtype)

        def interior(z, a, b):
            return a + ts * (b - a) + basis @ z

        def energy(z, args):
            metric, a, b = args
            xs = jnp.concatenate([a[None], interior(z, a, b), b[None]])
            return curve_energy(metric, xs)

        # basis is orthogonal up to a diagonal scaling, so its inverse is cheap to form.
        z0 = jnp.linalg.solve(basis, init[1:-1] - interior(jnp.zeros_like(init[1:-1]), x0, x1))
        sol = optx.minimise(
            energy,
            self._minimiser(rtol, atol),
            z0,
            args=(metric, x0, x1),
            max_steps=max_steps,
            adjoint=self.adjoint,
            throw=False,
        )
        xs = jnp.concatenate([x0[None], interior(sol.value, x0, x1), x1[None]])
        return xs, RESULTS.promote(sol.result), sol.stats["num_steps"]
