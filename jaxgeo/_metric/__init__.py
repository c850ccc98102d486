from ._base import AbstractMetric as AbstractMetric
from ._ensemble import EnsembleMetric as EnsembleMetric
from ._euclidean import Euclidean as Euclidean
from ._fisher import (
    FisherRaoMetric as FisherRaoMetric,
    PullbackFisherRaoMetric as PullbackFisherRaoMetric,
)
from ._matrix import MatrixMetric as MatrixMetric
from ._pullback import (
    ExpectedPullbackMetric as ExpectedPullbackMetric,
    PullbackMetric as PullbackMetric,
)
from ._score_jacobian import ScoreJacobianMetric as ScoreJacobianMetric
from ._stein import MongeMetric as MongeMetric, SteinMetric as SteinMetric
