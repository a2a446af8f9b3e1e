"""Poisson components: independent non-negative integer counts.

With ``λ = rates[k]``, the log-density of a row of counts ``x`` is

    log p_k(x) = Σ_d x_d log λ_d − Σ_d λ_d − Σ_d log x_d!,

so the features are the counts, ``A = log λ``, ``b = −Σ λ`` and ``h(x) = −Σ log x!``. The
statistics are ``counts`` and ``sums = Σ r x``; the M-step is ``λ = sums / counts``, raised to
at least ``min_rate`` so that a feature that is always 0 keeps a finite log-rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _counts
from ._counts import CountFamily, CountStats


class PoissonParams(NamedTuple):
    """``rates[k, d]``, the mean count of feature ``d`` in component ``k``."""

    rates: np.ndarray


@dataclass(frozen=True)
class Poisson(CountFamily):
    """Components of independent Poisson counts.

    Parameters
    ----------
    min_rate : float, default=1e-10
        Rates are at least ``min_rate``.
    missing : {'error', 'marginalize', 'drop'}, default='error'
        What NaN entries mean (see :mod:`streamem.families._missing`).
    """

    min_rate: float = 1e-10
    missing: str = "error"

    feature_key = "poisson"

    # -- E-step ------------------------------------------------------------------------------

    def coefficients(
        self, params: PoissonParams, reference: None
    ) -> tuple[np.ndarray, np.ndarray]:
        return np.log(params.rates), -params.rates.sum(axis=1)

    def base_log_measure(self, X: np.ndarray) -> np.ndarray:
        return -_counts.log_factorials(X)

    def check_block(self, X: np.ndarray) -> str | None:
        return _counts.check_counts(X, "Poisson counts must be non-negative integers")

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats: CountStats) -> tuple[PoissonParams, list[str]]:
        rates = _counts.ratio(stats.sums, _counts.denominators(stats))
        return PoissonParams(self.regularize(rates)), []

    def regularize(self, rates: np.ndarray) -> np.ndarray:
        """Rates raised to at least ``min_rate``."""
        return np.maximum(rates, self.min_rate)

    def feature_constants(self, params: PoissonParams) -> np.ndarray:
        return -params.rates

    def expected_values(self, params: PoissonParams) -> np.ndarray:
        return params.rates

    # -- everything else ---------------------------------------------------------------------

    def sample(
        self, params: PoissonParams, counts: np.ndarray, rng: np.random.RandomState
    ) -> np.ndarray:
        return _counts.draw_rows(
            lambda rates, n: rng.poisson(rates, size=(n, rates.size)), params.rates, counts
        )
