"""geomstats 2.8.0 as a benchmark peer, on its autograd backend.

geomstats reads `GEOMSTATS_BACKEND` when it is first imported; this module sets it to
`autograd` unless it is already set (Christoffel symbols of a user metric need autodiff,
and the PyTorch backend gets second derivatives wrong), and imports geomstats only inside
the workloads, so importing this module never imports geomstats. A workload run in a
process whose geomstats already uses another backend is reported by `unavailable()`.

W1, W2  The Stein metric G(x) = (s sᵀ + λI)⁻¹ = (I − s sᵀ / (λ + |s|²)) / λ, s = −Σ⁻¹x,
    is a `RiemannianMetric` subclass defining only `metric_matrix`, equipped on
    `Euclidean(2)`; its Christoffel symbols come from geomstats' autodiff (`autograd`, one
    Jacobian per point in a Python loop). geomstats 2.8 gives such a metric no solvers,
    so each setting sets `metric.log_solver` / `metric.exp_solver`, and `length` is
    `metric.dist` (the norm of `metric.log` at x0). Settings:
      - "default": `LogShootingSolver` (L-BFGS-B on |exp(v) − x1|², autodiff gradient,
        initial v = x1 − x0) + `ExpODESolver()` (its default integrator: explicit Euler,
        10 steps) -- the constructors' defaults. It can stop on a wrong curve without any
        warning, hence `endpoint_residual` = |exp(log) − x1|;
      - the same with RK4 steps (W1 only: it ends in a `LinAlgError` after overflow);
      - `LogODESolver(use_jac=False)` (scipy `solve_bvp`; the default `use_jac=True`
        needs `jacobian_christoffels`, which a user metric lacks) at geomstats' default
        tolerance 1e-3 and, in W1, at 1e-5: the most accurate setting in reasonable time;
      - `PathStraightening(n_nodes=64)`: L-BFGS-B on geomstats' discrete path energy
        (`UniformlySampledPathEnergy`, a left-point rule), so its 64-point path is not the
        midpoint-rule discrete geodesic; `length` is `metric.dist` = the norm of its
        forward-difference initial velocity.
    `length_midpoint` is the midpoint-rule length of the solver's path at 64 points:
    `metric.geodesic(x0, initial_tangent_vec=log)` for shooting, the `solve_bvp`
    solution for `LogODESolver`, the optimised nodes for `PathStraightening`.
    W2 solves only the first `W2_NUM_TIMED` pairs (the solvers take seconds per pair), in
    one timed pass, and extrapolates the time to all pairs; the other lengths are NaN. The
    default shooting is run both as geomstats batches it (one joint L-BFGS problem; any
    failure fails the batch) and one pair at a time (a pair that raises gets NaN).
W3  `UniformlySampledPathEnergy(Euclidean(D))` of the decoded curve f(c), which is exactly
    the secant energy N/2 Σ|f(c_{i+1}) − f(c_i)|², differentiated by
    `gs.autodiff.value_and_grad` in float32 (the decoder's dtype, which autograd keeps).
    geomstats' own pullback, `PullbackMetric` of an `ImmersedSet` with the decoder as
    immersion, is impractical here: its metric matrix takes a Jacobian per point by a loop
    of D reverse passes (its energy alone took ~2 min at D = 4096 in development) and the
    gradient needs second derivatives of that. The W3 geodesic is `PathStraightening` on
    the latent `Euclidean(2)` with that secant energy as its `path_energy` (64 nodes,
    L-BFGS-B, autodiff gradient, float64 since scipy optimises in float64).
W4  `metric.exp` with `ExpODESolver` and, as separate rows: its default integrator (Euler,
    10 steps), RK4 with 100 steps, `ScipySolveIVP` RK45 at scipy's default tolerances and
    DOP853 at rtol = atol = 1e-12.

Timing: `time_s` is the median of `repeats` runs after one warm-up run; if the warm-up
shows that would exceed `MAX_SECONDS_PER_ROW`, fewer runs are timed (`num_runs_timed`,
and a note). Warnings raised during a row (overflow, invalid values) are listed in its note.
"""

import contextlib
import os
import time
import warnings

import numpy as np

from benchmarks import problems


os.environ.setdefault("GEOMSTATS_BACKEND", "autograd")

NAME = "geomstats 2.8.0"
W2_NUM_TIMED = 16  # W2 pairs solved per setting; the time is extrapolated to all pairs
MAX_SECONDS_PER_ROW = 150.0  # soft cap on warm-up + timed runs of one row
T64 = np.linspace(0.0, 1.0, problems.NUM_POINTS)


def unavailable() -> str | None:
    try:
        import autograd  # noqa: F401
        import geomstats
        import geomstats.backend as gs
    except Exception as exc:  # ImportError, or a broken install
        return f"{type(exc).__name__}: {exc}"
    if geomstats.__version__ != "2.8.0":
        return f"geomstats {geomstats.__version__} installed, not 2.8.0"
    if gs.__name__ != "geomstats.autograd":
        return f"geomstats was imported with backend {gs.__name__}, not autograd"
    return None


# --- helpers -----------------------------------------------------------------------------


def _error(setting: str, exc: BaseException) -> dict:
    return {"setting": setting, "error": f"{type(exc).__name__}: {exc}"}


def _timed(fn, repeats: int):
    """(last output, median seconds of up to `repeats` runs after a warm-up, runs timed)."""
    start = time.perf_counter()
    out = fn()
    warm = time.perf_counter() - start
    runs = max(1, min(repeats, int(MAX_SECONDS_PER_ROW / max(warm, 1e-9)) - 1))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, float(np.median(times)), runs


@contextlib.contextmanager
def _recording():
    """Record the RuntimeWarnings (overflow, invalid values) raised inside."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        yield caught


def _with_warnings(row: dict, caught) -> dict:
    seen = sorted({f"{w.message}" for w in caught if issubclass(w.category, RuntimeWarning)})
    if seen:
        row["note"] = "; ".join(
            filter(None, [row.get("note"), "RuntimeWarning: " + " | ".join(seen)])
        )
    return row


def _note_runs(row: dict, runs: int, repeats: int) -> dict:
    row["num_runs_timed"] = runs
    if runs < repeats:
        row["note"] = "; ".join(
            filter(None, [row.get("note"), f"{runs} of {repeats} runs timed (slow)"])
        )
    return row


def _midpoint_length(path) -> float:
    """Σ sqrt(Δxᵀ G((a + b)/2) Δx) in float64."""
    path = np.asarray(path, dtype=np.float64)
    dx = np.diff(path, axis=0)
    g = problems.stein_metric_matrix((path[1:] + path[:-1]) / 2)
    return float(np.sum(np.sqrt(np.einsum("ni,nij,nj->n", dx, g, dx))))


# --- W1, W2: the Stein metric and its solvers ---------------------------------------------


def _stein_space():
    """`Euclidean(2)` equipped with the W1 Stein metric, defined by its metric matrix."""
    import geomstats.backend as gs
    from geomstats.geometry.euclidean import Euclidean
    from geomstats.geometry.riemannian_metric import RiemannianMetric

    precision, lam = np.linalg.inv(problems.COV), problems.DAMPING

    class SteinMetric(RiemannianMetric):
        def metric_matrix(self, base_point=None):
            s = -gs.einsum("ij,...j->...i", precision, base_point)
            outer = gs.einsum("...i,...j->...ij", s, s)
            return (gs.eye(2) - outer / (lam + gs.sum(s**2, axis=-1))[..., None, None]) / lam

    return Euclidean(2, equip=False).equip_with_metric(SteinMetric)


def _shooting(space, step_type="euler", n_steps=10, flatten=True):
    """Set shooting solvers; return `finish(v, x0, x1) -> dict` for one pair."""
    from geomstats.numerics.geodesic import ExpODESolver, LogShootingSolver
    from geomstats.numerics.ivp import GSIVPIntegrator
    from geomstats.numerics.optimization import ScipyMinimize

    metric = space.metric
    integrator = GSIVPIntegrator(n_steps=n_steps, step_type=step_type)
    metric.exp_solver = ExpODESolver(space, integrator=integrator)
    optimizer = ScipyMinimize(autodiff_jac=True, save_result=True)  # the default + saving
    metric.log_solver = LogShootingSolver(space, optimizer=optimizer, flatten=flatten)

    def finish(v, x0, x1):
        path = metric.geodesic(initial_point=x0, initial_tangent_vec=v)(T64)
        res = optimizer.result_
        return {
            "length_midpoint": _midpoint_length(path),
            "endpoint_residual": float(np.linalg.norm(metric.exp(v, x0) - x1)),
            "note": f"L-BFGS-B: {res.message} ({res.nit} iterations)",
        }

    return finish


def _bvp(space, tol):
    from geomstats.numerics.bvp import ScipySolveBVP
    from geomstats.numerics.geodesic import LogODESolver

    integrator = ScipySolveBVP(tol=tol, save_result=True)
    space.metric.log_solver = LogODESolver(space, integrator=integrator, use_jac=False)

    def finish(v, x0, x1):
        res = integrator.result_
        path = np.asarray(res.sol(T64))[:2].T
        note = f"solve_bvp: {res.message} ({res.x.shape[0]} nodes)"
        return {"length_midpoint": _midpoint_length(path), "note": note}

    return finish


def _path_straightening(space, n_nodes=64):
    from geomstats.numerics.geodesic import PathStraightening
    from geomstats.numerics.optimization import ScipyMinimize

    # PathStraightening's default optimizer (without `disp=False`), saving its result
    optimizer = ScipyMinimize(method="L-BFGS-B", autodiff_jac=True, save_result=True)
    space.metric.log_solver = PathStraightening(space, n_nodes=n_nodes, optimizer=optimizer)

    def finish(v, x0, x1):
        res = optimizer.result_
        path = np.concatenate([x0[None], np.reshape(res.x, (-1, 2)), x1[None]])
        note = f"L-BFGS-B: {res.message} ({res.nit} iterations)"
        return {"length_midpoint": _midpoint_length(path), "note": note}

    return finish


SHOOTING = (
    "LogShootingSolver (L-BFGS-B, autodiff gradient, v0 = x1 - x0) + ExpODESolver"
    "(GSIVPIntegrator {step}, 10 steps)"
)
BVP = "LogODESolver(use_jac=False, n_nodes=10) + ScipySolveBVP(tol={tol:g}, max_nodes=1000)"
PATH_STRAIGHTENING = "PathStraightening(n_nodes=64, L-BFGS-B, autodiff gradient)"


def _w1_settings():
    return (
        ("default: " + SHOOTING.format(step="euler"), _shooting),
        (SHOOTING.format(step="rk4"), lambda space: _shooting(space, step_type="rk4")),
        (BVP.format(tol=1e-3), lambda space: _bvp(space, 1e-3)),
        (BVP.format(tol=1e-5), lambda space: _bvp(space, 1e-5)),
        (PATH_STRAIGHTENING, _path_straightening),
    )


def _w1_row(setting: str, configure, repeats: int) -> dict:
    x0, x1 = problems.W1_X0, problems.W1_X1
    with _recording() as caught:
        try:
            space = _stein_space()
            finish = configure(space)
            v, t, runs = _timed(lambda: space.metric.log(x1, x0), repeats)
            row = {"setting": setting, "time_s": t, "length": float(space.metric.norm(v, x0))}
            row.update(finish(v, x0, x1))
        except Exception as exc:
            return _with_warnings(_error(setting, exc), caught)
    return _with_warnings(_note_runs(row, runs, repeats), caught)


def w1(repeats: int) -> list[dict]:
    return [_w1_row(setting, configure, repeats) for setting, configure in _w1_settings()]


def _w2_subset(pairs: np.ndarray) -> tuple[int, str]:
    n = min(W2_NUM_TIMED, len(pairs))
    note = "" if n == len(pairs) else f"first {n} pairs, one pass, time x {len(pairs) / n:g}"
    return n, note


def _w2_batched(pairs: np.ndarray) -> dict:
    """The default shooting on the subset in one call, batched the way geomstats does it."""
    setting = "default, one batched call (flatten=True): " + SHOOTING.format(step="euler")
    n, note = _w2_subset(pairs)
    x0, x1 = pairs[:n, 0], pairs[:n, 1]
    start = time.perf_counter()
    with _recording() as caught:
        try:
            space = _stein_space()
            _shooting(space)
            metric = space.metric
            metric.christoffels(x0[0])  # warm-up
            start = time.perf_counter()
            v = metric.log(x1, x0)
            elapsed = time.perf_counter() - start
            lengths = np.full(len(pairs), np.nan)
            lengths[:n] = metric.norm(v, x0)
            residual = np.linalg.norm(metric.exp(v, x0) - x1, axis=-1)
        except Exception as exc:
            row = {**_error(setting, exc), "num_pairs_timed": n}
            row["note"] = f"{note}; raised after {time.perf_counter() - start:.3g} s"
            return _with_warnings(row, caught)
    row = {"setting": setting, "time_s": elapsed * len(pairs) / n, "lengths": lengths}
    row["num_pairs_timed"] = n
    row["note"] = f"{note}; max endpoint residual {residual.max():.3g}"
    return _with_warnings(row, caught)


def _w2_per_pair(setting: str, configure, shooting: bool, pairs: np.ndarray) -> dict:
    """Solve the subset one pair at a time; a pair that raises gets NaN."""
    n, note = _w2_subset(pairs)
    lengths, residuals, failures = np.full(len(pairs), np.nan), [], []
    with _recording() as caught:
        try:
            space = _stein_space()
            configure(space)
            metric = space.metric
            metric.christoffels(pairs[0, 0])  # warm-up
            elapsed = 0.0
            for i, (x0, x1) in enumerate(pairs[:n]):
                start = time.perf_counter()
                try:
                    v = metric.log(x1, x0)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                finally:
                    elapsed += time.perf_counter() - start
                lengths[i] = float(metric.norm(v, x0))
                if shooting:
                    residuals.append(float(np.linalg.norm(metric.exp(v, x0) - x1)))
        except Exception as exc:
            return _with_warnings(_error(setting, exc), caught)
    if failures:
        note += f"; {len(failures)} of {n} pairs raised ({sorted(set(failures))}): NaN"
    if residuals:
        bad = sum(r > 1e-3 for r in residuals)
        note += f"; endpoint residual > 1e-3 on {bad} of {len(residuals)} solved pairs"
        note += f" (max {max(residuals):.3g})"
    row = {"setting": setting, "time_s": elapsed * len(pairs) / n, "lengths": lengths}
    return _with_warnings({**row, "num_pairs_timed": n, "note": note.lstrip("; ")}, caught)


def w2(pairs: np.ndarray, repeats: int) -> list[dict]:
    """One timed pass over a subset (`repeats` is not used: each setting takes minutes)."""
    pairs = np.asarray(pairs, dtype=np.float64)
    per_pair = (
        ("default, one pair at a time: " + SHOOTING.format(step="euler"), _shooting, True),
        (BVP.format(tol=1e-3), lambda space: _bvp(space, 1e-3), False),
        (PATH_STRAIGHTENING, _path_straightening, False),
    )
    rows = [_w2_batched(pairs)]
    return rows + [_w2_per_pair(*setting, pairs) for setting in per_pair]


# --- W3: the decoder's pullback ----------------------------------------------------------


def _decoder(z, w):
    """`problems.decoder` in geomstats' backend ops (differentiable by autograd)."""
    import geomstats.backend as gs

    h = gs.tanh(gs.matmul(z, gs.transpose(w["W1"])) + w["b1"])
    h = gs.tanh(gs.matmul(h, gs.transpose(w["W2"])) + w["b2"])
    return gs.matmul(h, gs.transpose(w["W3"])) + w["b3"]


def _secant_energy(dim: int):
    """c ↦ geomstats' path energy of f(c) in Euclidean(D) = N/2 Σ|f(c_{i+1}) − f(c_i)|²."""
    from geomstats.geometry.euclidean import Euclidean
    from geomstats.numerics.path import UniformlySampledPathEnergy

    w = problems.decoder_weights(dim)
    energy = UniformlySampledPathEnergy(Euclidean(dim))
    return lambda curve: energy(_decoder(curve, w))


W3_ENERGY = (
    "UniformlySampledPathEnergy(Euclidean(D)) of the decoded curve (= secant energy), "
    "gs.autodiff.value_and_grad (autograd), float32"
)


def w3_energy(dim: int, repeats: int) -> dict:
    setting = W3_ENERGY
    try:
        import geomstats.backend as gs

        value_and_grad = gs.autodiff.value_and_grad(_secant_energy(dim), point_ndims=2)
        curve = problems.w3_curve()
        (energy, grad), t, runs = _timed(lambda: value_and_grad(curve), repeats)
    except Exception as exc:
        return _error(setting, exc)
    row = {"setting": setting, "time_s": t, "energy": float(energy), "grad": np.asarray(grad)}
    row["note"] = f"grad dtype {np.asarray(grad).dtype}"
    return _note_runs(row, runs, repeats)


def w3_geodesic(repeats: int) -> dict:
    setting = (
        "PathStraightening(Euclidean(2), path_energy = secant energy of the decoded path, "
        "n_nodes=64, L-BFGS-B, autodiff gradient), float64"
    )
    try:
        from geomstats.geometry.euclidean import Euclidean
        from geomstats.numerics.geodesic import PathStraightening
        from geomstats.numerics.optimization import ScipyMinimize

        energy = _secant_energy(problems.W3_GEODESIC_DIM)
        optimizer = ScipyMinimize(method="L-BFGS-B", autodiff_jac=True, save_result=True)
        solver = PathStraightening(
            Euclidean(2), path_energy=energy, n_nodes=problems.NUM_POINTS, optimizer=optimizer
        )
        z0, z1 = problems.W3_Z0, problems.W3_Z1
        curve, t, runs = _timed(lambda: solver.discrete_geodesic_bvp(z1, z0), repeats)
    except Exception as exc:
        return _error(setting, exc)
    curve = np.asarray(curve, dtype=np.float64)
    w = {
        k: v.astype(np.float64)
        for k, v in problems.decoder_weights(problems.W3_GEODESIC_DIM).items()
    }
    length = float(np.sum(np.linalg.norm(np.diff(problems.decoder(curve, w), axis=0), axis=1)))
    res = optimizer.result_
    row = {"setting": setting, "time_s": t, "length": length, "curve": curve}
    row["note"] = f"L-BFGS-B: {res.message} ({res.nit} iterations)"
    if t > 60:
        row["note"] += "; slower than 60 s"
    return _note_runs(row, runs, repeats)


# --- W4: the exp map ---------------------------------------------------------------------


def _w4_integrators():
    from geomstats.numerics.ivp import GSIVPIntegrator, ScipySolveIVP

    return (
        ("default: ExpODESolver() = GSIVPIntegrator(euler, 10 steps)", GSIVPIntegrator()),
        ("ExpODESolver(GSIVPIntegrator(rk4, 100 steps))", GSIVPIntegrator(100, "rk4")),
        (
            "ExpODESolver(ScipySolveIVP(RK45)), scipy's default rtol=1e-3, atol=1e-6",
            ScipySolveIVP(method="RK45", save_result=True),
        ),
        (
            "ExpODESolver(ScipySolveIVP(DOP853, rtol=1e-12, atol=1e-12))",
            ScipySolveIVP(method="DOP853", rtol=1e-12, atol=1e-12, save_result=True),
        ),
    )


def _w4_row(setting: str, integrator, repeats: int) -> dict:
    try:
        from geomstats.numerics.geodesic import ExpODESolver

        space = _stein_space()
        space.metric.exp_solver = ExpODESolver(space, integrator=integrator)
        v0, x0 = problems.W4_T1 * problems.W4_V0, problems.W4_X0
        end, t, runs = _timed(lambda: space.metric.exp(v0, x0), repeats)
    except Exception as exc:
        return _error(setting, exc)
    row = {"setting": setting, "time_s": t, "endpoint": np.asarray(end, dtype=np.float64)}
    res = getattr(integrator, "result_", None)
    if res is not None:  # scipy's adaptive steps
        row["note"] = f"{len(res.t) - 1} steps, {res.nfev} evaluations"
    return _note_runs(row, runs, repeats)


def w4(repeats: int) -> list[dict]:
    """One row per integrator (a list, unlike the other single-row workloads)."""
    try:
        settings = _w4_integrators()
    except Exception as exc:
        return [_error("ExpODESolver", exc)]
    return [_w4_row(setting, integrator, repeats) for setting, integrator in settings]
