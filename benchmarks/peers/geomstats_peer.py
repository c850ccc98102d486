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
W8  Statistics (`benchmarks.statistics`). The Stein metrics (the ρ = 0.95 Gaussian's, and
    the W6 network's with its weights copied: s(x) = MLP((x − shift) / scale) / scale) and
    the half-plane's I / y² are `_matrix_space`s like W1's, with the W1 default shooting
    or `LogODESolver(use_jac=False)` at tolerance 1e-3 plus the default `ExpODESolver()`
    (the mean's gradient steps need an exp map); the half-plane also as geomstats' own
    `PoincareHalfSpace(2)` (closed-form exp and log). `FrechetMean()` at its defaults
    (gradient descent, at most 32 steps, stopping when the squared norm of the mean log
    is below 1e-4 × dim) and, on `PoincareHalfSpace`, at `W8_TIGHT`; `RiemannianKMeans`
    and `RiemannianKMedoids` at their defaults with the default shooting (k-medoids
    computes its own `dist_pairwise`, one `dist` per pair i <= j; its random initial
    medoids cannot be seeded). A run that passes its time limit is stopped (SIGALRM)
    and reported with the number of `log` (means) or `dist` (clusterings) calls started.

Timing: `time_s` is the median of `repeats` runs after one warm-up run; if the warm-up
shows that would exceed `MAX_SECONDS_PER_ROW`, fewer runs are timed (`num_runs_timed`,
and a note). Warnings raised during a row (overflow, invalid values) are listed in its note.
"""

import contextlib
import gc
import logging
import os
import random
import signal
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
        with warnings.catch_warnings():  # its backend importer predates Python 3.10's API
            warnings.filterwarnings("ignore", "BackendImporter", ImportWarning)
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


class TimeLimit(BaseException):
    """A run went past its time limit (`_time_limit`). Not an `Exception`, so that the
    `except Exception` blocks of the code it interrupts do not swallow it."""


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise `TimeLimit` inside after `seconds` of wall time, and again every 0.5 s until
    the block exits (None: no limit). It uses SIGALRM, so it works in the main thread
    only; geomstats' solvers are Python loops around NumPy and scipy calls, which return
    to Python often enough to be stopped. Where the signal arrives inside a garbage
    collector callback (JAX's `_xla_gc_callback`) or a `__del__`, Python would only
    print an exception raised there ("Exception ignored in ..."), and the run would go on:
    it is not raised there, but at the next 0.5 s."""
    if seconds is None:
        yield
        return
    unraisable = {getattr(callback, "__code__", None) for callback in gc.callbacks}

    def stop(signum, frame):
        while frame is not None:
            if frame.f_code in unraisable or frame.f_code.co_name == "__del__":
                return
            frame = frame.f_back
        raise TimeLimit(f"stopped at its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)


def _timed(fn, repeats: int, time_limit: float | None = None):
    """(last output, median seconds of up to `repeats` runs after a warm-up, runs timed).
    `repeats=0` times the first run alone (0 runs after it); `time_limit` stops the first
    run with `TimeLimit`."""
    start = time.perf_counter()
    with _time_limit(time_limit):
        out = fn()
    warm = time.perf_counter() - start
    if repeats == 0:
        return out, warm, 0
    runs = max(1, min(repeats, int(MAX_SECONDS_PER_ROW / max(warm, 1e-9)) - 1))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, float(np.median(times)), runs


class LoggedWarning(UserWarning):
    """A warning geomstats logged (`logging.warning`: a solver stopped at `max_iter`)."""


@contextlib.contextmanager
def _recording():
    """Record the RuntimeWarnings (overflow, invalid values) raised inside and the
    warnings geomstats logs (as `LoggedWarning`)."""

    class Handler(logging.Handler):
        def emit(self, record):
            message = warnings.WarningMessage(record.getMessage(), LoggedWarning, "", 0)
            caught.append(message)

    handler = Handler(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        logging.getLogger().addHandler(handler)
        try:
            yield caught
        finally:
            logging.getLogger().removeHandler(handler)


def _with_warnings(row: dict, caught) -> dict:
    notes = [row.get("note")]
    for category in (RuntimeWarning, LoggedWarning):
        seen = sorted({f"{w.message}" for w in caught if issubclass(w.category, category)})
        if seen:
            notes.append(f"{category.__name__}: " + " | ".join(seen))
    if len(notes) > 1:
        row["note"] = "; ".join(filter(None, notes))
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


def _stein_matrix(score, damping: float):
    """The Stein metric (s sᵀ + λI)⁻¹ = (I − s sᵀ / (λ + |s|²)) / λ of scores `score`
    (..., D), in geomstats' backend ops."""
    import geomstats.backend as gs

    outer = gs.einsum("...i,...j->...ij", score, score)
    denominator = damping + gs.sum(score**2, axis=-1)
    return (gs.eye(score.shape[-1]) - outer / denominator[..., None, None]) / damping


def _matrix_space(metric_matrix, dim: int = 2):
    """`Euclidean(dim)` equipped with the metric whose matrix at x is `metric_matrix(x)`
    (geomstats' backend ops, batched over leading axes): a `RiemannianMetric` subclass
    defining only `metric_matrix`, so its Christoffel symbols come from autodiff."""
    from geomstats.geometry.euclidean import Euclidean
    from geomstats.geometry.riemannian_metric import RiemannianMetric

    class MatrixMetric(RiemannianMetric):
        def metric_matrix(self, base_point=None):
            return metric_matrix(base_point)

    return Euclidean(dim, equip=False).equip_with_metric(MatrixMetric)


def _stein_space(cov=problems.COV, damping: float = problems.DAMPING):
    """`Euclidean(2)` with the Stein metric of N(0, cov) (score s = −cov⁻¹ x)."""
    import geomstats.backend as gs

    precision = np.linalg.inv(cov)
    return _matrix_space(
        lambda x: _stein_matrix(-gs.einsum("ij,...j->...i", precision, x), damping)
    )


def _learned_stein_space(layers, shift, scale, damping: float):
    """`Euclidean(2)` with the Stein metric of W6's score network (`jg.nn.MLPScore`), its
    weights copied: s(x) = MLP((x − shift) / scale) / scale, SiLU between the layers."""
    import geomstats.backend as gs

    def score(x):
        h = (x - shift) / scale
        for i, (w, b) in enumerate(layers):
            h = gs.einsum("ij,...j->...i", w, h) + b
            if i < len(layers) - 1:
                h = h / (1.0 + gs.exp(-h))  # SiLU
        return h / scale

    return _matrix_space(lambda x: _stein_matrix(score(x), damping))


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


# --- W8: statistics of data sets ---------------------------------------------------------

W8_MEAN = "FrechetMean() (its default GradientDescent: max_iter=32, epsilon=1e-4, init_step_size=1)"
W8_TIGHT = dict(max_iter=1000, epsilon=1e-14)  # stops at max_iter or |mean log|² <= 2e-14


def _half_plane_space():
    """`Euclidean(2)` with the half-plane's metric matrix I / y²."""
    import geomstats.backend as gs

    return _matrix_space(lambda x: gs.einsum("...,ij->...ij", 1.0 / x[..., 1] ** 2, gs.eye(2)))


def _w8_space(space: str, params: dict):
    """The geomstats space of a W8 problem, by name: "half_space" (`PoincareHalfSpace(2)`
    and its closed-form exp and log), "half_plane" (I / y² on `Euclidean(2)`), "stein"
    (`cov`, `damping`), "learned_stein" (`layers`, `shift`, `scale`, `damping`), or
    "euclidean" (`Euclidean(2)`)."""
    if space == "half_space":
        from geomstats.geometry.poincare_half_space import PoincareHalfSpace

        return PoincareHalfSpace(2)
    if space == "euclidean":
        from geomstats.geometry.euclidean import Euclidean

        return Euclidean(2)
    builders = dict(half_plane=_half_plane_space, stein=_stein_space)
    builders["learned_stein"] = _learned_stein_space
    return builders[space](**params)


def _w8_solvers(space_name: str):
    """`(setting, configure)` per geodesic setting: the closed form on `half_space` and
    `euclidean`; else the default shooting and `LogODESolver` with the default
    `ExpODESolver` (geomstats gives a user metric neither)."""
    from geomstats.numerics.geodesic import ExpODESolver

    if space_name in ("half_space", "euclidean"):
        return (("closed-form exp and log", lambda space: None),)

    def bvp(space):
        _bvp(space, 1e-3)
        space.metric.exp_solver = ExpODESolver(space)

    return (
        ("default geodesics: " + SHOOTING.format(step="euler"), _shooting),
        (BVP.format(tol=1e-3) + " + ExpODESolver() (Euler, 10 steps)", bvp),
    )


def _counted(obj, name: str) -> list[int]:
    """Count the calls of `obj.name` (an instance attribute wrapping the method)."""
    calls, method = [0], getattr(obj, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return method(*args, **kwargs)

    setattr(obj, name, counted)
    return calls


def w8_metric_matrix(space: str, params: dict, points: np.ndarray) -> np.ndarray:
    """The metric matrices of a W8 space at `points`, from its inner products of the
    basis vectors (`PoincareHalfSpace` has no `metric_matrix`); the caller checks them
    against jaxgeo's: the peer solves the same metric."""
    metric, points = _w8_space(space, params).metric, np.asarray(points, dtype=np.float64)
    basis = [np.broadcast_to(e, points.shape) for e in np.eye(points.shape[-1])]
    return np.stack(
        [np.stack([metric.inner_product(a, b, points) for b in basis], -1) for a in basis], -2
    )


def w8_means(
    space: str, params: dict, points: np.ndarray, repeats: int, time_limit: float
) -> list[dict]:
    """`FrechetMean` of `points` on a W8 space, one row per geodesic setting: `mean`,
    `time_s` (closed forms: the median of `repeats` runs after a warm-up; solvers: one
    run, stopped after `time_limit` seconds) and the number of gradient steps started
    (calls of `metric.log`). On the closed-form half-space also at `W8_TIGHT`."""
    from geomstats.learning.frechet_mean import FrechetMean

    points = np.asarray(points, dtype=np.float64)
    closed_form = space in ("half_space", "euclidean")
    settings = [(f"{W8_MEAN}, {label}", configure, {}) for label, configure in _w8_solvers(space)]
    if closed_form:
        tight = ", ".join(f"{k}={v:g}" for k, v in W8_TIGHT.items())
        label, configure = _w8_solvers(space)[0]
        settings.append((f"FrechetMean().set({tight}), {label}", configure, W8_TIGHT))
    rows = []
    for setting, configure, options in settings:
        logs = [0]
        with _recording() as caught:
            try:
                manifold = _w8_space(space, params)
                configure(manifold)
                logs = _counted(manifold.metric, "log")
                estimator = FrechetMean(manifold).set(**options)
                mean, t, runs = _timed(
                    lambda: estimator.fit(points).estimate_,
                    repeats if closed_form else 0,
                    None if closed_form else time_limit,
                )
            except (Exception, TimeLimit) as exc:
                row = _error(setting, exc)
                row["note"] = f"{logs[0]} metric.log calls (one per gradient step) started"
                rows.append(_with_warnings(row, caught))
                continue
        row = {"setting": setting, "time_s": t, "mean": np.asarray(mean, dtype=np.float64)}
        row["note"] = f"{logs[0] // (runs + 1)} metric.log calls (one per gradient step)"
        rows.append(_with_warnings(_note_runs(row, runs, repeats) if runs else row, caught))
    return rows


def _w8_fit(setting: str, estimator, points, time_limit: float, calls) -> dict:
    """Fit a clustering once, stopped after `time_limit` seconds. RiemannianKMeans' initial
    centres are seeded; RiemannianKMedoids' cannot be (`gs.random.choice` draws from a
    fresh `np.random.default_rng()`), so its medoids, cost and time vary between runs."""
    with _recording() as caught:
        random.seed(0)
        try:
            _, t, _ = _timed(lambda: estimator.fit(points), 0, time_limit)
        except (Exception, TimeLimit) as exc:
            row = _error(setting, exc)
            row["note"] = f"{calls[0]} distance calls started"
            return _with_warnings(row, caught)
    row = {"setting": setting, "time_s": t, "labels": np.asarray(estimator.labels_)}
    if hasattr(estimator, "medoid_indices_"):
        row["medoids"] = np.asarray(estimator.medoid_indices_)
    row["note"] = f"{calls[0]} distance calls"
    return _with_warnings(row, caught)


def w8_k_means(space: str, params: dict, points: np.ndarray, k: int, time_limit: float) -> dict:
    """`RiemannianKMeans(n_clusters=k)` at its defaults (random initial centres, tol
    1e-2, max_iter 100, its `FrechetMean` at max_iter 100), the first geodesic setting."""
    from geomstats.learning.kmeans import RiemannianKMeans

    return _w8_cluster(RiemannianKMeans, "", space, params, points, k, time_limit)


def w8_k_medoids(space: str, params: dict, points: np.ndarray, k: int, time_limit: float) -> dict:
    """`RiemannianKMedoids(n_clusters=k)` at its defaults (random initial medoids,
    max_iter 100), which computes its own distance matrix (`metric.dist_pairwise`, one
    `dist` per pair i <= j), the first geodesic setting."""
    from geomstats.learning.kmedoids import RiemannianKMedoids

    extra = " incl. its dist_pairwise"
    return _w8_cluster(RiemannianKMedoids, extra, space, params, points, k, time_limit)


def _w8_cluster(estimator_class, extra, space, params, points, k, time_limit) -> dict:
    """A geomstats clustering estimator at its defaults on the W8 space, timed."""
    label, configure = _w8_solvers(space)[0]
    setting = f"{estimator_class.__name__}(n_clusters={k}){extra}, {label}"
    try:
        manifold = _w8_space(space, params)
        configure(manifold)
        calls = _counted(manifold.metric, "dist")
        estimator = estimator_class(manifold, n_clusters=k)
    except Exception as exc:
        return _error(setting, exc)
    return _w8_fit(setting, estimator, np.asarray(points, np.float64), time_limit, calls)
