r"""Tangent PCA (principal geodesic analysis in the tangent space at the mean): PCA of
the log maps $v_i = \log_{\bar x}(x_i)$ in the metric's inner product at the mean."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
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

    A given `mean` is checked, at no extra solve: its geodesics must end at `xs`, and
    the weighted mean of its log maps must vanish (relative to their spread, to
    1e-3, measured in the metric at the mean; skipped for a mean whose `result` is not
    successful, which the returned `result` reports).

    **Returns:** a [`jaxgeo.stats.TangentPCA`][]; the principal geodesics are
    [`jaxgeo.stats.principal_geodesics`][].

    **Raises:** `ValueError` for points `xs` with NaN or inf coordinates (whatever
    `throw`), and (under `jit`, an `eqx.error_if`) if `mean` is not the Fréchet mean of
    `xs` with these `weights`.
    """
    xs = jnp.asarray(xs)
    if xs.ndim == 2 and not isinstance(xs, jax.core.Tracer):
        bad = np.flatnonzero(~np.all(np.isfinite(np.asarray(xs)), axis=1))
        if bad.size:
            raise ValueError(
                f"tangent_pca: the points xs must be finite, but {bad.size} have NaN or "
                f"inf coordinates, e.g. xs[{bad[0]}]: drop or impute them"
            )
    if mean is None:
        mean = frechet_mean(metric, xs, weights, throw=throw, **mean_kwargs)
        given = False
    else:
        given = True
        if not isinstance(mean, FrechetMean):
            raise ValueError(
                "tangent_pca: mean must be a jaxgeo.stats.FrechetMean (what "
                f"jaxgeo.stats.frechet_mean returns: the point and its log maps), got "
                f"{type(mean).__name__}"
            )
        ends = mean.geodesics.xs[:, -1]
        if xs.shape != ends.shape:
            raise ValueError(
                f"tangent_pca: mean is the Fréchet mean of points of shape {ends.shape} "
                f"(its geodesics' ends), but xs has shape {xs.shape}: pass the mean of these "
                "xs, jaxgeo.stats.frechet_mean(metric, xs, weights), or mean=None"
            )
    logs = mean.geodesics.vs[:, 0]
    n = logs.shape[0]
    weights = jnp.ones(n, logs.dtype) if weights is None else jnp.asarray(weights, logs.dtype)
    if weights.shape != (n,):
        raise ValueError(
            f"tangent_pca: weights must have shape ({n},), one per point of the mean, "
            f"got {weights.shape}"
        )
    pca, ratio = _tangent_pca(metric, mean, logs, weights / jnp.sum(weights))
    if given:
        pca = _check_mean(pca, xs, ratio)
    return pca


# A given mean's tolerances: its geodesics' ends against xs (relative to the points'
# spread about it), and its gradient |sum_i w_i log_m x_i| against their spread
# (sum_i w_i |log_m x_i|^2)^(1/2). Converged means are far below (1e-7 and less).
_MEAN_RTOL = 1e-3
_NOT_THE_MEAN = (
    "tangent_pca: mean is not the Fréchet mean of xs: {}; pass the mean of these xs "
    "with these weights, jaxgeo.stats.frechet_mean(metric, xs, weights), or mean=None"
)


def _check_mean(pca: TangentPCA, xs, ratio) -> TangentPCA:
    """`pca`, or an error if its given mean is not the mean of `xs`: its geodesics miss
    `xs` (NaN ends, failed solves, are not judged), or its weighted log maps do not
    vanish (`ratio`; a mean that failed is not judged: its `result` says so)."""
    mean = pca.mean
    ends = mean.geodesics.xs[:, -1]
    xs = xs.astype(ends.dtype)
    spread = jnp.max(jnp.abs(xs - mean.mean[None]))
    missed = jnp.any(jnp.abs(ends - xs) > _MEAN_RTOL * (spread + jnp.abs(xs)), axis=1)
    ends_off = jnp.any(missed)
    gradient_off = (ratio > _MEAN_RTOL) & (mean.result == RESULTS.successful)
    ends_why = "its geodesics end at other points than xs (is it the mean of other points?)"
    gradient_why = (
        "the weighted mean of its log maps, sum_i w_i log_m(x_i), is {} relative to their "
        "spread in the metric at m, not ~0 (is it the mean with other weights?)"
    )
    if isinstance(ends_off, jax.core.Tracer) or isinstance(gradient_off, jax.core.Tracer):
        return eqx.branched_error_if(
            pca,
            ends_off | gradient_off,
            jnp.where(ends_off, 0, 1),
            (
                _NOT_THE_MEAN.format(ends_why),
                _NOT_THE_MEAN.format(gradient_why.format(f"above {_MEAN_RTOL:g}")),
            ),
        )
    if ends_off:
        first = int(jnp.argmax(missed))
        raise ValueError(_NOT_THE_MEAN.format(f"{ends_why} (the first: xs[{first}])"))
    if gradient_off:
        raise ValueError(_NOT_THE_MEAN.format(gradient_why.format(f"{float(ratio):.3g}")))
    return pca


@eqx.filter_jit
def _tangent_pca(metric, mean, logs, weights) -> tuple[TangentPCA, Array]:
    r"""The PCA, and the gradient ratio $|\sum_i w_i v_i|_G / (\sum_i w_i |v_i|_G^2)^{1/2}$
    (0 at the mean; from the frame, at no extra cost)."""
    chol = cholesky(metric.matrix(mean.mean))
    frame = logs @ chol  # rows L^T v_i: coordinates in a G-orthonormal frame
    covariance = (weights[:, None] * frame).T @ frame
    variances, vectors = jnp.linalg.eigh(covariance)
    variances, vectors = variances[::-1], vectors[:, ::-1]  # decreasing
    components = solve_triangular(chol.T, vectors, lower=False).T
    variances = jnp.maximum(variances, 0)  # (round-off below zero)
    total = jnp.sum(variances)
    spread = jnp.sqrt(jnp.trace(covariance))
    ratio = jnp.linalg.norm(weights @ frame) / jnp.where(spread > 0, spread, 1)
    pca = TangentPCA(
        mean=mean,
        components=components,
        explained_variance=variances,
        explained_variance_ratio=variances / jnp.where(total > 0, total, 1),
        scores=frame @ vectors,
        result=mean.result,
    )
    return pca, ratio


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
