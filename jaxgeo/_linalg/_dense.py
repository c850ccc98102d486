r"""Dense solves of small systems, safe to batch on every platform.

jaxlib 0.10's CPU LAPACK kernels (`potrf`, `trsm`, `getrf`, …) split a large batch
over XLA:CPU's intra-op thread pool and block their own pool thread until the pieces
finish. When a program holds several *independent* such calls (a vmapped solve per
point, per segment or per pair: the batched solves of distance matrices and means), the
thunk executor runs them at once; once every pool thread is such a kernel, nothing runs
the pieces and the process freezes for good (jaxlib ≥ 0.11 compiles this path out).
So on the CPU these functions factorise and substitute with XLA's own vector
operations (unrolled up to `SMALL_DIM`, loops over columns above) and never emit a
LAPACK call; elsewhere they call the vendor library. Each takes one matrix; batch with
`vmap`. Solves are `lax.custom_linear_solve`s, so derivatives reuse the factorisation.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


SMALL_DIM = 4  # up to this size, factorisations are unrolled into fused elementwise ops

Matrix = Float[Array, "dim dim"]


def _small_cholesky(a: Matrix) -> Matrix:
    dim = a.shape[-1]
    low = [[jnp.zeros((), a.dtype)] * dim for _ in range(dim)]
    for j in range(dim):
        low[j][j] = jnp.sqrt(a[j, j] - sum((low[j][k] ** 2 for k in range(j)), start=0.0))
        for i in range(j + 1, dim):
            dot = sum((low[i][k] * low[j][k] for k in range(j)), start=0.0)
            low[i][j] = (a[i, j] - dot) / low[j][j]
    return jnp.stack([jnp.stack(row) for row in low])


def _column_cholesky(a: Matrix) -> Matrix:
    dim = a.shape[-1]
    rows = jnp.arange(dim)

    def column(j, low):
        v = a[:, j] - jnp.sum(low * low[j][None, :], axis=1)
        pivot = jnp.sqrt(v[j])
        return low.at[:, j].set(jnp.where(rows >= j, v / pivot, 0))

    return jax.lax.fori_loop(0, dim, column, jnp.zeros_like(a))


def xla_cholesky(a: Matrix) -> Matrix:
    """`cholesky` by XLA operations on every platform (no vendor library call). As
    `jnp.linalg.cholesky`, it factorises $(A + A^\top)/2$, so derivatives are symmetric."""
    a = 0.5 * (a + a.T)
    return _small_cholesky(a) if a.shape[-1] <= SMALL_DIM else _column_cholesky(a)


def cholesky(a: Matrix) -> Matrix:
    """Lower Cholesky factor $L$, $A = L L^\top$; NaN where `a` is not positive definite."""
    return jax.lax.platform_dependent(jnp.asarray(a), cpu=xla_cholesky, default=jnp.linalg.cholesky)


def _as_columns(b: Array) -> Float[Array, "dim m"]:
    return b[:, None] if b.ndim == 1 else b


def _substitute(t: Matrix, b: Array, *, lower: bool) -> Array:
    """Solve $T x = b$ for triangular `t` by a loop over rows (XLA vector operations)."""
    dim = t.shape[-1]
    cols = _as_columns(b)
    if dim <= SMALL_DIM:
        order = range(dim) if lower else reversed(range(dim))
        x = [None] * dim
        for i in order:
            done = range(i) if lower else range(i + 1, dim)
            x[i] = (cols[i] - sum((t[i, k] * x[k] for k in done), start=0.0)) / t[i, i]
        out = jnp.stack(x)
    else:

        def row(k, x):
            i = k if lower else dim - 1 - k
            return x.at[i].set((cols[i] - jnp.sum(t[i][:, None] * x, axis=0)) / t[i, i])

        out = jax.lax.fori_loop(0, dim, row, jnp.zeros_like(cols))
    return out[:, 0] if b.ndim == 1 else out


def _lapack_triangular(t: Matrix, b: Array, *, lower: bool) -> Array:
    return jax.scipy.linalg.solve_triangular(t, b, lower=lower)


def solve_triangular(t: Matrix, b: Array, *, lower: bool) -> Array:
    r"""Solve $T x = b$ for a lower (`lower=True`) or upper triangular $T$; `b` of shape
    `(D,)` or `(D, m)`."""
    return jax.lax.platform_dependent(
        jnp.asarray(t),
        jnp.asarray(b),
        cpu=lambda t, b: _substitute(t, b, lower=lower),
        default=lambda t, b: _lapack_triangular(t, b, lower=lower),
    )


def xla_cho_solve(low: Matrix, b: Array) -> Array:
    """`cho_solve` by XLA operations on every platform."""
    return _substitute(low.T, _substitute(low, b, lower=True), lower=False)


def cho_solve(low: Matrix, b: Array) -> Array:
    r"""Solve $L L^\top x = b$ given the Cholesky factor $L$."""
    return solve_triangular(low.T, solve_triangular(low, b, lower=True), lower=False)


def spd_solve(a: Matrix, b: Array) -> Array:
    r"""Solve $A x = b$ for symmetric positive-definite $A$ by Cholesky; NaN where $A$ is
    not positive definite. Differentiable in `a` and `b`
    ($\dot x = A^{-1}(\dot b - \dot A x)$, one more pair of substitutions)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    low = cholesky(jax.lax.stop_gradient(a))
    return jax.lax.custom_linear_solve(
        lambda x: _matvec(a, x), b, lambda _, r: cho_solve(low, r), symmetric=True
    )


def _matvec(a: Matrix, x: Array) -> Array:
    return jnp.dot(a, x, precision=jax.lax.Precision.HIGHEST)


def _xla_lu(a: Matrix) -> tuple[Matrix, Int[Array, " dim"]]:
    """LU factorisation with partial pivoting, $P A = L U$ (unit $L$ below the diagonal
    of the packed result, $U$ on and above), by a loop over columns; `perm` as rows."""
    dim = a.shape[-1]
    rows = jnp.arange(dim)

    def column(k, carry):
        lu, perm = carry
        p = jnp.argmax(jnp.where(rows >= k, jnp.abs(lu[:, k]), -1.0))
        swap = jnp.where(rows == k, p, jnp.where(rows == p, k, rows))
        lu, perm = lu[swap], perm[swap]
        below = rows > k
        factors = jnp.where(below, lu[:, k] / lu[k, k], 0)
        lu = lu - factors[:, None] * jnp.where(rows > k, lu[k], 0)[None, :]
        return lu.at[:, k].set(jnp.where(below, factors, lu[:, k])), perm

    return jax.lax.fori_loop(0, dim, column, (a, rows))


def _xla_solve(a: Matrix, b: Array) -> Array:
    lu, perm = _xla_lu(jax.lax.stop_gradient(a))
    unit = jnp.tril(lu, -1) + jnp.eye(lu.shape[-1], dtype=lu.dtype)  # L
    upper = jnp.triu(lu)  # U

    def solve_(_, r):  # P A = L U
        return _substitute(upper, _substitute(unit, r[perm], lower=True), lower=False)

    def transpose_solve(_, r):  # A^T x = r: U^T L^T P x = r
        z = _substitute(unit.T, _substitute(upper.T, r, lower=True), lower=False)
        return jnp.zeros_like(z).at[perm].set(z)

    return jax.lax.custom_linear_solve(
        lambda x: _matvec(a, x), b, solve_, transpose_solve=transpose_solve
    )


def solve(a: Matrix, b: Array) -> Array:
    r"""Solve $A x = b$ for a general square $A$ (LU with partial pivoting); `b` of
    shape `(D,)` or `(D, m)`. Differentiable in `a` and `b`."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    return jax.lax.platform_dependent(a, b, cpu=_xla_solve, default=jnp.linalg.solve)
