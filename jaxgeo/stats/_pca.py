r"""Tangent PCA (principal geodesic analysis in the tangent space at the mean): PCA of
the log maps $v_i = \log_{\bar x}(x_i)$ in the metric's inner product at the mean."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._custom_types import Input, Point
from .._geodesic._ivp import exp_map
from .._linalg import cholesky, solve_triangular
from .._metric._base import AbstractMetric
from .._solution import RESULTS
from ._frechet import frechet_mean, FrechetMean


class TangentPCA(eqx.Module):
    r"""Principal components of points in the tangent space at their Fréchet mean, as
    [`jaxgeo.stats.tangent_pca`][] returns them.

    **Attributes:**

    - `mean`: the [`jaxgeo.stats.FrechetMean`][] the analysis is centred at.
    - `components`: the principal directions $u_k \in T_{\bar x}M$, shape `(D, D)`
      (row $k$ is $u_k$), orthonormal in the metric at the mean,
      $\langle u_j, u_k\rangle_{G(\bar x)} = \delta_{jk}$, by decreasing variance.
    - `explained_variance`: $\lambda_k = \sum_i w_i \langle u_k, v_i\rangle_{G(\bar x)}^2$,
      shape `(D,)`; they sum to the Fréchet variance.
    - `explained_variance_ratio`: $\lambda_k / \sum_j \lambda_j$.
    - `scores`: the coordinates $\langle u_k, v_i\rangle_{G(\bar x)}$ of every point,
      shape `(n, D)`.
    - `result`: the mean's [`jaxgeo.RESULTS`][].
    """

    mean: FrechetMean
    components: Float[Array, "components dim"]
    explained_variance: Float[Array, " components"]
    explained_variance_ratio: Float[Array, " components"]
    scores: Float[Array, "points components"]
    result: RESULTS


def tangent_pca(
    metric: AbstractMetric,
    xs: Input,
    weights: Input | None = None,
    *,
    mean: FrechetMean | None = None,
    throw: bool = True,
    **mean_kwargs,
) -> TangentPCA:
    r"""Tangent PCA of the points `xs` (shape `(n, D)`, optional `weights`) under
    `metric`: the log maps $v_i = \log_{\bar x}(x_i)$ at the weighted Fréchet mean
    $\bar x$ (`mean`, or computed by [`jaxgeo.stats.frechet_mean`][] with
    `mean_kwargs`; a given `mean` must be of `xs` with these `weights`), and the
    eigendecomposition of their weighted covariance
    $C = \sum_i w_i v_i v_i^\top$ in the metric's inner product at the mean: with
    $G(\bar x) = L L^\top$, the eigenvectors $U$ of $L^\top C L$ give the directions
    $u_k = L^{-\top} U_k$ (orthonormal under $G(\bar x)$) and their variances. The
    Euclidean PCA of the tangent vectors would weigh directions by the coordinates,
    not by the geometry.

    **Returns:** a [`jaxgeo.stats.TangentPCA`][]; the principal geodesics are
    [`jaxgeo.stats.principal_geodesics`][].
    """
    if mean is None:
        mean = frechet_mean(metric, xs, weights, throw=throw, **mean_kwargs)
    logs = mean.geodesics.vs[:, 0]
    n = logs.shape[0]
    weights = jnp.ones(n, logs.dtype) if weights is None else jnp.asarray(weights, logs.dtype)
    if weights.shape != (n,):
        raise ValueError(
            f"tangent_pca: weights must have shape ({n},), one per point of the mean, "
            f"got {weights.shape}"
        )
    return _tangent_pca(metric, mean, logs, weights / jnp.sum(weights))


@eqx.filter_jit
def _tangent_pca(metric, mean, logs, weights) -> TangentPCA:
    chol = cholesky(metric.matrix(mean.mean))
    frame = logs @ chol  # rows L^T v_i: coordinates in a G-orthonormal frame
    covariance = (weights[:, None] * frame).T @ frame
    variances, vectors = jnp.linalg.eigh(covariance)
    variances, vectors = variances[::-1], vectors[:, ::-1]  # decreasing
    components = solve_triangular(chol.T, vectors, lower=False).T
    variances = jnp.maximum(variances, 0)  # (round-off below zero)
    total = jnp.sum(variances)
    return TangentPCA(
        mean=mean,
        components=components,
        explained_variance=variances,
        explained_variance_ratio=variances / jnp.where(total > 0, total, 1),
        scores=frame @ vectors,
        result=mean.result,
    )


def principal_geodesics(
    metric: AbstractMetric,
    pca: TangentPCA,
    ts: Input,
    *,
    num_components: int = 1,
    **exp_kwargs,
) -> Float[Array, "components times dim"]:
    r"""The first `num_components` principal geodesics of `pca`:
    $\exp_{\bar x}(t \sqrt{\lambda_k}\, u_k)$ at the times `ts`, in standard deviations
    (`ts = jnp.linspace(-2, 2, 9)` spans $\pm 2\sigma$), shape
    `(num_components, len(ts), D)`. Keyword arguments go to [`jaxgeo.exp_map`][]; a
    failed integration gives NaN."""
    ts = jnp.asarray(ts, pca.components.dtype)
    if ts.ndim != 1:
        raise ValueError(f"principal_geodesics: ts must be 1-D, got shape {ts.shape}")
    if not 1 <= num_components <= pca.components.shape[0]:
        raise ValueError(
            f"principal_geodesics: num_components must be in [1, {pca.components.shape[0]}], "
            f"got {num_components}"
        )
    scales = jnp.sqrt(pca.explained_variance[:num_components])
    directions = scales[:, None] * pca.components[:num_components]
    return _principal_geodesics(metric, pca.mean.mean, directions, ts, exp_kwargs)


@eqx.filter_jit
def _principal_geodesics(metric, mean: Point, directions, ts, exp_kwargs):
    def point(direction, t):
        return exp_map(metric, mean, t * direction, throw=False, **exp_kwargs)

    return jax.vmap(lambda u: jax.vmap(lambda t: point(u, t))(ts))(directions)
