r"""Linear algebra of discrete curves: solves with symmetric positive-definite
block-tridiagonal matrices (the Hessians of discrete curve energies)."""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._dense import cho_solve, cholesky, SMALL_DIM, xla_cho_solve, xla_cholesky


Blocks = Float[Array, "n dim dim"]
UpperBlocks = Float[Array, "n-1 dim dim"]
Points = Float[Array, "n dim"]


def _matmul(a: Array, b: Array) -> Array:
    """Batched `a @ b` of small blocks as a broadcast sum, which XLA fuses with its
    neighbours (a dot of 2 x 2 blocks is a kernel of its own: slower to compile and run)."""
    if b.ndim == a.ndim - 1:  # matrix-vector
        return jnp.sum(a * b[..., None, :], axis=-1)
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def _dot(a: Array, b: Array) -> Array:
    """Batched `a @ b`, matrix-matrix or matrix-vector, by `dot_general`."""
    if b.ndim == a.ndim - 1:
        return jnp.einsum("...ij,...j->...i", a, b)
    return jnp.matmul(a, b)


class _BlockOps(NamedTuple):
    cholesky: Callable[[Array], Array]
    cho_solve: Callable[[Array, Array], Array]
    matmul: Callable[[Array, Array], Array]  # batched matrix-matrix and matrix-vector


# Blocks up to SMALL_DIM: unrolled XLA operations on every platform (fused with their
# neighbours); larger blocks: the dense module's factorisations (no LAPACK on the CPU).
_XLA_OPS = _BlockOps(xla_cholesky, xla_cho_solve, _matmul)
_DENSE_OPS = _BlockOps(cholesky, cho_solve, _dot)


def block_tridiagonal_solve(
    diag: Blocks, upper: UpperBlocks, rhs: Points, *, sequential_max: int | None = None
) -> Points:
    r"""Solve $H x = r$ for a symmetric positive-definite block-tridiagonal $H$
    (diagonal blocks `diag`, super-diagonal blocks `upper`, sub-diagonal `upper`ᵀ) in
    $O(n D^3)$: block cyclic reduction halves the system level by level with batched
    operations until `SEQUENTIAL_MAX` blocks are left, which block Cholesky elimination
    solves in two scans. Both are block Gaussian elimination (in different orders), so
    the result is NaN exactly when $H$ is not positive definite. On accelerators,
    reduction shortens the sequential loops (a kernel launch per iteration); on CPU an
    iteration costs about a microsecond, as much as a reduction level per block, and
    each level adds about 0.3 s of compile time, so the CPU solves by the scans alone.
    `sequential_max` overrides that choice (the number of blocks left to the scans)."""
    ops = _XLA_OPS if diag.shape[-1] <= SMALL_DIM else _DENSE_OPS
    zero = jnp.zeros_like(diag[:1])
    # Row i: lower[i] x_{i-1} + diag[i] x_i + upper[i] x_{i+1} = rhs[i].
    lower = jnp.concatenate([zero, jnp.swapaxes(upper, 1, 2)])
    upper = jnp.concatenate([upper, zero])
    if sequential_max is None:
        sequential_max = diag.shape[0] if jax.default_backend() == "cpu" else SEQUENTIAL_MAX
    return _cyclic_reduction(ops, sequential_max, lower, diag, upper, rhs)


SEQUENTIAL_MAX = 32  # on accelerators, from here on down two scans


def _sequential_solve(ops: _BlockOps, diag, upper, rhs):
    """Block Cholesky elimination: a forward and a backward scan over the blocks."""

    def forward(carry, inputs):
        low_prev, y_prev = carry
        a, b_prev, r = inputs
        # S_j = A_j - B_{j-1}^T S_{j-1}^{-1} B_{j-1},  y_j = r_j - B_{j-1}^T S_{j-1}^{-1} y_{j-1}
        b_t = b_prev.T
        low = ops.cholesky(a - ops.matmul(b_t, ops.cho_solve(low_prev, b_prev)))
        y = r - ops.matmul(b_t, ops.cho_solve(low_prev, y_prev))
        return (low, y), (low, y)

    low0 = ops.cholesky(diag[0])
    _, (lows, ys) = jax.lax.scan(forward, (low0, rhs[0]), (diag[1:], upper, rhs[1:]))
    lows = jnp.concatenate([low0[None], lows])
    ys = jnp.concatenate([rhs[:1], ys])

    def backward(x_next, inputs):
        low, y, b = inputs
        x = ops.cho_solve(low, y - ops.matmul(b, x_next))
        return x, x

    x_last = ops.cho_solve(lows[-1], ys[-1])
    _, xs = jax.lax.scan(backward, x_last, (lows[:-1], ys[:-1], upper), reverse=True)
    return jnp.concatenate([xs, x_last[None]])


def _cyclic_reduction(ops: _BlockOps, sequential_max: int, lower, diag, upper, rhs):
    """One level: eliminate the even rows (a batched block solve), recurse on the odd
    rows' Schur complement, then recover the even unknowns."""
    n = diag.shape[0]
    if n <= sequential_max:
        return _sequential_solve(ops, diag, upper[:-1], rhs)
    if n % 2 == 0:  # append a decoupled row x = 0, so the first and last rows are even
        eye = jnp.eye(diag.shape[-1], dtype=diag.dtype)[None]
        zero = jnp.zeros_like(diag[:1])
        x = _cyclic_reduction(
            ops,
            sequential_max,
            jnp.concatenate([lower, zero]),
            jnp.concatenate([diag, eye]),
            jnp.concatenate([upper, zero]),
            jnp.concatenate([rhs, jnp.zeros_like(rhs[:1])]),
        )
        return x[:-1]
    # Even rows 0, 2, ..., n - 1: x_e = A_e^{-1} (r_e - L_e x_{e-1} - U_e x_{e+1}).
    low = jax.vmap(ops.cholesky)(diag[::2])
    solve = jax.vmap(ops.cho_solve)
    inv_lower, inv_upper, inv_rhs = (
        solve(low, lower[::2]),
        solve(low, upper[::2]),
        solve(low, rhs[::2]),
    )
    mm = ops.matmul
    # Odd row o = 2k + 1 couples to the even rows k and k + 1.
    lo, do, uo, ro = lower[1::2], diag[1::2], upper[1::2], rhs[1::2]
    x_odd = _cyclic_reduction(
        ops,
        sequential_max,
        -mm(lo, inv_lower[:-1]),
        do - mm(lo, inv_upper[:-1]) - mm(uo, inv_lower[1:]),
        -mm(uo, inv_upper[1:]),
        ro - mm(lo, inv_rhs[:-1]) - mm(uo, inv_rhs[1:]),
    )
    padded = jnp.pad(x_odd, ((1, 1), (0, 0)))
    x_even = inv_rhs - mm(inv_lower, padded[:-1]) - mm(inv_upper, padded[1:])
    interleaved = jnp.stack([x_even[:-1], x_odd], axis=1).reshape(n - 1, -1)
    return jnp.concatenate([interleaved, x_even[-1:]])


# Blocks (of at most SMALL_DIM) eliminated per iteration of `active_block_tridiagonal_solve`'s
# loops (unrolled within it): on the CPU a loop iteration costs about a microsecond, more
# than eliminating a small block (a 512-segment level, 2-D: 2.1 ms a solve without
# unrolling, 0.5 ms with).
UNROLL = 8


def active_block_tridiagonal_solve(
    diag: Blocks,
    upper: UpperBlocks,
    rhs: Float[Array, "n dim *columns"],
    num_active: Int[Array, ""],
) -> Float[Array, "n dim *columns"]:
    r"""As `block_tridiagonal_solve`, on the leading `num_active` blocks only (a
    traced count, at least 1): the rows beyond it are not solved (they count as
    decoupled identity rows) and their unknowns are zero; `rhs` may hold several
    columns, `(n, D, m)`. The work is proportional to `num_active`, not to the buffers'
    size, so one compiled program serves every size up to it (the levels of a refined
    polyline). Block Cholesky elimination in two loops, `UNROLL` blocks an iteration
    for small blocks; blocks are factorised without LAPACK (unrolled up to `SMALL_DIM`,
    column loops above)."""
    ops = _XLA_OPS
    n, dim = diag.shape[0], diag.shape[-1]
    unroll = UNROLL if dim <= SMALL_DIM else 1
    eye = jnp.eye(dim, dtype=diag.dtype)
    # Padded by a chunk of decoupled identity rows, so that every chunk is in bounds.
    diag = jnp.concatenate([diag, jnp.broadcast_to(eye, (unroll,) + diag.shape[1:])])
    upper = jnp.concatenate([upper, jnp.zeros((unroll + 1,) + upper.shape[1:], upper.dtype)])
    rhs = jnp.concatenate([rhs, jnp.zeros((unroll,) + rhs.shape[1:], rhs.dtype)])
    num_chunks = (num_active - 1 + unroll - 1) // unroll  # rows 1 .. num_active - 1
    offsets = jnp.arange(unroll)

    def rows(array, start, active=None, fill=0):
        """`unroll` rows from `start`, `fill` where not `active`."""
        block = jax.lax.dynamic_slice_in_dim(array, start, unroll)
        if active is None:
            return block
        return jnp.where(active.reshape(active.shape + (1,) * (array.ndim - 1)), block, fill)

    def forward(c, carry):
        # S_j = A_j - B_{j-1}^T S_{j-1}^{-1} B_{j-1},  y_j = r_j - B_{j-1}^T S_{j-1}^{-1} y_{j-1}
        lows, ys = carry
        start = 1 + c * unroll
        active = start + offsets < num_active
        a, b, r = (
            rows(diag, start, active, eye),
            rows(upper, start - 1, active),
            rows(rhs, start, active),
        )
        low, y = lows[start - 1], ys[start - 1]
        new_lows, new_ys = [], []
        for u in range(unroll):
            b_t = b[u].T
            low, y = (
                ops.cholesky(a[u] - ops.matmul(b_t, ops.cho_solve(low, b[u]))),
                r[u] - ops.matmul(b_t, ops.cho_solve(low, y)),
            )
            new_lows.append(low)
            new_ys.append(y)
        return (
            jax.lax.dynamic_update_slice_in_dim(lows, jnp.stack(new_lows), start, 0),
            jax.lax.dynamic_update_slice_in_dim(ys, jnp.stack(new_ys), start, 0),
        )

    lows = jnp.zeros_like(diag).at[0].set(ops.cholesky(diag[0]))
    ys = jnp.zeros_like(rhs).at[0].set(rhs[0])
    lows, ys = jax.lax.fori_loop(0, num_chunks, forward, (lows, ys))

    top = num_chunks * unroll  # the last row solved (rows num_active .. top are zero)
    xs = jnp.zeros_like(rhs).at[top].set(ops.cho_solve(lows[top], ys[top]))

    def backward(c, xs):
        # x_j = S_j^{-1} (y_j - B_j x_{j+1}), rows end - 1 down to end - unroll
        end = top - c * unroll
        start = end - unroll
        active = start + offsets + 1 < num_active  # (the coupling of rows j, j + 1)
        b, low, y = rows(upper, start, active), rows(lows, start), rows(ys, start)
        x = xs[end]
        out = [None] * unroll
        for u in reversed(range(unroll)):
            x = ops.cho_solve(low[u], y[u] - ops.matmul(b[u], x))
            out[u] = x
        return jax.lax.dynamic_update_slice_in_dim(xs, jnp.stack(out), start, 0)

    return jax.lax.fori_loop(0, num_chunks, backward, xs)[:n]
