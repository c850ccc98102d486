import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from jaxtyping import Array, Float, Int

from .._curve import curve_energy, straight_line
from .._custom_types import Curve, Point
from .._metric._base import AbstractMetric
from .._numerics import HIGHEST
from .._solution import RESULTS
from ._base import (
    AbstractPolylineSolver,
    BoundaryProblem,
    geodesic_levels,
    LevelSolve,
    sine_basis,
)
from ._levels import LevelEnergy


def parametrisation(num_points: int, dtype, precondition: bool):
    """Maps between a polyline and the coordinates `z` of its interior points
    (offsets from the straight line, in the preconditioned basis if asked)."""
    n = num_points - 2
    host_basis = sine_basis(num_points, dtype) if precondition else np.eye(n, dtype=dtype)
    basis, inverse = jnp.asarray(host_basis), jnp.asarray(np.linalg.inv(host_basis))

    def to_curve(z, a, b):
        offsets = jnp.dot(basis, z, precision=HIGHEST)
        return straight_line(a, b, num_points).at[1:-1].add(offsets)

    def from_curve(xs):
        line = straight_line(xs[0], xs[-1], num_points)
        return jnp.dot(inverse, xs[1:-1] - line[1:-1], precision=HIGHEST)

    return to_curve, from_curve


class EnergyDescent(AbstractPolylineSolver):
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
      minimiser (default: `optimistix.LBFGS`). Its own tolerances are replaced by
      `rtol` and `atol`.
    - `rtol`, `atol`: the stopping tolerances on the energy and the points (Cauchy
      termination); default 1e-6 in float64 and 1e-4 in float32.
    - `precondition`: optimise in the preconditioned coordinates (default) or in
      the raw point coordinates.
    - `adjoint`: how to differentiate through the solve; the default
      `optimistix.ImplicitAdjoint()` uses the implicit function theorem at the minimum.

    `stats`: see [`jaxgeo.AbstractPolylineSolver`][].
    """

    optimizer: optax.GradientTransformation | optx.AbstractMinimiser = optx.LBFGS(
        rtol=1e-6, atol=1e-6
    )
    rtol: float | None = None
    atol: float | None = None
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

    def minimise(
        self, problem: BoundaryProblem, rtol: float, atol: float
    ) -> tuple[Curve, RESULTS, Int[Array, ""]]:
        x0, x1, init = problem.x0, problem.x1, problem.init
        dtype = init.dtype
        if isinstance(self.optimizer, optx.AbstractMinimiser):
            # optimistix's quasi-Newton states hold arrays of the default float dtype
            # (float64 under jax_enable_x64), which breaks float32 solves: work in the
            # wider dtype and return the caller's.
            work = np.promote_types(dtype, jnp.result_type(float))
            x0, x1, init = x0.astype(work), x1.astype(work), init.astype(work)
        to_curve, from_curve = parametrisation(init.shape[0], init.dtype, self.precondition)

        def energy(z, args):
            problem, a, b = args
            # (The metric sees the caller's dtype; the minimiser its working dtype.)
            xs = to_curve(z, a, b).astype(dtype)
            return problem.curve_energy(xs).astype(z.dtype)

        # (Standard promotion for optax's updates; see `energy_descent_trace`.)
        with jax.numpy_dtype_promotion("standard"):
            sol = optx.minimise(
                energy,
                self._minimiser(rtol, atol),
                from_curve(init),
                args=(problem, x0, x1),
                max_steps=problem.max_steps,
                adjoint=self.adjoint,
                throw=False,
            )
        xs = to_curve(sol.value, x0, x1).astype(dtype)
        return xs, RESULTS.promote(sol.result), sol.stats["num_steps"]

    def level_solver(
        self, problem: BoundaryProblem, level_energy: LevelEnergy, sizes: tuple[int, ...]
    ) -> LevelSolve:
        """Each level solved by `geodesic` (see `geodesic_levels`)."""
        del level_energy
        return geodesic_levels(self, problem, sizes)


@eqx.filter_jit
def energy_descent_trace(
    metric: AbstractMetric,
    x0: Point,
    x1: Point,
    *,
    num_points: int = 60,
    optimizer: optax.GradientTransformation = optax.adam(0.005),
    num_steps: int = 3000,
    save_every: int = 100,
    precondition: bool = False,
) -> tuple[Float[Array, "frames points dim"], Float[Array, " frames"]]:
    """The history of plain energy descent from the straight line, for figures and
    animations: the curve and its energy every `save_every` steps of a fixed number
    of optax steps (`experiments.stein_gaussian` animates Adam on the raw points,
    `precondition=False`).

    To *solve* for a geodesic use [`jaxgeo.geodesic_bvp`][], which stops on a
    tolerance and reports `result`.

    **Returns:** `(curves, energies)` of shapes `(F, num_points, D)` and `(F,)` with
    `F = num_steps // save_every + 1` frames, the first being the straight line.
    """
    if num_points < 3 or save_every < 1 or num_steps < save_every:
        raise ValueError(
            "energy_descent_trace needs num_points >= 3 and 1 <= save_every <= num_steps, "
            f"got num_points={num_points}, save_every={save_every}, num_steps={num_steps}"
        )
    x0, x1 = jnp.asarray(x0), jnp.asarray(x1)
    to_curve, _ = parametrisation(num_points, x0.dtype, precondition)
    energy = lambda z: curve_energy(metric, to_curve(z, x0, x1))

    def step(_, carry):
        z, state = carry
        # (optax's Adam raises a float to an int32 power, which strict dtype promotion
        # rejects: the update runs under standard promotion, as in `jaxgeo.train.fit`.)
        with jax.numpy_dtype_promotion("standard"):
            updates, state = optimizer.update(jax.grad(energy)(z), state, z)
        return optax.apply_updates(z, updates), state

    def chunk(carry, _):
        carry = jax.lax.fori_loop(0, save_every, step, carry)
        return carry, carry[0]

    z0 = jnp.zeros((num_points - 2, x0.shape[0]), x0.dtype)
    _, zs = jax.lax.scan(chunk, (z0, optimizer.init(z0)), length=num_steps // save_every)
    zs = jnp.concatenate([z0[None], zs])
    return jax.vmap(lambda z: to_curve(z, x0, x1))(zs), jax.vmap(energy)(zs)
