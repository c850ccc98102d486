"""Linear algebra used by the solvers, kept apart from them (as lineax is from optimistix)."""

from ._block_tridiagonal import (
    block_tridiagonal_solve as block_tridiagonal_solve,
    Blocks as Blocks,
    Points as Points,
    UpperBlocks as UpperBlocks,
)
