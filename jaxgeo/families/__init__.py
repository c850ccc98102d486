"""Distribution families on parameter coordinates: `jaxgeo.families`."""

from .._families import (
    AbstractFamily as AbstractFamily,
    Bernoulli as Bernoulli,
    Beta as Beta,
    Categorical as Categorical,
    Dirichlet as Dirichlet,
    Exponential as Exponential,
    Gamma as Gamma,
    kl_monte_carlo as kl_monte_carlo,
    MultivariateNormal as MultivariateNormal,
    Normal as Normal,
    Poisson as Poisson,
    Product as Product,
    VonMises as VonMises,
)
