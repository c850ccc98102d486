"""Linear algebra used by the solvers, kept apart from them (as lineax is from optimistix)."""

from ._block_tridiagonal import (
    active_block_tridiagonal_solve as active_block_tridiagonal_solve,
    block_tridiagonal_solve as block_tridiagonal_solve,
    Blocks as Blocks,
    Points as Points,
    UpperBlocks as UpperBlocks,
)
from ._dense import (
    cho_solve as cho_solve,
    cholesky as cholesky,
    solve as solve,
    solve_triangular as solve_triangular,
    spd_solve as spd_solve,
)
