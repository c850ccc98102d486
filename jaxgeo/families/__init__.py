"""Distribution families on parameter coordinates: `jaxgeo.families`."""

from ._base import AbstractFamily as AbstractFamily, kl_monte_carlo as kl_monte_carlo
from ._circular import VonMises as VonMises
from ._multivariate import (
    Categorical as Categorical,
    Dirichlet as Dirichlet,
    MultivariateNormal as MultivariateNormal,
)
from ._product import Joint as Joint, Product as Product
from ._spherical import VonMisesFisher as VonMisesFisher
from ._univariate import (
    Bernoulli as Bernoulli,
    Beta as Beta,
    Binomial as Binomial,
    Exponential as Exponential,
    Gamma as Gamma,
    Geometric as Geometric,
    Normal as Normal,
    Poisson as Poisson,
)
