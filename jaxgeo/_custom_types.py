"""Shape aliases shared by the whole package (jaxtyping)."""

from jaxtyping import Array, ArrayLike, Float, Real


Point = Float[Array, " dim"]
Tangent = Float[Array, " dim"]
MetricMatrix = Float[Array, "dim dim"]
Christoffel = Float[Array, "dim dim dim"]
Curve = Float[Array, "points dim"]
Scalar = Float[Array, ""]
ScalarLike = int | float | Real[ArrayLike, ""]
# Arguments of public entry points: annotated loosely on purpose, so that our own
# validation (with messages naming the expected shapes) runs before any type checker.
Input = ArrayLike
