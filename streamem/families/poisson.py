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
from ._counts import CountStats


class PoissonParams(NamedTuple):
    """``rates[k, d]``, the mean count of feature ``d`` in component ``k``."""

    rates: np.ndarray


@dataclass(frozen=True)
class Poisson:
    """Components of independent Poisson counts.

    Parameters
    ----------
    min_rate : float, default=1e-10
        Rates are at least ``min_rate``.
    """

    min_rate: float = 1e-10

    feature_key = "poisson"

    # -- E-step ------------------------------------------------------------------------------

    def reference(self, X: np.ndarray) -> None:
        return None

    def features(
        self, X: np.ndarray, reference: None, out: np.ndarray | None = None
    ) -> np.ndarray:
        return _counts.as_features(X, out=out)

    def coefficients(
        self, params: PoissonParams, reference: None
    ) -> tuple[np.ndarray, np.ndarray]:
        return np.log(params.rates), -params.rates.sum(axis=1)

    def base_log_measure(self, X: np.ndarray) -> np.ndarray:
        return -_counts.log_factorials(X)

    def check_block(self, X: np.ndarray) -> str | None:
        return _counts.check_counts(X, "Poisson counts must be non-negative integers")

    # -- statistics --------------------------------------------------------------------------

    def finalize(self, counts: np.ndarray, sums: np.ndarray, reference: None) -> CountStats:
        return CountStats(counts, sums)

    def merge(self, a: CountStats, b: CountStats) -> CountStats:
        return _counts.add(a, b)

    def subtract(self, total: CountStats, part: CountStats) -> CountStats:
        return _counts.subtract(total, part)

    def scale(self, stats: CountStats, factor: float) -> CountStats:
        return _counts.scale(stats, factor)

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats: CountStats) -> tuple[PoissonParams, list[str]]:
        return PoissonParams(self.regularize(_counts.ratio(stats.sums, stats.counts[:, None]))), []

    def regularize(self, rates: np.ndarray) -> np.ndarray:
        """Rates raised to at least ``min_rate``."""
        return np.maximum(rates, self.min_rate)

    def expected_log_prob(self, stats: CountStats, params: PoissonParams) -> np.ndarray:
        """``Σ r log p_k(x)`` without the base measure, per component (K,), from statistics."""
        return _counts.expected_log_prob(self, params, stats)

    # -- everything else ---------------------------------------------------------------------

    def n_parameters(self, params: PoissonParams) -> int:
        return params.rates.size

    def sample(
        self, params: PoissonParams, counts: np.ndarray, rng: np.random.RandomState
    ) -> np.ndarray:
        return _counts.draw_rows(
            lambda rates, n: rng.poisson(rates, size=(n, rates.size)), params.rates, counts
        )

    def reseed(
        self, params: PoissonParams, component: int, row: np.ndarray, stats: CountStats
    ) -> PoissonParams:
        values = _counts.blend_toward_row(
            params.rates, component, row, stats.counts, self.regularize
        )
        return PoissonParams(values)
