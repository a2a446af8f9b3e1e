"""Gaussian components under a Gaussian–Wishart posterior: variational Bayes as EM.

Mean-field variational Bayes for a Gaussian mixture (Bishop 2006, §10.2; Blei & Jordan 2006
for Dirichlet-process weights) alternates two updates that have the shape of EM:

* the *E-step* computes responsibilities from the expected log-weights and expected
  log-densities under the variational posterior ``q(π) q(μ, Λ)``,

      log ρ_nk = E[log π_k] + ½ E[log|Λ_k|] − D/2 log 2π − ½ D/β_k
                 − ½ ν_k (x_n − m_k)ᵀ W_k (x_n − m_k),

  which is a Gaussian log-density in ``x`` with precision ``ν_k W_k`` plus a per-component
  constant, hence linear in the expanded features of :mod:`streamem.families.gaussian`: the
  same chunk kernel, statistics, merge and tree-reduce serve it;
* the *M-step* is the conjugate posterior update from the merged statistics (counts, means,
  centred scatter).

Parameters follow :class:`sklearn.mixture.BayesianGaussianMixture`: ``covariances`` are
``W_k⁻¹ / ν_k`` (the inverse of ``E[Λ_k]``), ``precisions_cholesky`` their inverse's Cholesky
factor, and the four covariance types restrict ``W`` as scikit-learn does (``tied`` shares one
posterior between the components, ``diag`` and ``spherical`` keep ``W`` diagonal or a multiple
of the identity). From the same statistics both give the same posterior.

The mixture weights of the :class:`~streamem.families._base.Mixture` are the posterior means
of ``π`` (scikit-learn's ``weights_``); the coefficients carry ``E[log π_k] − log w_k`` so that
the kernel's ``log w_k + A F + b`` is exactly ``log ρ``. :meth:`BayesianGaussian.kl_divergence`
gives ``KL(q(θ) ‖ p(θ))`` with every constant, so the drivers report the exact evidence lower
bound (ELBO).

References
----------
C. M. Bishop (2006), *Pattern Recognition and Machine Learning*, ch. 10, Springer.
D. M. Blei and M. I. Jordan (2006), "Variational inference for Dirichlet process mixtures",
Bayesian Analysis 1(1).
M. D. Hoffman, D. M. Blei, C. Wang and J. Paisley (2013), "Stochastic variational
inference", JMLR 14.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import digamma, gammaln

from . import _variational
from ._base import COUNT_EPS
from ._variational import WEIGHT_PRIOR_TYPES
from .gaussian import (
    COVARIANCE_TYPES,
    Gaussian,
    GaussianParams,
    GaussianStats,
    precision_cholesky,
)

LOG_PI = np.log(np.pi)
LOG_2 = np.log(2.0)


class GaussianWishartPrior(NamedTuple):
    """The prior: weights, and a Gaussian–Wishart ``p(μ, Λ)`` for each component.

    ``covariance`` is ``W₀⁻¹`` shaped by the covariance type: (D, D) for ``full`` and
    ``tied``, (D,) for ``diag``, a float for ``spherical`` (scikit-learn's
    ``covariance_prior_``).
    """

    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: np.ndarray | float


class BayesianGaussianParams(NamedTuple):
    """The variational posterior of K components.

    ``weight_concentration`` is ``α`` (K,) of a Dirichlet, or the two Beta parameters (2, K)
    of the Dirichlet process's sticks; ``degrees_of_freedom`` is (K,) for every covariance
    type (equal entries for ``tied``); ``covariances`` and ``precisions_cholesky`` are
    shaped as in :class:`~streamem.families.gaussian.GaussianParams`.
    """

    weight_concentration: np.ndarray
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


@dataclass(frozen=True, eq=False)
class BayesianGaussian:
    """Gaussian components with a Gaussian–Wishart posterior and Dirichlet(-process) weights.

    Parameters
    ----------
    prior : GaussianWishartPrior
        The prior (data-dependent defaults are computed by the estimator).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
        As in scikit-learn.
    reg_covar : float
        Added to the diagonal of each component's scatter per unit of responsibility, as
        scikit-learn does.
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}
        The prior of the weights: stick-breaking (truncated at K) or a symmetric Dirichlet.
    data_weight : float or None
        The row weight the statistics stand for in the posterior update. None: as given (batch
        and incremental VB). Stochastic variational inference keeps statistics per unit of
        row weight and sets this to the size of the data (Hoffman et al. 2013).
    missing : {'error', 'drop'}
        What NaN entries mean: refused, or their rows left out (the kernel does both; the
        variational E-step does not marginalise missing entries).
    """

    prior: GaussianWishartPrior
    covariance_type: str = "full"
    reg_covar: float = 1e-6
    weight_concentration_prior_type: str = "dirichlet_process"
    data_weight: float | None = None
    missing: str = "error"

    def __post_init__(self) -> None:
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}, got {self.covariance_type!r}"
            )
        if self.weight_concentration_prior_type not in WEIGHT_PRIOR_TYPES:
            raise ValueError(
                f"weight_concentration_prior_type must be one of {WEIGHT_PRIOR_TYPES}, got "
                f"{self.weight_concentration_prior_type!r}"
            )

    @property
    def _gaussian(self) -> Gaussian:
        return Gaussian(self.covariance_type, self.reg_covar)

    @property
    def feature_key(self) -> str:
        return self._gaussian.feature_key

    @property
    def compiled_features(self) -> int:
        return self._gaussian.compiled_features

    def with_data_weight(self, data_weight: float | None) -> BayesianGaussian:
        """This family with another ``data_weight``."""
        return dataclasses.replace(self, data_weight=data_weight)

    # -- E-step: the Gaussian kernel's features and statistics ---------------------------------

    def reference(self, X: np.ndarray) -> np.ndarray:
        return self._gaussian.reference(X)

    def features(
        self, X: np.ndarray, reference: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        return self._gaussian.features(X, reference, out)

    def coefficients(
        self, params: BayesianGaussianParams, reference: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        A, b = self._gaussian.coefficients(_gaussian_params(params), reference)
        return A, b + self._log_prob_shift(params)

    def base_log_measure(self, X: np.ndarray) -> None:
        return None

    def check_block(self, X: np.ndarray) -> None:
        return None

    def finalize(
        self, counts: np.ndarray, sums: np.ndarray, reference: np.ndarray
    ) -> GaussianStats:
        return self._gaussian.finalize(counts, sums, reference)

    def merge(self, a: GaussianStats, b: GaussianStats) -> GaussianStats:
        return self._gaussian.merge(a, b)

    def subtract(self, total: GaussianStats, part: GaussianStats) -> GaussianStats:
        return self._gaussian.subtract(total, part)

    def scale(self, stats: GaussianStats, factor: float) -> GaussianStats:
        return self._gaussian.scale(stats, factor)

    def _log_prob_shift(self, params: BayesianGaussianParams) -> np.ndarray:
        """What turns the Gaussian log-density with precision ``νW`` and log weight
        ``log w_k`` into ``log ρ_k``: ``½ (E[log|Λ|] − log|νW|) − ½ D/β + E[log π] − log w``."""
        d = params.means.shape[1]
        nu = params.degrees_of_freedom
        log_lambda = _expected_log_det_offset(nu, d)  # E[log|Λ|] − log|W|
        shift = 0.5 * (log_lambda - d * np.log(nu) - d / params.mean_precision)
        return shift + self.expected_log_weights(params) - _log(self.mixture_weights(params))

    # -- the variational hooks --------------------------------------------------------------------

    def expected_log_weights(self, params: BayesianGaussianParams) -> np.ndarray:
        """``E[log π_k]`` under the posterior of the weights (K,)."""
        return _variational.expected_log_weights(
            params.weight_concentration, self.weight_concentration_prior_type
        )

    def mixture_weights(self, params: BayesianGaussianParams) -> np.ndarray:
        """Posterior means of the weights, normalised (scikit-learn's ``weights_``)."""
        return _variational.posterior_mean_weights(
            params.weight_concentration, self.weight_concentration_prior_type
        )

    def elbo_penalty(self, params: BayesianGaussianParams) -> float:
        """What the ELBO subtracts from ``E_q[log p(X, Z | θ)] + H(q(Z))`` (both of which the
        drivers get from the statistics and the E-step): ``KL(q(θ) ‖ p(θ))`` with every
        constant (Bishop 2006, eq. 10.70–10.77), and ``½ reg_covar E[tr Λ_k]`` per unit of
        responsibility, since the update counts ``reg_covar`` as scatter (as scikit-learn's,
        whose ``_compute_lower_bound`` this equals up to a constant).

        Only parameters are needed: the responsibility mass of component ``k`` is
        ``β_k − β₀``.
        """
        prior, d = self.prior, params.means.shape[1]
        nu, beta = params.degrees_of_freedom, params.mean_precision
        beta0, nu0 = prior.mean_precision, prior.degrees_of_freedom
        log_det_chol, quadratic, trace, precision_trace = _precision_terms(
            self.covariance_type, params.precisions_cholesky, params.means - prior.mean, prior
        )
        # with P = L Lᵀ = ν W: log|W| = 2 log|L| − D log ν, ν tr(W₀⁻¹W) = tr(W₀⁻¹P), ...
        log_det_w = 2 * log_det_chol - d * np.log(nu)
        log_lambda = _expected_log_det_offset(nu, d) + log_det_w
        log_det_w0 = -_log_det_prior_covariance(self.covariance_type, prior.covariance, d)
        elbo = (
            0.5 * d * (np.log(beta0 / beta) + 1.0 - beta0 / beta)
            - 0.5 * beta0 * quadratic
            - 0.5 * trace
            + 0.5 * nu * d
            + 0.5 * (nu0 - nu) * log_lambda
            + _log_wishart_normaliser(log_det_w0, nu0, d)
            - _log_wishart_normaliser(log_det_w, nu, d)
        )
        regularisation = 0.5 * self.reg_covar * ((beta - beta0) * precision_trace).sum()
        return float(self._weights_kl(params) - elbo.sum() + regularisation)

    def _weights_kl(self, params: BayesianGaussianParams) -> float:
        return _variational.weights_kl(
            params.weight_concentration,
            self.prior.weight_concentration,
            self.weight_concentration_prior_type,
        )

    # -- M-step: the conjugate update ---------------------------------------------------------

    def m_step(self, stats: GaussianStats) -> tuple[BayesianGaussianParams, list[str]]:
        """The posterior given the statistics (Bishop 2006, eq. 10.58–10.63).

        As scikit-learn: ``N_k`` gets ``10 ε`` added, and the scatter of each component
        ``reg_covar`` per unit of ``N_k`` on its diagonal.
        """
        if self.data_weight is not None:
            total = float(stats.counts.sum())
            if total > 0:
                stats = self.scale(stats, self.data_weight / total)
        counts, means, scatter = stats
        prior, d = self.prior, means.shape[1]
        k = counts.shape[0]
        nk = counts + COUNT_EPS
        beta0 = prior.mean_precision
        beta = beta0 + nk
        new_means = (beta0 * prior.mean + counts[:, None] * means) / beta[:, None]
        # scikit-learn's x̄_k − m₀ with x̄_k = Σ r x / (N_k + 10ε), formed without cancellation
        diff = (means - prior.mean) * (counts / nk)[:, None] - prior.mean * (COUNT_EPS / nk)[
            :, None
        ]
        spread = nk * beta0 / beta  # weight of (x̄ − m₀)(x̄ − m₀)ᵀ
        reg = self.reg_covar
        kind = self.covariance_type
        if kind == "full":
            nu = prior.degrees_of_freedom + nk
            inverse_scale = (
                prior.covariance
                + scatter
                + spread[:, None, None] * (diff[:, :, None] * diff[:, None, :])
            )
            inverse_scale[:, np.arange(d), np.arange(d)] += (nk * reg)[:, None]
            covariances = inverse_scale / nu[:, None, None]
        elif kind == "tied":
            nu = np.full(k, prior.degrees_of_freedom + nk.sum() / k)
            inverse_scale = prior.covariance + (scatter + (spread * diff.T) @ diff) / k
            inverse_scale.flat[:: d + 1] += nk.sum() * reg / k
            covariances = inverse_scale / nu[0]
        elif kind == "diag":
            nu = prior.degrees_of_freedom + nk
            inverse_scale = prior.covariance + scatter + nk[:, None] * reg
            inverse_scale += spread[:, None] * np.square(diff)
            covariances = inverse_scale / nu[:, None]
        else:
            nu = prior.degrees_of_freedom + nk
            inverse_scale = prior.covariance + scatter / d + nk * reg
            inverse_scale += spread * np.square(diff).mean(axis=1)
            covariances = inverse_scale / nu
        covariances, chol, notes = precision_cholesky(covariances, kind)
        params = BayesianGaussianParams(
            self._weight_concentration(nk), beta, new_means, nu, covariances, chol
        )
        return params, notes

    def _weight_concentration(self, nk: np.ndarray) -> np.ndarray:
        return _variational.weight_concentration(
            nk, self.prior.weight_concentration, self.weight_concentration_prior_type
        )

    def expected_log_prob(
        self, stats: GaussianStats, params: BayesianGaussianParams
    ) -> np.ndarray:
        """``Σ r (log ρ_k(x) − log w_k)`` for each component, from statistics alone (K,)."""
        gaussian = self._gaussian.expected_log_prob(stats, _gaussian_params(params))
        return gaussian + stats.counts * self._log_prob_shift(params)

    def min_count(self, n_features: int) -> float:
        """The posterior is defined without data (it is the prior): no burn-in is needed."""
        return 0.0

    # -- everything else -----------------------------------------------------------------------

    def n_parameters(self, params: BayesianGaussianParams) -> int:
        return self._gaussian.n_parameters(_gaussian_params(params))

    def sample(
        self, params: BayesianGaussianParams, counts: np.ndarray, rng: np.random.RandomState
    ) -> np.ndarray:
        # from the Gaussians with the posterior means and E[Λ]⁻¹, as scikit-learn samples
        return self._gaussian.sample(_gaussian_params(params), counts, rng)

    def reseed(
        self,
        params: BayesianGaussianParams,
        component: int,
        row: np.ndarray,
        stats: GaussianStats,
    ) -> BayesianGaussianParams:
        """Unchanged: an empty component's posterior is its prior, and emptying components is
        how variational Bayes drops the ones the data do not need (the drivers never call
        this for variational families)."""
        return params


def _gaussian_params(params: BayesianGaussianParams) -> GaussianParams:
    return GaussianParams(params.means, params.covariances, params.precisions_cholesky)


def _log(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(values)


def _expected_log_det_offset(nu: np.ndarray, d: int) -> np.ndarray:
    """``E[log|Λ|] − log|W|`` for ``Λ ~ Wishart(W, ν)``: ``Σᵢ ψ((ν − i)/2) + D log 2``."""
    return digamma(0.5 * (nu - np.arange(d)[:, None])).sum(axis=0) + d * LOG_2


def _log_wishart_normaliser(log_det_w: np.ndarray, nu: np.ndarray, d: int) -> np.ndarray:
    """``log B(W, ν)`` of the Wishart density (Bishop 2006, eq. B.79)."""
    return (
        -0.5 * nu * log_det_w
        - 0.5 * nu * d * LOG_2
        - 0.25 * d * (d - 1) * LOG_PI
        - gammaln(0.5 * (np.asarray(nu) - np.arange(d)[:, None])).sum(axis=0)
    )


def _log_det_prior_covariance(kind: str, covariance: np.ndarray | float, d: int) -> float:
    """``log|W₀⁻¹|`` from the prior covariance as scikit-learn shapes it."""
    if kind in ("full", "tied"):
        return float(np.linalg.slogdet(covariance)[1])
    if kind == "diag":
        return float(np.log(covariance).sum())
    return float(d * np.log(covariance))


def _precision_terms(
    kind: str, chol: np.ndarray, vectors: np.ndarray, prior: GaussianWishartPrior
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For ``P_k = L_k L_kᵀ``: ``log|L_k|``, ``v_kᵀ P_k v_k``, ``tr(W₀⁻¹ P_k)`` and ``tr P_k``
    (K,) each."""
    k, d = vectors.shape
    covariance = prior.covariance
    if kind in ("full", "tied"):
        chol = np.broadcast_to(chol, (k, d, d)) if kind == "tied" else chol
        log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        y = np.einsum("kji,kj->ki", chol, vectors)  # Lᵀ v
        precisions = chol @ chol.transpose(0, 2, 1)
        trace = np.einsum("kij,ij->k", precisions, covariance)
        own_trace = np.einsum("kii->k", precisions)
        return log_det, np.square(y).sum(axis=1), trace, own_trace
    precisions = np.square(chol)
    if kind == "diag":
        log_det = np.log(chol).sum(axis=1)
        quadratic = (precisions * np.square(vectors)).sum(axis=1)
        return log_det, quadratic, precisions @ covariance, precisions.sum(axis=1)
    log_det = d * np.log(chol)
    quadratic = precisions * np.square(vectors).sum(axis=1)
    return log_det, quadratic, precisions * covariance * d, precisions * d
