"""The classes users import: thin, scikit-learn compatible estimators."""

from ._base import MixtureEstimator, fit_estimators, mixture_of
from .bayesian import BayesianGaussianMixture
from .bayesian_discrete import (
    BayesianBernoulliMixture,
    BayesianBinomialMixture,
    BayesianMultinomialMixture,
    BayesianPoissonMixture,
)
from .discrete import (
    BernoulliMixture,
    BinomialMixture,
    GroupedGaussianMixture,
    MultinomialMixture,
    PoissonMixture,
)
from .gaussian import GaussianMixture

__all__ = [
    "BayesianBernoulliMixture",
    "BayesianBinomialMixture",
    "BayesianGaussianMixture",
    "BayesianMultinomialMixture",
    "BayesianPoissonMixture",
    "BernoulliMixture",
    "BinomialMixture",
    "GaussianMixture",
    "GroupedGaussianMixture",
    "MixtureEstimator",
    "MultinomialMixture",
    "PoissonMixture",
    "fit_estimators",
    "mixture_of",
]

from ..io import register_loadable  # after the classes: they import io first

register_loadable(
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
