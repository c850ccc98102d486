"""jaxgeo's side of the benchmark workloads W1–W4 (`benchmarks.problems`), plus the
scaling measurements. Every function returns rows (dicts) of raw outputs and times; the
runner (`python -m benchmarks`) computes errors and ratios and writes the tables."""

import json
import os
import subprocess
import sys

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np

import jaxgeo as jg

from . import problems
from .report import accepted_xla_flags, timed


def stein_metric() -> jg.SteinMetric:
    score = jg.scores.gaussian(jnp.zeros(2), jnp.asarray(problems.COV))
    return jg.SteinMetric(score, damping=problems.DAMPING)


def w1_references(smoke: bool = False) -> dict:
    """The true (ODE) length of the W1 geodesic, by multiple shooting at tolerance 1e-12
    (smoke: the default extrapolated distance), and the converged 64-point discrete
    length."""
    m, x0, x1 = stein_metric(), jnp.asarray(problems.W1_X0), jnp.asarray(problems.W1_X1)
    if smoke:
        true = jg.distance(m, x0, x1)
    else:
        shooting = jg.Shooting(
            num_segments=32,
            rtol=1e-12,
            atol=1e-12,
            init_solver=jg.EnergyNewton(rtol=1e-10, atol=1e-10),
        )
        true = jg.geodesic_bvp(m, x0, x1, num_points=129, solver=shooting).length
    tight = jg.EnergyNewton(rtol=1e-13, atol=1e-13)
    discrete = jg.geodesic_bvp(
        m, x0, x1, num_points=problems.NUM_POINTS, solver=tight, max_steps=1000
    )
    return dict(true=float(true), discrete=float(discrete.length))


def _w1_methods(num_points: int, smoke: bool) -> dict:
    m = stein_metric()
    kw = dict(num_points=num_points)
    methods = {
        "geodesic_bvp, default (EnergyNewton, 64-point polyline)": lambda a, b: (
            jg.geodesic_bvp(m, a, b, **kw).length
        ),
        "distance, default (Richardson: Newton polylines of 16, 32, ... segments, "
        "extrapolated until resolved)": lambda a, b: jg.distance(m, a, b),
        "distance(solver=Shooting()) (multiple shooting of the ODE)": lambda a, b: jg.distance(
            m, a, b, solver=jg.Shooting()
        ),
        "geodesic_bvp(solver=EnergyDescent()) (L-BFGS)": lambda a, b: (
            jg.geodesic_bvp(m, a, b, solver=jg.EnergyDescent(), **kw).length
        ),
    }
    if smoke:  # shooting compiles for 15 s
        del methods["distance(solver=Shooting()) (multiple shooting of the ODE)"]
    return methods


def w1(repeats: int, num_points: int = problems.NUM_POINTS, smoke: bool = False) -> list[dict]:
    x0, x1 = jnp.asarray(problems.W1_X0), jnp.asarray(problems.W1_X1)
    rows = []
    for setting, fn in _w1_methods(num_points, smoke).items():
        length, compile_s, run_s = timed(jax.jit(fn), x0, x1, repeats=repeats)
        rows.append(dict(setting=setting, compile_s=compile_s, time_s=run_s, length=float(length)))
    return rows


def w2_references(pairs: np.ndarray, smoke: bool = False) -> np.ndarray:
    """True lengths of the W2 geodesics (`distance` by multiple shooting; smoke: the
    default extrapolated distance), NaN where unsolved."""
    m, solver = stein_metric(), None if smoke else jg.Shooting()
    return np.asarray(
        jax.jit(jax.vmap(lambda a, b: jg.distance(m, a, b, solver=solver, throw=False)))(
            jnp.asarray(pairs[:, 0]), jnp.asarray(pairs[:, 1])
        )
    )


W2_SETTINGS = {
    "geodesic_bvp_batch, default (one pair at a time on CPU)": {},
    "geodesic_bvp_batch(chunk_size=B) (one vmap over all pairs)": dict(chunk_size=-1),
    "distance, default (Richardson, 128 and 256 segments), one pair at a time": dict(distance=True),
}


def w2(
    pairs: np.ndarray,
    repeats: int,
    num_points: int = problems.NUM_POINTS,
    devices=None,
    settings=tuple(W2_SETTINGS),
) -> list[dict]:
    m = stein_metric()
    x0s, x1s = jnp.asarray(pairs[:, 0]), jnp.asarray(pairs[:, 1])
    rows = []
    for setting in settings:
        kwargs = {k: len(pairs) if v == -1 else v for k, v in W2_SETTINGS[setting].items()}

        def solve(x0s, x1s, kwargs=kwargs):
            if kwargs.get("distance"):
                # One pair at a time, as `pairwise_distances` does on CPU.
                lengths = jax.lax.map(lambda p: jg.distance(m, *p, throw=False), (x0s, x1s))
                return lengths, jnp.isfinite(lengths), jnp.zeros(len(lengths), int)
            sol = jg.geodesic_bvp_batch(
                m, x0s, x1s, num_points=num_points, devices=devices, **kwargs
            )
            return sol.length, sol.result == jg.RESULTS.successful, sol.stats["num_steps"]

        (lengths, ok, steps), compile_s, run_s = timed(
            jax.jit(solve), x0s, x1s, repeats=max(3, repeats // 2)
        )
        rows.append(
            dict(
                setting=setting,
                compile_s=compile_s,
                time_s=run_s,
                lengths=np.asarray(lengths),
                successful=int(np.sum(ok)),
                steps=(float(np.median(steps)), int(np.max(steps))),
            )
        )
    return rows


def w3_decoder(dim: int, dtype=jnp.float32):
    w = {k: jnp.asarray(v, dtype) for k, v in problems.decoder_weights(dim).items()}

    def decoder(z):
        h = jnp.tanh(w["W1"] @ z + w["b1"])
        return w["W3"] @ jnp.tanh(w["W2"] @ h + w["b2"]) + w["b3"]

    return decoder


def w3_energy(dim: int, repeats: int) -> list[dict]:
    """One curve energy and its gradient w.r.t. the 64 curve points, float32, against
    the floor: one forward and one backward pass of the decoder over the 64 points."""
    decoder = w3_decoder(dim)
    curve = jnp.asarray(problems.w3_curve())
    pullback = jg.PullbackMetric(decoder)

    def floor(c):
        out, vjp = jax.vjp(jax.vmap(decoder), c)
        return vjp(out)[0]

    paths = {
        "floor: decoder forward + backward over the points": floor,
        "matrix-free (midpoint rule, JVPs)": jax.value_and_grad(
            lambda c: jg.curve_energy(pullback, c)
        ),
        "finite differences (secant rule)": jax.value_and_grad(
            lambda c: jg.curve_energy(pullback, c, energy="secant")
        ),
        "dense (J^T J matrices)": jax.value_and_grad(
            lambda c: jg.curve_energy(jg.MatrixMetric(pullback.matrix), c)
        ),
    }
    rows = []
    for setting, fn in paths.items():
        out, compile_s, run_s = timed(jax.jit(fn), curve, repeats=max(repeats, 20))
        row = dict(setting=setting, dim=dim, compile_s=compile_s, time_s=run_s)
        if not setting.startswith("floor"):
            row.update(energy=float(out[0]), grad=np.asarray(out[1]))
        rows.append(row)
    return rows


def w3_geodesic(repeats: int, dim: int = problems.W3_GEODESIC_DIM) -> list[dict]:
    pullback = jg.PullbackMetric(w3_decoder(dim, jnp.float64))
    z0, z1 = jnp.asarray(problems.W3_Z0), jnp.asarray(problems.W3_Z1)
    rows = []
    for setting, energy in (
        ("geodesic_bvp(energy='secant') (EnergyNewton)", "secant"),
        ("geodesic_bvp (midpoint rule, EnergyNewton)", "midpoint"),
    ):

        def solve(a, b, energy=energy):
            sol = jg.geodesic_bvp(pullback, a, b, num_points=problems.NUM_POINTS, energy=energy)
            return sol.xs, sol.stats["num_steps"]

        (xs, steps), compile_s, run_s = timed(jax.jit(solve), z0, z1, repeats=repeats)
        fx = problems.decoder(np.asarray(xs), problems.decoder_weights(dim))
        rows.append(
            dict(
                setting=setting,
                compile_s=compile_s,
                time_s=run_s,
                length=float(np.linalg.norm(np.diff(fx, axis=0), axis=1).sum()),
                steps=int(steps),
            )
        )
    return rows


def w4_reference() -> np.ndarray:
    m = stein_metric()
    x0, v0 = jnp.asarray(problems.W4_X0), jnp.asarray(problems.W4_V0)
    tight = dict(rtol=1e-13, atol=1e-13)
    end = jg.exp_map(m, x0, v0, solver=dfx.Dopri8(), max_steps=10**5, **tight)
    return np.asarray(end)


def w4(repeats: int) -> list[dict]:
    m = stein_metric()
    x0, v0 = jnp.asarray(problems.W4_X0), jnp.asarray(problems.W4_V0)
    end, compile_s, run_s = timed(
        jax.jit(lambda x, v: jg.exp_map(m, x, v)),
        x0,
        v0,
        repeats=repeats,  # t1 = 1
    )
    return [
        dict(
            setting="exp_map, default (Tsit5, PID 1e-10)",
            compile_s=compile_s,
            time_s=run_s,
            endpoint=np.asarray(end),
        )
    ]


def scaling_points(repeats: int, sizes=(16, 32, 64, 128, 256)) -> list[dict]:
    """W1 (one solve, default solver) against the number of curve points."""
    x0, x1 = jnp.asarray(problems.W1_X0), jnp.asarray(problems.W1_X1)
    m, rows = stein_metric(), []
    for n in sizes:
        fn = jax.jit(lambda a, b, n=n: jg.geodesic_bvp(m, a, b, num_points=n).length)
        _, _, run_s = timed(fn, x0, x1, repeats=repeats)
        rows.append(dict(num_points=n, time_s=run_s))
    return rows


def scaling_batch(repeats: int, sizes=(16, 64, 256, 1024)) -> list[dict]:
    """W2's throughput against the number of pairs (default chunking, one device)."""
    m, rows = stein_metric(), []
    for size in sizes:
        pairs = jnp.asarray(problems.w2_pairs(size))
        fn = jax.jit(lambda p: jg.geodesic_bvp_batch(m, p[:, 0], p[:, 1]).length)
        _, _, run_s = timed(fn, pairs, repeats=max(5, repeats))
        rows.append(dict(batch=size, time_s=run_s))
    return rows


DEVICE_SCRIPT = """
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
from benchmarks import problems, workloads
pairs, out = problems.w2_pairs(int(sys.argv[1])), {}
for count in (1, 2, 4):
    row = workloads.w2(pairs, int(sys.argv[2]), devices=jax.devices()[:count],
                       settings=list(workloads.W2_SETTINGS)[:1])[0]
    out[count] = dict(time_s=row["time_s"], lengths=row["lengths"].tolist())
print(json.dumps(out))
"""


def device_scaling(num_pairs: int, repeats: int) -> dict:
    """W2 on 1, 2 and 4 host devices (`XLA_FLAGS=--xla_force_host_platform_device_count=4`,
    in a subprocess): time and lengths per device count."""
    flag = "--xla_force_host_platform_device_count=4"
    why = accepted_xla_flags([flag])[flag]
    if why is not None:
        return dict(error=f"this jaxlib does not accept {flag}: {why}")
    env = dict(os.environ, XLA_FLAGS=flag)
    out = subprocess.run(
        [sys.executable, "-c", DEVICE_SCRIPT, str(num_pairs), str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    if out.returncode != 0:
        return dict(error=out.stderr.strip().splitlines()[-1])
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
