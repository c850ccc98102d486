"""Small data sets with fixed seeds: `jaxgeo.data`."""

from ._digits import digits as digits
from ._toy import (
    circles as circles,
    gaussian_mixture as gaussian_mixture,
    MIXTURE_COVARIANCES as MIXTURE_COVARIANCES,
    MIXTURE_MEANS as MIXTURE_MEANS,
    mixture_score as mixture_score,
    MIXTURE_WEIGHTS as MIXTURE_WEIGHTS,
    PART2_COVARIANCE as PART2_COVARIANCE,
    part2_gaussian as part2_gaussian,
    part2_score as part2_score,
    spiral as spiral,
    two_moons as two_moons,
)
