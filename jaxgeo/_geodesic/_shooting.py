import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optimistix as optx
from jaxtyping import Array, Float, Int

from .._custom_types import Point, Scalar
from .._linalg import solve
from .._metric._base import AbstractMetric
from .._numerics import SHOOTING_TOL
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver, AbstractPolylineSolver, BoundaryProblem
from ._default import default_polyline_solver
from ._flow import geodesic_vector_field, integrate, ode_controller
from ._levels import dense_tangents


Segments = Float[Array, "segments dim"]
Unknowns = tuple[Float[Array, "joins dim"], Segments]  # inner starts, start velocities
Samples = tuple[Float[Array, "times segments dim"], Float[Array, "times segments dim"]]
FlowJacobians = Float[Array, "segments twice_dim twice_dim"]

# The segment flows are integrated this much tighter than Newton's tolerances, so that
# integration error does not limit Newton's convergence.
ODE_TOL_FACTOR = 1e-2
# A non-finite mismatch (a flow that left the metric's domain) is replaced by this.
NONFINITE_MISMATCH = 1e12
# Newton's root counts as found when the largest mismatch is below this many times
# `atol` (relative to the chord's scale): Newton's own test is on the step size.
RESIDUAL_FACTOR = 1e3
# Newton diverges when a step is this much longer than the one before it (a quadratic
# or even linear contraction would shrink it).
DIVERGENCE_RATE = 2.0


class _Segments(eqx.Module):
    """The shooting problem: the metric, the end points, and how every segment's flow
    is integrated (ODE tolerance and step budget) and sampled (at `save_times`: local
    times within a segment's duration $1/K$, sorted, ending at $1/K$)."""

    metric: AbstractMetric
    x0: Point
    x1: Point
    save_times: Float[Array, " times"]
    tol: float
    max_ode_steps: int = eqx.field(static=True)

    def _solve(self, field, starts, y0, saveat, adjoint, norm=optx.max_norm):
        # One step size for all segments, every state component within the tolerances
        # (max norm); a flow that keeps rejecting steps (into a singularity, or where
        # the metric is NaN) stops at `dtmin` and fails instead of spinning.
        duration = 1 / starts.shape[0]
        controller = ode_controller(starts.dtype, duration, self.tol, self.tol, norm)
        return integrate(
            field,
            y0,
            duration,
            self.metric,
            controller=controller,
            saveat=saveat,
            max_steps=self.max_ode_steps,
            adjoint=adjoint,
        ).ys

    def flows(self, starts: Float[Array, "segments twice_dim"]) -> Samples:
        """Every segment's geodesic flow from its start state `(x, v)`, integrated
        together (one loop, the vector field vmapped over segments) and sampled at
        `save_times`: positions and velocities, shape `(times, segments, dim)`.
        Differentiable in forward and reverse mode (`diffrax.DirectAdjoint`)."""
        dim = starts.shape[1] // 2
        return self._solve(
            _segments_vector_field,
            starts,
            (starts[:, :dim], starts[:, dim:]),
            dfx.SaveAt(ts=self.save_times),
            dfx.DirectAdjoint(),
        )

    def flows_and_jacobians(
        self, starts: Float[Array, "segments twice_dim"]
    ) -> tuple[Samples, FlowJacobians]:
        r"""`flows`, with every segment's flow Jacobian $\Phi_k = \partial(x, v)_{\rm end}
        / \partial(x, v)_{\rm start}$ from the variational equations $\dot\Phi =
        Df\,\Phi$, $\Phi(0) = I$ (its $2D$ columns are JVPs of the geodesic vector field
        $f$). The step size is controlled on the states only, as forward-mode
        differentiation of the flows would. A plain loop, never differentiated."""
        num_segments, twice_dim = starts.shape
        dim = twice_dim // 2
        eye = jnp.eye(twice_dim, dtype=starts.dtype)
        saveat = dfx.SaveAt(
            subs=(
                dfx.SubSaveAt(ts=self.save_times, fn=lambda t, y, args: y[:2]),
                dfx.SubSaveAt(t1=True, fn=lambda t, y, args: y[2]),
            )
        )
        samples, jacobians = self._solve(
            _variational_vector_field,
            starts,
            (starts[:, :dim], starts[:, dim:], jnp.broadcast_to(eye, (num_segments, *eye.shape))),
            saveat,
            dfx.ForwardMode(),
            norm=lambda error: optx.max_norm(error[:2]),
        )
        return samples, jacobians[0]

    def starts(self, y: Unknowns) -> Float[Array, "segments twice_dim"]:
        """The segments' start states `(x, v)` from the unknowns (and $x_0$)."""
        xs_inner, vs = y
        return jnp.concatenate([jnp.concatenate([self.x0[None], xs_inner]), vs], axis=1)

    def mismatch(self, y: Unknowns, samples: Samples) -> Float[Array, " conditions"]:
        """The shooting conditions' mismatches in Newton's order: the $(x, v)$ joins of
        segments $0..K-2$ (each flow's end against the next start), then the last
        flow's end against $x_1$. Linear in `y`, the samples and the end points (so
        also their tangents' mismatch, in `_shoot_jvp`)."""
        xs_inner, vs = y
        ends_x, ends_v = samples[0][-1], samples[1][-1]
        joins = jnp.concatenate([ends_x[:-1] - xs_inner, ends_v[:-1] - vs[1:]], axis=1)
        return jnp.concatenate([joins.reshape(-1), ends_x[-1] - self.x1])


def _segments_vector_field(t, state, metric):
    """The geodesic vector field of every segment's `(x, v)` at once."""
    return jax.vmap(geodesic_vector_field, in_axes=(None, 0, None))(t, state, metric)


def _variational_vector_field(t, state, metric):
    r"""The geodesic vector field $f$ of every segment with its variational equations:
    $(f(x, v), Df(x, v)\,\Phi)$, one JVP per column of $\Phi$."""

    def one_segment(x, v, jacobian):
        dim = x.shape[0]
        field, linear = jax.linearize(lambda x, v: geodesic_vector_field(t, (x, v), metric), x, v)
        column = lambda c: jnp.concatenate(linear(c[:dim], c[dim:]))  # noqa: E731
        return (*field, jax.vmap(column, in_axes=1, out_axes=1)(jacobian))

    return jax.vmap(one_segment)(*state)


def _unknowns_step(delta: Float[Array, " unknowns"], num_segments: int, dim: int) -> Unknowns:
    r"""Newton's flat unknowns $(v_0, (x_1, v_1), \dots)$ as `(xs_inner, vs)`."""
    delta_v0, rest = delta[:dim], delta[dim:].reshape(num_segments - 1, 2 * dim)
    return rest[:, :dim], jnp.concatenate([delta_v0[None], rest[:, dim:]])


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


class _Root(eqx.Module):
    """Newton's result: the unknowns, their flows (from the last step) and flow
    Jacobians, the number of steps and why it stopped."""

    unknowns: Unknowns
    samples: Samples
    jacobians: FlowJacobians
    num_steps: Int[Array, ""]
    status: Int[Array, ""]  # 0: budget spent, 1: converged, 2: diverged


def _result(status: Int[Array, ""]) -> RESULTS:
    return RESULTS.where(
        status == 1,
        RESULTS.successful,
        RESULTS.where(
            status == 2, RESULTS.nonlinear_divergence, RESULTS.nonlinear_max_steps_reached
        ),
    )


def _newton(segments: _Segments, y0: Unknowns, rtol: float, atol: float, max_steps: int) -> _Root:
    """Newton's method on the shooting conditions, at most `max_steps` integrations.
    Stops when the step is below the tolerances (the iterate is then kept: its flows
    are the ones just integrated, its error below that step); fails when the flows
    leave the metric's domain or the steps grow (divergence)."""
    num_segments, dim = y0[1].shape
    dtype = y0[1].dtype

    def step(carry):
        y, _, _, previous_step_size, num_steps, _ = carry
        samples, jacobians = segments.flows_and_jacobians(segments.starts(y))
        rhs = segments.mismatch(y, jtu.tree_map(_finite, samples))
        delta = solve(_newton_matrix(jacobians), -rhs)
        step = _unknowns_step(delta, num_segments, dim)
        new_y = jtu.tree_map(jnp.add, y, step)
        step_size = optx.max_norm(
            jtu.tree_map(lambda d, z: d / (atol + rtol * jnp.abs(z)), step, new_y)
        )
        finite = jnp.all(jnp.isfinite(delta)) & jnp.all(jnp.abs(rhs) < NONFINITE_MISMATCH)
        converged = finite & (step_size < 1)
        diverged = ~finite | ((num_steps >= 1) & (step_size > DIVERGENCE_RATE * previous_step_size))
        status = jnp.where(converged, 1, jnp.where(diverged, 2, 0))
        # The last step of the budget only evaluates, so that the flows are the iterate's.
        keep = (status > 0) | (num_steps + 1 >= max_steps)
        y = jtu.tree_map(lambda new, old: jnp.where(keep, old, new), new_y, y)
        return y, samples, jacobians, step_size, num_steps + 1, status

    def running(carry):
        num_steps, status = carry[-2:]
        return (status == 0) & (num_steps < max_steps)

    twice_dim = 2 * dim
    zeros = jnp.zeros((segments.save_times.shape[0], num_segments, dim), dtype)
    init = (
        y0,
        (zeros, zeros),
        jnp.zeros((num_segments, twice_dim, twice_dim), dtype),
        jnp.array(jnp.inf, dtype),
        jnp.array(0),
        jnp.array(0),
    )
    y, samples, jacobians, _, num_steps, status = jax.lax.while_loop(running, step, init)
    return _Root(y, samples, jacobians, num_steps, status)


@eqx.filter_custom_jvp
def _shoot(segments: _Segments, y0: Unknowns, *, rtol: float, atol: float, max_steps: int):
    """Newton's root of the shooting conditions from `y0`: `(unknowns, samples,
    num_steps, status)` of its `_Root`, differentiated by the implicit function
    theorem."""
    root = _newton(segments, y0, rtol, atol, max_steps)
    return root.unknowns, root.samples, root.num_steps, root.status


@_shoot.def_jvp
def _shoot_jvp(primals, tangents, *, rtol, atol, max_steps):
    r"""At the root $y^*$ of $r(y, p) = 0$ ($p$: metric and end points, in `segments`),
    $\mathrm dy^* = -(\partial_y r)^{-1} \partial_p r\, \mathrm dp$ with Newton's own
    matrix $\partial_y r$; the flows' tangents are the flows' JVP along $(\mathrm dp,
    \mathrm d\,\mathrm{starts})$, by one linearisation of a `DirectAdjoint` integration
    (transposable: reverse mode too). `y0` only selects the root: no tangent."""
    segments, y0 = primals
    root = _newton(segments, y0, rtol, atol, max_steps)
    num_segments, dim = y0[1].shape
    dynamic, static = eqx.partition(segments, eqx.is_inexact_array)
    t_dynamic = dense_tangents(dynamic, tangents[0])
    starts = segments.starts(root.unknowns)

    def flows(dynamic, starts):
        return eqx.combine(dynamic, static).flows(starts)

    _, flows_jvp = jax.linearize(flows, dynamic, starts)

    # The starts and the mismatch are linear (in the unknowns, x0, x1 and the flows):
    # along the tangents `d_segments` (dx0, dx1, d metric) they map tangents.
    d_segments = eqx.combine(t_dynamic, static)

    def mismatch_jvp(dy: Unknowns):
        d_samples = flows_jvp(t_dynamic, d_segments.starts(dy))
        return d_segments.mismatch(dy, d_samples), d_samples

    no_dy = jtu.tree_map(jnp.zeros_like, root.unknowns)
    d_rhs, _ = mismatch_jvp(no_dy)
    matrix = jax.lax.stop_gradient(_newton_matrix(root.jacobians))
    dy = _unknowns_step(solve(matrix, -d_rhs), num_segments, dim)
    _, d_samples = mismatch_jvp(dy)
    primals_out = (root.unknowns, root.samples, root.num_steps, root.status)
    return primals_out, (dy, d_samples, None, None)


class Shooting(AbstractBoundarySolver):
    r"""The exact geodesic by multiple shooting.

    The geodesic on $[0, 1]$ is split into `num_segments` pieces; the positions and
    velocities at their starts are found with Newton's method (flow Jacobians from the
    variational equations, integrated with the flows by diffrax) so that each piece's
    geodesic flow ends where the next begins and the last ends at $x_1$. Short pieces
    keep the problem well conditioned where single shooting is not: geodesic flows of
    data metrics can amplify errors in $v_0$ by many orders of magnitude. The unknowns
    start from the energy-minimising polyline of `init_solver` (run on the problem,
    with its budget), which also selects *which* geodesic is found.

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

    Each Newton step integrates the $K$ segments together with their $2D \times 2D$
    flow Jacobians (the Jacobian of the conditions is block bidiagonal) and solves a
    $(2K-1)D$ linear system. Gradients (forward and reverse mode) go through the
    implicit function theorem at the root, with that same matrix; only then are the
    flows differentiated (`diffrax.DirectAdjoint`), so a call that is not
    differentiated traces and compiles no differentiated solve.

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

    def geodesic(self, problem: BoundaryProblem) -> GeodesicSolution:
        metric, x0, x1 = problem.metric, problem.x0, problem.x1
        dtype = x0.dtype
        rtol, atol = self._tolerances(dtype)
        num_segments = self.num_segments
        init_solver = (
            default_polyline_solver(x0.shape[0]) if self.init_solver is None else self.init_solver
        )
        guess = init_solver.geodesic(problem)
        # The unknowns start from the polyline at the segments' starts; if it failed
        # (non-finite energy), from the chord.
        grid = jnp.linspace(0, 1, num_segments + 1, dtype=dtype)[:-1]

        def at_grid(curve):
            return jax.vmap(lambda c: jnp.interp(grid, guess.ts, c), in_axes=1, out_axes=1)(curve)

        xs0, vs0 = at_grid(guess.xs), at_grid(guess.vs)
        finite = jnp.all(jnp.isfinite(xs0)) & jnp.all(jnp.isfinite(vs0))
        xs0 = jnp.where(finite, xs0, x0[None, :] + grid[:, None] * (x1 - x0)[None, :])
        vs0 = jnp.where(finite, vs0, jnp.broadcast_to(x1 - x0, vs0.shape))
        y0 = jax.lax.stop_gradient((xs0[1:], vs0))
        # Each segment's flow is sampled at the polyline's times that fall in it: all
        # segments are integrated together and saved at the sorted local times (the
        # last, t = 1, is every segment's end, for the shooting conditions).
        ts = guess.ts
        segment = jnp.clip(jnp.floor(ts * num_segments).astype(int), 0, num_segments - 1)
        local = jnp.clip(ts - segment / num_segments, 0, 1 / num_segments)
        order = jnp.argsort(local)
        row = jnp.zeros_like(order).at[order].set(jnp.arange(ts.shape[0]))
        save_times = jnp.append(local[order], jnp.asarray(1 / num_segments, dtype))
        ode_tol = ODE_TOL_FACTOR * min(rtol, atol)
        segments = _Segments(metric, x0, x1, save_times, ode_tol, self.max_ode_steps)
        max_steps = min(self.max_steps, problem.max_steps)
        unknowns, (xs_saved, vs_saved), num_steps, status = _shoot(
            segments, y0, rtol=rtol, atol=atol, max_steps=max_steps
        )
        # The shooting conditions at the root: Newton's own test is on its step size.
        residual = jax.lax.stop_gradient(
            jnp.max(
                jnp.abs(segments.mismatch(unknowns, jtu.tree_map(_finite, (xs_saved, vs_saved))))
            )
        )
        scale = 1 + jnp.max(jnp.abs(x1 - x0))
        result = RESULTS.where(
            (status == 1) & ~(residual <= RESIDUAL_FACTOR * atol * scale),
            RESULTS.nonlinear_divergence,
            _result(status),
        )
        speed: Scalar = metric.norm(x0, unknowns[1][0])
        stats = dict(
            num_steps=num_steps,
            max_steps=max_steps,
            residual=residual,
            init_num_steps=guess.stats["num_steps"],
        )
        return GeodesicSolution(
            ts=ts,
            xs=xs_saved[row, segment].at[-1].set(x1),
            vs=vs_saved[row, segment],
            length=speed,
            energy=0.5 * speed**2,
            result=result,
            stats=stats,
        )
