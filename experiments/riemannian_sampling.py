"""Riemannian-manifold samplers with data-driven metrics (Part II's closing remark: "now
that we have a metric tensor, we can use it in the Riemann Manifold Langevin Dynamics").

    python -m experiments.riemannian_sampling

Targets: the rho = 0.95 Gaussian of Part II, a banana (Rosenbrock-type) density and a
well-separated two-component mixture. Samplers: MALA (Euclidean metric), manifold MALA
with the Stein metric (lambda = 0.1, 1, 10) and with the Monge metric (alpha = 1), and
RMHMC (blackjax) with the Stein metric (lambda = 1). Every sampler's step size is tuned by
dual averaging (target acceptance 0.574 for the MALA family, 0.8 for RMHMC), then 4
chains are run. Writes under figures/riemannian_sampling/:
  chains.png   the first chain of every sampler over each target's density
  table.md     acceptance, ESS (blackjax, the smaller over the two coordinates) per
               second, per step and per gradient evaluation
"""

from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

import blackjax
import jax.numpy as jnp
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import jaxgeo as jg

from ._common import dict_table, output_dir, run, save_figure, timed, write_table


RHO = 0.95
RMHMC_STEPS = 5  # leapfrog (implicit-midpoint) steps per RMHMC transition


def banana_log_prob(x):
    """A Rosenbrock-type banana: x1 ~ N(0, 2^2), x2 | x1 ~ N(x1^2 / 4 - 1, 0.5^2)."""
    return -(x[0] ** 2) / 8 - 2 * (x[1] - x[0] ** 2 / 4 + 1) ** 2


def targets() -> dict:
    """name -> (log-density, score, (centre, spread) of the chains' starts, plot limits)."""
    gauss = jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, RHO], [RHO, 1.0]]))
    mixture = jg.scores.gmm(
        jnp.array([0.5, 0.5]),
        jnp.array([[-2.5, -2.5], [2.5, 2.5]]),
        jnp.stack([0.5 * jnp.eye(2), 0.5 * jnp.eye(2)]),
    )
    return {
        "Gaussian rho = 0.95": (gauss.log_prob, gauss, (jnp.zeros(2), 1.0), (-3.5, 3.5)),
        "banana": (
            banana_log_prob,
            jg.scores.from_log_density(banana_log_prob),
            (jnp.array([0.0, -1.0]), 1.0),
            (-6.0, 6.0),
        ),
        # chains start spread over both modes: a sampler that never crosses shows a low ESS
        "mixture": (mixture.log_prob, mixture, (jnp.zeros(2), 3.0), (-5.0, 5.0)),
    }


def samplers(log_prob, score) -> dict:
    """name -> (step size -> algorithm, target acceptance, gradient evaluations per step)."""
    mmala = jg.sampling.mmala

    def stein(lam):
        return jg.SteinMetric(score, damping=lam)

    return {
        "MALA": (lambda eps: mmala(log_prob, jg.Euclidean(2), eps), 0.574, 1),
        "MMALA Stein λ=0.1": (lambda eps: mmala(log_prob, stein(0.1), eps), 0.574, 1),
        "MMALA Stein λ=1": (lambda eps: mmala(log_prob, stein(1.0), eps), 0.574, 1),
        "MMALA Stein λ=10": (lambda eps: mmala(log_prob, stein(10.0), eps), 0.574, 1),
        "MMALA Monge α=1": (
            lambda eps: mmala(log_prob, jg.MongeMetric(score, alpha=1.0), eps),
            0.574,
            1,
        ),
        "RMHMC Stein λ=1": (
            lambda eps: jg.sampling.rmhmc(log_prob, stein(1.0), eps, RMHMC_STEPS),
            0.8,
            None,  # implicit midpoint: a fixed-point solve per step, see the table's note
        ),
    }


def run_sampler(key, make, target_acceptance, start, *, num_chains, num_warmup, num_samples):
    """Warm-up (dual averaging) and sampling of `num_chains` vmapped chains; the
    sampling phase is compiled first and then timed."""
    key_warm, key_run = jax.random.split(key)
    centre, spread = start
    starts = centre[None, :] + spread * jax.random.normal(key_warm, (num_chains, 2))

    def warm(key, x0):
        return jg.sampling.step_size_warmup(
            key,
            make,
            x0,
            num_steps=num_warmup,
            target_acceptance=target_acceptance,
            initial_step_size=0.5,
        )

    warmed = jax.jit(jax.vmap(warm))(jax.random.split(key_warm, num_chains), starts)
    step_size = float(jnp.median(warmed.step_size))
    algorithm = make(step_size)

    @jax.jit
    def sample(keys, states):
        return jax.vmap(lambda k, s: jg.sampling.sample_chain(k, algorithm, s, num_samples))(
            keys, states
        )

    keys = jax.random.split(key_run, num_chains)
    (positions, infos), _, seconds = timed(sample, keys, warmed.state, repeats=1)
    ess = np.asarray(blackjax.diagnostics.effective_sample_size(positions))
    return dict(
        positions=np.asarray(positions),
        step_size=step_size,
        acceptance=float(jnp.mean(infos.acceptance_rate)),
        ess=float(np.min(ess)),
        seconds=seconds,
        steps=num_chains * num_samples,
    )


def per_gradient(ess: float | None) -> str:
    return "n/a" if ess is None else f"{ess:.4f}"


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/riemannian_sampling", smoke: bool = False
) -> dict:
    """Run every sampler on every target; print and return the table."""
    out = output_dir(out_dir)
    sizes = (
        dict(num_chains=4, num_warmup=300, num_samples=500)
        if smoke
        else dict(num_chains=4, num_warmup=1500, num_samples=5000)
    )
    all_targets = targets()
    rows = []
    names = list(samplers(*list(all_targets.values())[0][:2]))
    fig, axes = plt.subplots(
        len(all_targets), len(names), figsize=(3.2 * len(names), 3.2 * len(all_targets))
    )
    for i, (target, (log_prob, score, start, lim)) in enumerate(all_targets.items()):
        grid = np.linspace(*lim, 120)
        xx, yy = np.meshgrid(grid, grid)
        points = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=1))
        density = np.exp(np.asarray(jax.vmap(log_prob)(points))).reshape(xx.shape)
        for j, (name, (make, target_acceptance, grads)) in enumerate(
            samplers(log_prob, score).items()
        ):
            key = jax.random.fold_in(jax.random.key(seed), 100 * i + j)
            r = run_sampler(key, make, target_acceptance, start, **sizes)
            rows.append(
                dict(
                    target=target,
                    sampler=name,
                    step_size=r["step_size"],
                    acceptance=r["acceptance"],
                    ess=r["ess"],
                    ess_per_second=r["ess"] / r["seconds"],
                    ess_per_step=r["ess"] / r["steps"],
                    ess_per_gradient=None if grads is None else r["ess"] / (r["steps"] * grads),
                )
            )
            ax = axes[i, j]
            ax.contour(xx, yy, density, levels=8, colors="0.6", linewidths=0.7)
            chain = r["positions"][0, :1000]
            ax.plot(chain[:, 0], chain[:, 1], "-", color="C0", lw=0.3, alpha=0.6)
            ax.plot(chain[:, 0], chain[:, 1], ".", color="C0", ms=1.5)
            ax.set(xlim=lim, ylim=lim)
            ax.tick_params(labelsize=6)
            ax.set_title(
                f"{name}\nacc {r['acceptance']:.2f}, ESS/step {rows[-1]['ess_per_step']:.3f}",
                fontsize=8,
            )
            if j == 0:
                ax.set_ylabel(target)
    fig.suptitle(
        "The first 1,000 states of one chain (blue) over the target's density (grey "
        "contours); axes: the coordinates $x_1$ (horizontal), $x_2$ (vertical); rows: "
        "targets, columns: samplers",
        fontsize=10,
    )
    save_figure(fig, out / "chains.png", dpi=90)

    table = dict_table(
        "target | sampler | step size | acceptance | ESS | ESS / s | ESS / step | ESS / gradient",
        "{target} | {sampler} | {step_size:.3g} | {acceptance:.2f} | {ess:.0f} "
        "| {ess_per_second:.0f} | {ess_per_step:.4f} | {per_gradient}",
        [dict(r, per_gradient=per_gradient(r["ess_per_gradient"])) for r in rows],
    )
    table += [
        "",
        f"{sizes['num_chains']} chains x {sizes['num_samples']} samples after "
        f"{sizes['num_warmup']} warm-up steps; ESS is blackjax's multi-chain estimate, the "
        "smaller over the two coordinates. Gradient evaluations: one per MALA/MMALA step "
        "(the Stein and Monge metrics are functions of the same score, evaluated at the "
        f"same points); RMHMC takes {RMHMC_STEPS} implicit-midpoint steps, each a "
        "fixed-point iteration of gradient evaluations (not counted: see ESS / s).",
    ]
    write_table(out, table)
    print(f"figures written to {out}/")
    return dict(rows=rows)


if __name__ == "__main__":
    run(main, __doc__, "figures/riemannian_sampling")
