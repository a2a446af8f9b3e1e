"""The classes users import: thin, scikit-learn compatible estimators."""

from ._base import MixtureEstimator, fit_estimators, mixture_of
from .bayesian import BayesianGaussianMixture
from .discrete import (
    BernoulliMixture,
    BinomialMixture,
    GroupedGaussianMixture,
    MultinomialMixture,
    PoissonMixture,
)
from .gaussian import GaussianMixture

__all__ = [
    "BayesianGaussianMixture",
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
    BayesianGaussianMixture,
    BernoulliMixture,
    BinomialMixture,
    GaussianMixture,
    GroupedGaussianMixture,
    MultinomialMixture,
    PoissonMixture,
)
