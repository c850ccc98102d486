from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._custom_types import Point, Scalar
from .._metric._base import AbstractMetric
from .._numerics import SHOOTING_TOL
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver, AbstractPolylineSolver, BoundaryProblem, TerminateOnState
from ._default import default_polyline_solver
from ._ivp import geodesic_flow, geodesic_vector_field


Segments = Float[Array, "segments dim"]
Unknowns = tuple[Float[Array, "joins dim"], Segments]  # inner starts, start velocities
Mismatch = tuple[Segments, Float[Array, "joins dim"]]  # ends, velocity joins

# The segment flows are integrated this much tighter than Newton's tolerances, so that
# integration error does not limit Newton's convergence.
ODE_TOL_FACTOR = 1e-2
# The smallest step of a segment flow, relative to the segment's duration: below it
# (a flow that runs into a singularity or a region where the metric is NaN keeps
# rejecting steps) the integration stops and reports failure instead of spinning.
ODE_MIN_STEP = 1e-10
# A non-finite mismatch (a flow that left the metric's domain) is replaced by this.
NONFINITE_MISMATCH = 1e12
# Newton's root counts as found when the largest mismatch is below this many times
# `atol` (relative to the chord's scale): Newton's own test is on the step size.
RESIDUAL_FACTOR = 1e3
# Newton diverges when a step is this much longer than the one before it (a quadratic
# or even linear contraction would shrink it), as in optimistix's Newton.
DIVERGENCE_RATE = 2.0


def _flow(metric: AbstractMetric, state, duration, tol: float, max_steps: int, saveat):
    """The geodesic flow of `state = (x, v)` over `duration`."""
    # DirectAdjoint: the solution's gradients, forward and reverse mode.
    controller = dfx.PIDController(rtol=tol, atol=tol, dtmin=ODE_MIN_STEP * duration)
    x, v = state
    sol = geodesic_flow(
        metric, x, v, duration, dfx.Tsit5(), controller, saveat, max_steps, dfx.DirectAdjoint()
    )
    return sol.ys


class _ShootingArgs(eqx.Module):
    metric: AbstractMetric
    x0: Point
    x1: Point
    tol: float
    max_ode_steps: int = eqx.field(static=True)

    def segment_end(self, state: Float[Array, " twice_dim"], num_segments: int):
        """Position and velocity (concatenated) at the end of a segment's flow."""
        dim = state.shape[0] // 2
        end = _flow(
            self.metric,
            (state[:dim], state[dim:]),
            1 / num_segments,
            self.tol,
            self.max_ode_steps,
            dfx.SaveAt(t1=True),
        )
        return _finite(jnp.concatenate([end[0][0], end[1][0]]))

    def segment_ends_and_jacobians(
        self, starts: Float[Array, "segments twice_dim"]
    ) -> tuple[Float[Array, "segments twice_dim"], Float[Array, "segments twice_dim twice_dim"]]:
        r"""Every segment's end state and flow Jacobian $\Phi_k$, from one integration of
        all segments together (one step size, every component within the tolerances:
        max norm) pushed forward along the $2D$ unit tangents, each applied to all
        segments at once (the flows are independent, so one tangent gives every
        segment's column). Forward mode only (`diffrax.ForwardMode`, a plain loop): the
        iterates are not differentiated, gradients go through the root. One loop, not a
        vmap of per-segment loops, is much cheaper to trace and compile."""
        num_segments, twice_dim = starts.shape
        dim = twice_dim // 2
        duration = 1 / num_segments
        controller = dfx.PIDController(
            rtol=self.tol, atol=self.tol, dtmin=ODE_MIN_STEP * duration, norm=optx.max_norm
        )

        def ends(starts):
            sol = dfx.diffeqsolve(
                # The geodesic vector field of every segment's state at once.
                dfx.ODETerm(jax.vmap(geodesic_vector_field, in_axes=(None, 0, None))),
                dfx.Tsit5(),
                t0=0.0,
                t1=duration,
                dt0=None,
                y0=(starts[:, :dim], starts[:, dim:]),
                args=self.metric,
                saveat=dfx.SaveAt(t1=True),
                stepsize_controller=controller,
                max_steps=self.max_ode_steps,
                adjoint=dfx.ForwardMode(),
                throw=False,
            )
            x, v = sol.ys
            return _finite(jnp.concatenate([x[0], v[0]], axis=1))

        basis = jnp.broadcast_to(
            jnp.eye(twice_dim, dtype=starts.dtype)[:, None], (twice_dim, *starts.shape)
        )
        values, columns = jax.vmap(lambda t: jax.jvp(ends, (starts,), (t,)))(basis)
        return values[0], jnp.moveaxis(columns, 0, -1)

    def starts(self, y: Unknowns) -> Float[Array, "segments twice_dim"]:
        xs_inner, vs = y
        return jnp.concatenate([jnp.concatenate([self.x0[None], xs_inner]), vs], axis=1)

    def mismatch(self, y: Unknowns, ends: Float[Array, "segments twice_dim"]) -> Mismatch:
        """The shooting conditions' mismatches: each flow's end against the next start
        (position and velocity), the last end against $x_1$ (position)."""
        xs_inner, vs = y
        dim = vs.shape[1]
        targets = jnp.concatenate([xs_inner, self.x1[None]])
        return ends[:, :dim] - targets, ends[:-1, dim:] - vs[1:]


def _residual(y: Unknowns, args: _ShootingArgs) -> Mismatch:
    num_segments = y[1].shape[0]
    ends = jax.vmap(lambda s: args.segment_end(s, num_segments))(args.starts(y))
    return args.mismatch(y, ends)


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


def _newton_matrix(flow_jacobians: Float[Array, "segments twice_dim twice_dim"]):
    r"""The Jacobian of the shooting conditions, assembled from each segment's flow
    Jacobian $\Phi_k = \partial(x, v)_{\mathrm{end}} / \partial(x_k, v_k)$: block
    bidiagonal, $[\Phi_k, -I]$ in the rows of segment $k$. Unknowns are ordered
    $(v_0, (x_1, v_1), \dots, (x_{K-1}, v_{K-1}))$, conditions
    $((x, v)$ joins of segments $0..K-2$, the end point of segment $K-1)$."""
    num_segments, twice_dim = flow_jacobians.shape[:2]
    dim = twice_dim // 2
    size = (2 * num_segments - 1) * dim
    matrix = jnp.zeros((size, size), flow_jacobians.dtype)
    minus_eye = -jnp.eye(twice_dim, dtype=flow_jacobians.dtype)
    for k in range(num_segments):
        rows = slice(2 * dim * k, 2 * dim * k + (twice_dim if k < num_segments - 1 else dim))
        block = flow_jacobians[k, : rows.stop - rows.start]
        if k == 0:
            matrix = matrix.at[rows, :dim].set(block[:, dim:])
        else:
            start = dim + twice_dim * (k - 1)
            matrix = matrix.at[rows, start : start + twice_dim].set(block)
        if k < num_segments - 1:
            start = dim + twice_dim * k
            matrix = matrix.at[rows, start : start + twice_dim].set(minus_eye)
    return matrix


class _ShootingState(eqx.Module):
    step_size: Scalar
    previous_step_size: Scalar
    num_steps: Int[Array, ""]
    terminate: Bool[Array, ""]
    result: optx.RESULTS


class _ShootingNewton(TerminateOnState, optx.AbstractRootFinder):
    """Newton's method on the shooting conditions with their block-bidiagonal Jacobian:
    each step pushes $2D$ tangents through each segment's flow (vmapped over segments),
    not $2KD$ through all of them, and solves the $(2K-1)D$ system by LU. Stops when the
    step is below the tolerances; fails when the flows leave the metric's domain or the
    steps grow (divergence). For use by `Shooting` only (`args` are `_ShootingArgs`)."""

    rtol: float
    atol: float
    norm: Callable[[PyTree], Scalar] = optx.max_norm

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        del fn, y, args, options, aux_struct, tags
        dtype = f_struct[0].dtype
        return _ShootingState(
            step_size=jnp.array(jnp.inf, dtype),
            previous_step_size=jnp.array(jnp.inf, dtype),
            num_steps=jnp.array(0),
            terminate=jnp.array(False),
            result=optx.RESULTS.successful,
        )

    def step(self, fn, y, args, options, state, tags):
        del fn, options, tags
        num_segments, dim = y[1].shape
        ends, jacobians = args.segment_ends_and_jacobians(args.starts(y))
        mismatch_x, mismatch_v = args.mismatch(y, ends)
        rhs = jnp.concatenate(
            [
                jnp.concatenate([mismatch_x[:-1], mismatch_v], axis=1).reshape(-1),
                mismatch_x[-1],
            ]
        )
        delta = jnp.linalg.solve(_newton_matrix(jacobians), -rhs)
        delta_v0, rest = delta[:dim], delta[dim:].reshape(num_segments - 1, 2 * dim)
        step = (rest[:, :dim], jnp.concatenate([delta_v0[None], rest[:, dim:]]))
        new_y = jtu.tree_map(jnp.add, y, step)
        step_size = self.norm(
            jtu.tree_map(lambda d, z: d / (self.atol + self.rtol * jnp.abs(z)), step, new_y)
        )
        finite = jnp.all(jnp.isfinite(delta)) & jnp.all(jnp.abs(rhs) < NONFINITE_MISMATCH)
        converged = finite & (step_size < 1)
        diverged = ~finite | (
            (state.num_steps >= 1) & (step_size > DIVERGENCE_RATE * state.step_size)
        )
        new_state = _ShootingState(
            step_size=step_size,
            previous_step_size=state.step_size,
            num_steps=state.num_steps + 1,
            terminate=converged | diverged,
            result=optx.RESULTS.where(
                diverged & ~converged, optx.RESULTS.nonlinear_divergence, optx.RESULTS.successful
            ),
        )
        return jtu.tree_map(lambda new, old: jnp.where(finite, new, old), new_y, y), new_state, None


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
    - `max_ode_steps`: the step budget of each segment's integration.
    - `init_solver`: the polyline solver of the initial curve (default: as in
      [`jaxgeo.geodesic_bvp`][]).

    Gradients (forward and reverse mode) go through the implicit function theorem at
    the root. Each Newton step integrates the $K$ segments with $2D$ tangents each (the
    Jacobian of the conditions is block bidiagonal) and solves a $(2K-1)D$ linear system.

    Every loop is bounded: the initial solve by the problem's `max_steps`, Newton by
    `max_steps` here (and by the problem's, whichever is smaller; it also stops early
    when its steps grow), each segment's integration by `max_ode_steps` steps of at least
    `1e-10` of the segment's duration (a flow into a singularity fails fast).
    """

    num_segments: int = eqx.field(static=True, default=8)
    rtol: float | None = eqx.field(static=True, default=None)
    atol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=32)
    max_ode_steps: int = eqx.field(static=True, default=1024)
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

    def _ode_tolerance(self, dtype) -> float:
        return ODE_TOL_FACTOR * min(self._tolerances(dtype))

    def _shoot(
        self, problem: BoundaryProblem, guess: GeodesicSolution
    ) -> tuple[Unknowns, _ShootingArgs, RESULTS, dict]:
        """Newton on the shooting conditions from the polyline `guess`: the unknowns
        (inner segment starts, start velocities), the conditions' arguments, Newton's
        result and `stats`."""
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
        args = _ShootingArgs(metric, x0, x1, self._ode_tolerance(dtype), self.max_ode_steps)
        max_steps = min(self.max_steps, problem.max_steps)
        sol = optx.root_find(
            _residual,
            _ShootingNewton(rtol=rtol, atol=atol),
            y0,
            args=args,
            max_steps=max_steps,
            throw=False,
        )
        xs_inner, vs = sol.value
        stats = dict(num_steps=sol.stats["num_steps"], max_steps=max_steps)
        return (xs_inner, vs), args, RESULTS.promote(sol.result), stats

    def geodesic(self, problem: BoundaryProblem) -> GeodesicSolution:
        metric, x0, x1 = problem.metric, problem.x0, problem.x1
        init_solver = (
            default_polyline_solver(x0.shape[0]) if self.init_solver is None else self.init_solver
        )
        guess = init_solver.geodesic(problem)
        unknowns, args, result, stats = self._shoot(problem, guess)
        # Sample each segment's flow at the polyline's times that fall in it; the last
        # time, t = 1, is past every segment, so each flow's end is sampled too.
        num_segments = self.num_segments
        ts = guess.ts
        begins = jnp.arange(num_segments, dtype=ts.dtype) / num_segments

        def sample(state, begin):
            local = jnp.clip(ts - begin, 0, 1 / num_segments)
            saveat = dfx.SaveAt(ts=local)
            dim = state.shape[0] // 2
            state = (state[:dim], state[dim:])
            return _flow(metric, state, 1 / num_segments, args.tol, self.max_ode_steps, saveat)

        xs_all, vs_all = jax.vmap(sample)(args.starts(unknowns), begins)
        # The shooting conditions at the root: Newton's own test is on its step size.
        ends = jnp.concatenate([xs_all[:, -1], vs_all[:, -1]], axis=1)
        mismatch_x, mismatch_v = args.mismatch(unknowns, ends)
        residual = jax.lax.stop_gradient(
            jnp.maximum(jnp.max(jnp.abs(mismatch_x)), jnp.max(jnp.abs(mismatch_v), initial=0.0))
        )
        atol = self._tolerances(ts.dtype)[1]
        scale = 1 + jnp.max(jnp.abs(x1 - x0))
        result = RESULTS.where(
            (result == RESULTS.successful) & ~(residual <= RESIDUAL_FACTOR * atol * scale),
            RESULTS.nonlinear_divergence,
            result,
        )
        segment = jnp.clip(jnp.floor(ts * num_segments).astype(int), 0, num_segments - 1)
        index = jnp.arange(ts.shape[0])
        v0 = unknowns[1][0]
        speed: Scalar = metric.norm(x0, v0)
        stats.update(residual=residual, init_num_steps=guess.stats["num_steps"])
        return GeodesicSolution(
            ts=ts,
            xs=xs_all[segment, index].at[-1].set(x1),
            vs=vs_all[segment, index],
            length=speed,
            energy=0.5 * speed**2,
            result=result,
            stats=stats,
        )
