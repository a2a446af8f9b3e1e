"""Gaussian components with full, tied, diagonal or spherical covariances.

Features are built on ``x' = x − c`` with ``c`` the column means of (up to ``REFERENCE_ROWS``
evenly spaced rows of) the chunk:

* ``full`` and ``tied``: ``[x', x'_i x'_j for i ≤ j]``
* ``diag``: ``[x', x'²]``
* ``spherical``: ``[x', ‖x'‖²]``

so that the quadratic form ``(x − μ)ᵀ P (x − μ)`` of every component is one GEMM against the
stacked precisions, and ``respᵀ F`` gives first and second moments about ``c``. At the end of a
chunk these are turned into counts, means and *centred* scatter matrices, which merge with
Chan's formula: the statistics never hold raw sums of squares, so data offset by 1e6 fits to
the same digits as data near zero.

Parameters follow scikit-learn: ``precisions_cholesky`` is ``L`` with precision ``P = L Lᵀ``
(the inverse transpose of the covariance's lower Cholesky factor); the shapes depend on the
covariance type as in :class:`sklearn.mixture.GaussianMixture`.

:class:`Gaussian` holds what every covariance type shares (centring, the Chan merge, the
assembly of the natural parameters); what depends on the covariance type is a set of small
module-level functions per type, looked up once in a table (``_KERNELS``), as scikit-learn's
``sklearn/mixture/_gaussian_mixture.py`` dispatches its estimators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import linalg

from .._kernels import compiled
from . import _missing
from ._base import COUNT_EPS, finite_mean, pooled_others, work_array
from ._missing import MaskedFeatures, MaskedGaussianStats

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LOG_2PI = np.log(2 * np.pi)

# A chunk's reference point is the mean of at most this many of its rows, evenly spaced: any
# central point keeps the expanded features free of cancellation, and the column means of a
# whole chunk (a reduction over a short axis) took a sixth of a diagonal E-step at D=16.
REFERENCE_ROWS = 4096


class GaussianParams(NamedTuple):
    """Component means (K, D), covariances and precision Cholesky factors (type-shaped)."""

    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


class GaussianStats(NamedTuple):
    """Weighted counts (K,), means (K, D) and centred scatter (type-shaped) of some rows.

    ``scatter`` is ``Σ r (x − mean)(x − mean)ᵀ`` per component (full), summed over components
    (tied), its diagonal (diag) or its trace (spherical).
    """

    counts: np.ndarray
    means: np.ndarray
    scatter: np.ndarray


@dataclass(frozen=True)
class Gaussian(MaskedFeatures):
    """Gaussian components; ``covariance_type`` as in scikit-learn, ``reg_covar`` ≥ 0.

    ``missing`` says what NaN entries mean (see :mod:`streamem.families._missing`).
    """

    covariance_type: str = "full"
    reg_covar: float = 1e-6
    missing: str = "error"

    @property
    def _kernels(self) -> _Kernels:
        return _kernels_of(self.covariance_type)

    @property
    def feature_key(self) -> str:
        return self._kernels.feature_key

    @property
    def compiled_features(self) -> int:
        """The code of ``gaussian_features`` for these features (the chunk kernel takes a
        chunk of complete rows in one compiled call)."""
        return self._kernels.second_order_code

    # -- E-step ------------------------------------------------------------------------------

    def reference(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0:
            return np.zeros(X.shape[1])
        return finite_mean(X, axis=0, step=-(-X.shape[0] // REFERENCE_ROWS))

    def features(
        self, X: np.ndarray, reference: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        # feature-major: every write below is one contiguous row of B values
        n, d = X.shape
        kernels = self._kernels
        F = np.empty((d + kernels.n_second_order(d), n)) if out is None else out
        compiled_kernels = compiled()
        if compiled_kernels is not None:
            compiled_kernels.gaussian_features(X, reference, F, kernels.second_order_code)
            return F
        centred = F[:d]
        np.subtract(X.T, reference[:, None], out=centred)
        kernels.second_order(centred, F[d:])
        return F

    def coefficients(
        self, params: GaussianParams, reference: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        means = params.means - reference
        linear, quadratic, log_det, mahalanobis = self._kernels.coefficients(
            params.precisions_cholesky, means
        )
        A = np.concatenate([linear, quadratic], axis=1)
        b = log_det - 0.5 * (means.shape[1] * LOG_2PI + mahalanobis)
        return A, b

    def base_log_measure(self, X: np.ndarray) -> None:
        return None

    def check_block(self, X: np.ndarray) -> None:
        return None  # non-finite values are found by the kernel from the log-likelihood

    # -- statistics --------------------------------------------------------------------------

    def finalize(
        self, counts: np.ndarray, sums: np.ndarray, reference: np.ndarray
    ) -> GaussianStats:
        d = reference.shape[0]
        first, second = sums[:, :d], sums[:, d:]
        safe = np.where(counts > 0, counts, 1.0)
        offsets = first / safe[:, None]  # mean − reference
        scatter = self._kernels.scatter(first, second, offsets)
        return GaussianStats(counts, reference + offsets, scatter)

    def merge(self, a: GaussianStats, b: GaussianStats) -> GaussianStats:
        if _missing.is_masked(a) or _missing.is_masked(b):
            return self._masked_merge(a, b)
        counts = a.counts + b.counts
        safe = np.where(counts > 0, counts, 1.0)
        delta = b.means - a.means
        means = a.means + delta * (b.counts / safe)[:, None]
        spread = self._kernels.spread(a.counts * b.counts / safe, delta)
        return GaussianStats(counts, means, a.scatter + b.scatter + spread)

    def subtract(self, total: GaussianStats, part: GaussianStats) -> GaussianStats:
        if _missing.is_masked(total) or _missing.is_masked(part):
            return self._masked_subtract(total, part)
        counts = np.maximum(total.counts - part.counts, 0.0)
        safe = np.where(counts > 0, counts, 1.0)
        means = total.means + (total.means - part.means) * (part.counts / safe)[:, None]
        delta = part.means - means
        weight = counts * part.counts / np.where(total.counts > 0, total.counts, 1.0)
        scatter = total.scatter - part.scatter - self._kernels.spread(weight, delta)
        return GaussianStats(counts, means, scatter)

    def scale(self, stats: GaussianStats, factor: float) -> GaussianStats:
        if _missing.is_masked(stats):
            counts, observed, means, scatter = stats
            return MaskedGaussianStats(counts * factor, observed * factor, means, scatter * factor)
        return GaussianStats(stats.counts * factor, stats.means, stats.scatter * factor)

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats: GaussianStats) -> tuple[GaussianParams, list[str]]:
        if _missing.is_masked(stats):
            return self._masked_m_step(stats)
        counts = stats.counts + COUNT_EPS
        d = stats.means.shape[1]
        covariances = self._kernels.covariances(stats.scatter, counts, d, self.reg_covar)
        covariances, chol, notes = precision_cholesky(covariances, self.covariance_type)
        return GaussianParams(stats.means.copy(), covariances, chol), notes

    def expected_log_prob(self, stats: GaussianStats, params: GaussianParams) -> np.ndarray:
        """``Σ r log p_k(x)`` for each component, from statistics alone (K,).

        With ``m`` and ``S`` the statistics' mean and scatter and ``P = L Lᵀ``:
        ``n (log|L| − D/2 log 2π) − ½ [tr(P S) + n (m − μ)ᵀ P (m − μ)]``.
        """
        if _missing.is_masked(stats):
            return self._masked_expected_log_prob(stats, params)
        counts, means, scatter = stats
        d = means.shape[1]
        log_det, spread, trace = self._kernels.expected_terms(
            params.precisions_cholesky, means - params.means, scatter, counts
        )
        return counts * (log_det - 0.5 * d * LOG_2PI) - 0.5 * (trace + spread)

    def min_count(self, n_features: int) -> float:
        """Responsibility mass a component needs before its M-step is well defined."""
        return self._kernels.min_count(n_features)

    # -- everything else ---------------------------------------------------------------------

    def n_parameters(self, params: GaussianParams) -> int:
        k, d = params.means.shape
        return self._kernels.n_covariance_parameters(k, d) + k * d

    def sample(
        self, params: GaussianParams, counts: np.ndarray, rng: np.random.RandomState
    ) -> np.ndarray:
        # the same draws, in the same order, as sklearn.mixture.GaussianMixture.sample
        return np.vstack(self._kernels.draw(rng, params.means, params.covariances, counts))

    def reseed(
        self, params: GaussianParams, component: int, row: np.ndarray, stats: GaussianStats
    ) -> GaussianParams:
        means = params.means.copy()
        # a missing entry of the row takes the others' pooled mean
        means[component] = np.where(
            np.isnan(row), pooled_others(params.means, component, stats.counts), row
        )
        covariances = self._kernels.restart_covariance(params.covariances, component, stats.counts)
        covariances, chol, _ = precision_cholesky(covariances, self.covariance_type)
        return GaussianParams(means, covariances, chol)

    # -- missing values (see families/_missing.py) -------------------------------------------
    # diag and spherical: masked features [m x', m x'², m]; full and tied: the conditional
    # distribution of the missing entries given the observed ones

    @property
    def _conditional(self) -> bool:
        return self.covariance_type in ("full", "tied")

    @property
    def compiled_masked_features(self) -> bool:
        """Whether a chunk with NaN is taken in one compiled call (``gaussian_masked_block``
        features: diagonal and spherical)."""
        return not self._conditional

    @property
    def missing_all_rows(self) -> bool:
        return not self._conditional  # full, tied: complete rows take the plain kernel

    def missing_reference(self, X: np.ndarray, observed: np.ndarray | None) -> np.ndarray:
        return _missing.masked_reference(X, observed)

    def missing_check(self, block) -> None:
        return None  # any real value is valid; infinite ones show in the log-likelihood

    def missing_width(self, n_features: int, n_expanded: int) -> int:
        # the conditional kernel's per-row work arrays are (K, D) per row, several of them; it
        # gains from blocks larger than the complete-data kernel's (fewer pattern groups)
        # diag/spherical: 3D masked features, counted as 4D so that a block's features stay
        # just under 1 MiB, where the statistics GEMM would be sliced (add_statistics): the
        # largest such blocks, so the least Python per row (D = 16, K = 8, two threads:
        # 1.32× the complete data's iteration with nested gaps, 1.39× counted as 5D)
        return 2 * n_features if self._conditional else 4 * n_features

    def missing_blocks(self, X, observed, reference, step, slab_rows=0):
        if not self._conditional:
            return super().missing_blocks(X, observed, reference, step)
        return _missing.conditional_blocks(X, observed, reference, step, slab_rows)

    def masked_block(self, values, missing, reference, work):
        kernels = compiled()
        if kernels is None or missing is not None or values.dtype not in (np.float32, np.float64):
            return super().masked_block(values, missing, reference, work)
        # the features and the empty rows compiled; which entries are missing is found from
        # the NaN when needed (imputation), a Gaussian having no base measure
        n, d = values.shape
        features = work_array(work, "features", (3 * d, n))
        empty = kernels.gaussian_masked_block(values, reference, features)
        return features, None, empty

    def missing_coefficients(self, params: GaussianParams, reference: np.ndarray):
        if not self._conditional:
            return super().missing_coefficients(params, reference)
        return _missing.conditional_coefficients(
            params.precisions_cholesky, params.means - reference
        )

    def missing_log_prob(self, block, coefficients):
        if not self._conditional:
            return super().missing_log_prob(block, coefficients)
        return _missing.conditional_log_prob(block, coefficients)

    def missing_sums(self, block, coefficients, carry, resp):
        if not self._conditional:
            return super().missing_sums(block, coefficients, carry, resp)
        return _missing.conditional_sums(block, coefficients, carry, resp)

    def missing_estep(self, block, coefficients, bias, weights, counts):
        if not self._conditional:
            return super().missing_estep(block, coefficients, bias, weights, counts)
        return _missing.conditional_estep(block, coefficients, bias, weights, counts)

    def missing_finalize(self, counts, sums, reference):
        if not self._conditional:
            return self.masked_finalize(counts, sums, reference)
        return self.finalize(counts, sums, reference)

    def missing_impute(self, block, coefficients, carry, resp, params):
        if not self._conditional:
            return super().missing_impute(block, coefficients, carry, resp, params)
        reference = params.means[0] - coefficients.means[0]
        return _missing.conditional_impute(block, coefficients, carry, resp, reference)

    # a chunk whose rows share a few patterns (families/_frequent.py): full and tied. (Diag
    # and spherical take their masked features, one GEMM in the chunk's order: with the
    # pattern's terms as its bias instead, the buckets' gathers and small GEMMs cost more,
    # 5.0 against 4.7 ms for 62 500 rows cut at depths, D = 16, K = 8.)

    @property
    def few_patterns(self) -> bool:
        return self._conditional

    def pattern_coefficients(self, params: GaussianParams, reference: np.ndarray, missing):
        means = params.means - reference
        return _missing.frequent_terms(params.precisions_cholesky, means, missing)

    def pattern_statistics(self, counts, sums, terms, reference):
        total = _missing.frequent_sums(counts, sums, terms, reference.shape[0])
        return self.finalize(counts.sum(axis=0), total, reference)

    def expected_values(self, params: GaussianParams) -> np.ndarray:
        return params.means

    def masked_features(
        self, values: np.ndarray, missing: np.ndarray, reference: np.ndarray
    ) -> np.ndarray:
        n, d = values.shape
        F = np.empty((3 * d, n))
        centred = F[:d]
        np.subtract(values.T, reference[:, None], out=centred)  # NaN where missing
        nan = np.isnan(centred)
        np.logical_not(nan, out=F[2 * d :])
        _missing.zero_where(centred, nan)
        np.square(centred, out=F[d : 2 * d])
        return F

    def masked_base_log_measure(self, values: np.ndarray, missing: np.ndarray) -> None:
        return None

    def masked_coefficients(
        self, params: GaussianParams, reference: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        # per feature: P μ' x' − ½ P x'² + (log L − ½ log 2π − ½ P μ'²), the last counted
        # only where the feature is observed
        means = params.means - reference
        chol = params.precisions_cholesky
        if self.covariance_type == "spherical":
            chol = np.broadcast_to(chol[:, None], means.shape)
        precisions = np.square(chol)
        linear = precisions * means
        constant = np.log(chol) - 0.5 * LOG_2PI - 0.5 * linear * means
        A = np.concatenate([linear, -0.5 * precisions, constant], axis=1)
        return A, np.zeros(len(A))

    def masked_finalize(
        self, counts: np.ndarray, sums: np.ndarray, reference: np.ndarray
    ) -> MaskedGaussianStats:
        d = reference.shape[0]
        first, second, observed = sums[:, :d], sums[:, d : 2 * d], sums[:, 2 * d :]
        offsets = _missing.ratio(first, observed)
        scatter = second - first * offsets
        if self.covariance_type == "spherical":
            scatter = scatter.sum(axis=1)
        return MaskedGaussianStats(counts, observed, reference + offsets, scatter)

    def promote(self, stats: GaussianStats) -> GaussianStats | MaskedGaussianStats:
        """Plain diag or spherical statistics as masked ones (every feature observed)."""
        if self._conditional or _missing.is_masked(stats):
            return stats
        observed = np.repeat(stats.counts[:, None], stats.means.shape[1], axis=1)
        return MaskedGaussianStats(stats.counts, observed, stats.means, stats.scatter)

    def _plain(self, stats: MaskedGaussianStats) -> GaussianStats | None:
        """The plain statistics masked ones are equal to, if every feature is observed."""
        if _missing.uniform(stats, stats.observed):
            return GaussianStats(stats.counts, stats.means, stats.scatter)
        return None

    def _masked_merge(self, a, b) -> MaskedGaussianStats:
        a, b = self.promote(a), self.promote(b)
        plain_a, plain_b = self._plain(a), self._plain(b)
        if plain_a is not None and plain_b is not None:
            return self.promote(self.merge(plain_a, plain_b))
        observed, means, spread = _missing.chan_merge(a.observed, a.means, b.observed, b.means)
        if self.covariance_type == "spherical":
            spread = spread.sum(axis=1)
        scatter = a.scatter + b.scatter + spread
        return MaskedGaussianStats(a.counts + b.counts, observed, means, scatter)

    def _masked_subtract(self, total, part) -> MaskedGaussianStats:
        total, part = self.promote(total), self.promote(part)
        plain_total, plain_part = self._plain(total), self._plain(part)
        if plain_total is not None and plain_part is not None:
            return self.promote(self.subtract(plain_total, plain_part))
        observed, means, spread = _missing.chan_subtract(
            total.observed, total.means, part.observed, part.means
        )
        if self.covariance_type == "spherical":
            spread = spread.sum(axis=1)
        counts = np.maximum(total.counts - part.counts, 0.0)
        return MaskedGaussianStats(counts, observed, means, total.scatter - part.scatter - spread)

    def _masked_m_step(self, stats: MaskedGaussianStats) -> tuple[GaussianParams, list[str]]:
        plain = self._plain(stats)
        if plain is not None:
            return self.m_step(plain)
        observed = stats.observed + COUNT_EPS
        if self.covariance_type == "spherical":
            covariances = stats.scatter / observed.sum(axis=1) + self.reg_covar
        else:
            covariances = stats.scatter / observed + self.reg_covar
        covariances, chol, notes = precision_cholesky(covariances, self.covariance_type)
        return GaussianParams(stats.means.copy(), covariances, chol), notes

    def _masked_expected_log_prob(
        self, stats: MaskedGaussianStats, params: GaussianParams
    ) -> np.ndarray:
        plain = self._plain(stats)
        if plain is not None:
            return self.expected_log_prob(plain, params)
        chol = params.precisions_cholesky
        spherical = self.covariance_type == "spherical"
        chol_d = np.broadcast_to(chol[:, None], stats.means.shape) if spherical else chol
        precisions = np.square(chol_d)
        delta = stats.means - params.means
        normaliser = (stats.observed * (np.log(chol_d) - 0.5 * LOG_2PI)).sum(axis=1)
        spread = (precisions * stats.observed * np.square(delta)).sum(axis=1)
        if spherical:
            trace = np.square(chol) * stats.scatter
        else:
            trace = (precisions * stats.scatter).sum(axis=1)
        return normaliser - 0.5 * (trace + spread)


def precision_cholesky(
    covariances: np.ndarray, covariance_type: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cholesky factors of the precisions, repairing covariances that are not positive definite.

    A component whose covariance is not positive definite gets the smallest multiple of ten of
    a scale-relative jitter added to its diagonal that makes it so, and a note naming it.

    Returns
    -------
    covariances : ndarray
        The covariances, repaired where needed.
    precisions_cholesky : ndarray
        ``L`` with ``L Lᵀ`` the precision, as in scikit-learn.
    notes : list of str
        One message per repaired component.
    """
    covariances = np.array(covariances, dtype=np.float64)
    if not np.all(np.isfinite(covariances)):
        raise FloatingPointError(
            "a covariance matrix is not finite; the data may contain values too large to square "
            "in float64 — rescale the features"
        )
    return _kernels_of(covariance_type).precision_cholesky(covariances)


def precision_cholesky_from_precisions(
    precisions: np.ndarray, covariance_type: str
) -> tuple[np.ndarray, np.ndarray]:
    """Covariances and precision Cholesky factors from user precisions, as scikit-learn does."""
    precisions = np.asarray(precisions, dtype=np.float64)
    return _kernels_of(covariance_type).from_precisions(precisions)


# -- what depends on the covariance type -------------------------------------------------------


class _Kernels(NamedTuple):
    """The functions that make one covariance type; shapes are those of its scatter."""

    #: ``full`` and ``tied`` build the same features (so a pass can share them)
    feature_key: str
    #: number of second-order features for D features
    n_second_order: Callable[[int], int]
    #: ``(centred (D, B), out)``: write the second-order features of a centred block to ``out``
    second_order: Callable[[np.ndarray, np.ndarray], None]
    #: the same in the compiled kernel (``gaussian_features``): 0 products, 1 squares, 2 norm
    second_order_code: int
    #: ``(L, μ')``: linear (K, D) and quadratic coefficients, ``log|L|`` (K,), ``‖Lᵀμ'‖²`` (K,)
    coefficients: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]]
    #: ``(first, second, offsets)``: centred scatter from the moments about the reference
    scatter: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    #: ``(weight (K,), δ (K, D))``: ``Σ weight δδᵀ`` in the shape of the scatter
    spread: Callable[[np.ndarray, np.ndarray], np.ndarray]
    #: ``(scatter, counts, D, reg_covar)``: the M-step's covariances
    covariances: Callable[[np.ndarray, np.ndarray, int, float], np.ndarray]
    #: ``(L, m − μ, scatter, counts)``: ``log|L|``, ``n (m − μ)ᵀP(m − μ)``, ``tr(P S)`` (K,)
    expected_terms: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]
    #: ``D``: the responsibility mass a component needs for a well-defined M-step
    min_count: Callable[[int], float]
    #: ``(K, D)``: free parameters of the covariances
    n_covariance_parameters: Callable[[int, int], int]
    #: ``(rng, means, covariances, counts)``: the rows of each component, as a list
    draw: Callable[..., list[np.ndarray]]
    #: ``(covariances, component, counts)``: covariances with one component's restarted
    restart_covariance: Callable[[np.ndarray, int, np.ndarray], np.ndarray]
    #: ``covariances`` (a finite float64 copy): ``(covariances, L, notes)``, repaired
    precision_cholesky: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, list[str]]]
    #: ``precisions``: ``(covariances, L)``
    from_precisions: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _kernels_of(covariance_type: str) -> _Kernels:
    """The functions of one covariance type."""
    try:
        return _KERNELS[covariance_type]
    except KeyError:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
        ) from None


# -- shared by several types: features, Cholesky factors, draws -------------------------------


def _products_features(centred: np.ndarray, out: np.ndarray) -> None:
    """``x'_i x'_j`` for ``i ≤ j``, row ``i`` of the upper triangle after row ``i − 1``."""
    d = centred.shape[0]
    start = 0
    for i in range(d):  # row i of the upper triangle: x_i * x_{i:}
        np.multiply(centred[i], centred[i:], out=out[start : start + d - i])
        start += d - i


def _squares_features(centred: np.ndarray, out: np.ndarray) -> None:
    np.square(centred, out=out)


def _norm_feature(centred: np.ndarray, out: np.ndarray) -> None:
    np.einsum("ij,ij->j", centred, centred, out=out[0])


def _cholesky_terms(chol: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log|L|`` (K,) and ``y = Lᵀ v`` (K, D) for stacked factors ``L`` (K, D, D)."""
    log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    return log_det, np.einsum("kji,kj->ki", chol, vectors)


def _per_component(chol: np.ndarray, n_components: int) -> np.ndarray:
    """The tied factor ``L`` (D, D) repeated for every component, as a view (K, D, D)."""
    return np.broadcast_to(chol, (n_components, *chol.shape))


def _draw_normal(
    rng: np.random.RandomState, means: np.ndarray, covariances: np.ndarray, counts: np.ndarray
) -> list[np.ndarray]:
    return [
        rng.multivariate_normal(mean, covariance, int(n))
        for mean, covariance, n in zip(means, covariances, counts, strict=True)
    ]


def _draw_independent(
    rng: np.random.RandomState, means: np.ndarray, variances: np.ndarray, counts: np.ndarray
) -> list[np.ndarray]:
    d = means.shape[1]
    return [
        mean + rng.standard_normal(size=(int(n), d)) * np.sqrt(variance)
        for mean, variance, n in zip(means, variances, counts, strict=True)
    ]


def _pool_covariance(covariances: np.ndarray, component: int, counts: np.ndarray) -> np.ndarray:
    """The pooled covariance of the other components: wide enough to attract data."""
    covariances = covariances.copy()
    covariances[component] = pooled_others(covariances, component, counts)
    return covariances


def _overall_variance(diagonals: np.ndarray) -> float:
    """Mean absolute variance over components and features: the scale of repairs."""
    return float(np.abs(diagonals).mean()) if diagonals.size else 0.0


def _variances_precision_cholesky(
    variances: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``diag`` and ``spherical``: non-positive variances raised to a relative floor."""
    notes: list[str] = []
    overall = _overall_variance(variances)
    bad = variances <= 0
    if bad.any():
        if overall == 0.0:
            raise ValueError(_ZERO_SPREAD)
        variances[bad] = overall * 1e-10
        notes += [
            f"component {k}: variance was not positive after reg_covar; set to "
            f"{overall * 1e-10:.3g}. Increase reg_covar or remove constant features."
            for k in np.unique(np.nonzero(bad)[0])
        ]
    return variances, 1.0 / np.sqrt(variances), notes


def _factor_matrices(
    matrices: np.ndarray, overall: float, name: str
) -> tuple[np.ndarray, list[str]]:
    """Precision Cholesky factors of covariance matrices (K, D, D), repairing them in place.

    ``name`` is what a note calls matrix ``k`` (``str.format`` with ``k``).
    """
    notes: list[str] = []
    chol = np.empty_like(matrices)
    d = matrices.shape[-1]
    identity = np.eye(d)
    if matrices.dtype == np.float64 and np.isfinite(matrices).all():
        # the LAPACK routines scipy.linalg.cholesky and solve_triangular run, called directly
        # (the same factors, bit for bit): their checks and conversions took ~60 µs a matrix,
        # several times the work at D = 16, on the serial path of incremental EM's M-steps
        potrf, trtrs = linalg.get_lapack_funcs(("potrf", "trtrs"), (matrices,))
        for k, covariance in enumerate(matrices):
            factor, info = potrf(covariance, lower=True, clean=True)
            if info == 0:
                inverse, info = trtrs(factor, identity, lower=True)
            if info != 0:
                break  # not positive definite: repaired below
            chol[k] = inverse.T
        else:
            return chol, notes
    for k, covariance in enumerate(matrices):
        try:
            factor = linalg.cholesky(covariance, lower=True)
        except linalg.LinAlgError:
            scale = max(float(np.abs(np.diagonal(covariance)).mean()), overall)
            if scale == 0.0:
                raise ValueError(_ZERO_SPREAD) from None
            jitter = scale * 1e-12
            while True:
                jitter *= 10
                try:
                    factor = linalg.cholesky(covariance + jitter * identity, lower=True)
                    break
                except linalg.LinAlgError:
                    if jitter > scale:
                        raise
            covariance += jitter * identity  # a view: repairs `matrices` too
            notes.append(
                f"{name.format(k=k)}: covariance was not positive definite after reg_covar; "
                f"added {jitter:.3g} to its diagonal. Increase reg_covar, reduce n_components, "
                "or remove collinear features."
            )
        chol[k] = linalg.solve_triangular(factor, identity, lower=True).T
    return chol, notes


_ZERO_SPREAD = (
    "every component's covariance is zero (each holds a single distinct point) and reg_covar "
    "is 0; set reg_covar > 0 (the default is 1e-6) or use init_params='kmeans'."
)


def _variances_from_precisions(precisions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return 1.0 / precisions, np.sqrt(precisions)


def _matrices_from_precisions(precisions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # an upper-triangular L with P = L Lᵀ, from the Cholesky factor of P with rows and
    # columns reversed (scikit-learn's construction, so both libraries start identically)
    chol = np.array([_flip(linalg.cholesky(_flip(p), lower=True)) for p in precisions])
    covariances = np.array([linalg.inv(p) for p in precisions])
    return covariances, chol


def _flip(matrix: np.ndarray) -> np.ndarray:
    return matrix[::-1, ::-1]


# -- full: one covariance matrix per component (K, D, D) ---------------------------------------


def _full_coefficients(chol: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, ...]:
    # y = Lᵀ μ', so μ'ᵀPμ' = ‖y‖² and Pμ' = L y
    log_det, y = _cholesky_terms(chol, means)
    linear = np.einsum("kij,kj->ki", chol, y)
    precisions = chol @ chol.transpose(0, 2, 1)
    iu0, iu1 = np.triu_indices(means.shape[1])
    quadratic = precisions[:, iu0, iu1] * np.where(iu0 == iu1, -0.5, -1.0)
    return linear, quadratic, log_det, np.square(y).sum(axis=1)


def _full_scatter(first: np.ndarray, second: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    d = first.shape[1]
    iu0, iu1 = np.triu_indices(d)
    moments = np.zeros((first.shape[0], d, d))
    moments[:, iu0, iu1] = second
    moments[:, iu1, iu0] = second
    return moments - first[:, :, None] * offsets[:, None, :]


def _full_spread(weight: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return weight[:, None, None] * delta[:, :, None] * delta[:, None, :]


def _full_covariances(
    scatter: np.ndarray, counts: np.ndarray, d: int, reg_covar: float
) -> np.ndarray:
    covariances = scatter / counts[:, None, None]
    covariances[:, np.arange(d), np.arange(d)] += reg_covar
    return covariances


def _full_expected_terms(
    chol: np.ndarray, delta: np.ndarray, scatter: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    log_det, y = _cholesky_terms(chol, delta)  # y = Lᵀ(m − μ)
    trace = np.einsum("kij,kji->k", chol @ chol.transpose(0, 2, 1), scatter)
    return log_det, np.square(y).sum(axis=1) * counts, trace


def _full_precision_cholesky(
    covariances: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    overall = _overall_variance(np.diagonal(covariances, axis1=-2, axis2=-1))
    chol, notes = _factor_matrices(covariances, overall, "component {k}")
    return covariances, chol, notes


# -- tied: one covariance matrix shared by all components (D, D) -------------------------------


def _tied_coefficients(chol: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, ...]:
    return _full_coefficients(_per_component(chol, len(means)), means)


def _tied_scatter(first: np.ndarray, second: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return _full_scatter(first, second, offsets).sum(axis=0)


def _tied_spread(weight: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return (delta * weight[:, None]).T @ delta


def _tied_covariances(
    scatter: np.ndarray, counts: np.ndarray, d: int, reg_covar: float
) -> np.ndarray:
    covariances = scatter / counts.sum()
    covariances.flat[:: d + 1] += reg_covar
    return covariances


def _tied_expected_terms(
    chol: np.ndarray, delta: np.ndarray, scatter: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    log_det, y = _cholesky_terms(_per_component(chol, len(counts)), delta)
    trace = np.zeros(len(counts))
    trace[0] = np.sum((chol @ chol.T) * scatter)  # the pooled scatter, counted once
    return log_det, np.square(y).sum(axis=1) * counts, trace


def _tied_draw(
    rng: np.random.RandomState, means: np.ndarray, covariance: np.ndarray, counts: np.ndarray
) -> list[np.ndarray]:
    return _draw_normal(rng, means, [covariance] * len(means), counts)


def _tied_restart_covariance(
    covariance: np.ndarray, component: int, counts: np.ndarray
) -> np.ndarray:
    return covariance  # shared by every component: nothing of its own to restart


def _tied_precision_cholesky(
    covariance: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    overall = _overall_variance(np.diagonal(covariance, axis1=-2, axis2=-1))
    chol, notes = _factor_matrices(covariance[None], overall, "the tied covariance")
    return covariance, chol[0], notes


def _tied_from_precisions(precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    covariances, chol = _matrices_from_precisions(precision[None])
    return covariances[0], chol[0]


# -- diag: one variance per component and feature (K, D) ---------------------------------------


def _diag_coefficients(chol: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, ...]:
    precisions = np.square(chol)
    linear = precisions * means
    log_det = np.log(chol).sum(axis=1)
    return linear, -0.5 * precisions, log_det, (linear * means).sum(axis=1)


def _diag_scatter(first: np.ndarray, second: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return second - first * offsets


def _diag_spread(weight: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return weight[:, None] * np.square(delta)


def _diag_covariances(
    scatter: np.ndarray, counts: np.ndarray, d: int, reg_covar: float
) -> np.ndarray:
    return scatter / counts[:, None] + reg_covar


def _diag_expected_terms(
    chol: np.ndarray, delta: np.ndarray, scatter: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    precisions = np.square(chol)
    log_det = np.log(chol).sum(axis=1)
    spread = (precisions * np.square(delta)).sum(axis=1) * counts
    return log_det, spread, (precisions * scatter).sum(axis=1)


# -- spherical: one variance per component (K,) ------------------------------------------------


def _spherical_coefficients(chol: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, ...]:
    precisions = np.square(chol)
    linear = precisions[:, None] * means
    log_det = means.shape[1] * np.log(chol)
    mahalanobis = precisions * np.square(means).sum(axis=1)
    return linear, -0.5 * precisions[:, None], log_det, mahalanobis


def _spherical_scatter(first: np.ndarray, second: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return second[:, 0] - (first * offsets).sum(axis=1)


def _spherical_spread(weight: np.ndarray, delta: np.ndarray) -> np.ndarray:
    return weight * np.square(delta).sum(axis=1)


def _spherical_covariances(
    scatter: np.ndarray, counts: np.ndarray, d: int, reg_covar: float
) -> np.ndarray:
    return scatter / (counts * d) + reg_covar


def _spherical_expected_terms(
    chol: np.ndarray, delta: np.ndarray, scatter: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    precisions = np.square(chol)
    log_det = delta.shape[1] * np.log(chol)
    spread = precisions * np.square(delta).sum(axis=1) * counts
    return log_det, spread, precisions * scatter


# -- the table ---------------------------------------------------------------------------------

_KERNELS = {
    "full": _Kernels(
        feature_key="quadratic",
        n_second_order=lambda d: d * (d + 1) // 2,
        second_order=_products_features,
        second_order_code=0,
        coefficients=_full_coefficients,
        scatter=_full_scatter,
        spread=_full_spread,
        covariances=_full_covariances,
        expected_terms=_full_expected_terms,
        min_count=lambda d: d + 1.0,
        n_covariance_parameters=lambda k, d: k * d * (d + 1) // 2,
        draw=_draw_normal,
        restart_covariance=_pool_covariance,
        precision_cholesky=_full_precision_cholesky,
        from_precisions=_matrices_from_precisions,
    ),
    "tied": _Kernels(
        feature_key="quadratic",
        n_second_order=lambda d: d * (d + 1) // 2,
        second_order=_products_features,
        second_order_code=0,
        coefficients=_tied_coefficients,
        scatter=_tied_scatter,
        spread=_tied_spread,
        covariances=_tied_covariances,
        expected_terms=_tied_expected_terms,
        min_count=lambda d: 1.0,
        n_covariance_parameters=lambda k, d: d * (d + 1) // 2,
        draw=_tied_draw,
        restart_covariance=_tied_restart_covariance,
        precision_cholesky=_tied_precision_cholesky,
        from_precisions=_tied_from_precisions,
    ),
    "diag": _Kernels(
        feature_key="diag",
        n_second_order=lambda d: d,
        second_order=_squares_features,
        second_order_code=1,
        coefficients=_diag_coefficients,
        scatter=_diag_scatter,
        spread=_diag_spread,
        covariances=_diag_covariances,
        expected_terms=_diag_expected_terms,
        min_count=lambda d: 2.0,
        n_covariance_parameters=lambda k, d: k * d,
        draw=_draw_independent,
        restart_covariance=_pool_covariance,
        precision_cholesky=_variances_precision_cholesky,
        from_precisions=_variances_from_precisions,
    ),
    "spherical": _Kernels(
        feature_key="spherical",
        n_second_order=lambda d: 1,
        second_order=_norm_feature,
        second_order_code=2,
        coefficients=_spherical_coefficients,
        scatter=_spherical_scatter,
        spread=_spherical_spread,
        covariances=_spherical_covariances,
        expected_terms=_spherical_expected_terms,
        min_count=lambda d: 2.0,
        n_covariance_parameters=lambda k, d: k,
        draw=_draw_independent,
        restart_covariance=_pool_covariance,
        precision_cholesky=_variances_precision_cholesky,
        from_precisions=_variances_from_precisions,
    ),
}
assert tuple(_KERNELS) == COVARIANCE_TYPES
