"""Multinomial components: count vectors over categories, or one categorical label per feature.

*Count vectors* (``n_categories=None``): a row ``x`` counts how often each of ``C`` categories
(the columns) occurred among its ``N = Σ_c x_c`` draws, and

    log p_k(x) = Σ_c x_c log p_c + log N! − Σ_c log x_c!,

so the features are the counts, ``A = log p`` and the multinomial coefficient is ``h(x)``.
``probabilities`` has shape (K, C). The totals ``N`` may differ from row to row; when every row
has the same total, ``n_trials`` states it (it is checked, and lets :meth:`sample` draw rows).

*Categorical labels* (``n_categories=C``): each of the ``D`` columns holds one label, an
integer in ``[0, C)``, and the columns are independent given the component. Inside
``features`` each column is expanded to its ``C`` one-hot indicators, feature ``d·C + c``
being ``[x_d = c]``; ``probabilities`` has shape (K, D, C), and ``probabilities[k, d]`` is the
distribution of column ``d`` in component ``k``. Columns with fewer than ``C`` labels simply
never use the others (their probabilities fall to the floor).

In both layouts the statistics are ``counts`` and ``sums = Σ r F(x)``, and the M-step
normalises the sums over the categories. Probabilities below ``min_probability`` are raised
to it and each distribution is renormalised, so no log-probability is infinite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy.special import gammaln

from . import _counts
from ._counts import CountFamily, CountStats


class MultinomialParams(NamedTuple):
    """Category probabilities: (K, C) for count vectors, (K, D, C) for categorical labels."""

    probabilities: np.ndarray


@dataclass(frozen=True)
class Multinomial(CountFamily):
    """Multinomial count vectors, or independent categorical labels with ``n_categories``.

    Parameters
    ----------
    n_categories : int or None, default=None
        None: each row is a vector of counts over the categories (its columns). An int
        ``C``: each column holds a categorical label in ``[0, C)``.
    n_trials : int or None, default=None
        Count vectors only: the total of every row, when it is fixed (checked; needed to
        draw samples). None: totals may vary but must be positive.
    min_probability : float, default=1e-10
        Probabilities are at least about ``min_probability`` (floored, then renormalised).
    missing : {'error', 'marginalize', 'drop'}, default='error'
        What NaN entries mean (see :mod:`streamem.families._missing`). Count vectors cannot
        marginalise a missing count (the row's total is then unknown); categorical labels can.
    """

    n_categories: int | None = None
    n_trials: int | None = None
    min_probability: float = 1e-10
    missing: str = "error"

    @property
    def feature_key(self) -> tuple:
        return ("multinomial", self.n_categories, self.n_trials)

    def _one_hot(self, X: np.ndarray) -> np.ndarray:
        """Indicators ``[x_d = c]`` of a block of labels, shape (D, C, B)."""
        return np.asarray(X).T[:, None, :] == np.arange(self.n_categories)[None, :, None]

    # -- E-step ------------------------------------------------------------------------------

    def features(
        self, X: np.ndarray, reference: None, out: np.ndarray | None = None
    ) -> np.ndarray:
        if self.n_categories is None:
            return _counts.as_features(X, out=out)
        indicators = self._one_hot(X)
        d, c, b = indicators.shape
        if out is None:
            return indicators.reshape(d * c, b).astype(np.float64)
        np.copyto(out, indicators.reshape(d * c, b))
        return out

    def coefficients(
        self, params: MultinomialParams, reference: None
    ) -> tuple[np.ndarray, np.ndarray]:
        log_probabilities = np.log(params.probabilities)
        return log_probabilities.reshape(len(log_probabilities), -1), np.zeros(
            len(log_probabilities)
        )

    def base_log_measure(self, X: np.ndarray) -> np.ndarray | None:
        if self.n_categories is not None:
            return None
        totals = np.asarray(X, dtype=np.float64).sum(axis=1)
        return gammaln(totals + 1.0) - _counts.log_factorials(X)

    def check_block(self, X: np.ndarray) -> str | None:
        if self.n_categories is not None:
            last = self.n_categories - 1
            requirement = (
                f"categorical labels must be integers from 0 to n_categories - 1 = {last}"
            )
            return _counts.check_counts(X, requirement, upper=last)
        problem = _counts.check_counts(X, "multinomial counts must be non-negative integers")
        if problem is not None:
            return problem
        totals = np.asarray(X, dtype=np.float64).sum(axis=1)
        if self.n_trials is not None:
            wrong = totals != self.n_trials
            if wrong.any():
                return (
                    f"multinomial rows must sum to n_trials={self.n_trials}; found "
                    f"{np.count_nonzero(wrong)} row(s) that do not, the first summing to "
                    f"{totals[wrong][0]:g}"
                )
        elif not totals.all():
            return (
                "multinomial rows must have a positive total count; found "
                f"{np.count_nonzero(totals == 0)} row(s) of all zeros (drop them: they carry "
                "no information)"
            )
        return None

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats: CountStats) -> tuple[MultinomialParams, list[str]]:
        sums = stats.sums
        if self.n_categories is not None:
            sums = sums.reshape(len(sums), -1, self.n_categories)
        probabilities = _counts.ratio(sums, sums.sum(axis=-1, keepdims=True))
        return MultinomialParams(self.regularize(probabilities)), []

    def regularize(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities at least ``min_probability``, renormalised over the categories."""
        probabilities = np.maximum(probabilities, self.min_probability)
        return probabilities / probabilities.sum(axis=-1, keepdims=True)

    # -- everything else ---------------------------------------------------------------------

    def n_parameters(self, params: MultinomialParams) -> int:
        return params.probabilities[..., 1:].size

    def sample(
        self, params: MultinomialParams, counts: np.ndarray, rng: np.random.RandomState
    ) -> np.ndarray:
        if self.n_categories is not None:

            def draw(p: np.ndarray, n: int) -> np.ndarray:
                # a label is the number of cumulative probabilities below a uniform draw
                thresholds = np.cumsum(p, axis=-1)[:, :-1]
                uniform = rng.uniform(size=(n, len(p), 1))
                return (uniform >= thresholds).sum(axis=-1)

            return _counts.draw_rows(draw, params.probabilities, counts)
        if self.n_trials is None:
            raise ValueError(
                "cannot draw count vectors when their totals vary: set n_trials to the total "
                "of every row to draw rows from a multinomial mixture."
            )
        return _counts.draw_rows(
            lambda p, n: rng.multinomial(self.n_trials, p, size=n), params.probabilities, counts
        )

    # -- missing values: a missing label has no indicator (see families/_missing.py) ----------

    @property
    def can_marginalize(self) -> bool:
        return self.n_categories is not None

    missing_refusal = (
        "MultinomialMixture: a missing count leaves the row's total unknown, so count vectors "
        "cannot marginalise missing entries (categorical labels, with n_categories, can). Use "
        "missing='drop' to leave rows with NaN out, or fill the counts first."
    )

    def masked_features(
        self, values: np.ndarray, missing: np.ndarray, reference: None
    ) -> np.ndarray:
        indicators = self._one_hot(values)  # NaN equals no label: no indicator
        d, c, b = indicators.shape
        return indicators.reshape(d * c, b).astype(np.float64)

    def masked_coefficients(
        self, params: MultinomialParams, reference: None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.coefficients(params, reference)

    def masked_finalize(self, counts: np.ndarray, sums: np.ndarray, reference: None) -> Any:
        return CountStats(counts, sums)

    def promote(self, stats: Any) -> Any:
        return stats  # a missing label's indicators are all 0: the sums stay plain

    def impute_values(self, params: MultinomialParams, resp: np.ndarray, block) -> np.ndarray:
        """The most probable label of each missing entry under the mixture (a categorical
        label's mean has no meaning)."""
        probabilities = np.einsum("kb,kdc->bdc", resp, params.probabilities)
        return probabilities.argmax(axis=-1).astype(np.float64)

    def row_parameters(self, row: np.ndarray) -> np.ndarray:
        """The category probabilities of one data row: its shares, or its labels one-hot."""
        if self.n_categories is None:
            return _counts.ratio(row, np.sum(row))
        return self._one_hot(row[None])[:, :, 0].astype(np.float64)
