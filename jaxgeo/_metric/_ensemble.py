from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu

from .._custom_types import MetricMatrix, Point, Scalar, Tangent
from ._base import AbstractMetric


class EnsembleMetric(AbstractMetric):
    r"""The mean of an ensemble (posterior sample) of metrics,
    $G(x) = \frac{1}{M}\sum_{m=1}^M G_m(x)$.

    With one [`jaxgeo.SteinMetric`][] per posterior sample of a score model this is
    the Bayesian Stein metric,
    $G(x) = \int (s_\theta s_\theta^\top + \lambda I)^{-1} p(\theta \mid D)\,d\theta$:
    the *metrics* are averaged, not the scores.

    **Arguments:**

    - `metrics`: either one metric whose array leaves all carry a leading ensemble
      axis of size $M$ (e.g. built with `eqx.filter_vmap`, the fast path: one
      program for all members), or a sequence of metrics of identical structure,
      which is stacked.

    `inner` averages the members' (matrix-free) inner products; `solve` and `log_det`
    use the dense mean matrix.
    """

    metrics: AbstractMetric

    def __init__(self, metrics: AbstractMetric | Sequence[AbstractMetric]):
        if isinstance(metrics, Sequence):
            if len(metrics) == 0:
                raise ValueError("EnsembleMetric needs at least one metric")
            structures = {jtu.tree_structure(eqx.filter(m, eqx.is_array)) for m in metrics}
            if len(structures) != 1:
                raise ValueError(
                    "EnsembleMetric: the metrics must share one pytree structure to be "
                    "stacked; got different structures"
                )
            arrays = [eqx.filter(m, eqx.is_array) for m in metrics]
            static = eqx.filter(metrics[0], eqx.is_array, inverse=True)
            for m in metrics[1:]:
                if eqx.tree_equal(eqx.filter(m, eqx.is_array, inverse=True), static) is not True:
                    raise ValueError(
                        "EnsembleMetric: the metrics differ in a non-array field (a Python "
                        "float or a function); pass such per-member values as arrays"
                    )
            metrics = eqx.combine(jtu.tree_map(lambda *xs: jnp.stack(xs), *arrays), static)
        if not isinstance(metrics, AbstractMetric):
            raise ValueError(
                f"EnsembleMetric needs a stacked metric or a sequence of metrics, got "
                f"{type(metrics).__name__}"
            )
        sizes = {jnp.shape(leaf)[:1] for leaf in jtu.tree_leaves(eqx.filter(metrics, eqx.is_array))}
        if len(sizes) != 1 or () in sizes:
            raise ValueError(
                "EnsembleMetric: every array leaf of the stacked metric needs the same "
                f"leading ensemble axis; got leading shapes {sorted(sizes)}"
            )
        self.metrics = metrics

    @property
    def num_members(self) -> int:
        leaf = jtu.tree_leaves(eqx.filter(self.metrics, eqx.is_array))[0]
        return jnp.shape(leaf)[0]

    def map_members(self, fn):
        """`fn(member_metric)` for every member, vmapped (one program); outputs are
        stacked along a leading axis of size `num_members`."""
        # Scalars are shared between members: non-array floats may have been turned
        # into 0-d arrays by a transform (e.g. an optimiser's args), so map axis 0 of
        # the stacked leaves only.
        size = self.num_members
        in_axes = jtu.tree_map(
            lambda a: 0 if eqx.is_array(a) and a.ndim >= 1 and a.shape[0] == size else None,
            self.metrics,
        )
        return eqx.filter_vmap(fn, in_axes=(in_axes,))(self.metrics)

    def matrix(self, x: Point) -> MetricMatrix:
        return jnp.mean(self.map_members(lambda m: m.matrix(x)), axis=0)

    def inner(self, x: Point, u: Tangent, v: Tangent) -> Scalar:
        return jnp.mean(self.map_members(lambda m: m.inner(x, u, v)))

    def sq_norm(self, x: Point, v: Tangent) -> Scalar:
        return jnp.mean(self.map_members(lambda m: m.sq_norm(x, v)))

    def member(self, index: int) -> AbstractMetric:
        """The metric of one ensemble member."""
        arrays, static = eqx.partition(self.metrics, eqx.is_array)
        return eqx.combine(jtu.tree_map(lambda a: a[index], arrays), static)
