"""Trace-time validation helpers: clear `ValueError`s naming the offending shapes."""

import numbers
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array


def check_point(x: Array, name: str = "x", dim: int | None = None) -> None:
    """Raise unless `x` is a single point: a 1-D floating array (of length `dim`)."""
    shape = jnp.shape(x)
    if len(shape) != 1:
        raise ValueError(
            f"{name} must be a single point of shape (dim,), got shape {shape}. "
            "jaxgeo functions act on one point: batch with jax.vmap."
        )
    if shape[0] == 0:
        raise ValueError(f"{name} must have at least one coordinate, got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(f"{name} must have a floating dtype, got {jnp.result_type(x)}")
    if dim is not None and shape[0] != dim:
        raise ValueError(f"{name} has shape {shape}; it must have shape ({dim},)")


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


def point_pair(a, b, names: tuple[str, str], where: str) -> tuple[Array, Array]:
    """Validate two single points of one shape (trace time); return them as arrays of
    their common floating dtype."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    check_point(a, names[0])
    check_point(b, names[1])
    check_same_shape(a, b, f"{where}: {names[0]} and {names[1]}")
    dtype = jnp.result_type(a, b)
    if jnp.finfo(dtype).bits < 32:
        raise ValueError(
            f"{where}: {names[0]} and {names[1]} have dtype {dtype}; the solvers need "
            "float32 or float64 (half precision cannot reach their tolerances): cast "
            "them with .astype(jnp.float32)"
        )
    return a.astype(dtype), b.astype(dtype)


def finite_pair(a, b, names: tuple[str, str], where: str) -> tuple[Array, Array]:
    """`point_pair`, and finiteness checked at run time (`eqx.error_if`). (Entry points
    that return a solution report non-finite input in its `result` instead: a host
    callback would keep their compiled programs out of JAX's persistent cache.)"""
    a, b = point_pair(a, b, names, where)
    a = eqx.error_if(
        a,
        ~(jnp.all(jnp.isfinite(a)) & jnp.all(jnp.isfinite(b))),
        f"{where}: {names[0]} and {names[1]} must be finite (got NaN or inf)",
    )
    return a, b


def as_int(value):
    """`value` as a Python `int` if it is an integer (NumPy's too: `np.int64(5)`), else
    unchanged (for `check_integer` to refuse): a converter for static integer fields."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def check_integer(value, name: str, minimum: int = 1) -> None:
    """Raise unless `value` is an integer `>= minimum` (a count, a size; NumPy integers
    count, booleans do not)."""
    if not isinstance(as_int(value), int) or isinstance(value, bool) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_examples(data, where: str) -> None:
    """Raise unless `data` is a non-empty pytree of arrays of examples: one common
    leading (example) axis, and no NaN or infinite values."""
    leaves = jtu.tree_leaves(data)
    if not leaves:
        raise ValueError(f"{where}: data is empty")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"{where}: every data array needs the same leading (example) axis, got shapes "
            f"{[np.shape(leaf) for leaf in leaves]}"
        )
    for leaf in leaves:
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            bad = int(np.sum(~np.isfinite(arr)))
            raise ValueError(
                f"{where}: the data contain {bad} NaN or infinite values (array of shape "
                f"{arr.shape}); clean them before training"
            )


def check_same_length(a: Array, b: Array, names: tuple[str, str], where: str) -> None:
    """Raise unless `a` and `b` have the same number of examples (leading axis)."""
    if jnp.shape(a)[0] != jnp.shape(b)[0]:
        raise ValueError(
            f"{where}: {names[0]} {jnp.shape(a)} and {names[1]} {jnp.shape(b)} differ in length"
        )


def check_positive(value, name: str) -> None:
    """Raise `ValueError` if a concrete `value` is not > 0 (NaN included); traced values
    (under `jit`/`vmap`) pass through, to be checked at run time where needed."""
    check_value(value, lambda v: v > 0, f"{name} must be > 0, got {value!r}")


def check_levels(where: str, min_segments, max_segments, smallest: int) -> None:
    """Raise unless the refinement levels `min_segments`, twice as many, ... up to
    `max_segments` are powers of two from `smallest` on, at least three of them (the
    first error estimate needs three levels)."""
    levels = max_segments // max(min_segments, 1) if isinstance(max_segments, int) else 0
    if (
        not isinstance(min_segments, int)
        or min_segments < smallest
        or min_segments & (min_segments - 1)
        or levels < 4
        or max_segments != levels * min_segments
        or levels & (levels - 1)
    ):
        raise ValueError(
            f"{where}: min_segments must be a power of two >= {smallest} and max_segments "
            "min_segments times a power of two >= 4 (three levels give the first error "
            f"estimate), got min_segments={min_segments!r}, max_segments={max_segments!r}"
        )


def check_labels(x, num_classes: int, shape: tuple[int, ...], where: str):
    """`x` as class labels in `[0, num_classes)` of `shape`: the dtype (an integer one;
    a float label such as 1.7 is no class) and the shape at trace time, the values as a
    `ValueError` naming the first bad one, or under `jit`/`vmap` by `eqx.error_if`
    (a label outside the range one-hot encodes to zeros, and its log-probability is
    NaN)."""
    x = jnp.asarray(x)
    if jnp.shape(x) != shape:
        raise ValueError(
            f"{where}: expected {shape[0]} class labels, shape {shape}, got shape "
            f"{jnp.shape(x)}; one example at a time (batch with jax.vmap)"
        )
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(
            f"{where}: class labels must have an integer dtype, got {x.dtype}: cast them "
            "with x.astype(int) if they are whole numbers (a label such as 1.7 is no class)"
        )
    outside = (x < 0) | (x >= num_classes)
    message = f"{where}: class labels must be in [0, {num_classes}) (num_classes={num_classes})"
    if isinstance(x, jax.core.Tracer):
        return eqx.error_if(x, jnp.any(outside), message + ", got one outside")
    bad = np.flatnonzero(np.asarray(outside))
    if bad.size:
        raise ValueError(
            f"{message}, got {bad.size} outside, e.g. x[{bad[0]}] = {int(x[bad[0]])}; "
            "relabel them, or raise num_classes"
        )
    return x
