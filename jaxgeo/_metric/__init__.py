from ._base import AbstractMetric as AbstractMetric, AbstractSecantMetric as AbstractSecantMetric
from ._ensemble import EnsembleMetric as EnsembleMetric
from ._euclidean import Euclidean as Euclidean
from ._fisher import (
    FisherRaoMetric as FisherRaoMetric,
    PullbackFisherRaoMetric as PullbackFisherRaoMetric,
)
from ._matrix import MatrixMetric as MatrixMetric
from ._pullback import (
    AbstractPullbackMetric as AbstractPullbackMetric,
    ExpectedPullbackMetric as ExpectedPullbackMetric,
    PullbackMetric as PullbackMetric,
)
from ._score_jacobian import ScoreJacobianMetric as ScoreJacobianMetric
from ._stein import MongeMetric as MongeMetric, SteinMetric as SteinMetric
