"""streamem: expectation-maximization for mixture models on data bigger than memory."""

from ._atomic import remove_stale_temporaries
from .datasets import make_discrete_mixture, make_mixture
from .drivers import DegenerateComponentWarning, Iteration
from .estimators import (
    BayesianBernoulliMixture,
    BayesianBinomialMixture,
    BayesianGaussianMixture,
    BayesianMultinomialMixture,
    BayesianPoissonMixture,
    BernoulliMixture,
    BinomialMixture,
    GaussianMixture,
    GroupedGaussianMixture,
    MultinomialMixture,
    PoissonMixture,
)
from .io import ModelFileError, load, to_zarr
from .selection import Selection, select_n_components
from .sources import open_rows, open_zarr

__version__ = "0.1.0"

__all__ = [
    "BayesianBernoulliMixture",
    "BayesianBinomialMixture",
    "BayesianGaussianMixture",
    "BayesianMultinomialMixture",
    "BayesianPoissonMixture",
    "BernoulliMixture",
    "BinomialMixture",
    "DegenerateComponentWarning",
    "GaussianMixture",
    "GroupedGaussianMixture",
    "Iteration",
    "ModelFileError",
    "MultinomialMixture",
    "PoissonMixture",
    "Selection",
    "__version__",
    "load",
    "make_discrete_mixture",
    "make_mixture",
    "open_rows",
    "open_zarr",
    "remove_stale_temporaries",
    "select_n_components",
    "to_zarr",
]
