"""streamem: expectation-maximization for mixture models on data bigger than memory."""

from .drivers import DegenerateComponentWarning, Iteration
from .estimators import GaussianMixture

__version__ = "0.1.0"

__all__ = ["DegenerateComponentWarning", "GaussianMixture", "Iteration", "__version__"]
