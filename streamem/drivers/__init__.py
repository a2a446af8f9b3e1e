"""The fitting algorithms; they know engines and families, nothing about estimators."""

from .batch import DegenerateComponentWarning, FitResult, Iteration, best_result, fit_em

__all__ = ["DegenerateComponentWarning", "FitResult", "Iteration", "best_result", "fit_em"]
