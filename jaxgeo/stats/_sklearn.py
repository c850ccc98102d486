r"""scikit-learn estimators around the functions of `jg.stats`, for use in a
`sklearn.pipeline.Pipeline`: the functions are the core, these only hold their
arguments and fitted results."""

import numbers
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._geodesic._distance import log_map, pairwise_distances
from .._metric._base import AbstractMetric
from .._solution import result_name, RESULTS
from ._cluster import k_means, k_medoids, nearest_neighbours
from ._pca import tangent_pca


def _check(result, what: str) -> None:
    """Raise on a failed `result`; warn where only the iteration budget ran out (the
    clustering is still usable)."""
    if result == RESULTS.max_steps_reached:
        warnings.warn(f"{what}: {RESULTS[result]}", RuntimeWarning, stacklevel=3)
    elif result != RESULTS.successful:
        raise RuntimeError(f"{what}: {RESULTS[result]}")


# scikit-learn's input checks (`check_array`): 2-D, non-empty, finite, of a floating
# dtype (integers are converted); their errors name the estimator and the problem.
_FLOATS = (np.float64, np.float32)


def _points(estimator, X, *, reset: bool) -> jnp.ndarray:
    """`X` checked as scikit-learn does (`reset=False`: against the fitted number of
    features), as a JAX array."""
    return jnp.asarray(validate_data(estimator, X, reset=reset, dtype=_FLOATS))


def _check_count(value, name: str, where: str, maximum: int, what: str) -> int:
    """`value` as an `int` in `[1, maximum]`, or a `ValueError` naming the parameter."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
    if not 1 <= value <= maximum:
        raise ValueError(
            f"{where}: {name}={value} must be in [1, {maximum}] ({what}); choose a {name} "
            f"in that range"
        )
    return int(value)


class _NearestCentre(ClusterMixin, BaseEstimator):
    """`predict`: the index of the nearest of the fitted `cluster_centers_` by geodesic
    distance."""

    def predict(self, X):
        check_is_fitted(self)
        X = _points(self, X, reset=False)
        _, indices = nearest_neighbours(
            self.metric, X, self.cluster_centers_, 1, num_points=self.num_points
        )
        return np.asarray(indices[:, 0])


class GeodesicKMedoids(_NearestCentre):
    """k-medoids by geodesic distance ([`jaxgeo.stats.k_medoids`][] on
    [`jaxgeo.pairwise_distances`][]). Fitted: `labels_`, `medoid_indices_`,
    `cluster_centers_` (the medoids), `inertia_` (the total distance to them),
    `distances_` (the geodesic distance matrix of the training points; NaN where a
    solve failed), `pair_results_` (every pair's result, as `jaxgeo.result_name`s) and
    `n_failed_pairs_` (the number of failed pairs: they count as infinitely far apart,
    with a `RuntimeWarning` tallying the reasons); `predict` assigns new points to the
    nearest medoid."""

    def __init__(self, metric: AbstractMetric, n_clusters: int = 8, num_points: int = 129):
        self.metric = metric
        self.n_clusters = n_clusters
        self.num_points = num_points

    def fit(self, X, y=None):
        del y
        X = _points(self, X, reset=True)
        n_clusters = _check_count(
            self.n_clusters, "n_clusters", "GeodesicKMedoids", X.shape[0], "the number of points"
        )
        distances, results = pairwise_distances(
            self.metric, X, num_points=self.num_points, return_results=True
        )
        failed = np.argwhere(np.triu(np.isnan(np.asarray(distances)), 1))
        self.distances_ = np.asarray(distances)
        self.pair_results_ = result_name(results)
        self.n_failed_pairs_ = len(failed)
        if len(failed):
            n = X.shape[0]
            i, j = failed[0]
            reasons, counts = np.unique(
                self.pair_results_[failed[:, 0], failed[:, 1]], return_counts=True
            )
            tally = ", ".join(f"{c} {r}" for r, c in zip(reasons, counts))
            warnings.warn(
                f"GeodesicKMedoids.fit: {len(failed)} of {n * (n - 1) // 2} geodesic distance "
                f"solves failed ({tally}; NaN in distances_, the reasons in pair_results_; "
                f"e.g. points {i} and {j}) and count as infinitely far apart in the "
                f"clustering. Why, and the knob that fixes it: jaxgeo.RESULTS[result] for "
                f"the result of jaxgeo.log_map(metric, X[{i}], X[{j}], throw=False).",
                RuntimeWarning,
                stacklevel=2,
            )
        clustering = k_medoids(distances, n_clusters)
        _check(clustering.result, "GeodesicKMedoids.fit")
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
        X = _points(self, X, reset=True)
        n_clusters = _check_count(
            self.n_clusters, "n_clusters", "GeodesicKMeans", X.shape[0], "the number of points"
        )
        clustering = k_means(
            self.metric,
            X,
            n_clusters,
            key=jr.key(self.random_state),
            num_points=self.num_points,
            throw=False,
        )
        _check(clustering.result, "GeodesicKMeans.fit")
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
        X, y = validate_data(self, X, y, dtype=_FLOATS)
        _check_count(
            self.n_neighbors,
            "n_neighbors",
            "GeodesicKNeighborsClassifier",
            X.shape[0],
            "the number of training points",
        )
        self.X_ = jnp.asarray(X)
        self.classes_, self.y_ = np.unique(y, return_inverse=True)
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = _points(self, X, reset=False)
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
        X = _points(self, X, reset=True)
        dim = X.shape[1]
        k = dim if self.n_components is None else self.n_components
        k = _check_count(k, "n_components", "GeodesicPCA", dim, "the number of features")
        pca = tangent_pca(self.metric, X, num_points=self.num_points, throw=False)
        _check(pca.result, "GeodesicPCA.fit")
        self.pca_ = pca
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
        check_is_fitted(self)
        return np.asarray(
            _tangent_coordinates(
                self.metric,
                self.pca_.mean.mean,
                self.pca_.components[: len(self.components_)],
                _points(self, X, reset=False),
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
