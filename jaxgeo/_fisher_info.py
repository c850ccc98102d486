r"""The Fisher information of a model $p_\theta(y \mid x)$ (Part I of *The geometry of
data*): with $y$ from the model's predictive distribution (the true Fisher) or from the
labels (the empirical Fisher), for a pytree of parameters.

A model is given by its predictive distribution, `predictive(params, x) -> eta`, the
parameters of a [`jaxgeo.families`][] `family` (e.g. a classifier's class
probabilities for `Categorical(K)`, via `family.constrain(logits)`).
"""

from collections.abc import Callable

import jax
import jax.flatten_util
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .families._base import AbstractFamily


Matrix = Float[Array, "p p"]


def _model_samples(predictive, family, params, xs, key, num_samples):
    keys = jax.random.split(key, xs.shape[0])
    ys = jax.vmap(lambda x, k: family.sample(predictive(params, x), k, (num_samples,)))(xs, keys)
    # (n, S, ...) -> (n S, ...), inputs repeated to match
    return jnp.repeat(xs, num_samples, axis=0), ys.reshape(-1, *ys.shape[2:])


def _outer_mean(predictive, family, params, xs, ys) -> Matrix:
    """Mean outer product of per-example gradients, `(n, P)` memory."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def log_likelihood(p, x, y):
        return family.log_prob(predictive(unravel(p), x), y)

    grads = jax.vmap(jax.grad(log_likelihood), in_axes=(None, 0, 0))(flat, xs, ys)
    return grads.T @ grads / xs.shape[0]


def fisher_information(
    predictive: Callable[[PyTree, Array], Array],
    family: AbstractFamily,
    params: PyTree,
    xs: Float[Array, "n ..."],
    *,
    key: PRNGKeyArray | None = None,
    num_samples: int | None = None,
) -> Matrix:
    r"""The Fisher information of the model in its (flattened) parameters,
    $F = \mathbb{E}_{x}\,\mathbb{E}_{y \sim p_\theta(y\mid x)}[\nabla_\theta \log p\,
    \nabla_\theta \log p^\top]$, shape `(P, P)` with `P` the size of
    `jax.flatten_util.ravel_pytree(params)`.

    - `num_samples=None` (default): exact in $y$, from the family's closed-form Fisher
      pulled back through $\theta \mapsto \eta(x; \theta)$:
      $F = \frac1n\sum_i J_\eta(x_i)^\top I(\eta(x_i)) J_\eta(x_i)$.
    - `num_samples=S` with a `key`: Monte Carlo, $S$ labels per input drawn from the
      model's predictive distribution.
    """
    xs = jnp.asarray(xs)
    if num_samples is None:
        flat, unravel = jax.flatten_util.ravel_pytree(params)

        # (n, K, P) Jacobians and (n, K, K) Fishers: no (n, P, P) intermediate.
        jacs = jax.vmap(lambda x: jax.jacrev(lambda p: predictive(unravel(p), x))(flat))(xs)
        fishers = jax.vmap(lambda x: family.fisher(predictive(params, x)))(xs)
        return jnp.einsum("nkp,nkl,nlq->pq", jacs, fishers, jacs) / xs.shape[0]
    if key is None:
        raise ValueError("fisher_information: a key is needed to sample labels (num_samples)")
    inputs, ys = _model_samples(predictive, family, params, xs, key, num_samples)
    return _outer_mean(predictive, family, params, inputs, ys)


def empirical_fisher(
    predictive: Callable[[PyTree, Array], Array],
    family: AbstractFamily,
    params: PyTree,
    xs: Float[Array, "n ..."],
    ys: Array,
) -> Matrix:
    r"""The empirical Fisher $\frac1n\sum_i \nabla_\theta \log p_\theta(y_i \mid x_i)
    \nabla_\theta \log p_\theta(y_i \mid x_i)^\top$ with the *labels* $y_i$: not the
    Fisher information unless the model is right (Kunstner et al. 2019; Part I)."""
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    if xs.shape[0] != ys.shape[0]:
        raise ValueError(f"empirical_fisher: {xs.shape[0]} inputs but {ys.shape[0]} labels")
    return _outer_mean(predictive, family, params, xs, ys)


def fisher_vector_product(
    predictive: Callable[[PyTree, Array], Array],
    family: AbstractFamily,
    params: PyTree,
    xs: Float[Array, "n ..."],
    vector: PyTree,
    *,
    ys: Array | None = None,
    key: PRNGKeyArray | None = None,
    num_samples: int = 1,
) -> PyTree:
    r"""$F v$ without forming $F$ (for large models): with $\ell(\theta)$ the vector of
    log-likelihoods of the samples, $F v = J^\top (J v) / n$ by one JVP and one VJP.
    Labels `ys` give the empirical Fisher; otherwise `num_samples` labels per input are
    drawn from the model with `key`. `vector` and the result have the structure of
    `params`."""
    xs = jnp.asarray(xs)
    if ys is None:
        if key is None:
            raise ValueError("fisher_vector_product: pass labels ys or a key to sample them")
        xs, ys = _model_samples(predictive, family, params, xs, key, num_samples)

    def log_likelihoods(p):
        return jax.vmap(lambda x, y: family.log_prob(predictive(p, x), y))(xs, ys)

    _, jv = jax.jvp(log_likelihoods, (params,), (vector,))
    _, vjp = jax.vjp(log_likelihoods, params)
    (out,) = vjp(jv / xs.shape[0])
    return out
