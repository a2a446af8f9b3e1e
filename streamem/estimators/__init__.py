"""The classes users import: thin, scikit-learn compatible estimators."""

from ._base import MixtureEstimator, fit_estimators, mixture_of
from .discrete import (
    BernoulliMixture,
    BinomialMixture,
    GroupedGaussianMixture,
    MultinomialMixture,
    PoissonMixture,
)
from .gaussian import GaussianMixture

__all__ = [
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
    BernoulliMixture,
    BinomialMixture,
    GaussianMixture,
    GroupedGaussianMixture,
    MultinomialMixture,
    PoissonMixture,
)
