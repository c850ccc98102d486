from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from equinox import AbstractVar
from jaxtyping import Array, Float

from .._checks import check_point
from .._custom_types import Curve, MetricMatrix, Point, Scalar, Tangent
from .._numerics import CG_TOL, HIGHEST
from ._base import AbstractMetric, AbstractSecantMetric


class AbstractPullbackMetric(AbstractSecantMetric):
    r"""The pullback of a metric through a map $f: \mathbb{R}^d \to \mathbb{R}^D$ (e.g.
    a decoder): $G(z) = J_f(z)^\top G_{\mathrm{base}}(f(z))\, J_f(z)$. The final
    subclasses say what $f$ and the base metric are.

    - `matrix` builds $J_f$ with `jax.jacfwd` (d forward passes).
    - `inner` is matrix-free: $\langle u, v\rangle = \langle J u, J v\rangle_{\mathrm{base}}$
      with one linearisation of $f$ and two Jacobian–vector products; no `(D, d)`
      Jacobian is built, so it costs two decoder passes whatever $D$ is.
    - `solve` factorises the `(d, d)` matrix when $d \le$ `dense_max_dim` and otherwise
      runs conjugate gradients (lineax) on the operator $u \mapsto J^\top G J u$,
      built from a JVP and a VJP.

    The pullback is positive definite only where $J_f$ has full column rank; elsewhere
    `solve` returns non-finite values, which geodesic solvers report in `result`.
    """

    f: AbstractVar[Callable[[Point], Float[Array, " out"]]]
    base: AbstractVar[AbstractMetric | None]
    dense_max_dim: AbstractVar[int]

    def _check(self, z: Point) -> None:
        check_point(z)
        try:
            shape = jax.eval_shape(self.f, z).shape
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"PullbackMetric: f failed on a point of shape {z.shape} (is it the "
                f"latent dimension f expects?): {error}"
            ) from error
        if len(shape) != 1:
            raise ValueError(
                f"PullbackMetric: f must map a point of shape {z.shape} to a 1-D array, "
                f"got shape {shape}"
            )

    def matrix(self, z: Point) -> MetricMatrix:
        self._check(z)
        jac = jax.jacfwd(self.f)(z).astype(z.dtype)
        if self.base is None:
            return jnp.dot(jac.T, jac, precision=HIGHEST)
        g = self.base.matrix(self.f(z))
        return jnp.dot(jac.T, jnp.dot(g, jac, precision=HIGHEST), precision=HIGHEST)

    def inner(self, z: Point, u: Tangent, v: Tangent) -> Scalar:
        self._check(z)
        y, f_jvp = jax.linearize(self.f, z)
        ju, jv = f_jvp(u), f_jvp(v)
        if self.base is None:
            return jnp.dot(ju, jv, precision=HIGHEST)
        return self.base.inner(y, ju, jv)

    def sq_norm(self, z: Point, v: Tangent) -> Scalar:
        self._check(z)
        y, jv = jax.jvp(self.f, (z,), (v,))
        if self.base is None:
            return jnp.dot(jv, jv, precision=HIGHEST)
        return self.base.sq_norm(y, jv)

    def _base_secant(self, fa: Point, fb: Point) -> Scalar:
        """The base metric's squared length between two decoded points: Euclidean,
        the base's own secant rule if it has one, else its midpoint rule."""
        if self.base is None:
            return jnp.sum((fb - fa) ** 2)
        if isinstance(self.base, AbstractSecantMetric):
            return self.base.secant_sq_norm(fa, fb)
        return self.base.midpoint_sq_norm(fa, fb)

    def secant_sq_norm(self, a: Point, b: Point) -> Scalar:
        r"""$|f(b) - f(a)|^2$ (in the base metric's secant or midpoint rule if there is
        a base): the Jacobian-free segment energy, equal to the midpoint rule to second
        order. Two decoder passes per segment, whatever $D$."""
        self._check(a)
        return self._base_secant(self.f(a), self.f(b))

    def secant_curve_sq_norms(self, xs: Curve) -> Float[Array, " segments"]:
        """`secant_sq_norm` of every segment of `xs`, decoding each point once: one
        decoder pass over the curve, so the energy's cost is that of decoding it."""
        self._check(xs[0])
        fx = jax.vmap(self.f)(xs)
        return jax.vmap(self._base_secant)(fx[:-1], fx[1:])

    def _gauss_newton_product(self, z: Point) -> Callable[[Tangent], Tangent]:
        r"""$u \mapsto J^\top G_{\mathrm{base}} J u$ from a JVP and a VJP."""
        y, f_jvp = jax.linearize(self.f, z)
        f_vjp = jax.linear_transpose(f_jvp, z)

        def lower(ju):  # G_base(y) Ju = grad of the base's quadratic form, matrix-free
            return jax.grad(lambda t: 0.5 * self.base.sq_norm(y, t))(ju)

        def mv(u):
            ju = f_jvp(u)
            (out,) = f_vjp(ju if self.base is None else lower(ju))
            return out

        return mv

    def solve(self, z: Point, w: Tangent) -> Tangent:
        self._check(z)
        if z.shape[0] <= self.dense_max_dim:
            return super().solve(z, w)
        return cg_solve(self._gauss_newton_product(z), z, w)


def cg_solve(mv: Callable[[Tangent], Tangent], z: Point, w: Tangent) -> Tangent:
    """Solve `mv(u) = w` for a symmetric positive-definite operator by conjugate
    gradients (lineax); NaN where CG fails (e.g. a singular operator)."""
    tol = CG_TOL(z.dtype)
    operator = lx.FunctionLinearOperator(
        mv, jax.ShapeDtypeStruct(z.shape, z.dtype), lx.positive_semidefinite_tag
    )
    sol = lx.linear_solve(
        operator,
        w.astype(z.dtype),
        lx.CG(rtol=tol, atol=tol, max_steps=10 * z.shape[0]),
        throw=False,
    )
    return jnp.where(sol.result == lx.RESULTS.successful, sol.value, jnp.nan)


class PullbackMetric(AbstractPullbackMetric):
    r"""The pullback of a metric through a map $f$ (e.g. a decoder):
    $G(z) = J_f(z)^\top G_{\mathrm{base}}(f(z))\, J_f(z)$, matrix-free (see
    [`jaxgeo.AbstractPullbackMetric`][]).

    **Arguments:**

    - `f`: the map, `(d,) -> (D,)`. Use an `eqx.Module` (a network) to differentiate
      its parameters.
    - `base`: the metric on $\mathbb{R}^D$; `None` means Euclidean ($J^\top J$).
    - `dense_max_dim`: the largest `d` solved by a dense Cholesky factorisation.

    !!! example
        The unit sphere in spherical coordinates $(\theta, \phi)$:
        `PullbackMetric(lambda z: jnp.array([sin(z[0]) cos(z[1]), sin(z[0]) sin(z[1]),
        cos(z[0])]))` has $G = \mathrm{diag}(1, \sin^2\theta)$.
    """

    f: Callable[[Point], Float[Array, " out"]]
    base: AbstractMetric | None = None
    dense_max_dim: int = eqx.field(static=True, default=64)


class _Concatenate(eqx.Module):
    mean: Callable[[Point], Float[Array, " out"]]
    std: Callable[[Point], Float[Array, " out"]]

    def __call__(self, z: Point) -> Float[Array, " out2"]:
        mu, sigma = self.mean(z), self.std(z)
        if jnp.shape(mu) != jnp.shape(sigma) or jnp.ndim(mu) != 1:
            raise ValueError(
                "ExpectedPullbackMetric: mean and std must map a latent point to 1-D arrays "
                f"of one shape, got {jnp.shape(mu)} and {jnp.shape(sigma)}"
            )
        return jnp.concatenate([mu, sigma])


class ExpectedPullbackMetric(AbstractPullbackMetric):
    r"""The expected pullback metric of a Gaussian decoder
    $f(z) = \mu(z) + \sigma(z) \odot \varepsilon$, $\varepsilon \sim N(0, I)$
    (Arvanitidis, Hansen, Hauberg, *Latent Space Oddity*, Theorem 1):

    $$\mathbb{E}[J_f^\top J_f] = J_\mu^\top J_\mu + J_\sigma^\top J_\sigma,$$

    which is the pullback of the concatenated map $z \mapsto [\mu(z), \sigma(z)]$
    (matrix-free `inner`). With a calibrated $\sigma$ that grows away from the data,
    distances grow there too, and geodesics stay on the data.

    **Arguments:** `mean` and `std`, both `(d,) -> (D,)`; `dense_max_dim` as in
    [`jaxgeo.PullbackMetric`][].
    """

    mean: Callable[[Point], Float[Array, " out"]]
    std: Callable[[Point], Float[Array, " out"]]
    dense_max_dim: int = eqx.field(static=True, default=64)

    @property
    def f(self) -> Callable[[Point], Float[Array, " out2"]]:
        return _Concatenate(self.mean, self.std)

    @property
    def base(self) -> None:
        return None
