"""Statistics on any metric: Fréchet means, parallel transport, tangent PCA, geodesic
clustering and neighbours, interpolation, with scikit-learn estimators around them."""

from ._cluster import (
    k_means as k_means,
    k_medoids as k_medoids,
    KMeans as KMeans,
    KMedoids as KMedoids,
    nearest_neighbours as nearest_neighbours,
)
from ._frechet import (
    AbstractMeanSolver as AbstractMeanSolver,
    EnergyMean as EnergyMean,
    frechet_mean as frechet_mean,
    FrechetMean as FrechetMean,
    KarcherMean as KarcherMean,
    NewtonMean as NewtonMean,
)
from ._interpolate import interpolate as interpolate, Interpolation as Interpolation
from ._pca import (
    principal_geodesics as principal_geodesics,
    tangent_pca as tangent_pca,
    TangentPCA as TangentPCA,
)
from ._sklearn import (
    GeodesicKMeans as GeodesicKMeans,
    GeodesicKMedoids as GeodesicKMedoids,
    GeodesicKNeighborsClassifier as GeodesicKNeighborsClassifier,
    GeodesicPCA as GeodesicPCA,
)
from ._transport import (
    ladder_transport as ladder_transport,
    parallel_transport as parallel_transport,
    Transport as Transport,
    transport_along as transport_along,
)
