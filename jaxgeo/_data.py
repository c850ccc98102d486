"""Small data sets with fixed seeds: 2-D toy sets and scikit-learn's digits.

Every function returns a NumPy array of examples `(n, D)` (float64); `digits` also
returns the labels. The Gaussian and the mixture come with their analytic scores, so
that learned scores can be compared against the truth.
"""

import numpy as np

from . import scores
from ._scores import GaussianScore, GMMScore


PART2_COVARIANCE = np.array([[1.0, 0.8], [0.8, 1.0]])
MIXTURE_WEIGHTS = np.array([0.4, 0.35, 0.25])
MIXTURE_MEANS = np.array([[-2.0, -1.0], [2.0, 1.5], [1.0, -2.5]])
MIXTURE_COVARIANCES = np.array(
    [[[0.6, 0.3], [0.3, 0.6]], [[0.8, -0.4], [-0.4, 0.6]], [[0.3, 0.0], [0.0, 0.9]]]
)


def _check_size(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of examples must be a positive integer, got {n!r}")


def part2_gaussian(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Samples of the zero-mean Gaussian with correlation 0.8 of *The geometry of data*
    Part II; its score is [`jaxgeo.data.part2_score`][]."""
    _check_size(n)
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(np.zeros(2), PART2_COVARIANCE, size=n)


def part2_score() -> GaussianScore:
    """The analytic score of [`jaxgeo.data.part2_gaussian`][]."""
    return scores.gaussian(np.zeros(2), PART2_COVARIANCE)


def gaussian_mixture(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Samples of a 3-component 2-D Gaussian mixture; its score is
    [`jaxgeo.data.mixture_score`][]."""
    _check_size(n)
    rng = np.random.default_rng(seed)
    component = rng.choice(len(MIXTURE_WEIGHTS), size=n, p=MIXTURE_WEIGHTS)
    chol = np.linalg.cholesky(MIXTURE_COVARIANCES)
    noise = np.einsum("nij,nj->ni", chol[component], rng.normal(size=(n, 2)))
    return MIXTURE_MEANS[component] + noise


def mixture_score() -> GMMScore:
    """The analytic score of [`jaxgeo.data.gaussian_mixture`][]."""
    return scores.gmm(MIXTURE_WEIGHTS, MIXTURE_MEANS, MIXTURE_COVARIANCES)


def two_moons(n: int = 2000, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """scikit-learn's two interleaving half circles (`make_moons`)."""
    from sklearn.datasets import make_moons

    _check_size(n)
    return make_moons(n, noise=noise, random_state=seed)[0].astype(np.float64)


def circles(n: int = 2000, noise: float = 0.05, factor: float = 0.5, seed: int = 0) -> np.ndarray:
    """scikit-learn's two concentric circles (`make_circles`)."""
    from sklearn.datasets import make_circles

    _check_size(n)
    return make_circles(n, noise=noise, factor=factor, random_state=seed)[0].astype(np.float64)


def spiral(n: int = 2000, noise: float = 0.05, turns: float = 1.5, seed: int = 0) -> np.ndarray:
    r"""A 2-D spiral $r = t$, angle $2\pi\,\mathrm{turns}\,t$, $t \sim U(0.1, 1)$, scaled to
    radius 3, plus Gaussian noise."""
    _check_size(n)
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.1, 1.0, size=n)
    angle = 2 * np.pi * turns * t
    points = 3 * t[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return points + noise * rng.normal(size=(n, 2))


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 handwritten digits (1797 images, shipped with the package:
    no download): pixel intensities scaled to [0, 1], shape `(1797, 64)`, and the
    labels 0–9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float64) / 16.0, bunch.target.astype(np.int64)
