"""The benchmark workloads' problem data, in NumPy only, so that every implementation
(jaxgeo, stochman, geomstats) solves exactly the same problems.

W1  Stein metric G(x) = (s sᵀ + λI)⁻¹, s(x) = ∇ log N(x; 0, Σ) = −Σ⁻¹x, Σ = [[1, ρ], [ρ, 1]],
    ρ = 0.8, λ = 1: the geodesic from (−4, −2) to (4, −2), 64 curve points.
W2  The same metric, 256 endpoint pairs uniform in [−4, 4]² (numpy seed 0).
W3  The pullback metric JᵀJ of an MLP decoder 2 → 64 → 64 → D (tanh), D ∈ {64, 784,
    4096}, float32: one curve energy and its gradient on a fixed 64-point curve, and one
    full geodesic at D = 784.
W4  The exp map of the W1 metric from (−4, −2) with v0 = (1, 0.5), t1 = 1.
W5  Fisher–Rao distances (see `benchmarks.fisher_rao`).
"""

import numpy as np


RHO = 0.8
COV = np.array([[1.0, RHO], [RHO, 1.0]])
DAMPING = 1.0
NUM_POINTS = 64

W1_X0 = np.array([-4.0, -2.0])
W1_X1 = np.array([4.0, -2.0])

W3_DIMS = (64, 784, 4096)
W3_GEODESIC_DIM = 784
W3_Z0 = np.array([-1.5, -1.0])
W3_Z1 = np.array([1.5, 1.0])

W4_X0 = np.array([-4.0, -2.0])
W4_V0 = np.array([1.0, 0.5])
W4_T1 = 1.0


def score(x: np.ndarray) -> np.ndarray:
    """s(x) = −Σ⁻¹x for x of shape (..., 2)."""
    return -np.linalg.solve(COV, x[..., None])[..., 0]


def stein_metric_matrix(x: np.ndarray) -> np.ndarray:
    """G(x) = (s sᵀ + λI)⁻¹ for x of shape (..., 2), shape (..., 2, 2)."""
    s = score(x)
    return np.linalg.inv(s[..., :, None] * s[..., None, :] + DAMPING * np.eye(2))


def w2_pairs(num_pairs: int = 256) -> np.ndarray:
    """Endpoint pairs, shape (num_pairs, 2, 2): `pairs[i, 0]` → `pairs[i, 1]`."""
    return np.random.default_rng(0).uniform(-4, 4, size=(num_pairs, 2, 2))


def decoder_weights(dim: int) -> dict[str, np.ndarray]:
    """The W3 decoder's weights (float32, seed 0): f(z) = W3 tanh(W2 tanh(W1 z + b1) + b2) + b3."""
    rng = np.random.default_rng(0)
    shapes = dict(W1=(64, 2), b1=(64,), W2=(64, 64), b2=(64,), W3=(dim, 64), b3=(dim,))
    scales = dict(W1=1.0, b1=0.5, W2=1 / 8, b2=0.1, W3=1 / 8, b3=0.1)
    return {k: (scales[k] * rng.normal(size=s)).astype(np.float32) for k, s in shapes.items()}


def decoder(z: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The W3 decoder in NumPy (reference for the implementations), z of shape (..., 2)."""
    h = np.tanh(z @ w["W1"].T + w["b1"])
    h = np.tanh(h @ w["W2"].T + w["b2"])
    return h @ w["W3"].T + w["b3"]


def w3_curve() -> np.ndarray:
    """The fixed W3 curve, 64 points c(t) = (cos 3t, sin 2t), t ∈ [0, 1], float32."""
    t = np.linspace(0.0, 1.0, NUM_POINTS)
    return np.stack([np.cos(3 * t), np.sin(2 * t)], axis=1).astype(np.float32)


def w3_secant_energy(curve: np.ndarray, w: dict[str, np.ndarray]) -> float:
    """The reference W3 energy, N/2 Σ_i |f(c_{i+1}) − f(c_i)|², N = len(curve) − 1: the
    discrete energy every implementation is timed on (its gradient w.r.t. the curve)."""
    fx = decoder(curve.astype(np.float64), {k: v.astype(np.float64) for k, v in w.items()})
    return 0.5 * (len(curve) - 1) * float(np.sum((fx[1:] - fx[:-1]) ** 2))
