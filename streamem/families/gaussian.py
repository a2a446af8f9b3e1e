"""Gaussian components with full, tied, diagonal or spherical covariances.

Features are built on ``x' = x − c`` with ``c`` the chunk's column means:

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import linalg

from ._base import COUNT_EPS

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LOG_2PI = np.log(2 * np.pi)


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
class Gaussian:
    """Gaussian components; ``covariance_type`` as in scikit-learn, ``reg_covar`` ≥ 0."""

    covariance_type: str = "full"
    reg_covar: float = 1e-6

    @property
    def feature_key(self) -> str:
        return {"full": "quadratic", "tied": "quadratic"}.get(
            self.covariance_type, self.covariance_type
        )

    # -- E-step ------------------------------------------------------------------------------

    def reference(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 0:
            return np.zeros(X.shape[1])
        with np.errstate(invalid="ignore", over="ignore"):
            reference = X.mean(axis=0, dtype=np.float64)
        if not np.all(np.isfinite(reference)):
            # the kernel reports the non-finite rows in their own block; centre on the others
            finite = np.isfinite(X).all(axis=1)
            reference = X[finite].mean(axis=0, dtype=np.float64) if finite.any() else 0 * reference
            reference = np.nan_to_num(reference, nan=0.0, posinf=0.0, neginf=0.0)
        return reference

    def features(
        self, X: np.ndarray, reference: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        # feature-major: every write below is one contiguous row of B values
        n, d = X.shape
        kind = self.feature_key
        size = {"quadratic": d + d * (d + 1) // 2, "diag": 2 * d}.get(kind, d + 1)
        F = np.empty((size, n)) if out is None else out
        centred = F[:d]
        np.subtract(X.T, reference[:, None], out=centred)
        if kind == "quadratic":
            start = d
            for i in range(d):  # row i of the upper triangle: x_i * x_{i:}
                np.multiply(centred[i], centred[i:], out=F[start : start + d - i])
                start += d - i
        elif kind == "diag":
            np.square(centred, out=F[d:])
        else:
            np.einsum("ij,ij->j", centred, centred, out=F[d])
        return F

    def coefficients(
        self, params: GaussianParams, reference: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        means = params.means - reference
        chol = params.precisions_cholesky
        k, d = means.shape
        kind = self.covariance_type
        if kind in ("full", "tied"):
            chol = chol if kind == "full" else np.broadcast_to(chol, (k, d, d))
            # y = Lᵀ μ', so μ'ᵀPμ' = ‖y‖² and Pμ' = L y
            y = np.einsum("kji,kj->ki", chol, means)
            linear = np.einsum("kij,kj->ki", chol, y)
            precisions = chol @ chol.transpose(0, 2, 1)
            iu0, iu1 = np.triu_indices(d)
            quadratic = precisions[:, iu0, iu1] * np.where(iu0 == iu1, -0.5, -1.0)
            log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            mahalanobis = np.square(y).sum(axis=1)
        elif kind == "diag":
            precisions = np.square(chol)
            linear = precisions * means
            quadratic = -0.5 * precisions
            log_det = np.log(chol).sum(axis=1)
            mahalanobis = (linear * means).sum(axis=1)
        else:
            precisions = np.square(chol)
            linear = precisions[:, None] * means
            quadratic = -0.5 * precisions[:, None]
            log_det = d * np.log(chol)
            mahalanobis = precisions * np.square(means).sum(axis=1)
        A = np.concatenate([linear, quadratic], axis=1)
        b = log_det - 0.5 * (d * LOG_2PI + mahalanobis)
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
        kind = self.covariance_type
        if kind in ("full", "tied"):
            iu0, iu1 = np.triu_indices(d)
            moments = np.zeros((counts.shape[0], d, d))
            moments[:, iu0, iu1] = second
            moments[:, iu1, iu0] = second
            scatter = moments - first[:, :, None] * offsets[:, None, :]
            if kind == "tied":
                scatter = scatter.sum(axis=0)
        elif kind == "diag":
            scatter = second - first * offsets
        else:
            scatter = second[:, 0] - (first * offsets).sum(axis=1)
        return GaussianStats(counts, reference + offsets, scatter)

    def _spread(self, weight: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """``Σ weight δδᵀ`` in the shape of this covariance type's scatter."""
        kind = self.covariance_type
        if kind == "full":
            return weight[:, None, None] * delta[:, :, None] * delta[:, None, :]
        if kind == "tied":
            return (delta * weight[:, None]).T @ delta
        if kind == "diag":
            return weight[:, None] * np.square(delta)
        return weight * np.square(delta).sum(axis=1)

    def merge(self, a: GaussianStats, b: GaussianStats) -> GaussianStats:
        counts = a.counts + b.counts
        safe = np.where(counts > 0, counts, 1.0)
        delta = b.means - a.means
        means = a.means + delta * (b.counts / safe)[:, None]
        scatter = a.scatter + b.scatter + self._spread(a.counts * b.counts / safe, delta)
        return GaussianStats(counts, means, scatter)

    def subtract(self, total: GaussianStats, part: GaussianStats) -> GaussianStats:
        counts = np.maximum(total.counts - part.counts, 0.0)
        safe = np.where(counts > 0, counts, 1.0)
        means = total.means + (total.means - part.means) * (part.counts / safe)[:, None]
        delta = part.means - means
        weight = counts * part.counts / np.where(total.counts > 0, total.counts, 1.0)
        scatter = total.scatter - part.scatter - self._spread(weight, delta)
        return GaussianStats(counts, means, scatter)

    def scale(self, stats: GaussianStats, factor: float) -> GaussianStats:
        return GaussianStats(stats.counts * factor, stats.means, stats.scatter * factor)

    # -- M-step ------------------------------------------------------------------------------

    def m_step(self, stats: GaussianStats) -> tuple[GaussianParams, list[str]]:
        counts = stats.counts + COUNT_EPS
        d = stats.means.shape[1]
        kind = self.covariance_type
        if kind == "full":
            covariances = stats.scatter / counts[:, None, None]
            covariances[:, np.arange(d), np.arange(d)] += self.reg_covar
        elif kind == "tied":
            covariances = stats.scatter / counts.sum()
            covariances.flat[:: d + 1] += self.reg_covar
        elif kind == "diag":
            covariances = stats.scatter / counts[:, None] + self.reg_covar
        else:
            covariances = stats.scatter / (counts * d) + self.reg_covar
        covariances, chol, notes = precision_cholesky(covariances, kind)
        return GaussianParams(stats.means.copy(), covariances, chol), notes

    def expected_log_prob(self, stats: GaussianStats, params: GaussianParams) -> np.ndarray:
        """``Σ r log p_k(x)`` for each component, from statistics alone (K,).

        With ``m`` and ``S`` the statistics' mean and scatter and ``P = L Lᵀ``:
        ``n (log|L| − D/2 log 2π) − ½ [tr(P S) + n (m − μ)ᵀ P (m − μ)]``.
        """
        counts, means, scatter = stats
        chol = params.precisions_cholesky
        d = means.shape[1]
        delta = means - params.means
        kind = self.covariance_type
        if kind in ("full", "tied"):
            k = len(counts)
            chol = chol if kind == "full" else np.broadcast_to(chol, (k, d, d))
            log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            y = np.einsum("kji,kj->ki", chol, delta)  # Lᵀ(m − μ)
            spread = np.square(y).sum(axis=1) * counts
            if kind == "full":
                trace = np.einsum("kij,kji->k", chol @ chol.transpose(0, 2, 1), scatter)
            else:  # the pooled scatter, counted once
                trace = np.zeros(k)
                trace[0] = np.sum((chol[0] @ chol[0].T) * scatter)
        elif kind == "diag":
            precisions = np.square(chol)
            log_det = np.log(chol).sum(axis=1)
            spread = (precisions * np.square(delta)).sum(axis=1) * counts
            trace = (precisions * scatter).sum(axis=1)
        else:
            precisions = np.square(chol)
            log_det = d * np.log(chol)
            spread = precisions * np.square(delta).sum(axis=1) * counts
            trace = precisions * scatter
        return counts * (log_det - 0.5 * d * LOG_2PI) - 0.5 * (trace + spread)

    def min_count(self, n_features: int) -> float:
        """Responsibility mass a component needs before its M-step is well defined."""
        return {"full": n_features + 1.0, "tied": 1.0}.get(self.covariance_type, 2.0)

    # -- everything else ---------------------------------------------------------------------

    def n_parameters(self, params: GaussianParams) -> int:
        k, d = params.means.shape
        covariance = {
            "full": k * d * (d + 1) // 2,
            "tied": d * (d + 1) // 2,
            "diag": k * d,
            "spherical": k,
        }[self.covariance_type]
        return covariance + k * d

    def sample(
        self, params: GaussianParams, counts: np.ndarray, rng: np.random.RandomState
    ) -> np.ndarray:
        # the same draws, in the same order, as sklearn.mixture.GaussianMixture.sample
        kind = self.covariance_type
        d = params.means.shape[1]
        if kind in ("full", "tied"):
            covariances = (
                params.covariances if kind == "full" else [params.covariances] * len(params.means)
            )
            parts = [
                rng.multivariate_normal(mean, covariance, int(n))
                for mean, covariance, n in zip(params.means, covariances, counts, strict=True)
            ]
        else:
            parts = [
                mean + rng.standard_normal(size=(int(n), d)) * np.sqrt(covariance)
                for mean, covariance, n in zip(
                    params.means, params.covariances, counts, strict=True
                )
            ]
        return np.vstack(parts)

    def reseed(
        self, params: GaussianParams, component: int, row: np.ndarray, stats: GaussianStats
    ) -> GaussianParams:
        means = params.means.copy()
        means[component] = row
        covariances = params.covariances.copy()
        if self.covariance_type != "tied":
            # the pooled covariance of the other components: wide enough to attract data
            others = np.arange(len(means)) != component
            weights = stats.counts[others] + COUNT_EPS
            covariances[component] = np.tensordot(
                weights / weights.sum(), covariances[others], axes=1
            )
        covariances, chol, _ = precision_cholesky(covariances, self.covariance_type)
        return GaussianParams(means, covariances, chol)


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
    notes: list[str] = []
    covariances = np.array(covariances, dtype=np.float64)
    if not np.all(np.isfinite(covariances)):
        raise FloatingPointError(
            "a covariance matrix is not finite; the data may contain values too large to square "
            "in float64 — rescale the features"
        )
    # jitter relative to the spread of the components (a component may have none at all)
    diagonals = (
        covariances
        if covariance_type in ("diag", "spherical")
        else np.diagonal(covariances, axis1=-2, axis2=-1)
    )
    overall = float(np.abs(diagonals).mean()) if diagonals.size else 0.0
    if covariance_type in ("diag", "spherical"):
        bad = covariances <= 0
        if bad.any():
            if overall == 0.0:
                raise ValueError(_ZERO_SPREAD)
            covariances[bad] = overall * 1e-10
            components = np.unique(np.nonzero(bad)[0]) if bad.ndim > 1 else np.nonzero(bad)[0]
            notes += [
                f"component {k}: variance was not positive after reg_covar; set to "
                f"{overall * 1e-10:.3g}. Increase reg_covar or remove constant features."
                for k in components
            ]
        return covariances, 1.0 / np.sqrt(covariances), notes

    matrices = covariances[None] if covariance_type == "tied" else covariances
    chol = np.empty_like(matrices)
    d = matrices.shape[-1]
    identity = np.eye(d)
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
            covariance += jitter * identity  # a view: repairs `covariances` too
            name = "the tied covariance" if covariance_type == "tied" else f"component {k}"
            notes.append(
                f"{name}: covariance was not positive definite after reg_covar; added "
                f"{jitter:.3g} to its diagonal. Increase reg_covar, reduce n_components, or "
                "remove collinear features."
            )
        chol[k] = linalg.solve_triangular(factor, identity, lower=True).T
    return covariances, (chol[0] if covariance_type == "tied" else chol), notes


_ZERO_SPREAD = (
    "every component's covariance is zero (each holds a single distinct point) and reg_covar "
    "is 0; set reg_covar > 0 (the default is 1e-6) or use init_params='kmeans'."
)


def precision_cholesky_from_precisions(
    precisions: np.ndarray, covariance_type: str
) -> tuple[np.ndarray, np.ndarray]:
    """Covariances and precision Cholesky factors from user precisions, as scikit-learn does."""
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return 1.0 / precisions, np.sqrt(precisions)
    matrices = precisions[None] if covariance_type == "tied" else precisions
    # an upper-triangular L with P = L Lᵀ, from the Cholesky factor of P with rows and
    # columns reversed (scikit-learn's construction, so both libraries start identically)
    chol = np.array([_flip(linalg.cholesky(_flip(p), lower=True)) for p in matrices])
    covariances = np.array([linalg.inv(p) for p in matrices])
    if covariance_type == "tied":
        return covariances[0], chol[0]
    return covariances, chol


def _flip(matrix: np.ndarray) -> np.ndarray:
    return matrix[::-1, ::-1]
