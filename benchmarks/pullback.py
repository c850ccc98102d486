"""Pullback curve energies: dense, matrix-free and Jacobian-free.

    python -m benchmarks.pullback

Time of one curve energy and its gradient w.r.t. the curve (64 points, latent dimension
2, decoder MLP 2 -> 64 -> 64 -> D with tanh, float32) for D = 64, 784, 4096, 16384:
(i) dense: the midpoint rule through the (d, d) matrix J^T J built from the (D, d)
Jacobian (`MatrixMetric(pullback.matrix)`); (ii) matrix-free: the midpoint rule through
`PullbackMetric.inner` (JVPs); (iii) Jacobian-free: the secant energy
N/2 sum |f(c_{i+1}) - f(c_i)|^2 (`curve_energy(..., energy="secant")`). Each
configuration runs in its own process so that its peak resident memory (RSS) is its own.
"""

import json
import os
import subprocess
import sys

from .report import command_line, table_header, table_row


CHILD = r"""
import json, resource, sys
import jax, jax.numpy as jnp
import jaxgeo as jg
from benchmarks.report import timed

dim, path = int(sys.argv[1]), sys.argv[2]
keys = jax.random.split(jax.random.key(0), 3)
w1 = jax.random.normal(keys[0], (64, 2)) / 2
w2 = jax.random.normal(keys[1], (64, 64)) / 8
w3 = jax.random.normal(keys[2], (dim, 64)) / 8

def decoder(z):
    return w3 @ jnp.tanh(w2 @ jnp.tanh(w1 @ z))

pullback = jg.PullbackMetric(decoder)
metric, rule = {
    "dense": (jg.MatrixMetric(pullback.matrix), "midpoint"),
    "matrix-free": (pullback, "midpoint"),
    "Jacobian-free": (pullback, "secant"),
}[path]
t = jnp.linspace(0, 1, 64)
curve = jnp.stack([jnp.cos(3 * t), jnp.sin(2 * t)], axis=1)
step = jax.jit(jax.value_and_grad(lambda c: jg.curve_energy(metric, c, energy=rule)))
(energy, _), _, seconds = timed(step, curve, repeats=20)
rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(ms=1e3 * seconds, rss_mib=rss_mib, energy=float(energy))))
"""


def run(dim: int, path: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(dim), path],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # finds `benchmarks`
    )
    if out.returncode != 0:
        return dict(error=out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(dims=(64, 784, 4096, 16384)) -> None:
    paths = ("dense", "matrix-free", "Jacobian-free")
    print("\n".join(table_header(["D", *(f"{p} (ms, peak RSS MiB)" for p in paths), "energies"])))
    for dim in dims:
        cells, energies = [], []
        for path in paths:
            r = run(dim, path)
            if "error" in r:
                cells.append(f"failed: {r['error'][:60]}")
                continue
            cells.append(f"{r['ms']:.2f} ms, {r['rss_mib']:.0f}")
            energies.append(f"{r['energy']:.5g}")
        print(table_row([str(dim), *cells, " / ".join(energies)]))


if __name__ == "__main__":
    main(**command_line(__doc__, dims=(64, 784, 4096, 16384)))
