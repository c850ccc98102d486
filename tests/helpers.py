"""Closed-form manifolds and comparison helpers shared by the tests."""

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import jaxlib
import numpy as np
import pytest

import jaxgeo as jg
from benchmarks.report import accepted_xla_flags


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8) -> bool:
    """Same structure, same dtypes, values within tolerance (eager use only)."""
    return bool(eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol))


def require_xla_flags(*flags: str) -> None:
    """Fail the calling test, saying why, unless this jaxlib accepts each of `flags` in
    XLA_FLAGS: a process started with a flag XLA does not know ends at once, with no
    Python error to report."""
    refused = {flag: why for flag, why in accepted_xla_flags(flags).items() if why is not None}
    if refused:
        pytest.fail(
            f"jaxlib {jaxlib.__version__} does not accept the XLA flags this test needs: "
            + "; ".join(f"{flag} ({why})" for flag, why in refused.items()),
            pytrace=False,
        )


# --- Poincaré half-plane {(x, y) : y > 0}, G(x) = I / y^2 --------------------------------


def poincare_fn(x):
    return jnp.eye(2) / x[1] ** 2


# As a user would write it, with a lambda.
poincare = jg.MatrixMetric(lambda x: jnp.eye(2) / x[1] ** 2)
# The same metric with `fn` as a pytree without array leaves (`MatrixMetric`'s docstring
# suggests `jax.tree_util.Partial` for parametrised functions).
poincare_partial = jg.MatrixMetric(jtu.Partial(poincare_fn))


def poincare_distance(x, y):
    """arccosh(1 + |x - y|^2 / (2 x_2 y_2))."""
    return jnp.arccosh(1 + jnp.sum((x - y) ** 2) / (2 * x[1] * y[1]))


def poincare_vertical_geodesic(y0: float, y1: float, num_points: int):
    """The constant-speed geodesic t -> (0, y0 (y1/y0)^t) and its length |log(y1/y0)|."""
    ts = jnp.linspace(0, 1, num_points)
    xs = jnp.stack([jnp.zeros_like(ts), y0 * jnp.exp(ts * np.log(y1 / y0))], axis=1)
    return xs, abs(np.log(y1 / y0))


def poincare_semicircle_geodesic(
    centre: float, radius: float, theta0: float, theta1: float, num_points: int
):
    """The constant-speed geodesic along the circle of `radius` centred at (centre, 0),
    from angle theta0 to theta1, and its length.

    On this circle ds = r dθ / (r sin θ), so the arc length is s(θ) = log tan(θ/2) and
    θ(t) = 2 arctan(exp(s0 + t (s1 - s0))) has constant speed."""
    s0, s1 = np.log(np.tan(theta0 / 2)), np.log(np.tan(theta1 / 2))
    ts = jnp.linspace(0, 1, num_points)
    theta = 2 * jnp.arctan(jnp.exp(s0 + ts * (s1 - s0)))
    xs = jnp.stack([centre + radius * jnp.cos(theta), radius * jnp.sin(theta)], axis=1)
    return xs, abs(s1 - s0)


def straight_line(x0, x1, num_points: int):
    ts = jnp.linspace(0, 1, num_points, dtype=jnp.result_type(x0, x1))
    return x0[None] + ts[:, None] * (x1 - x0)[None]


# --- the Part II case: Stein metric of a correlated Gaussian --------------------------


def stein_gaussian(rho=0.8, damping=1.0, dtype=jnp.float64):
    cov = jnp.array([[1.0, rho], [rho, 1.0]], dtype)
    return jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2, dtype), cov), damping=damping)
