"""The classes users import: thin, scikit-learn compatible estimators."""

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
    "MultinomialMixture",
    "PoissonMixture",
]
