"""Fisher-Rao distances: jaxgeo against closed forms and geomstats 2.8.0.

    pip install -e '.[bench]'
    python -m benchmarks.fisher_rao [--repeats 5] [--geomstats-backend numpy]

Three pairs of distributions, in jaxgeo's parameter coordinates (float64):
  1. Normal(0, 1) - Normal(1, 2), (mu, sigma) with sigma the standard deviation; closed
     form sqrt(2) arccosh(1 + ((mu1 - mu2)^2 / 2 + (s1 - s2)^2) / (2 s1 s2));
  2. Beta(2, 3) - Beta(5, 1), (alpha, beta); no closed form: the reference is the length
     of the exact ODE geodesic by multiple shooting (`jg.Shooting`, 32 segments, Newton
     tolerances 1e-12, so ODE tolerances 1e-14), checked against an independent
     discretisation, the Richardson-extrapolated energy polyline (`distance(...,
     solver=Richardson(...))`, 512 segments, tolerances 1e-13); the run stops if the two differ
     by more than 1e-9 relative;
  3. Categorical(0.2, 0.3, 0.5) - Categorical(0.6, 0.2, 0.2), coordinates the first K - 1
     probabilities; closed form 2 arccos(sum_i sqrt(p_i q_i)).

jaxgeo (`FisherRaoMetric` of `jg.families.*`), each method jitted as one function of the
two endpoints: `distance` at its defaults (`Richardson`: extrapolation of two
`EnergyNewton` polylines, no ODE); `distance(solver=Shooting())` (multiple shooting from
an `EnergyNewton` polyline); and the same two with `EnergyDescent` (L-BFGS) in place of
`EnergyNewton`: `distance(solver=Richardson(EnergyDescent()))` and
`distance(solver=Shooting(init_solver=EnergyDescent()))`. Reported: compile time (the first
call: tracing, compilation and one solve), median wall time of `--repeats` further calls
(`block_until_ready`), the distance and its error relative to the reference. A method that
raises is reported as failed, with its error message.

geomstats (`metric.dist` of `UnivariateNormalDistributions`, `BetaDistributions`,
`CategoricalDistributions(dim=2)`, coordinates (mean, std), (alpha, beta) and the full
probability vector) runs first, in a subprocess of the same interpreter with
`GEOMSTATS_BACKEND` set (default numpy, which all three metrics support), so that its
backend is chosen independently of jaxgeo's process. Reported: median wall time of
`--repeats` calls after one warm-up call, the error against the same reference, and the
ratio geomstats time / jaxgeo run time (> 1: jaxgeo is faster).
"""

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import jax


jax.config.update("jax_enable_x64", True)

import equinox as eqx
import jax.numpy as jnp
import numpy as np

import jaxgeo as jg

from .report import extrapolated_length, table_header, table_row, timed


@dataclass(frozen=True)
class Case:
    name: str
    family: Callable[[], jg.families.AbstractFamily]
    a: tuple[float, ...]  # jaxgeo coordinates
    b: tuple[float, ...]
    geomstats: tuple[str, tuple[float, ...], tuple[float, ...]]  # space, its coordinates
    closed_form: Callable[[np.ndarray, np.ndarray], float] | None


def normal_distance(a, b) -> float:
    (m1, s1), (m2, s2) = a, b
    return np.sqrt(2) * np.arccosh(1 + ((m1 - m2) ** 2 / 2 + (s1 - s2) ** 2) / (2 * s1 * s2))


def categorical_distance(a, b) -> float:
    p, q = np.append(a, 1 - np.sum(a)), np.append(b, 1 - np.sum(b))
    return 2 * np.arccos(np.sum(np.sqrt(p * q)))


CASES = (
    Case(
        "Normal(0,1)-Normal(1,2)",
        jg.families.Normal,
        (0.0, 1.0),
        (1.0, 2.0),
        ("normal", (0.0, 1.0), (1.0, 2.0)),
        normal_distance,
    ),
    Case(
        "Beta(2,3)-Beta(5,1)",
        jg.families.Beta,
        (2.0, 3.0),
        (5.0, 1.0),
        ("beta", (2.0, 3.0), (5.0, 1.0)),
        None,
    ),
    Case(
        "Categorical(.2,.3,.5)-(.6,.2,.2)",
        lambda: jg.families.Categorical(3),
        (0.2, 0.3),
        (0.6, 0.2),
        ("categorical", (0.2, 0.3, 0.5), (0.6, 0.2, 0.2)),
        categorical_distance,
    ),
)


METHODS = {
    "distance (default: Richardson)": lambda m, a, b: jg.distance(m, a, b),
    "distance(solver=Shooting())": lambda m, a, b: jg.distance(m, a, b, solver=jg.Shooting()),
    "shooting from EnergyDescent": lambda m, a, b: jg.distance(
        m, a, b, solver=jg.Shooting(init_solver=jg.EnergyDescent())
    ),
    "Richardson, EnergyDescent": lambda m, a, b: jg.distance(
        m, a, b, solver=jg.Richardson(jg.EnergyDescent())
    ),
}


CHILD = r"""
import json, sys, time
import geomstats
import geomstats.backend as gs
from geomstats.information_geometry.beta import BetaDistributions
from geomstats.information_geometry.categorical import CategoricalDistributions
from geomstats.information_geometry.normal import NormalDistributions

cases, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
spaces = {
    "normal": lambda: NormalDistributions(sample_dim=1),
    "beta": BetaDistributions,
    "categorical": lambda: CategoricalDistributions(dim=2),
}
results = []
for kind, a, b in cases:
    space = spaces[kind]()
    metric = space.metric
    a, b = gs.array(a), gs.array(b)
    dist = float(metric.dist(a, b))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        dist = float(metric.dist(a, b))
        times.append(time.perf_counter() - start)
    times.sort()
    solver = getattr(metric, "log_solver", None)
    how = type(metric).__name__
    if solver is not None:
        integrator = getattr(solver, "integrator", None)
        how += f" ({type(solver).__name__}, {type(integrator).__name__}"
        how += f" tol={getattr(integrator, 'tol', '?')})"
    results.append(dict(distance=dist, ms=1e3 * times[len(times) // 2], how=how))
print(json.dumps(dict(version=geomstats.__version__, backend=gs.__name__, results=results)))
"""


def run_geomstats(backend: str, repeats: int) -> dict:
    """geomstats' distances and times in a subprocess with `GEOMSTATS_BACKEND=backend`."""
    cases = [case.geomstats for case in CASES]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases), str(repeats)],
        capture_output=True,
        text=True,
        env={**os.environ, "GEOMSTATS_BACKEND": backend},
    )
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines() or ["no output"]
        return dict(error=lines[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def beta_reference(metric: jg.FisherRaoMetric, a, b) -> tuple[float, float]:
    """The Beta distance by tight multiple shooting, and by the extrapolated energy."""
    shooting = jg.Shooting(
        num_segments=32,
        rtol=1e-12,
        atol=1e-12,
        init_solver=jg.EnergyDescent(rtol=1e-10, atol=1e-10),
    )
    exact = jg.geodesic_bvp(metric, a, b, num_points=129, solver=shooting, max_steps=20_000).length
    tight = jg.EnergyDescent(rtol=1e-13, atol=1e-13)
    energy = extrapolated_length(metric, a, b, tight, 1024, max_steps=100_000)
    return float(exact), energy


def error_message(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "Error:" in line:
            return line.split("Error:", 1)[1].strip()
    return lines[-1] if lines else type(error).__name__


def main(repeats: int = 5, backend: str | None = "numpy") -> list[dict]:
    """Print the tables and return the rows; `backend=None` skips geomstats."""
    gs = run_geomstats(backend, repeats) if backend else dict(error="not run")
    if "error" in gs:
        print(f"geomstats ({backend} backend) failed: {gs['error']}")
        gs_results = [None] * len(CASES)
    else:
        gs_results = gs["results"]
        print(
            f"geomstats {gs['version']}, backend {gs['backend']} "
            f"(GEOMSTATS_BACKEND={backend}), in a subprocess"
        )
    print(
        f"jaxgeo {jg.__version__}, jax {jax.__version__}, float64 on {jax.devices()[0].platform}; "
        f"{repeats} repeats"
    )

    references = []
    print()
    print("\n".join(table_header(["case", "reference distance", "how", "geomstats method"])))
    for case, g in zip(CASES, gs_results):
        how_gs = g["how"] if g else "n/a"
        if case.closed_form is not None:
            ref = float(case.closed_form(np.array(case.a), np.array(case.b)))
            how = "closed form"
        else:
            metric = jg.FisherRaoMetric(case.family())
            exact, energy = beta_reference(metric, jnp.array(case.a), jnp.array(case.b))
            gap = abs(exact - energy) / exact
            if not gap <= 1e-9:
                raise RuntimeError(f"{case.name}: references disagree, {exact!r} vs {energy!r}")
            ref = exact
            how = f"shooting, 32 segments, tol 1e-12 (energy, 512 segments: rel. diff. {gap:.1e})"
        references.append(ref)
        print(table_row([case.name, f"{ref:.15f}", how, how_gs]))

    header = [
        "case",
        "method",
        "compile (s)",
        "run (ms)",
        "distance",
        "rel. error",
        "geomstats (ms)",
        "geomstats rel. error",
        "geomstats / jaxgeo time",
    ]
    print()
    print("\n".join(table_header(header)))
    rows = []
    for case, ref, g in zip(CASES, references, gs_results):
        metric = jg.FisherRaoMetric(case.family())
        a, b = jnp.array(case.a), jnp.array(case.b)
        gs_ms = g["ms"] if g else float("nan")
        gs_error = abs(g["distance"] - ref) / ref if g else float("nan")
        for name, method in METHODS.items():
            # filter_jit, as jaxgeo's own entry points: a runtime error then carries its
            # message instead of a logged callback traceback.
            fn = eqx.filter_jit(lambda a, b, method=method, metric=metric: method(metric, a, b))
            row = dict(case=case.name, method=name, reference=ref, gs_ms=gs_ms, gs_error=gs_error)
            try:
                dist, compile_s, run_s = timed(fn, a, b, repeats=repeats)
            except Exception as error:  # a failed solve raises at run time
                row["failed"] = error_message(error)
                rows.append(row)
                failed = f"failed: {row['failed'].split(' (')[0]}"
                print(
                    table_row(
                        [
                            case.name,
                            name,
                            "-",
                            "-",
                            failed,
                            "-",
                            f"{gs_ms:.3g}",
                            f"{gs_error:.1e}",
                            "-",
                        ]
                    )
                )
                continue
            dist = float(dist)
            row.update(
                compile_s=compile_s,
                run_ms=run_s * 1e3,
                distance=dist,
                error=abs(dist - ref) / ref,
            )
            rows.append(row)
            print(
                table_row(
                    [
                        case.name,
                        name,
                        f"{compile_s:.1f}",
                        f"{row['run_ms']:.3g}",
                        f"{dist:.12f}",
                        f"{row['error']:.1e}",
                        f"{gs_ms:.3g}",
                        f"{gs_error:.1e}",
                        f"{gs_ms / row['run_ms']:.2g}",
                    ]
                )
            )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--geomstats-backend", choices=["numpy", "autograd"], default="numpy")
    args = parser.parse_args()
    main(args.repeats, args.geomstats_backend)
