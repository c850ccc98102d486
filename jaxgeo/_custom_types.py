"""Shape aliases shared by the whole package (jaxtyping)."""

from jaxtyping import Array, ArrayLike, Float


Point = Float[Array, " dim"]
Tangent = Float[Array, " dim"]
MetricMatrix = Float[Array, "dim dim"]
Christoffel = Float[Array, "dim dim dim"]
Curve = Float[Array, "points dim"]
Scalar = Float[Array, ""]
ScalarLike = float | Float[ArrayLike, ""]
