from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._custom_types import MetricMatrix, Point, Scalar, Tangent
from ..families._base import AbstractFamily
from ._base import AbstractSecantMetric
from ._pullback import AbstractPullbackMetric


class FisherRaoMetric(AbstractSecantMetric):
    r"""The Fisher–Rao metric of a distribution family on its parameter coordinates,
    $G(\eta) = I(\eta) = \mathbb{E}[\nabla_\eta \log p\,\nabla_\eta \log p^\top]$, from
    the family's closed form (block-wise for [`jaxgeo.families.Product`][]).

    Its Jacobian-free segment energy (`energy="secant"`) is the KL energy of *Pulling
    back information geometry*, symmetrised: $\langle\delta, \delta\rangle_I \approx
    \mathrm{KL}(p_a \,\|\, p_b) + \mathrm{KL}(p_b \,\|\, p_a)$, so the discrete energy
    is $\frac N2\sum_n [\mathrm{KL}(p_n \,\|\, p_{n+1}) + \mathrm{KL}(p_{n+1} \,\|\,
    p_n)]$. The one-sided $N\sum_n \mathrm{KL}(p_n \,\|\, p_{n+1})$ of the slides (their
    $2N\sum$, without our factor ½) is only first-order accurate in $1/N$ (KL is not
    symmetric at third order); the symmetrised sum is second-order.

    Outside the parameter domain (e.g. a negative rate) the metric is NaN, not an
    error: a solver's trial step may leave the domain and must see a non-finite energy
    to reject it. (The families' own `fisher`, `kl` and `log_prob` raise.) A periodic
    parameter is not wrapped: for a [`jaxgeo.families.VonMises`][] pair whose mean
    directions differ by more than π, wrap one first (`VonMises.wrap`; see there)."""

    family: AbstractFamily

    def _masked(self, fn, *etas):
        """`fn(*etas)`, NaN if a parameter is invalid (evaluated at a valid stand-in
        there, so that neither the value nor its derivatives see invalid input)."""
        etas = [jnp.asarray(eta) for eta in etas]
        for eta in etas:
            if eta.shape != (self.family.num_params,):
                self.family.check(eta)  # raises the shape error
        valid = jnp.all(jnp.stack([self.family.valid(eta) for eta in etas]))
        stand_in = self.family.constrain(jnp.zeros(self.family.num_params, etas[0].dtype))
        out = fn(*(jnp.where(valid, eta, stand_in) for eta in etas))
        return jnp.where(valid, out, jnp.nan)

    def matrix(self, eta: Point) -> MetricMatrix:
        return self._masked(self.family.fisher, eta)

    def inner(self, eta: Point, u: Tangent, v: Tangent) -> Scalar:
        return self._masked(lambda e: self.family.fisher_inner(e, u, v), eta)

    def secant_sq_norm(self, a: Point, b: Point) -> Scalar:
        return self._masked(lambda a, b: self.family.kl(a, b) + self.family.kl(b, a), a, b)


class PullbackFisherRaoMetric(AbstractPullbackMetric):
    r"""The Fisher–Rao metric pulled back through a decoder $z \mapsto \eta(z)$ of
    distribution parameters: $G(z) = J_\eta^\top I(\eta(z)) J_\eta$ (*Pulling back
    information geometry*, Arvanitidis et al. 2022). Matrix-free `inner` (two JVPs and
    the family's block-wise Fisher form); the secant energy is the symmetrised KL energy
    $\mathrm{KL}(p_{\eta(a)} \,\|\, p_{\eta(b)}) + \mathrm{KL}(p_{\eta(b)} \,\|\,
    p_{\eta(a)})$ per segment (see [`jaxgeo.FisherRaoMetric`][]), which needs no
    Jacobians and no Fisher matrix.

    **Arguments:** `decoder` (`(d,) -> (P,)`, valid parameters of `family`, e.g.
    `lambda z: family.constrain(net(z))`), `family`, `dense_max_dim`.
    """

    decoder: Callable[[Point], Float[Array, " params"]]
    family: AbstractFamily
    dense_max_dim: int = eqx.field(static=True, default=64)

    @property
    def f(self) -> Callable[[Point], Float[Array, " params"]]:
        return self.decoder

    @property
    def base(self) -> FisherRaoMetric:
        return FisherRaoMetric(self.family)
