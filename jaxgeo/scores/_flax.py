"""Flax interop: a Flax model (nnx, or linen with its params) as a score function."""

from typing import Any

import equinox as eqx

from .._custom_types import Point, Tangent


class NNXScore(eqx.Module):
    """A Flax NNX module split into its static graph and its state, the state kept as
    its array leaves (differentiable, jit/vmap-friendly) and its structure. Not as
    `nnx.Variable`s: with jax 0.12 and flax 0.12.12, a Variable rebuilt inside a
    primitive's rule (lineax's solve in optimistix's implicit derivative) fails flax's
    trace-state assertion; the Variables are rebuilt only here, when the model runs."""

    graphdef: Any = eqx.field(static=True)
    structure: Any = eqx.field(static=True)
    leaves: list

    def __call__(self, x: Point) -> Tangent:
        import jax
        from flax import nnx

        state = jax.tree_util.tree_unflatten(self.structure, self.leaves)
        return nnx.merge(self.graphdef, state)(x)


class LinenScore(eqx.Module):
    """A Flax linen module with its variables (`{"params": ...}`)."""

    module: Any = eqx.field(static=True)
    variables: Any

    def __call__(self, x: Point) -> Tangent:
        return self.module.apply(self.variables, x)


def from_flax(model, variables=None) -> NNXScore | LinenScore:
    """Wrap a Flax score model so that every jaxgeo metric accepts it.

    - Flax NNX: `from_flax(model)` with an `nnx.Module` mapping `(D,)` to `(D,)`.
    - Flax linen: `from_flax(module, variables)` with the variables from `module.init`
      (e.g. `{"params": ...}`), as trained in linen code bases such as score_sde.

    The result is an Equinox module whose parameters are pytree leaves: gradients of
    geodesic lengths w.r.t. them work as for native models.
    """
    try:
        import flax.linen as linen
        from flax import nnx
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("from_flax needs Flax: pip install 'jaxgeo[flax]'") from error
    if isinstance(model, nnx.Module):
        if variables is not None:
            raise ValueError("from_flax: an nnx.Module carries its own state; pass no variables")
        import jax

        graphdef, state = nnx.split(model)
        leaves, structure = jax.tree_util.tree_flatten(state)
        return NNXScore(graphdef, structure, leaves)
    if isinstance(model, linen.Module):
        if variables is None:
            raise ValueError(
                "from_flax: a linen module needs its variables, e.g. module.init(key, x)"
            )
        return LinenScore(model, variables)
    raise TypeError(
        f"from_flax: expected a flax.nnx.Module or flax.linen.Module, got {type(model).__name__}"
    )
