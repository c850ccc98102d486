"""The benchmark workloads run with stochman 0.3.0 (PyTorch), for comparison with jaxgeo.

Benchmark glue only: it *calls* stochman (`Manifold`, `EmbeddedManifold`, `DiscreteCurve`,
`geodesic_minimizing_energy`, `connecting_geodesic`, `expmap`); torch and stochman are
imported lazily, so importing this module never fails.

Curves. `DiscreteCurve(begin, end, num_nodes=64)` from the straight line (its constructor's
default), optimised by `stochman.geodesic.geodesic_minimizing_energy(..., eval_grid=64)`,
so that the minimised energy is exactly the 64-point discrete energy. (With its default
`eval_grid=20` on a 64-node curve only the nodes next to the 20 evaluation points get a
gradient; the W1 curve ends zig-zagged with stochman length ≈ 28.) That function
hard-codes `lr=0.1` and stops once max|∂E/∂params| < 1e-4; another optimiser or rate is
passed as an `optimizer` factory that ignores the `lr` it is handed.

Settings.
- "default": `geodesic_minimizing_energy`'s defaults, Adam lr 0.1, 150 iterations:
  unconverged (W1: 1.5 % above stochman's converged length).
- "best" (a sweep on W1): torch LBFGS, lr 1, strong-Wolfe line search, history 10, up to
  450 inner iterations in one outer step (`max_iter=1`): within 1.4e-6 of converged. The
  sweep: Adam lr 0.1 never converges (it oscillates: 5,000 iterations end *worse* than
  1,000); Adam lr 0.005 needs ≈ 2,000 iterations (≈ 6 s); LBFGS at the hard-coded lr 0.1
  stops (stochman's threshold) at −2.7e-5 after ≈ 620 evaluations; LBFGS at lr 1, with or
  without line search, history 10–100, needs ≈ 400–460 energy evaluations for |relative
  length error| < 1e-5; history 10 is cheapest per iteration (torch's two-loop recursion
  is a Python loop over the history).
- "converged" W1 reference (not rerun here): LBFGS strong-Wolfe, history 50, to
  max|grad| = 4e-8 (1,373 iterations, 2,268 evaluations, ≈ 11 s): stochman length
  `W1_CONVERGED_LENGTH`; the same 64 points have midpoint-rule length 4.2154170, 0.36 %
  above the true length 4.2003256: the bias of stochman's left-point rule, not of the solve.
- `connecting_geodesic` (W1): stochman's own high-level default (a 5-node `CubicSpline`,
  Adam lr 0.1, 150 iterations, `eval_grid=20`), sampled at 64 points.
- W2 batches all pairs in one curve object, so the loss is Σ_b E_b: Adam (elementwise)
  keeps the curves independent, torch LBFGS couples them (one history, one line search).
- W3 geodesic: the default at top level, the "best" LBFGS setting under `converged`.

Energy conventions in stochman 0.3.0 (N = number of curve points, here 64):
`Manifold.curve_energy` = Σ_{i<N−1} Δc_iᵀ G(c_i) Δc_i (left-point rule, no step factor),
`Manifold.curve_length` = Σ sqrt(Δc_iᵀ G(c_i) Δc_i) (left-point);
`EmbeddedManifold.curve_energy` = (N−1) Σ |f(c_{i+1}) − f(c_i)|² = 2 × `problems.
w3_secant_energy`, i.e. N−1 times the `Manifold` convention for the same metric.

Threads: `torch.set_num_threads(NUM_THREADS)` = 1 inside each workload (restored after).
On the 2-core development machine, loaded by other processes, 2 threads were 2–7× slower
(W1 default 1.7 s vs 0.35–0.65 s; W3 D = 4096 23 ms vs 6–12 ms); set `NUM_THREADS` to
compare on an idle machine. Precision: float64 for W1, W2, W4; float32 for W3.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings

import numpy as np

from benchmarks import problems


NAME = "stochman 0.3.0"
NUM_THREADS = 1
W1_CONVERGED_LENGTH = 4.189330383  # stochman's own curve_length of its converged W1 curve
W3_CONVERGED_LENGTH = 36.9891767  # W3 geodesic secant length: scipy L-BFGS-B, float64
BEST_SETTING = "LBFGS (lr 1, strong Wolfe, history 10), 450 iterations"
DEFAULT_SETTING = "geodesic_minimizing_energy, default (Adam lr 0.1, 150 iterations)"
W2_ADAM_NOTE = (
    "Adam is elementwise, so the curves are optimised independently; its fixed steps of "
    "≈ 0.1 per coordinate are large for the shortest pairs, whose curves end much longer"
)
W2_LBFGS_NOTE = (
    "the W1 setting, unconverged here: torch LBFGS on the batch shares one history and one "
    "line search over all curves (in development, after 5,500 batched iterations, 180 s, "
    "some curves still changed by 0.1 % per 250 iterations, the worst 12 % above jaxgeo)"
)
W3_LBFGS_NOTE = (
    "converged to float32 resolution (LBFGS stops on its own tolerance after ≈ 160 "
    "iterations; stochman's success test max|grad| < 1e-4 is below float32 resolution at "
    "this energy, ≈ 1.4e3)"
)
SPLINE_SETTING = "connecting_geodesic, default (CubicSpline 5 nodes, Adam, 150 its, grid 20)"


def unavailable() -> str | None:
    try:
        import stochman
        import torch  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        return f"{type(e).__name__}: {e}"
    if stochman.__version__ != "0.3.0":
        return f"stochman {stochman.__version__} installed; this adapter targets 0.3.0"
    return None


# ---------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _threads():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(NUM_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _timed(fn, repeats: int):
    """`(output of the last call, median seconds of `repeats` calls after one warm-up)`."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


def _midpoint_lengths(points: np.ndarray) -> np.ndarray:
    """Σ sqrt(Δxᵀ G((a+b)/2) Δx) in float64 for points (..., N, 2), shape (...)."""
    points = np.asarray(points, dtype=np.float64)
    delta = np.diff(points, axis=-2)
    g = problems.stein_metric_matrix(0.5 * (points[..., 1:, :] + points[..., :-1, :]))
    return np.sqrt(np.einsum("...i,...ij,...j->...", delta, g, delta)).sum(-1)


def _nodes(curve):
    """All N points of a `DiscreteCurve`, (B, N, d), end points included."""
    import torch

    return torch.cat([curve.begin[:, None], curve.params, curve.end[:, None]], dim=1).detach()


def _lbfgs(max_iter: int = 450, history_size: int = 10):
    """An optimizer factory for `geodesic_minimizing_energy`, which passes `lr=0.1`."""
    import torch

    def make(params, lr=None):
        del lr  # stochman hard-codes lr=0.1; LBFGS with a line search wants lr=1
        return torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=max_iter,
            history_size=history_size,
            line_search_fn="strong_wolfe",
        )

    return make


def _minimize(manifold, x0, x1, best: bool):
    """stochman's energy minimisation of a 64-node `DiscreteCurve` from the straight line."""
    import torch
    from stochman.curves import DiscreteCurve
    from stochman.geodesic import geodesic_minimizing_energy

    curve = DiscreteCurve(x0, x1, num_nodes=problems.NUM_POINTS)
    kwargs = dict(optimizer=_lbfgs(), max_iter=1) if best else {}
    success = geodesic_minimizing_energy(curve, manifold, eval_grid=problems.NUM_POINTS, **kwargs)
    return _nodes(curve), bool(torch.as_tensor(success).all())


# ---------------------------------------------------------------------------- W1, W2, W4


@functools.cache
def _stein():
    """The Stein metric G(x) = I − s sᵀ / (λ + |s|²), s = −Σ⁻¹x (Sherman–Morrison)."""
    import torch
    from stochman.manifold import Manifold

    precision = torch.tensor(np.linalg.inv(problems.COV), dtype=torch.float64)

    class SteinManifold(Manifold):
        def metric(self, points):
            s = -points @ precision.to(points.dtype).T
            outer = s[:, :, None] * s[:, None, :]
            denom = problems.DAMPING + (s * s).sum(-1)
            eye = torch.eye(2, dtype=points.dtype) / problems.DAMPING
            return eye - outer / (problems.DAMPING * denom)[:, None, None]

    return SteinManifold()


def _w1_row(setting: str, fn, repeats: int, note: str, discrete: bool = True) -> dict:
    manifold = _stein()
    (points, success), time_s = _timed(fn, repeats)
    length = float(manifold.curve_length(points.clone())[0])
    note = f"{note}; stochman success={success}"
    if discrete:
        rel = (length - W1_CONVERGED_LENGTH) / W1_CONVERGED_LENGTH
        note += f"; length vs stochman's converged {W1_CONVERGED_LENGTH}: {rel:+.1e}"
    return dict(
        setting=setting,
        time_s=time_s,
        length=length,
        length_midpoint=float(_midpoint_lengths(points[0].numpy())),
        note=note,
    )


def _spline_geodesic(x0, x1):
    import torch

    curve, success = _stein().connecting_geodesic(x0, x1)
    with torch.no_grad():
        t = torch.linspace(0, 1, problems.NUM_POINTS, dtype=torch.float64)
        points = curve(t).reshape(len(curve), problems.NUM_POINTS, -1)
    return points, bool(torch.as_tensor(success).all())


def w1(repeats: int) -> list[dict]:
    import torch

    x0, x1 = torch.tensor(problems.W1_X0), torch.tensor(problems.W1_X1)
    with _threads():
        return [
            _w1_row(
                DEFAULT_SETTING,
                lambda: _minimize(_stein(), x0, x1, best=False),
                repeats,
                "DiscreteCurve 64 nodes, eval_grid 64; unconverged",
            ),
            _w1_row(
                BEST_SETTING,
                lambda: _minimize(_stein(), x0, x1, best=True),
                repeats,
                "DiscreteCurve 64 nodes, eval_grid 64; the cheapest swept setting within "
                "1e-5 of stochman's converged length (LBFGS to max|grad| 4e-8)",
            ),
            _w1_row(
                SPLINE_SETTING,
                lambda: _spline_geodesic(x0, x1),
                repeats,
                "stochman's high-level default; a cubic spline, lengths on 64 samples of it",
                discrete=False,
            ),
        ]


def w2(pairs: np.ndarray, repeats: int) -> list[dict]:
    """All pairs as one B×64×2 `DiscreteCurve`: one optimiser on the loss Σ_b E_b."""
    import torch

    x0, x1 = torch.tensor(pairs[:, 0]), torch.tensor(pairs[:, 1])
    runs = [
        (DEFAULT_SETTING, False, W2_ADAM_NOTE),
        (BEST_SETTING, True, W2_LBFGS_NOTE),
    ]
    rows = []
    with _threads():
        for setting, best, note in runs:
            (points, success), time_s = _timed(lambda: _minimize(_stein(), x0, x1, best), repeats)
            rows.append(
                dict(
                    setting=setting,
                    time_s=time_s,
                    lengths=_midpoint_lengths(points.numpy()),
                    note=f"all {len(pairs)} pairs in one batch; {note}; stochman success={success}",
                )
            )
    return rows


def w4(repeats: int) -> dict:
    """`Manifold.expmap(p, v)`: torchdiffeq's rk4 on `geodesic_system` over t ∈ [0, 1]."""
    import torch

    setting = "Manifold.expmap, default (torchdiffeq rk4, 5 time points)"
    p = torch.tensor(problems.W4_X0)
    v = torch.tensor(problems.W4_V0) * problems.W4_T1  # expmap integrates over t ∈ [0, 1]
    with _threads(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Converting a tensor with requires_grad"
        try:
            endpoint, time_s = _timed(lambda: _stein().expmap(p, v), repeats)
        except Exception as e:  # noqa: BLE001 - report whatever stochman raises
            error = f"{type(e).__name__}: {e}"
        else:
            return dict(setting=setting, time_s=time_s, endpoint=endpoint.reshape(-1).numpy())
        try:  # the ODE right-hand side on its own, past a missing torchdiffeq import
            _stein().geodesic_system(p[None], v[None])
            note = "Manifold.geodesic_system itself runs"
        except Exception as e:  # noqa: BLE001
            note = f"Manifold.geodesic_system itself raises {type(e).__name__}: {e}"
    note += (
        " (torchdiffeq is an undeclared dependency of stochman 0.3.0; with torchdiffeq 0.2.5 "
        "installed expmap raises that same torch.solve RuntimeError, since torch.solve was "
        "removed in torch 2; shooting_geodesic and bvp_geodesic use the same geodesic_system)"
    )
    return dict(setting=setting, error=error, note=note)


# ---------------------------------------------------------------------------- W3


@functools.cache
def _decoder_manifold(dim: int):
    """`EmbeddedManifold` whose `embed` is the W3 MLP decoder, float32."""
    import torch
    from stochman.manifold import EmbeddedManifold

    w = {k: torch.tensor(v) for k, v in problems.decoder_weights(dim).items()}

    class Decoder(EmbeddedManifold):
        def embed(self, points, jacobian=False):
            h1 = torch.tanh(points @ w["W1"].T + w["b1"])
            h2 = torch.tanh(h1 @ w["W2"].T + w["b2"])
            out = h2 @ w["W3"].T + w["b3"]
            if not jacobian:
                return out
            d1 = (1 - h1**2)[..., :, None] * w["W1"]  # (..., 64, 2)
            d2 = (1 - h2**2)[..., :, None] * (w["W2"] @ d1)  # (..., 64, 2)
            return out, w["W3"] @ d2  # (..., D, 2)

    return Decoder()


def w3_energy(dim: int, repeats: int) -> dict:
    import torch

    manifold = _decoder_manifold(dim)
    curve = torch.tensor(problems.w3_curve())[None]  # (1, 64, 2): no in-place unsqueeze_

    def energy_and_grad():
        points = curve.clone().requires_grad_()
        energy = manifold.curve_energy(points)
        energy.backward()
        return energy.detach(), points.grad[0]

    with _threads():
        (energy, grad), time_s = _timed(energy_and_grad, repeats)
    reference = problems.w3_secant_energy(problems.w3_curve(), problems.decoder_weights(dim))
    return dict(
        setting="EmbeddedManifold.curve_energy + backward",
        time_s=time_s,
        energy=float(energy),
        grad=grad.numpy(),
        energy_factor=2.0,
        note="stochman's energy is (N−1) Σ|f(c_{i+1})−f(c_i)|² = 2 × w3_secant_energy "
        f"(N/2 Σ…, N = 63 steps): measured ratio {float(energy) / reference:.6f}; energy and "
        "grad are stochman's raw values (divide by 2 for the reference convention)",
    )


def _w3_secant_length(points: np.ndarray) -> float:
    w = {
        k: v.astype(np.float64)
        for k, v in problems.decoder_weights(problems.W3_GEODESIC_DIM).items()
    }
    f = problems.decoder(np.asarray(points, dtype=np.float64), w)
    return float(np.linalg.norm(np.diff(f, axis=0), axis=1).sum())


def w3_geodesic(repeats: int) -> dict:
    """The default setting at top level; the LBFGS setting (converged) under `converged`."""
    import torch

    manifold = _decoder_manifold(problems.W3_GEODESIC_DIM)
    z0 = torch.tensor(problems.W3_Z0, dtype=torch.float32)
    z1 = torch.tensor(problems.W3_Z1, dtype=torch.float32)
    rows = []
    with _threads():
        for setting, best, note in (
            (DEFAULT_SETTING, False, "unconverged"),
            (BEST_SETTING, True, W3_LBFGS_NOTE),
        ):
            (points, success), time_s = _timed(lambda: _minimize(manifold, z0, z1, best), repeats)
            curve = points[0].numpy()
            length = _w3_secant_length(curve)
            rel = length / W3_CONVERGED_LENGTH - 1
            rows.append(
                dict(
                    setting=setting,
                    time_s=time_s,
                    length=length,
                    curve=curve,
                    note=f"DiscreteCurve 64 nodes, eval_grid 64, float32; {note}; stochman "
                    f"success={success}; {rel:+.1e} vs the converged secant length "
                    f"{W3_CONVERGED_LENGTH} (scipy L-BFGS-B on the same energy, float64)",
                )
            )
    return dict(rows[0], converged=rows[1])


# ---------------------------------------------------------------------------- W6


def _learned_stein(layers, shift, scale, damping):
    """The Stein metric of W6's score network, its weights copied into torch: s(x) =
    MLP((x − shift) / scale) / scale (SiLU between the layers), G = (I − s sᵀ / (λ +
    |s|²)) / λ (Sherman–Morrison), float64."""
    import torch
    from stochman.manifold import Manifold

    weights = [(torch.tensor(w), torch.tensor(b)) for w, b in layers]
    shift, scale = torch.tensor(shift), torch.tensor(scale)

    class LearnedStein(Manifold):
        def metric(self, points):
            h = (points - shift) / scale
            for i, (w, b) in enumerate(weights):
                h = h @ w.T + b
                if i < len(weights) - 1:
                    h = torch.nn.functional.silu(h)
            s = h / scale
            outer = s[:, :, None] * s[:, None, :]
            denom = damping + (s * s).sum(-1)
            eye = torch.eye(points.shape[-1], dtype=points.dtype)
            return (eye - outer / denom[:, None, None]) / damping

    return LearnedStein()


def w6(layers, shift, scale, damping: float, x0: np.ndarray, x1: np.ndarray, repeats: int):
    """stochman's default and its best W1 setting on the W6 network: the 64 curve
    points of each (the caller measures their length under jaxgeo's metric)."""
    import torch

    manifold = _learned_stein(layers, shift, scale, damping)
    a, b = torch.tensor(np.asarray(x0)), torch.tensor(np.asarray(x1))
    rows = []
    with _threads():
        for setting, best in ((DEFAULT_SETTING, False), (BEST_SETTING, True)):
            (points, success), time_s = _timed(lambda: _minimize(manifold, a, b, best), repeats)
            rows.append(
                dict(
                    setting=setting,
                    time_s=time_s,
                    curve=points[0].numpy(),
                    note=f"DiscreteCurve 64 nodes, eval_grid 64; stochman success={success}",
                )
            )
    return rows
