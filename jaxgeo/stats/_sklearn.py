r"""scikit-learn estimators around the functions of `jg.stats`, for use in a
`sklearn.pipeline.Pipeline`: the functions are the core, these only hold their
arguments and fitted results."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, ClusterMixin, TransformerMixin

from .._geodesic._distance import log_map, pairwise_distances
from .._metric._base import AbstractMetric
from .._solution import RESULTS
from ._cluster import k_means, k_medoids, nearest_neighbours
from ._pca import tangent_pca


def _check(result, what: str) -> None:
    """Raise on a failed `result`; warn where only the iteration budget ran out (the
    clustering is still usable)."""
    if result == RESULTS.max_steps_reached:
        warnings.warn(f"{what}: {RESULTS[result]}", RuntimeWarning, stacklevel=3)
    elif result != RESULTS.successful:
        raise RuntimeError(f"{what}: {RESULTS[result]}")


class _NearestCentre(ClusterMixin, BaseEstimator):
    """`predict`: the index of the nearest of the fitted `cluster_centers_` by geodesic
    distance."""

    def predict(self, X):
        _, indices = nearest_neighbours(
            self.metric, X, self.cluster_centers_, 1, num_points=self.num_points
        )
        return np.asarray(indices[:, 0])


class GeodesicKMedoids(_NearestCentre):
    """k-medoids by geodesic distance ([`jaxgeo.stats.k_medoids`][] on
    [`jaxgeo.pairwise_distances`][]). Fitted: `labels_`, `medoid_indices_`,
    `cluster_centers_` (the medoids), `inertia_` (the total distance to them);
    `predict` assigns new points to the nearest medoid."""

    def __init__(self, metric: AbstractMetric, n_clusters: int = 8, num_points: int = 129):
        self.metric = metric
        self.n_clusters = n_clusters
        self.num_points = num_points

    def fit(self, X, y=None):
        del y
        X = jnp.asarray(X)
        distances = pairwise_distances(self.metric, X, num_points=self.num_points)
        clustering = k_medoids(distances, self.n_clusters)
        _check(clustering.result, "GeodesicKMedoids.fit")
        self.n_features_in_ = X.shape[1]
        self.medoid_indices_ = np.asarray(clustering.medoids)
        self.cluster_centers_ = np.asarray(X[clustering.medoids])
        self.labels_ = np.asarray(clustering.labels)
        self.inertia_ = float(clustering.cost)
        return self


class GeodesicKMeans(_NearestCentre):
    """Riemannian k-means ([`jaxgeo.stats.k_means`][]; Fréchet means as centres).
    Fitted: `cluster_centers_`, `labels_`, `inertia_`; `predict` assigns new points to
    the nearest centre by geodesic distance."""

    def __init__(
        self,
        metric: AbstractMetric,
        n_clusters: int = 8,
        num_points: int = 129,
        random_state: int = 0,
    ):
        self.metric = metric
        self.n_clusters = n_clusters
        self.num_points = num_points
        self.random_state = random_state

    def fit(self, X, y=None):
        del y
        X = jnp.asarray(X)
        clustering = k_means(
            self.metric,
            X,
            self.n_clusters,
            key=jr.key(self.random_state),
            num_points=self.num_points,
            throw=False,
        )
        _check(clustering.result, "GeodesicKMeans.fit")
        self.n_features_in_ = X.shape[1]
        self.cluster_centers_ = np.asarray(clustering.centres)
        self.labels_ = np.asarray(clustering.labels)
        self.inertia_ = float(clustering.inertia)
        return self


class GeodesicKNeighborsClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classification by geodesic distance
    ([`jaxgeo.stats.nearest_neighbours`][]): the majority label of the
    `n_neighbors` nearest training points (ties to the nearest of the tied labels'
    points)."""

    def __init__(self, metric: AbstractMetric, n_neighbors: int = 5, num_points: int = 129):
        self.metric = metric
        self.n_neighbors = n_neighbors
        self.num_points = num_points

    def fit(self, X, y):
        self.X_ = jnp.asarray(X)
        self.n_features_in_ = self.X_.shape[1]
        self.classes_, self.y_ = np.unique(np.asarray(y), return_inverse=True)
        return self

    def predict(self, X):
        _, indices = nearest_neighbours(
            self.metric, X, self.X_, self.n_neighbors, num_points=self.num_points
        )
        neighbour_labels = self.y_[np.asarray(indices)]  # (queries, k), nearest first
        votes = np.stack(
            [np.sum(neighbour_labels == c, axis=1) for c in range(len(self.classes_))], axis=1
        )
        best = votes == votes.max(axis=1, keepdims=True)
        # Among tied labels, the one of the nearest neighbour.
        first = np.argmax(best[np.arange(len(votes))[:, None], neighbour_labels], axis=1)
        return self.classes_[neighbour_labels[np.arange(len(votes)), first]]


class GeodesicPCA(TransformerMixin, BaseEstimator):
    """Tangent PCA at the Fréchet mean ([`jaxgeo.stats.tangent_pca`][]). Fitted:
    `mean_`, `components_` (orthonormal in the metric at the mean),
    `explained_variance_`, `explained_variance_ratio_`; `transform` gives the first
    `n_components` coordinates of the log maps at the mean."""

    def __init__(
        self, metric: AbstractMetric, n_components: int | None = None, num_points: int = 129
    ):
        self.metric = metric
        self.n_components = n_components
        self.num_points = num_points

    def fit(self, X, y=None):
        del y
        X = jnp.asarray(X)
        pca = tangent_pca(self.metric, X, num_points=self.num_points, throw=False)
        _check(pca.result, "GeodesicPCA.fit")
        dim = pca.components.shape[0]
        k = dim if self.n_components is None else self.n_components
        if not 1 <= k <= dim:
            raise ValueError(f"GeodesicPCA: n_components must be in [1, {dim}], got {k}")
        self.pca_ = pca
        self.n_features_in_ = dim
        self.mean_ = np.asarray(pca.mean.mean)
        self.components_ = np.asarray(pca.components[:k])
        self.explained_variance_ = np.asarray(pca.explained_variance[:k])
        self.explained_variance_ratio_ = np.asarray(pca.explained_variance_ratio[:k])
        return self

    def fit_transform(self, X, y=None):
        """`fit`, and the scores of the training points (no second batch of log maps)."""
        self.fit(X, y)
        return np.asarray(self.pca_.scores[:, : len(self.components_)])

    def transform(self, X):
        return np.asarray(
            _tangent_coordinates(
                self.metric,
                self.pca_.mean.mean,
                self.pca_.components[: len(self.components_)],
                jnp.asarray(X),
                self.num_points,
            )
        )


@eqx.filter_jit
def _tangent_coordinates(metric, mean, components, xs, num_points):
    r"""$\langle u_k, \log_{\bar x} x_i \rangle_{G(\bar x)}$, shape `(n, k)`."""
    logs = jax.vmap(lambda x: log_map(metric, mean, x, num_points=num_points, throw=False))(xs)
    valid = logs.result == RESULTS.successful
    coordinates = logs.vs[:, 0] @ metric.matrix(mean) @ components.T
    return jnp.where(valid[:, None], coordinates, jnp.nan)
