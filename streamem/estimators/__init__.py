"""The classes users import: thin, scikit-learn compatible estimators."""

from .gaussian import GaussianMixture

__all__ = ["GaussianMixture"]
