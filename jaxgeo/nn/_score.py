r"""Equinox score networks acting on one example.

- [`jaxgeo.nn.MLPScore`][]: a free-form score $s_\theta: \mathbb{R}^D \to \mathbb{R}^D$
  (not a gradient in general: its Jacobian need not be symmetric).
- [`jaxgeo.nn.NoiseConditionalScore`][]: $s_\theta(x, \sigma)$ of score-based diffusion,
  $s_\theta(x, \sigma) = \mathrm{MLP}([x, \log\sigma]) / \sigma$.
- [`jaxgeo.nn.EnergyScore`][]: $s_\theta = -\nabla_x E_\theta$ of a scalar energy
  network, a true gradient (use `SteinMetric(..., conservative=True)` with it).
"""

import abc
from collections.abc import Callable
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_point
from .._custom_types import Point, Scalar, ScalarLike, Tangent


class _Standardise(eqx.Module):
    """x -> (x - shift) / scale with fixed data statistics. They are arrays, so that
    networks of other data share one compiled program (a static field is part of the
    program: every new data set compiled every geodesic program again); `constant`:
    `jaxgeo.train.fit` does not train them by default."""

    shift: Float[Array, " dim"]
    scale: Float[Array, " dim"]
    constant: ClassVar[bool] = True

    def __call__(self, x: Point) -> Point:
        return (x - self.shift.astype(x.dtype)) / self.scale.astype(x.dtype)

    def unscale(self, s: Tangent) -> Tangent:
        """A score of the standardised variable, as a score of the original one."""
        return s / self.scale.astype(s.dtype)


def _standardiser(dim: int, shift, scale) -> _Standardise:
    def as_array(value, default):
        value = np.full(dim, default) if value is None else np.asarray(value, float)
        if not np.all(np.isfinite(value)):
            raise ValueError("shift and scale must be finite")
        return np.broadcast_to(value, (dim,))

    scale = as_array(scale, 1.0)
    if scale.min() <= 0:
        raise ValueError(f"scale must be positive, got min {scale.min()}")
    return _Standardise(jnp.asarray(as_array(shift, 0.0)), jnp.asarray(scale))


class _AbstractMLPScore(eqx.Module):
    r"""An MLP on standardised inputs in $\mathbb{R}^D$. The subclasses only choose the
    architecture (`_architecture`); fields and `__init__` live here, once.

    **Arguments:** `dim` $D$; `width` and `depth` of the MLP; `activation` (default: the
    subclass's); `shift`, `scale` (default 0 and 1), the fixed input standardisation,
    e.g. the data mean and standard deviation; `key`.
    """

    mlp: eqx.nn.MLP
    standardise: _Standardise
    dim: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        *,
        width: int = 128,
        depth: int = 3,
        activation: Callable[[Array], Array] | None = None,
        shift: ArrayLike | None = None,
        scale: ArrayLike | None = None,
        key: PRNGKeyArray,
    ):
        in_size, out_size, default_activation = self._architecture(dim)
        activation = default_activation if activation is None else activation
        self.mlp = eqx.nn.MLP(in_size, out_size, width, depth, activation=activation, key=key)
        self.standardise = _standardiser(dim, shift, scale)
        self.dim = dim

    @abc.abstractmethod
    def _architecture(
        self, dim: int
    ) -> tuple[int, int | Literal["scalar"], Callable[[Array], Array]]:
        """The MLP's input size, output size and default activation for points in R^dim."""

    def _check(self, x: Point) -> None:
        check_point(x, f"{type(self).__name__} input", self.dim)


class MLPScore(_AbstractMLPScore):
    r"""A free-form score network $s_\theta(x)$: an MLP from `(D,)` to `(D,)`.

    Inputs are standardised with fixed `shift` and `scale` (e.g. the data mean and
    standard deviation), outputs are divided by `scale` (the score of standardised
    data, mapped back). Both are arrays (`model.standardise`), which
    [`jaxgeo.train.fit`][] leaves as they are by default; a training loop of your own
    that updates every inexact array would train them too.

    **Arguments:** `dim` $D$; `width` and `depth` of the MLP; `activation` (default
    SiLU); `shift`, `scale` (default 0 and 1); `key`.
    """

    def _architecture(self, dim):
        return dim, dim, jax.nn.silu

    def __call__(self, x: Point) -> Tangent:
        self._check(x)
        return self.standardise.unscale(self.mlp(self.standardise(x)))


class NoiseConditionalScore(_AbstractMLPScore):
    r"""A noise-conditional score $s_\theta(x, \sigma) \approx \nabla_x \log p_\sigma(x)$,
    the score of the data convolved with $N(0, \sigma^2 I)$ (Song & Ermon 2019):
    $s_\theta(x, \sigma) = \mathrm{MLP}([\tilde x, \log\sigma]) / \sigma$.

    Call it as `model(x, sigma)`; `model.at(sigma)` is the score at one noise level,
    a function of `x` alone that any metric accepts.

    **Arguments:** as [`jaxgeo.nn.MLPScore`][] (default activation SiLU).
    """

    def _architecture(self, dim):
        return dim + 1, dim, jax.nn.silu

    def __call__(self, x: Point, sigma: ScalarLike) -> Tangent:
        self._check(x)
        sigma = jnp.asarray(sigma, x.dtype)
        features = jnp.concatenate([self.standardise(x), jnp.log(sigma)[None]])
        return self.standardise.unscale(self.mlp(features)) / sigma

    def at(self, sigma: ScalarLike) -> "NoiseLevel":
        r"""The score $x \mapsto s_\theta(x, \sigma)$ at one noise level."""
        return NoiseLevel(self, sigma)


class NoiseLevel(eqx.Module):
    """A [`jaxgeo.nn.NoiseConditionalScore`][] at a fixed noise level."""

    model: NoiseConditionalScore
    sigma: ScalarLike

    def __call__(self, x: Point) -> Tangent:
        return self.model(x, self.sigma)


class EnergyScore(_AbstractMLPScore):
    r"""The score of an energy-based model, $s_\theta(x) = -\nabla_x E_\theta(x)$ with
    $p_\theta \propto e^{-E_\theta}$ and $E_\theta$ a scalar MLP: a true gradient, whose
    Jacobian (minus the Hessian of $E_\theta$) is symmetric.

    **Arguments:** as [`jaxgeo.nn.MLPScore`][] (default activation softplus)."""

    def _architecture(self, dim):
        return dim, "scalar", jax.nn.softplus

    def energy(self, x: Point) -> Scalar:
        r"""$E_\theta(x)$, the negative unnormalised log-density."""
        self._check(x)
        return self.mlp(self.standardise(x))

    def __call__(self, x: Point) -> Tangent:
        return -jax.grad(self.energy)(x)
