r"""Decoders $p(x \mid z)$ of latent points: the contract every decoder of `jaxgeo.nn`
implements ([`jaxgeo.nn.AbstractDecoder`][]), the Gaussian, Bernoulli and Categorical
likelihoods, the calibrated-variance decoder of *Latent Space Oddity* (Arvanitidis,
Hansen, Hauberg 2018) and the extrapolating decoder of distribution parameters.

The calibrated decoder keeps a trained mean and replaces the variance by an RBF network
whose precision decays away from the training codes,
$\beta(z) = \sum_k w_k \exp(-\lambda_k |z - c_k|^2) + \zeta$, $\sigma = \beta^{-1/2}$.
"""

import abc
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_labels, check_point
from .._custom_types import Point, Scalar
from .._metric._fisher import PullbackFisherRaoMetric
from .._metric._pullback import ExpectedPullbackMetric, PullbackMetric
from ..families import Bernoulli, Categorical, Normal, Product
from ..families._base import AbstractFamily


Output = Float[Array, " out"]


def _gaussian_log_prob(x: Output, mean: Output, std: Output) -> Scalar:
    return jnp.sum(-0.5 * ((x - mean) / std) ** 2 - jnp.log(std) - 0.5 * math.log(2 * math.pi))


class AbstractDecoder(eqx.Module):
    r"""The contract of a decoder $p(x \mid z)$ of latent points $z \in \mathbb{R}^d$.

    Every decoder of `jaxgeo.nn` provides

    - `latent_dim`: $d$;
    - `family`: the [`jaxgeo.families`][jaxgeo.families.AbstractFamily] family of
      $p(x \mid z)$, and `params(z)`: its parameters $\eta(z)$;
    - `log_prob(x, z)`: $\log p(x \mid z)$ of one observation (where the decoder says
      so, it also takes data its family does not: a Bernoulli decoder $[0, 1]$-valued
      pixels, not only $\{0, 1\}$);
    - `mean(z)`: the decoded point in data space: the family's mean at `params(z)`,
      except where the decoder says otherwise (a pose decoder's mean direction);
    - its metrics: `pullback_metric()`, $J_\mu^\top J_\mu$ of `mean`
      ([`jaxgeo.PullbackMetric`][]); `fisher_rao_metric()`, $J_\eta^\top I(\eta)
      J_\eta$ of `params` ([`jaxgeo.PullbackFisherRaoMetric`][]; `energy="secant"` gives
      its KL energy); and, where the decoder has a spread of its own (Gaussian and pose
      decoders), `expected_metric()`, the expected pullback of a sample.

    Subclass it for a decoder of your own (`latent_dim` may be a field or a property):
    [`jaxgeo.nn.VAE`][] trains any such decoder, and the metrics come with it.
    """

    latent_dim: eqx.AbstractVar[int]
    family: eqx.AbstractVar[AbstractFamily]

    @abc.abstractmethod
    def params(self, z: Point) -> Float[Array, " params"]:
        r"""The parameters $\eta(z)$ of `family`."""

    @abc.abstractmethod
    def log_prob(self, x: Array, z: Point) -> Scalar:
        r"""$\log p(x \mid z)$."""

    @abc.abstractmethod
    def mean(self, z: Point) -> Array:
        """The decoded point."""

    def pullback_metric(self) -> PullbackMetric:
        r"""$J_\mu^\top J_\mu$, the Euclidean metric of data space pulled back by `mean`
        (flattened, e.g. a categorical decoder's `(D, K)` probabilities)."""
        return PullbackMetric(_Flattened(self.mean))

    def fisher_rao_metric(self) -> PullbackFisherRaoMetric:
        r"""$J_\eta^\top I(\eta) J_\eta$: the Fisher–Rao metric of `family` pulled back
        by `params`."""
        return PullbackFisherRaoMetric(self.params, self.family)


class _Flattened(eqx.Module):
    """`f`, its output flattened to 1-D (a pytree: `f`'s parameters stay leaves)."""

    f: Callable[[Point], Array]

    def __call__(self, z: Point) -> Output:
        return jnp.ravel(self.f(z))


class AbstractGaussianDecoder(AbstractDecoder):
    r"""$p(x \mid z) = N(\mu(z), \mathrm{diag}\,\sigma(z)^2)$ on $\mathbb{R}^D$: a decoder
    with `mean` and `std` (and `data_dim` $= D$), whose family is $D$ independent
    Normals with parameters $(\mu_1, \sigma_1, \dots, \mu_D, \sigma_D)$."""

    data_dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def std(self, z: Point) -> Output:
        r"""$\sigma(z)$."""

    @property
    def family(self) -> Product:
        return Product(Normal(), self.data_dim)

    def params(self, z: Point) -> Float[Array, " params"]:
        return jnp.stack([self.mean(z), self.std(z)], axis=-1).reshape(-1)

    def log_prob(self, x: Output, z: Point) -> Scalar:
        return _gaussian_log_prob(x, self.mean(z), self.std(z))

    def expected_metric(self) -> ExpectedPullbackMetric:
        r"""$J_\mu^\top J_\mu + J_\sigma^\top J_\sigma$, the expected pullback metric of
        a sample $\mu(z) + \sigma(z) \odot \varepsilon$ (*Latent Space Oddity*)."""
        return ExpectedPullbackMetric(self.mean, self.std)


class GaussianDecoder(AbstractGaussianDecoder):
    r"""$p(x \mid z) = N(\mu(z), \mathrm{diag}\,\sigma^2)$ with an MLP mean and a learned
    per-dimension standard deviation (independent of $z$; replace it by a calibrated
    one with [`jaxgeo.train.calibrate_variance`][])."""

    mlp: eqx.nn.MLP
    log_std: Float[Array, " out"]
    latent_dim: int = eqx.field(static=True)
    data_dim: int = eqx.field(static=True)

    def __init__(self, latent_dim: int, data_dim: int, *, width: int, depth: int, key):
        self.mlp = eqx.nn.MLP(latent_dim, data_dim, width, depth, jax.nn.tanh, key=key)
        self.log_std = jnp.full(data_dim, -1.0)
        self.latent_dim, self.data_dim = latent_dim, data_dim

    def mean(self, z: Point) -> Output:
        check_point(z, "latent point", self.latent_dim)
        return self.mlp(z)

    def std(self, z: Point) -> Output:
        check_point(z, "latent point", self.latent_dim)
        return jnp.exp(self.log_std)


class BernoulliDecoder(AbstractDecoder):
    r"""$p(x \mid z) = \prod_d \mathrm{Bernoulli}(x_d; p_d(z))$ with
    $p = \mathrm{sigmoid}(\mathrm{MLP}(z))$ (for binary or [0, 1]-valued data)."""

    mlp: eqx.nn.MLP
    latent_dim: int = eqx.field(static=True)
    data_dim: int = eqx.field(static=True)

    def __init__(self, latent_dim: int, data_dim: int, *, width: int, depth: int, key):
        self.mlp = eqx.nn.MLP(latent_dim, data_dim, width, depth, jax.nn.tanh, key=key)
        self.latent_dim, self.data_dim = latent_dim, data_dim

    @property
    def family(self) -> Product:
        return Product(Bernoulli(), self.data_dim)

    def params(self, z: Point) -> Output:
        """The probabilities $p(z)$."""
        return self.probs(z)

    def logits(self, z: Point) -> Output:
        check_point(z, "latent point", self.latent_dim)
        return self.mlp(z)

    def probs(self, z: Point) -> Output:
        return jax.nn.sigmoid(self.logits(z))

    def mean(self, z: Point) -> Output:
        return self.probs(z)

    def log_prob(self, x: Output, z: Point) -> Scalar:
        # (from the logits: stable where a probability rounds to 0 or 1)
        logits = self.logits(z)
        return jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits))


class CategoricalDecoder(AbstractDecoder):
    r"""$p(x \mid z) = \prod_d \mathrm{Categorical}(x_d; \pi_d(z))$ over `num_classes`
    classes per output dimension; data are integer class labels in `[0, num_classes)` of
    shape `(D,)` (a float dtype or a label outside the range is an error)."""

    mlp: eqx.nn.MLP
    latent_dim: int = eqx.field(static=True)
    data_dim: int = eqx.field(static=True)
    num_classes: int = eqx.field(static=True)

    def __init__(
        self, latent_dim: int, data_dim: int, num_classes: int, *, width: int, depth: int, key
    ):
        out = data_dim * num_classes
        self.mlp = eqx.nn.MLP(latent_dim, out, width, depth, jax.nn.tanh, key=key)
        self.latent_dim, self.data_dim, self.num_classes = latent_dim, data_dim, num_classes

    def logits(self, z: Point) -> Float[Array, "out classes"]:
        check_point(z, "latent point", self.latent_dim)
        return self.mlp(z).reshape(self.data_dim, self.num_classes)

    def probs(self, z: Point) -> Float[Array, "out classes"]:
        return jax.nn.softmax(self.logits(z), axis=-1)

    @property
    def family(self) -> Product:
        return Product(Categorical(self.num_classes), self.data_dim)

    def params(self, z: Point) -> Float[Array, " params"]:
        """The first `num_classes - 1` probabilities of each output dimension."""
        return self.probs(z)[:, :-1].reshape(-1)

    def mean(self, z: Point) -> Float[Array, "out classes"]:
        """The class probabilities of each output dimension (the mean of their one-hot
        codes, as `family.mean`): its `pullback_metric()` is that of the probabilities."""
        return self.probs(z)

    def log_prob(self, x: Array, z: Point) -> Scalar:
        where = f"CategoricalDecoder(num_classes={self.num_classes}).log_prob"
        x = check_labels(x, self.num_classes, (self.data_dim,), where)
        log_p = jax.nn.log_softmax(self.logits(z), axis=-1)
        return jnp.sum(jnp.take_along_axis(log_p, x[:, None], axis=-1))


def rbf_exponents(z: Point, centres: Array, bandwidths: Array) -> Float[Array, " k"]:
    r"""$\lambda_k |z - c_k|^2$: the squared distances to the centres in bandwidth units."""
    return bandwidths * jnp.sum((z[None, :] - centres) ** 2, axis=-1)


def rbf_features(z: Point, centres: Array, bandwidths: Array) -> Float[Array, " k"]:
    r"""$\phi_k(z) = \exp(-\lambda_k |z - c_k|^2)$."""
    return jnp.exp(-rbf_exponents(z, centres, bandwidths))


class RBFPrecision(eqx.Module):
    r"""$\beta(z) = \mathrm{softplus}(W)\,\phi(z) + \zeta$, with RBF features
    $\phi_k(z) = \exp(-\lambda_k |z - c_k|^2)$ at fixed centres $c_k$ (k-means of the
    training codes) and bandwidths $\lambda_k$; positive weights, so $\beta \ge \zeta$ and
    $\beta \to \zeta$ far from every centre."""

    centres: Float[Array, "k latent"]
    bandwidths: Float[Array, " k"]
    raw_weights: Float[Array, "out k"]
    floor: float = eqx.field(static=True)

    def __call__(self, z: Point) -> Output:
        features = rbf_features(z, self.centres, self.bandwidths)
        return jax.nn.softplus(self.raw_weights) @ features + self.floor


class CalibratedGaussianDecoder(AbstractGaussianDecoder):
    r"""A Gaussian decoder with the trained `mean` of another decoder (frozen) and the
    calibrated standard deviation $\sigma(z) = \beta(z)^{-1/2}$ of an
    [`jaxgeo.nn.RBFPrecision`][]: small near the training codes, $\zeta^{-1/2}$ far away.
    Its `expected_metric()` ([`jaxgeo.ExpectedPullbackMetric`][]) makes regions without
    data long."""

    mean_fn: Callable[[Point], Output]
    precision: RBFPrecision

    @property
    def latent_dim(self) -> int:
        return self.precision.centres.shape[1]

    @property
    def data_dim(self) -> int:
        return self.precision.raw_weights.shape[0]

    def mean(self, z: Point) -> Output:
        check_point(z, "latent point", self.latent_dim)
        return self.mean_fn(z)

    def std(self, z: Point) -> Output:
        check_point(z, "latent point", self.latent_dim)
        return jax.lax.rsqrt(self.precision(z))


class ExtrapolatingDecoder(AbstractDecoder):
    r"""Decoded distribution parameters that fall back to a maximally uncertain
    distribution away from the training codes (*Pulling back information geometry*; the
    parameter-space analogue of the calibrated variance):
    $\eta(z) = w(z)\,\eta_\theta(z) + (1 - w(z))\,\eta_\infty$, with the weight a
    function of $q(z) = -\log \sum_k e^{-\lambda_k |z - c_k|^2}$, a smooth minimum of the
    squared distances to RBF centres $c_k$ (k-means centres of the codes, built by
    [`jaxgeo.train.extrapolating_decoder`][]) in units of their bandwidths: by default
    the soft blend $w = 1 - \exp(-e^{-q})$ (about 0.6 at a centre, decaying as $e^{-q}$),
    or with `switch` $= s$ a sharp switch $w = \sigma(s\,(1 - q))$ at one bandwidth unit
    from the nearest centre (as in Detlefsen, Hauberg and Boomsma, 2022: certain on the
    data, uniform beyond it, with a transition of width $\sim 1/s$). A convex
    combination, so valid for every family with a convex parameter set (all of
    `jaxgeo.families`). Its `fisher_rao_metric()` is then large at the edge of the data,
    where the decoded distribution turns uncertain, and vanishes far away, where it is
    constant. Compute its geodesics with the KL energy (`energy="secant"`): the midpoint
    rule can hide a long segment where the metric vanishes (`RESULTS.unresolved_curve`).

    **Fields:** `params_fn` (`(d,) -> (P,)`, valid parameters of `family`; a Module or
    `eqx.Partial` so that its weights are trainable, e.g.
    `eqx.Partial(lambda net, z: family.constrain(net(z)), net)`), `family`, `centres`
    `(k, d)`, `bandwidths` `(k,)`, `far` `(P,)` ($\eta_\infty$, e.g. p = ½ for
    Bernoulli, α = 1 for Beta and Dirichlet), `switch` (`None`: the soft blend; a
    positive sharpness $s$: the sharp switch). `mean(z)` is the family's mean at
    $\eta(z)$.
    """

    params_fn: Callable[[Point], Output]
    family: AbstractFamily
    centres: Float[Array, "k latent"]
    bandwidths: Float[Array, " k"]
    far: Output
    switch: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.switch is not None and not self.switch > 0:
            raise ValueError(
                f"ExtrapolatingDecoder: switch must be None or a positive sharpness, got "
                f"{self.switch!r}"
            )

    @property
    def latent_dim(self) -> int:
        return self.centres.shape[1]

    def weight(self, z: Point) -> Scalar:
        """$w(z)$: about 1 on the data, 0 far away."""
        exponents = rbf_exponents(z, self.centres, self.bandwidths)
        if self.switch is None:
            return -jnp.expm1(-jnp.sum(jnp.exp(-exponents)))
        nearest = -jax.nn.logsumexp(-exponents)  # q(z)
        return jax.nn.sigmoid(self.switch * (1 - nearest))

    def params(self, z: Point) -> Output:
        check_point(z, "ExtrapolatingDecoder: z", self.latent_dim)
        w = self.weight(z)
        return w * self.params_fn(z) + (1 - w) * self.far

    def log_prob(self, x: Array, z: Point) -> Scalar:
        return self.family.log_prob(self.params(z), x)

    def mean(self, z: Point) -> Array:
        return self.family.mean(self.params(z))
