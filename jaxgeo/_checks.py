"""Trace-time validation helpers: clear `ValueError`s naming the offending shapes."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array


def check_point(x: Array, name: str = "x", dim: int | None = None) -> None:
    """Raise unless `x` is a single point: a 1-D floating array (of length `dim`)."""
    shape = jnp.shape(x)
    if len(shape) != 1:
        raise ValueError(
            f"{name} must be a single point of shape (dim,), got shape {shape}. "
            "jaxgeo functions act on one point: batch with jax.vmap."
        )
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must have a floating dtype, got {jnp.result_type(x)}")
    if dim is not None and shape[0] != dim:
        raise ValueError(f"{name} has shape {shape}, expected ({dim},)")


def check_curve(xs, where: str) -> Array:
    """Return `xs` as an array, raising unless it is a polyline of shape
    `(num_points, dim)` with at least two points."""
    xs = jnp.asarray(xs)
    if jnp.ndim(xs) != 2 or jnp.shape(xs)[0] < 2:
        raise ValueError(
            f"{where}: expected a curve of shape (num_points, dim) with num_points >= 2, "
            f"got shape {jnp.shape(xs)}"
        )
    return xs


def check_same_shape(a: Array, b: Array, names: str) -> None:
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(f"{names} must have the same shape, got {jnp.shape(a)} and {jnp.shape(b)}")


def call_score(score: Callable[[Array], Array], x: Array) -> Array:
    """Evaluate a score function and check that it maps R^D to R^D."""
    s = score(x)
    if jnp.shape(s) != jnp.shape(x):
        raise ValueError(
            f"the score returned shape {jnp.shape(s)} for a point of shape "
            f"{jnp.shape(x)}; a score s(x) = grad log p(x) must return the shape of x"
        )
    return s


def check_value(value, predicate: Callable[[Array], Array], message: str) -> None:
    """Raise `ValueError(message)` if `predicate(value)` is false.

    Only concrete values are checked; traced values (under `jit`/`vmap`) pass through.
    """
    try:
        ok = bool(jnp.all(predicate(jnp.asarray(value))))
    except jax.errors.ConcretizationTypeError:
        return
    if not ok:
        raise ValueError(message)


def finite_pair(a, b, names: tuple[str, str], where: str) -> tuple[Array, Array]:
    """Validate two single points of one shape (trace time) and finiteness (run time,
    `eqx.error_if`); return them as arrays of their common floating dtype."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    check_point(a, names[0])
    check_point(b, names[1])
    check_same_shape(a, b, f"{where}: {names[0]} and {names[1]}")
    dtype = jnp.result_type(a, b)
    a, b = a.astype(dtype), b.astype(dtype)
    a = eqx.error_if(
        a,
        ~(jnp.all(jnp.isfinite(a)) & jnp.all(jnp.isfinite(b))),
        f"{where}: {names[0]} and {names[1]} must be finite (got NaN or inf)",
    )
    return a, b
