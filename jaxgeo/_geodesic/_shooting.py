import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx
from jaxtyping import Array, Float

from .._custom_types import Point, Scalar
from .._metric._base import AbstractMetric
from .._numerics import SHOOTING_TOL
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver, AbstractPolylineSolver, BoundaryProblem
from ._default import default_polyline_solver
from ._ivp import geodesic_flow


Segments = Float[Array, "segments dim"]

# The segment flows are integrated this much tighter than Newton's tolerances, so that
# integration error does not limit Newton's convergence.
ODE_TOL_FACTOR = 1e-2
# diffrax's step budget per segment flow.
ODE_MAX_STEPS = 4096
# A non-finite mismatch (a flow that left the metric's domain) is replaced by this.
NONFINITE_MISMATCH = 1e12
# Newton's root counts as found when the largest mismatch is below this many times
# `atol` (relative to the chord's scale): Newton's own test is on the step size.
RESIDUAL_FACTOR = 1e3


def _flow(metric: AbstractMetric, x: Point, v: Point, duration, tol: float, saveat):
    # DirectAdjoint: Newton needs forward mode, gradients of the result reverse mode.
    sol = geodesic_flow(
        metric,
        x,
        v,
        duration,
        solver=dfx.Tsit5(),
        stepsize_controller=dfx.PIDController(rtol=tol, atol=tol),
        saveat=saveat,
        max_steps=ODE_MAX_STEPS,
        adjoint=dfx.DirectAdjoint(),
    )
    return sol.ys


def _residual(y, args):
    metric, x0, x1, tol = args
    xs_inner, vs = y
    num_segments = vs.shape[0]
    starts = jnp.concatenate([x0[None], xs_inner])
    ends, end_velocities = jax.vmap(
        lambda x, v: _flow(metric, x, v, 1 / num_segments, tol, dfx.SaveAt(t1=True))
    )(starts, vs)
    targets = jnp.concatenate([xs_inner, x1[None]])
    return jtu.tree_map(_finite, (ends[:, 0] - targets, end_velocities[:-1, 0] - vs[1:]))


@jax.custom_jvp
def _finite(r):
    """A flow that fails (leaves the metric's domain) gives a large finite mismatch with
    zero derivative, so that Newton reports failure instead of handing NaNs to its
    linear solver."""
    return jnp.where(jnp.isfinite(r), r, NONFINITE_MISMATCH)


@_finite.defjvp
def _finite_jvp(primals, tangents):
    (r,), (dr,) = primals, tangents
    # The mask depends on the primal only, so that the rule stays transposable
    # (reverse mode through the implicit-function adjoint).
    return _finite(r), jnp.where(jnp.isfinite(r), dr, 0.0)


class Shooting(AbstractBoundarySolver):
    r"""The exact geodesic by multiple shooting.

    The geodesic on $[0, 1]$ is split into `num_segments` pieces; the positions and
    velocities at their starts are found with Newton's method (optimistix; forward-mode
    derivatives through diffrax) so that each piece's geodesic flow ends where the next
    begins and the last ends at $x_1$. Short pieces keep the problem well conditioned
    where single shooting is not: geodesic flows of data metrics can amplify errors in
    $v_0$ by many orders of magnitude. The unknowns start from the energy-minimising
    polyline of `init_solver` (run on the problem, with its budget), which also
    selects *which* geodesic is found.

    The solution is the ODE's geodesic sampled at the polyline's times, with exact
    velocities (so `vs[0]` is the log map $\log_{x_0}(x_1)$), `length`
    $= \|v_0\|_{G(x_0)}$ and `energy` $= \frac12 \|v_0\|^2$. Its `stats`:
    `num_steps` and `max_steps` of Newton, `residual` (the largest mismatch of the
    shooting conditions: end point and segment joins) and `init_num_steps` (the
    initial polyline solve's).

    **Arguments:**

    - `num_segments`: number of shooting segments $K$.
    - `rtol`, `atol`: Newton's tolerances; the ODE is integrated at 1/100 of them.
      Default 1e-10 in float64, 1e-5 in float32.
    - `max_steps`: Newton's iteration budget.
    - `init_solver`: the polyline solver of the initial curve (default: as in
      [`jaxgeo.geodesic_bvp`][]).

    Gradients (forward and reverse mode) go through the implicit function theorem at
    the root. Each Newton step costs $K$ ODE solves with $2KD$ tangents.
    """

    num_segments: int = eqx.field(static=True, default=8)
    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=64)
    init_solver: AbstractPolylineSolver | None = None

    def __check_init__(self):
        if not isinstance(self.num_segments, int) or self.num_segments < 1:
            raise ValueError(
                f"Shooting: num_segments must be a positive integer, got {self.num_segments!r}"
            )

    def _tolerances(self, dtype) -> tuple[float, float]:
        default = SHOOTING_TOL(dtype)
        return (
            default if self.rtol is None else self.rtol,
            default if self.atol is None else self.atol,
        )

    def _shoot(
        self, problem: BoundaryProblem, guess: GeodesicSolution
    ) -> tuple[Segments, Segments, RESULTS, dict]:
        """Solve the shooting conditions from the polyline `guess`: the positions and
        velocities at the segment starts, the result and `stats`."""
        metric, x0, x1 = problem.metric, problem.x0, problem.x1
        dtype = x0.dtype
        rtol, atol = self._tolerances(dtype)
        grid = jnp.linspace(0, 1, self.num_segments + 1, dtype=dtype)[:-1]

        def at_grid(curve):
            return jax.vmap(lambda c: jnp.interp(grid, guess.ts, c), in_axes=1, out_axes=1)(curve)

        xs0, vs0 = at_grid(guess.xs), at_grid(guess.vs)
        # If the polyline failed (non-finite energy), start from the chord instead.
        finite = jnp.all(jnp.isfinite(xs0)) & jnp.all(jnp.isfinite(vs0))
        xs0 = jnp.where(finite, xs0, x0[None, :] + grid[:, None] * (x1 - x0)[None, :])
        vs0 = jnp.where(finite, vs0, jnp.broadcast_to(x1 - x0, vs0.shape))
        y0 = jax.lax.stop_gradient((xs0[1:], vs0))
        args = (metric, x0, x1, ODE_TOL_FACTOR * min(rtol, atol))
        sol = optx.root_find(
            _residual,
            optx.Newton(rtol=rtol, atol=atol),
            y0,
            args=args,
            max_steps=self.max_steps,
            throw=False,
        )
        xs_inner, vs = sol.value
        mismatch_x, mismatch_v = _residual(sol.value, args)
        residual = jnp.maximum(
            jnp.max(jnp.abs(mismatch_x)), jnp.max(jnp.abs(mismatch_v), initial=0.0)
        )
        residual = jax.lax.stop_gradient(residual)
        scale = 1 + jnp.max(jnp.abs(x1 - x0))
        result = RESULTS.promote(sol.result)
        result = RESULTS.where(
            (result == RESULTS.successful) & ~(residual <= RESIDUAL_FACTOR * atol * scale),
            RESULTS.nonlinear_divergence,
            result,
        )
        stats = dict(num_steps=sol.stats["num_steps"], max_steps=self.max_steps, residual=residual)
        return jnp.concatenate([x0[None], xs_inner]), vs, result, stats

    def geodesic(self, problem: BoundaryProblem) -> GeodesicSolution:
        metric, x0, x1 = problem.metric, problem.x0, problem.x1
        init_solver = (
            default_polyline_solver(x0.shape[0]) if self.init_solver is None else self.init_solver
        )
        guess = init_solver.geodesic(problem)
        starts, vs, result, stats = self._shoot(problem, guess)
        # Sample each segment's flow at the polyline's times that fall in it.
        num_segments = self.num_segments
        ts = guess.ts
        begins = jnp.arange(num_segments, dtype=ts.dtype) / num_segments
        tol = ODE_TOL_FACTOR * min(self._tolerances(ts.dtype))

        def sample(x, v, begin):
            local = jnp.clip(ts - begin, 0, 1 / num_segments)
            return _flow(metric, x, v, 1 / num_segments, tol, dfx.SaveAt(ts=local))

        xs_all, vs_all = jax.vmap(sample)(starts, vs, begins)
        segment = jnp.clip(jnp.floor(ts * num_segments).astype(int), 0, num_segments - 1)
        index = jnp.arange(ts.shape[0])
        speed: Scalar = metric.norm(x0, vs[0])
        stats["init_num_steps"] = guess.stats["num_steps"]
        return GeodesicSolution(
            ts=ts,
            xs=xs_all[segment, index].at[-1].set(x1),
            vs=vs_all[segment, index],
            length=speed,
            energy=0.5 * speed**2,
            result=result,
            stats=stats,
        )
