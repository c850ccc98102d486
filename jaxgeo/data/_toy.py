"""Small 2-D data sets with fixed seeds: the Gaussian of *The geometry of data* Part II,
a Gaussian mixture (both with their analytic scores, so that learned scores can be
compared against the truth), scikit-learn's two moons and circles, and a spiral.

Every function returns a NumPy array of examples `(n, 2)` (float64).
"""

import numpy as np

from .._checks import check_integer
from ..scores._analytic import gaussian, GaussianScore, gmm, GMMScore


PART2_COVARIANCE = np.array([[1.0, 0.8], [0.8, 1.0]])
MIXTURE_WEIGHTS = np.array([0.4, 0.35, 0.25])
MIXTURE_MEANS = np.array([[-2.0, -1.0], [2.0, 1.5], [1.0, -2.5]])
MIXTURE_COVARIANCES = np.array(
    [[[0.6, 0.3], [0.3, 0.6]], [[0.8, -0.4], [-0.4, 0.6]], [[0.3, 0.0], [0.0, 0.9]]]
)


def part2_gaussian(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Samples of the zero-mean Gaussian with correlation 0.8 of *The geometry of data*
    Part II; its score is [`jaxgeo.data.part2_score`][]."""
    check_integer(n, "the number of examples")
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(np.zeros(2), PART2_COVARIANCE, size=n)


def part2_score() -> GaussianScore:
    """The analytic score of [`jaxgeo.data.part2_gaussian`][]."""
    return gaussian(np.zeros(2), PART2_COVARIANCE)


def gaussian_mixture(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Samples of a 3-component 2-D Gaussian mixture; its score is
    [`jaxgeo.data.mixture_score`][]."""
    check_integer(n, "the number of examples")
    rng = np.random.default_rng(seed)
    component = rng.choice(len(MIXTURE_WEIGHTS), size=n, p=MIXTURE_WEIGHTS)
    chol = np.linalg.cholesky(MIXTURE_COVARIANCES)
    noise = np.einsum("nij,nj->ni", chol[component], rng.normal(size=(n, 2)))
    return MIXTURE_MEANS[component] + noise


def mixture_score() -> GMMScore:
    """The analytic score of [`jaxgeo.data.gaussian_mixture`][]."""
    return gmm(MIXTURE_WEIGHTS, MIXTURE_MEANS, MIXTURE_COVARIANCES)


def two_moons(n: int = 2000, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """scikit-learn's two interleaving half circles (`make_moons`)."""
    from sklearn.datasets import make_moons

    check_integer(n, "the number of examples")
    return make_moons(n, noise=noise, random_state=seed)[0].astype(np.float64)


def circles(n: int = 2000, noise: float = 0.05, factor: float = 0.5, seed: int = 0) -> np.ndarray:
    """scikit-learn's two concentric circles (`make_circles`)."""
    from sklearn.datasets import make_circles

    check_integer(n, "the number of examples")
    return make_circles(n, noise=noise, factor=factor, random_state=seed)[0].astype(np.float64)


def spiral(n: int = 2000, noise: float = 0.05, turns: float = 1.5, seed: int = 0) -> np.ndarray:
    r"""A 2-D spiral $r = t$, angle $2\pi\,\mathrm{turns}\,t$, $t \sim U(0.1, 1)$, scaled to
    radius 3, plus Gaussian noise."""
    check_integer(n, "the number of examples")
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.1, 1.0, size=n)
    angle = 2 * np.pi * turns * t
    points = 3 * t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return points + noise * rng.normal(size=(n, 2))
