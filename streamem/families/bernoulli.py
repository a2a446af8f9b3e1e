"""Bernoulli components: independent binary features.

With ``p = probabilities[k]``, the log-density of a row ``x ∈ {0, 1}^D`` is

    log p_k(x) = Σ_d x_d log p_d + (1 − x_d) log(1 − p_d)
               = logit(p) · x + Σ_d log(1 − p_d),

so the features are the data themselves, ``A = logit p``, ``b = Σ log(1 − p)`` and ``h = 0``.
The statistics are ``counts`` and ``sums = Σ r x``; the M-step is ``p = sums / counts``, kept in
``[min_probability, 1 − min_probability]`` so that no log-likelihood is infinite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _counts
from ._counts import CountFamily, CountStats


class BernoulliParams(NamedTuple):
    """``probabilities[k, d]``, the probability that feature ``d`` is 1 in component ``k``."""

    probabilities: np.ndarray


@dataclass(frozen=True)
class Bernoulli(CountFamily):
    """Components of independent binary features (0/1 or bool).

    Parameters
    ----------
    min_probability : float, default=1e-10
        Probabilities are kept in ``[min_probability, 1 − min_probability]``.
    missing : {'error', 'marginalize', 'drop'}, default='error'
        What NaN entries mean (see :mod:`streamem.families._missing`).
    """

    min_probability: float = 1e-10
    missing: str = "error"

    feature_key = "bernoulli"

    # -- E-step ------------------------------------------------------------------------------

    def coefficients(
        self, params: BernoulliParams, reference: None
    ) -> tuple[np.ndarray, np.ndarray]:
        return _counts.logit_and_log_complement(params.probabilities)

    def check_block(self, X: np.ndarray) -> str | None:
        return _counts.check_counts(X, "Bernoulli features must be 0 or 1 (or bool)", upper=1)

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats: CountStats) -> tuple[BernoulliParams, list[str]]:
        probabilities = _counts.ratio(stats.sums, _counts.denominators(stats))
        return BernoulliParams(self.regularize(probabilities)), []

    def regularize(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities kept in ``[min_probability, 1 − min_probability]``."""
        return _counts.clip_probabilities(probabilities, self.min_probability)

    def feature_constants(self, params: BernoulliParams) -> np.ndarray:
        return np.log1p(-params.probabilities)

    def expected_values(self, params: BernoulliParams) -> np.ndarray:
        return params.probabilities

    # -- everything else ---------------------------------------------------------------------

    def sample(
        self, params: BernoulliParams, counts: np.ndarray, rng: np.random.RandomState
    ) -> np.ndarray:
        return _counts.draw_rows(
            lambda p, n: rng.binomial(1, p, size=(n, p.size)), params.probabilities, counts
        )
