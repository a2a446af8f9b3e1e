"""Binomial components: each feature counts successes out of a number of trials.

With ``p = probabilities[k]`` and ``n`` trials behind every feature of a row ``x``,

    log p_k(x) = Σ_d x_d log p_d + (n − x_d) log(1 − p_d) + Σ_d log C(n, x_d)
               = logit(p) · x + n Σ_d log(1 − p_d) + h(x).

The number of trials is either one constant ``n_trials`` for every row, or read per row from
the data: with ``trials_column=j``, column ``j`` of ``X`` holds the row's number of trials
(shared by all its features) and is not itself a feature. Then ``n`` is one more feature, with
coefficient ``Σ_d log(1 − p_d)``: the features are ``[x, n]`` and ``b = 0``. Probabilities
have one column per feature, ``(K, D)`` with ``D`` the number of columns that are not the
trials column, in their order in ``X``.

Statistics are ``counts``, ``successes = Σ r x`` (K, D) and ``trials = Σ r n`` (K,); the
M-step is ``p = successes / trials``, kept in ``[min_probability, 1 − min_probability]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import gammaln

from . import _counts
from ._counts import CountFamily
from ._missing import MaskedBinomialStats, is_masked


class BinomialParams(NamedTuple):
    """``probabilities[k, d]``, the success probability of feature ``d`` in component ``k``."""

    probabilities: np.ndarray


class BinomialStats(NamedTuple):
    """Weighted counts (K,), successes ``Σ r x`` (K, D) and trials ``Σ r n`` (K,)."""

    counts: np.ndarray
    successes: np.ndarray
    trials: np.ndarray


@dataclass(frozen=True)
class Binomial(CountFamily):
    """Components of independent binomial counts with a common number of trials per row.

    Parameters
    ----------
    n_trials : int, default=1
        Number of trials behind every feature of every row (ignored with ``trials_column``).
    trials_column : int or None, default=None
        Column of the data holding each row's number of trials (negative values count from
        the end); it is not a feature.
    min_probability : float, default=1e-10
        Probabilities are kept in ``[min_probability, 1 − min_probability]``.
    missing : {'error', 'marginalize', 'drop'}, default='error'
        What NaN entries mean (see :mod:`streamem.families._missing`); the trials column
        itself must not be missing.
    """

    n_trials: int = 1
    trials_column: int | None = None
    min_probability: float = 1e-10
    missing: str = "error"

    @property
    def feature_key(self) -> tuple:
        return ("binomial", self.n_trials, self.trials_column)

    def _order(self, n_columns: int) -> np.ndarray:
        """Column indices of the successes, followed by that of the trials."""
        trials = range(n_columns)[self.trials_column]
        return np.r_[np.arange(trials), np.arange(trials + 1, n_columns), trials]

    def _successes_and_trials(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | int]:
        """Successes (B, D) and trials (a constant, or (B, 1) per row) of a block, in float64."""
        if self.trials_column is None:
            return np.asarray(X, dtype=np.float64), self.n_trials
        order = self._order(X.shape[1])
        X = np.asarray(X[:, order], dtype=np.float64)
        return X[:, :-1], X[:, -1:]

    # -- E-step ------------------------------------------------------------------------------

    def features(
        self, X: np.ndarray, reference: None, out: np.ndarray | None = None
    ) -> np.ndarray:
        if self.trials_column is None:
            return _counts.as_features(X, out=out)
        return _counts.as_features(X, self._order(X.shape[1]), out=out)

    def coefficients(
        self, params: BinomialParams, reference: None
    ) -> tuple[np.ndarray, np.ndarray]:
        logit, log_complement = _counts.logit_and_log_complement(params.probabilities)
        if self.trials_column is None:
            return logit, self.n_trials * log_complement
        return np.column_stack([logit, log_complement]), np.zeros(len(logit))

    def base_log_measure(self, X: np.ndarray) -> np.ndarray:
        x, n = self._successes_and_trials(X)
        log_choose = gammaln(n + 1.0) - gammaln(x + 1.0) - gammaln(n - x + 1.0)
        return log_choose.sum(axis=1)

    def check_block(self, X: np.ndarray) -> str | None:
        if self.trials_column is None:
            requirement = f"binomial successes must be integers from 0 to n_trials={self.n_trials}"
            return _counts.check_counts(X, requirement, upper=self.n_trials)
        trials = self._order(X.shape[1])[-1]
        requirement = (
            "binomial successes and trials must be non-negative integers, with no more "
            f"successes than the row's number of trials (column {trials})"
        )
        return _counts.check_counts(X, requirement, upper=X[:, trials : trials + 1])

    # -- statistics --------------------------------------------------------------------------

    def finalize(self, counts: np.ndarray, sums: np.ndarray, reference: None) -> BinomialStats:
        if self.trials_column is None:
            return BinomialStats(counts, sums, self.n_trials * counts)
        return BinomialStats(counts, sums[:, :-1], sums[:, -1])

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats: BinomialStats) -> tuple[BinomialParams, list[str]]:
        trials = stats.trials if stats.trials.ndim == 2 else stats.trials[:, None]
        probabilities = _counts.ratio(stats.successes, trials)
        return BinomialParams(self.regularize(probabilities)), []

    def regularize(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities kept in ``[min_probability, 1 − min_probability]``."""
        return _counts.clip_probabilities(probabilities, self.min_probability)

    def expected_log_prob(self, stats: BinomialStats, params: BinomialParams) -> np.ndarray:
        """``Σ r log p_k(x)`` without the base measure, per component (K,), from statistics."""
        logit, log_complement = _counts.logit_and_log_complement(params.probabilities)
        trials = stats.trials
        if trials.ndim == 2:  # masked statistics: each feature's own trials
            if not np.all(trials == trials[:, :1]):
                complement = np.einsum("kd,kd->k", np.log1p(-params.probabilities), trials)
                return np.einsum("kd,kd->k", logit, stats.successes) + complement
            trials = trials[:, 0]
        return np.einsum("kd,kd->k", logit, stats.successes) + log_complement * trials

    # -- everything else ---------------------------------------------------------------------

    def sample(
        self, params: BinomialParams, counts: np.ndarray, rng: np.random.RandomState
    ) -> np.ndarray:
        if self.trials_column is not None:
            raise ValueError(
                "cannot draw rows from a binomial mixture with per-row trials "
                f"(trials_column={self.trials_column}): the number of trials of a row is "
                "data, not part of the model. Draw with a constant n_trials instead."
            )
        return _counts.draw_rows(
            lambda p, n: rng.binomial(self.n_trials, p, size=(n, p.size)),
            params.probabilities,
            counts,
        )

    def row_parameters(self, row: np.ndarray) -> np.ndarray:
        """The success probabilities of one data row."""
        successes, trials = self._successes_and_trials(row[None])
        return _counts.ratio(successes, np.asarray(trials, dtype=np.float64))[0]

    # -- missing values: masked features [m x, m n] (see families/_missing.py) ---------------

    def check_observed(self, observed: np.ndarray) -> tuple[str, int] | None:
        """Why rows with these observed entries cannot be marginalised (and the first such
        row), or None: the number of trials of a row is data, never missing."""
        if self.trials_column is None:
            return None
        column = range(observed.shape[1])[self.trials_column]
        bad = ~observed[:, column]
        if not bad.any():
            return None
        return (
            f"the trials column (column {column}) must not be missing: a row's number of "
            "trials gives its successes their meaning. Drop those rows (missing='drop')",
            int(np.argmax(bad)),
        )

    def feature_constants(self, params: BinomialParams) -> np.ndarray:
        return self.n_trials * np.log1p(-params.probabilities)

    def masked_features(
        self, values: np.ndarray, missing: np.ndarray, reference: None
    ) -> np.ndarray:
        if self.trials_column is None:
            return super().masked_features(values, missing, reference)
        order = self._order(values.shape[1])
        x = np.where(missing, 0.0, values)[:, order]
        seen = ~missing[:, order[:-1]]
        return np.concatenate([x[:, :-1].T, (seen * x[:, -1:]).T])

    def masked_coefficients(
        self, params: BinomialParams, reference: None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.trials_column is None:
            return super().masked_coefficients(params, reference)
        logit, _ = _counts.logit_and_log_complement(params.probabilities)
        A = np.concatenate([logit, np.log1p(-params.probabilities)], axis=1)
        return A, np.zeros(len(A))

    def masked_finalize(
        self, counts: np.ndarray, sums: np.ndarray, reference: None
    ) -> MaskedBinomialStats:
        d = sums.shape[1] // 2
        trials = sums[:, d:] if self.trials_column is not None else self.n_trials * sums[:, d:]
        return MaskedBinomialStats(counts, sums[:, :d], trials)

    def promote(self, stats: BinomialStats) -> MaskedBinomialStats:
        if is_masked(stats):
            return stats
        counts, successes, trials = stats
        d = successes.shape[1]
        return MaskedBinomialStats(counts, successes, np.repeat(trials[:, None], d, axis=1))

    def expected_values(self, params: BinomialParams) -> np.ndarray:
        return self.n_trials * params.probabilities

    def impute_values(self, params: BinomialParams, resp: np.ndarray, block) -> np.ndarray:
        if self.trials_column is None:
            return super().impute_values(params, resp, block)
        order = self._order(block.filled.shape[1])
        trials = np.asarray(block.filled[:, order[-1:]], dtype=np.float64)
        out = np.empty(block.filled.shape)
        out[:, order[:-1]] = trials * (resp.T @ params.probabilities)
        out[:, order[-1]] = trials[:, 0]
        return out
