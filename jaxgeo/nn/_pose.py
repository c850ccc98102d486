r"""A decoder of end-effector poses $(p, q) \in \mathbb{R}^3 \times S^3$ (position and unit
quaternion): a Gaussian for the position and a von Mises–Fisher for the orientation, as in
*Learning Riemannian manifolds for geodesic motion skills* (Beik-Mohammadi, Hauberg,
Arvanitidis, Neumann, Rozo 2021)."""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float

from .._checks import check_integer, check_point, check_positive
from .._custom_types import Point, Scalar
from .._metric._pullback import PullbackMetric
from ..families import Joint, Normal, Product, VonMisesFisher
from ._decoders import AbstractDecoder


Pose = Float[Array, "7"]

# How far from 1 the norm of a pose's quaternion may be (relative): float32 round-off
# and quaternions written with a few digits pass; unnormalised data do not (a
# von Mises-Fisher density of a non-unit vector is no density: finite, and wrong).
QUATERNION_RTOL = 1e-3


def check_poses(poses, where: str):
    """`poses`, shape `(..., 7)` (position, then a unit quaternion), with an error
    unless every quaternion has unit norm to `QUATERNION_RTOL`: a `ValueError` naming
    the first bad one, or under `jit`/`vmap` `eqx.error_if`."""
    poses = jnp.asarray(poses)
    if jnp.ndim(poses) < 1 or jnp.shape(poses)[-1] != 7:
        raise ValueError(
            f"{where}: a pose has 7 coordinates, a position (3) and a unit quaternion (4), "
            f"got shape {jnp.shape(poses)}; append the orientation as a quaternion "
            "(x, y, z, w order of your choice, the same for all data)"
        )
    if not jnp.issubdtype(poses.dtype, jnp.floating):
        raise ValueError(f"{where}: poses must have a floating dtype, got {poses.dtype}")
    norms = jnp.linalg.norm(poses[..., 3:], axis=-1)
    off = ~(jnp.abs(norms - 1) <= QUATERNION_RTOL)  # (NaN included)
    fix = "normalise the quaternions, poses[..., 3:] / norm(poses[..., 3:])"
    if isinstance(off, jax.core.Tracer):
        return eqx.error_if(
            poses,
            jnp.any(off),
            f"{where}: a quaternion (pose[3:]) is not of unit norm (to "
            f"{QUATERNION_RTOL:g}) or not finite: {fix}",
        )
    bad = np.argwhere(np.asarray(off))
    if len(bad):
        first = tuple(int(i) for i in bad[0])
        which = f"that of poses[{', '.join(map(str, first))}]" if first else "this one"
        raise ValueError(
            f"{where}: {len(bad)} quaternions (pose[3:]) are not of unit norm (to "
            f"{QUATERNION_RTOL:g}) or not finite, e.g. {which}, of norm "
            f"{float(norms[first]):.6g}: {fix}"
        )
    return poses


class _Exp(eqx.Module):
    """A learned positive constant, independent of z (before calibration)."""

    log_value: Float[Array, " out"]

    def __call__(self, z: Point) -> Float[Array, " out"]:
        return jnp.exp(self.log_value)


class PoseDecoder(AbstractDecoder):
    r"""$p(x \mid z) = N(p;\ \mu_p(z), \mathrm{diag}\,\sigma_p(z)^2)\;
    \mathrm{vMF}(q;\ \mu_r(z), \kappa_r(z))$ for a pose $x = (p, q)$, shape `(7,)`:
    position $p \in \mathbb{R}^3$, unit quaternion $q \in S^3$.

    An MLP gives $\mu_p$ and the mean direction $\mu_r$ (normalised); the position
    precision $\sigma_p^{-2}$ and the concentration $\kappa_r$ are the fields
    `position_precision` and `concentration` (`z -> (3,)` and `z -> (1,)`, positive):
    learned constants at first, RBF networks after
    [`jaxgeo.train.calibrate_pose_decoder`][], large on the data and small away from it,
    where the decoded position turns uncertain and the orientation uniform.

    **Arguments:** `latent_dim`; `width`, `depth` and `key` of the MLP;
    `initial_std` and `initial_concentration`, where the learned constants start (the
    position's standard deviation in the data's units: start it below the spread of the
    positions, or the VAE may leave them unexplained and collapse the latent space; 5 cm
    for positions in metres); or `position_precision` and `concentration`, callables to
    use instead.

    A quaternion and its negative are one rotation; the von Mises–Fisher is not
    symmetric under $q \mapsto -q$, so flip the data into one hemisphere
    ($q \cdot q_\mathrm{ref} \ge 0$) before training.

    Geometry: [`PoseDecoder.expected_metric`][jaxgeo.nn.PoseDecoder.expected_metric]
    (the four-term sum of the paper) and
    `fisher_rao_metric()` ([`jaxgeo.nn.AbstractDecoder`][])
    (the pulled-back Fisher–Rao metric of `family`, with the KL energy by
    `energy="secant"`).
    """

    net: eqx.nn.MLP
    position_precision: Callable[[Point], Float[Array, "3"]]
    concentration: Callable[[Point], Float[Array, "1"]]
    latent_dim: int = eqx.field(static=True)

    def __init__(
        self,
        latent_dim: int,
        *,
        width: int,
        depth: int,
        key,
        initial_std: float = 0.05,
        initial_concentration: float = 10.0,
        position_precision: Callable | None = None,
        concentration: Callable | None = None,
    ):
        check_integer(latent_dim, "PoseDecoder: latent_dim")
        check_positive(initial_std, "PoseDecoder: initial_std")
        check_positive(initial_concentration, "PoseDecoder: initial_concentration")
        latent_dim = int(latent_dim)
        self.net = eqx.nn.MLP(latent_dim, 7, width, depth, jax.nn.tanh, key=key)
        if position_precision is None:
            position_precision = _Exp(jnp.full(3, -2 * math.log(initial_std)))
        if concentration is None:
            concentration = _Exp(jnp.full(1, math.log(initial_concentration)))
        self.position_precision, self.concentration = position_precision, concentration
        self.latent_dim = latent_dim

    @property
    def family(self) -> Joint:
        """The decoded family: three Normals (μ, σ) and a von Mises–Fisher on $S^3$."""
        return Joint((Product(Normal(), 3), VonMisesFisher(4)))

    def position_and_direction(self, z: Point) -> tuple[Float[Array, "3"], Float[Array, "4"]]:
        r"""$(\mu_p(z), \mu_r(z))$ from one evaluation of the network."""
        check_point(z, "latent point", self.latent_dim)
        out = self.net(z)
        return out[:3], out[3:] / jnp.linalg.norm(out[3:])

    def position_mean(self, z: Point) -> Float[Array, "3"]:
        return self.position_and_direction(z)[0]

    def position_std(self, z: Point) -> Float[Array, "3"]:
        return jax.lax.rsqrt(self.position_precision(z))

    def direction(self, z: Point) -> Float[Array, "4"]:
        r"""The mean direction $\mu_r(z) \in S^3$."""
        return self.position_and_direction(z)[1]

    def kappa(self, z: Point) -> Float[Array, "1"]:
        r"""The concentration $\kappa_r(z)$, shape `(1,)`."""
        return self.concentration(z)

    def params(self, z: Point) -> Float[Array, "10"]:
        r"""The parameters of `family` at `z`: $(\mu_{p,i}, \sigma_{p,i})_{i \le 3}$,
        then $\kappa_r \mu_r$."""
        mean, direction = self.position_and_direction(z)
        position = jnp.stack([mean, self.position_std(z)], axis=-1)
        return jnp.concatenate([position.reshape(-1), self.kappa(z) * direction])

    def log_prob(self, x: Pose, z: Point) -> Scalar:
        r"""$\log p(x \mid z)$ of one pose `x`, shape `(7,)`; an error unless its
        quaternion `x[3:]` has unit norm (to 1e-3; under `jit`, `eqx.error_if`)."""
        if jnp.shape(x) != (7,):
            raise ValueError(
                "PoseDecoder.log_prob: a pose has shape (7,), a position (3) and a unit "
                f"quaternion (4), got shape {jnp.shape(x)}; one pose at a time (jax.vmap)"
            )
        x = check_poses(x, "PoseDecoder.log_prob")
        return self.family.log_prob(self.params(z), x)

    def mean(self, z: Point) -> Pose:
        """The decoded pose: the position mean and the mean direction."""
        return jnp.concatenate(self.position_and_direction(z))

    def expected_metric(self, codes: Float[ArrayLike, "n latent"] | None = None) -> PullbackMetric:
        r"""$J_{\mu_p}^\top J_{\mu_p} + J_{\sigma_p}^\top J_{\sigma_p} +
        J_{\mu_r}^\top J_{\mu_r} + J_{\kappa_r}^\top J_{\kappa_r}$: the pullback of the
        concatenated map $z \mapsto (\mu_p, \sigma_p, \mu_r, \kappa_r)$.

        The four terms have different units (m² and m² per latent unit² for the
        position's mean and standard deviation, rad²-like for the unit quaternion,
        and $\kappa^2$, in the thousands of thousands), so the plain sum is ruled by
        whichever is largest, usually $J_\kappa$. Given `codes` (shape
        `(n, latent_dim)`, e.g. the training codes), each term $t$ is divided by its
        typical magnitude on them, the median over the codes of
        $\mathrm{tr}\,J_t^\top J_t = \|J_t(z)\|_F^2$
        ([`PoseDecoder.expected_metric_scales`][jaxgeo.nn.PoseDecoder.expected_metric_scales]):
        $G(z) = \sum_t J_t^\top J_t / s_t$, unit-free, each term of weight about 1 on
        the data; off the data the $\sigma_p$ and $\kappa_r$ terms still grow, by how
        much more they change there than on the data. The pullback of the map with its
        blocks divided by $\sqrt{s_t}$, so `energy="secant"` works on it as on the plain
        sum."""
        weights = None if codes is None else jax.lax.rsqrt(self.expected_metric_scales(codes))
        return PullbackMetric(_PoseMaps(self, weights))

    def expected_metric_scales(self, codes: Float[ArrayLike, "n latent"]) -> Float[Array, "4"]:
        r"""The typical magnitude on `codes` (shape `(n, latent_dim)`) of each of the four
        terms of [`PoseDecoder.expected_metric`][jaxgeo.nn.PoseDecoder.expected_metric],
        $s_t = \mathrm{median}_j \|J_t(z_j)\|_F^2$ for $t = \mu_p, \sigma_p, \mu_r,
        \kappa_r$, shape `(4,)` (a term that vanishes on every code, e.g. an
        uncalibrated constant $\sigma_p$, gets $s_t = 1$)."""
        codes = jnp.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.latent_dim:
            raise ValueError(
                f"PoseDecoder.expected_metric_scales: expected codes of shape "
                f"(n, {self.latent_dim}), got shape {codes.shape}"
            )
        jacobians = jax.vmap(jax.jacfwd(_PoseMaps(self)))(codes)  # (n, 11, latent)
        squares = jnp.sum(jnp.square(jacobians), axis=2)
        blocks = jnp.stack([jnp.sum(squares[:, a:b], axis=1) for a, b in _POSE_MAP_BLOCKS], axis=1)
        scales = jnp.median(blocks, axis=0)
        return jnp.where(scales > 0, scales, 1.0)


# The rows of `_PoseMaps`: mu_p, sigma_p, mu_r, kappa_r.
_POSE_MAP_BLOCKS = ((0, 3), (3, 6), (6, 10), (10, 11))


class _PoseMaps(eqx.Module):
    r"""$z \mapsto (\mu_p, \sigma_p, \mu_r, \kappa_r)$, each block times its weight
    (none: 1)."""

    decoder: PoseDecoder
    weights: Float[Array, "4"] | None = None

    def __call__(self, z: Point) -> Float[Array, "11"]:
        d = self.decoder
        mean, direction = d.position_and_direction(z)
        blocks = [mean, d.position_std(z), direction, d.kappa(z)]
        if self.weights is not None:
            blocks = [w * b for w, b in zip(self.weights, blocks)]
        return jnp.concatenate(blocks)
