"""Grouped rows: each row is a group of exchangeable draws from one Gaussian component.

A row ``x = (x_1, …, x_m)`` holds ``m`` draws that all come from the *same* component
``N(μ_k, σ_k²)`` (for example the 100 measurements of one batch), so

    log p_k(x) = Σ_j log N(x_j; μ_k, σ_k²)
               = −½ σ_k⁻² Σ_j (x_j − μ_k)² − ½ m log(2π σ_k²).

That is linear in the features ``F(x) = [Σ_j x'_j, Σ_j x'_j², m]`` of the row centred on the
chunk's mean entry ``c`` (``x' = x − c``, which keeps the sum of squares free of cancellation
for data far from 0), with ``A = [μ'/σ², −1/(2σ²), −½ log(2πσ²) − μ'²/(2σ²)]`` (``μ' = μ − c``)
and ``b = 0``. Every row has the same number of entries, the number of columns of the data.

At the end of a chunk the sums become ``counts`` (Σ r, rows), ``entries`` (Σ r m, draws),
``means`` (per draw) and centred ``scatter`` ``Σ r Σ_j (x_j − mean)²``, which merge with
Chan's formula weighted by the entries. The M-step is the exact maximum-likelihood estimate:
the mean of all the component's draws and their mean squared deviation (plus ``reg_covar``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _counts
from ._base import COUNT_EPS, finite_mean
from ._missing import MaskedFeatures
from .gaussian import LOG_2PI, precision_cholesky


class GroupedGaussianParams(NamedTuple):
    """Component means (K,) and variances (K,) shared by every draw of a row."""

    means: np.ndarray
    variances: np.ndarray


class GroupedGaussianStats(NamedTuple):
    """Weighted rows (K,), weighted draws (K,), mean draw (K,) and centred scatter (K,)."""

    counts: np.ndarray
    entries: np.ndarray
    means: np.ndarray
    scatter: np.ndarray


@dataclass(frozen=True)
class GroupedGaussian(MaskedFeatures):
    """Rows of exchangeable draws from one univariate Gaussian component each.

    Parameters
    ----------
    reg_covar : float, default=1e-6
        Non-negative regularisation added to the variances.
    group_size : int or None, default=None
        Draws per row, used only to draw samples (rows of any length are fitted).
    missing : {'error', 'marginalize', 'drop'}, default='error'
        What NaN entries mean: with ``'marginalize'`` a missing draw is simply absent.
    """

    reg_covar: float = 1e-6
    group_size: int | None = None
    missing: str = "error"

    feature_key = "grouped-gaussian"

    # -- E-step ------------------------------------------------------------------------------

    def reference(self, X: np.ndarray) -> np.float64:
        if X.size == 0:
            return np.float64(0.0)
        return np.float64(finite_mean(X))

    def features(
        self, X: np.ndarray, reference: np.float64, out: np.ndarray | None = None
    ) -> np.ndarray:
        centred = np.subtract(X, reference, dtype=np.float64)
        F = np.empty((3, X.shape[0])) if out is None else out
        centred.sum(axis=1, out=F[0])
        np.einsum("ij,ij->i", centred, centred, out=F[1])
        F[2] = X.shape[1]
        return F

    def coefficients(
        self, params: GroupedGaussianParams, reference: np.float64
    ) -> tuple[np.ndarray, np.ndarray]:
        means = params.means - reference
        precisions = 1.0 / params.variances
        A = np.column_stack(
            [
                precisions * means,
                -0.5 * precisions,
                -0.5 * (LOG_2PI + np.log(params.variances) + precisions * np.square(means)),
            ]
        )
        return A, np.zeros(len(A))

    def base_log_measure(self, X: np.ndarray) -> None:
        return None

    def check_block(self, X: np.ndarray) -> None:
        return None  # non-finite values are found by the kernel from the log-likelihood

    # -- statistics --------------------------------------------------------------------------

    def finalize(
        self, counts: np.ndarray, sums: np.ndarray, reference: np.float64
    ) -> GroupedGaussianStats:
        first, second, entries = sums.T
        offsets = _counts.ratio(first, entries)  # mean − reference
        return GroupedGaussianStats(counts, entries, reference + offsets, second - first * offsets)

    def merge(self, a: GroupedGaussianStats, b: GroupedGaussianStats) -> GroupedGaussianStats:
        entries = a.entries + b.entries
        delta = b.means - a.means
        share = _counts.ratio(b.entries, entries)
        return GroupedGaussianStats(
            a.counts + b.counts,
            entries,
            a.means + delta * share,
            a.scatter + b.scatter + np.square(delta) * a.entries * share,
        )

    def subtract(
        self, total: GroupedGaussianStats, part: GroupedGaussianStats
    ) -> GroupedGaussianStats:
        entries = np.maximum(total.entries - part.entries, 0.0)
        means = total.means + (total.means - part.means) * _counts.ratio(part.entries, entries)
        spread = (
            np.square(part.means - means) * entries * _counts.ratio(part.entries, total.entries)
        )
        return GroupedGaussianStats(
            np.maximum(total.counts - part.counts, 0.0),
            entries,
            means,
            total.scatter - part.scatter - spread,
        )

    def scale(self, stats: GroupedGaussianStats, factor: float) -> GroupedGaussianStats:
        return GroupedGaussianStats(
            stats.counts * factor, stats.entries * factor, stats.means, stats.scatter * factor
        )

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats: GroupedGaussianStats) -> tuple[GroupedGaussianParams, list[str]]:
        variances = _counts.ratio(stats.scatter, stats.entries) + self.reg_covar
        variances, _, notes = precision_cholesky(variances, "spherical")
        return GroupedGaussianParams(stats.means.copy(), variances), notes

    def expected_log_prob(
        self, stats: GroupedGaussianStats, params: GroupedGaussianParams
    ) -> np.ndarray:
        """``Σ r log p_k(x)`` per component (K,), from statistics alone.

        ``−½ [scatter + entries (mean − μ)²] / σ² − ½ entries log(2πσ²)``.
        """
        spread = stats.scatter + stats.entries * np.square(stats.means - params.means)
        log_norm = LOG_2PI + np.log(params.variances)
        return -0.5 * (spread / params.variances + stats.entries * log_norm)

    # -- missing values: a missing draw is absent (see families/_missing.py) ------------------

    def masked_features(
        self, values: np.ndarray, missing: np.ndarray, reference: np.float64
    ) -> np.ndarray:
        centred = np.subtract(values, reference, dtype=np.float64)
        np.copyto(centred, 0.0, where=missing)
        F = np.empty((3, values.shape[0]))
        centred.sum(axis=1, out=F[0])
        np.einsum("ij,ij->i", centred, centred, out=F[1])
        F[2] = missing.shape[1] - missing.sum(axis=1)
        return F

    def missing_check(self, block) -> None:
        return None  # any real value is valid; infinite ones show in the log-likelihood

    def masked_coefficients(
        self, params: GroupedGaussianParams, reference: np.float64
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.coefficients(params, reference)

    def masked_finalize(
        self, counts: np.ndarray, sums: np.ndarray, reference: np.float64
    ) -> GroupedGaussianStats:
        return self.finalize(counts, sums, reference)

    def impute_values(self, params: GroupedGaussianParams, resp: np.ndarray, block) -> np.ndarray:
        return np.repeat((resp.T @ params.means)[:, None], block.filled.shape[1], axis=1)

    # -- everything else ---------------------------------------------------------------------

    def n_parameters(self, params: GroupedGaussianParams) -> int:
        return params.means.size + params.variances.size

    def sample(
        self, params: GroupedGaussianParams, counts: np.ndarray, rng: np.random.RandomState
    ) -> np.ndarray:
        if self.group_size is None:
            raise ValueError("set group_size, the number of draws per row, to draw rows")
        return _counts.draw_rows(
            lambda component, n: (
                component[0]
                + np.sqrt(component[1]) * rng.standard_normal(size=(n, self.group_size))
            ),
            np.column_stack([params.means, params.variances]),
            counts,
        )

    def reseed(
        self,
        params: GroupedGaussianParams,
        component: int,
        row: np.ndarray,
        stats: GroupedGaussianStats,
    ) -> GroupedGaussianParams:
        means = params.means.copy()
        if not np.isnan(row).all():
            means[component] = np.nanmean(row)
        # the pooled variance of the other components: wide enough to attract data
        variances = params.variances.copy()
        others = np.arange(len(means)) != component
        weights = stats.counts[others] + COUNT_EPS
        variances[component] = weights @ variances[others] / weights.sum()
        return GroupedGaussianParams(means, variances)
