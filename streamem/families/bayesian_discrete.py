"""Discrete components under conjugate posteriors: variational Bayes for the count families.

Every count family has a conjugate prior: Beta for the probabilities of Bernoulli and
binomial features, Gamma for Poisson rates, Dirichlet for multinomial and categorical
probabilities. Mean-field variational Bayes with Dirichlet(-process) weights (Bishop 2006,
§10.2; Blei & Jordan 2006) then has the shape of EM, exactly as for the Gaussian
(:mod:`streamem.families.bayesian_gaussian`):

* the *E-step* uses the expected log-parameters under the posterior, which keep the
  log-density linear in the plain family's features:

  - Beta(a, b): ``E[log p] = ψ(a) − ψ(a + b)``, ``E[log(1 − p)] = ψ(b) − ψ(a + b)``, so a
    Bernoulli or binomial component has ``A = ψ(a) − ψ(b)`` and ``b = n Σ_d E[log(1 − p_d)]``;
  - Gamma(shape α, rate β): ``E[log λ] = ψ(α) − log β`` and ``E[λ] = α / β``, so
    ``A = ψ(α) − log β`` and ``b = −Σ_d α_d / β_d``;
  - Dirichlet(α): ``E[log p_c] = ψ(α_c) − ψ(Σ_c α_c)``, so ``A = E[log p]`` and ``b = 0``;

  plus ``E[log π_k]``: the same chunk kernel, statistics, merge and tree-reduce serve it;
* the *M-step* is the conjugate update from the merged statistics: ``a = a₀ + Σ r x``,
  ``b = b₀ + Σ r (n − x)``; ``α = α₀ + Σ r x``, ``β = β₀ + Σ r``; ``α = α₀ + Σ r x`` (one-hot
  for categorical labels).

:meth:`elbo_penalty` is ``KL(q(θ) ‖ p(θ))`` with every constant, so the drivers report the
exact evidence lower bound; the base measure ``h(x)`` (log-factorials, binomial and
multinomial coefficients) enters through the kernel's log-likelihood, as for the plain
families. The mixture weights of a :class:`~streamem.families._base.Mixture` are the posterior
means of ``π``; the coefficients carry ``E[log π_k] − log w_k``.

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
from typing import Any, NamedTuple

import numpy as np
from scipy.special import betaln, digamma, gammaln

from . import _variational
from ._variational import WEIGHT_PRIOR_TYPES
from .bernoulli import Bernoulli, BernoulliParams
from .binomial import Binomial, BinomialParams
from .multinomial import Multinomial, MultinomialParams
from .poisson import Poisson, PoissonParams

# -- priors and posteriors ------------------------------------------------------------------


class BetaPrior(NamedTuple):
    """Weights, and ``Beta(successes, failures)`` for every probability (floats or (D,))."""

    weight_concentration: float
    successes: np.ndarray
    failures: np.ndarray


class GammaPrior(NamedTuple):
    """Weights, and ``Gamma(shape, inverse_scale)`` for every rate (floats or (D,))."""

    weight_concentration: float
    shape: np.ndarray
    inverse_scale: np.ndarray


class DirichletPrior(NamedTuple):
    """Weights, and ``Dirichlet(concentration)`` for every distribution over categories
    (a float, (C,), or (D, C) for categorical labels)."""

    weight_concentration: float
    concentration: np.ndarray


class BetaParams(NamedTuple):
    """The posterior of K components: the weights' concentration (K,) or (2, K) and the Beta
    parameters of every probability, (K, D) each."""

    weight_concentration: np.ndarray
    success_concentration: np.ndarray
    failure_concentration: np.ndarray


class GammaParams(NamedTuple):
    """The posterior of K components: the weights' concentration and the Gamma shape and
    rate (inverse scale) of every rate, (K, D) each."""

    weight_concentration: np.ndarray
    shape: np.ndarray
    inverse_scale: np.ndarray


class DirichletParams(NamedTuple):
    """The posterior of K components: the weights' concentration and the Dirichlet
    parameters of every distribution, (K, C) or (K, D, C)."""

    weight_concentration: np.ndarray
    concentration: np.ndarray


# -- what the four families share ------------------------------------------------------------


class VariationalCounts:
    """The variational hooks and the delegation to the plain family, once for all four.

    A family says which plain family serves its features and statistics (``_plain``), its
    expected log-coefficients (``_expected_coefficients``), which statistics multiply them
    (``_feature_sums``), its conjugate update (``_posterior``), ``KL(q ‖ p)`` of its component
    parameters (``_components_kl``) and their posterior means (``point``).
    """

    prior: Any
    weight_concentration_prior_type: str
    data_weight: float | None
    missing: str

    def __post_init__(self) -> None:
        if self.weight_concentration_prior_type not in WEIGHT_PRIOR_TYPES:
            raise ValueError(
                f"weight_concentration_prior_type must be one of {WEIGHT_PRIOR_TYPES}, got "
                f"{self.weight_concentration_prior_type!r}"
            )

    @property
    def _plain(self) -> Any:
        raise NotImplementedError

    @property
    def feature_key(self) -> Any:
        return self._plain.feature_key

    def with_data_weight(self, data_weight: float | None) -> Any:
        """This family with another ``data_weight``."""
        return dataclasses.replace(self, data_weight=data_weight)

    # -- E-step: the plain family's features and statistics -----------------------------------

    def reference(self, X: np.ndarray) -> None:
        return None

    def features(self, X: np.ndarray, reference: None, out: np.ndarray | None = None):
        return self._plain.features(X, reference, out)

    def base_log_measure(self, X: np.ndarray) -> np.ndarray | None:
        return self._plain.base_log_measure(X)

    def check_block(self, X: np.ndarray) -> str | None:
        return self._plain.check_block(X)

    def finalize(self, counts: np.ndarray, sums: np.ndarray, reference: None) -> Any:
        return self._plain.finalize(counts, sums, reference)

    def merge(self, a: Any, b: Any) -> Any:
        return self._plain.merge(a, b)

    def subtract(self, total: Any, part: Any) -> Any:
        return self._plain.subtract(total, part)

    def scale(self, stats: Any, factor: float) -> Any:
        return self._plain.scale(stats, factor)

    def coefficients(self, params: Any, reference: None) -> tuple[np.ndarray, np.ndarray]:
        """``A`` (K, P) and ``b`` (K,) with ``log w_k + A F + b = log ρ_k − h``."""
        A, b = self._expected_coefficients(params)
        shift = _variational.log_prob_shift(
            params.weight_concentration, self.weight_concentration_prior_type
        )
        return A, b + shift

    def expected_log_prob(self, stats: Any, params: Any) -> np.ndarray:
        """``Σ r (log ρ_k(x) − log w_k − h(x))`` for each component, from statistics (K,)."""
        A, b = self.coefficients(params, None)
        return np.einsum("kp,kp->k", A, self._feature_sums(stats)) + b * stats.counts

    def _feature_sums(self, stats: Any) -> np.ndarray:
        return stats.sums

    # -- the variational hooks ----------------------------------------------------------------

    def expected_log_weights(self, params: Any) -> np.ndarray:
        """``E[log π_k]`` under the posterior of the weights (K,)."""
        return _variational.expected_log_weights(
            params.weight_concentration, self.weight_concentration_prior_type
        )

    def mixture_weights(self, params: Any) -> np.ndarray:
        """Posterior means of the weights, normalised."""
        return _variational.posterior_mean_weights(
            params.weight_concentration, self.weight_concentration_prior_type
        )

    def elbo_penalty(self, params: Any) -> float:
        """``KL(q(θ) ‖ p(θ))``: of the weights and of every component parameter, with every
        constant (what the ELBO subtracts from ``E_q[log p(X, Z | θ)] + H(q(Z))``)."""
        weights = _variational.weights_kl(
            params.weight_concentration,
            self.prior.weight_concentration,
            self.weight_concentration_prior_type,
        )
        return float(weights + self._components_kl(params))

    # -- M-step: the conjugate update -----------------------------------------------------------

    def m_step(self, stats: Any) -> tuple[Any, list[str]]:
        """The posterior given the statistics (scaled to ``data_weight`` when it is set)."""
        if self.data_weight is not None:
            total = float(stats.counts.sum())
            if total > 0:
                stats = self.scale(stats, self.data_weight / total)
        concentration = _variational.weight_concentration(
            stats.counts, self.prior.weight_concentration, self.weight_concentration_prior_type
        )
        return type(self)._params_type(concentration, *self._posterior(stats)), []

    def min_count(self, n_features: int) -> float:
        """The posterior is defined without data (it is the prior): no burn-in is needed."""
        return 0.0

    # -- everything else ------------------------------------------------------------------------

    def n_parameters(self, params: Any) -> int:
        return self._plain.n_parameters(self.point(params))

    def sample(self, params: Any, counts: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """Rows from the components at the posterior means of their parameters."""
        return self._plain.sample(self.point(params), counts, rng)

    def reseed(self, params: Any, component: int, row: np.ndarray, stats: Any) -> Any:
        """Unchanged: an empty component's posterior is its prior (the drivers never re-seed
        variational families)."""
        return params


def _beta_expectations(params: BetaParams) -> tuple[np.ndarray, np.ndarray]:
    """``E[log p]`` and ``E[log(1 − p)]`` (K, D)."""
    a, b = params.success_concentration, params.failure_concentration
    digamma_sum = digamma(a + b)
    return digamma(a) - digamma_sum, digamma(b) - digamma_sum


def beta_kl(a: np.ndarray, b: np.ndarray, a0: Any, b0: Any) -> float:
    """``Σ KL(Beta(a, b) ‖ Beta(a₀, b₀))`` over every entry."""
    kl = (
        betaln(a0, b0)
        - betaln(a, b)
        + (a - a0) * digamma(a)
        + (b - b0) * digamma(b)
        + (a0 + b0 - a - b) * digamma(a + b)
    )
    return float(kl.sum())


def gamma_kl(shape: np.ndarray, rate: np.ndarray, shape0: Any, rate0: Any) -> float:
    """``Σ KL(Gamma(α, β) ‖ Gamma(α₀, β₀))`` over every entry (shape–rate form)."""
    kl = (
        (shape - shape0) * digamma(shape)
        - gammaln(shape)
        + gammaln(shape0)
        + shape0 * (np.log(rate) - np.log(rate0))
        + shape * (rate0 - rate) / rate
    )
    return float(kl.sum())


def dirichlet_kl(alpha: np.ndarray, alpha0: Any) -> float:
    """``Σ KL(Dirichlet(α) ‖ Dirichlet(α₀))`` over every distribution (the last axis)."""
    alpha0 = np.broadcast_to(alpha0, alpha.shape)
    expected = digamma(alpha) - digamma(alpha.sum(axis=-1, keepdims=True))
    kl = (
        _variational.log_dirichlet_normaliser(alpha)
        - _variational.log_dirichlet_normaliser(alpha0)
        + ((alpha - alpha0) * expected).sum(axis=-1)
    )
    return float(kl.sum())


# -- the families ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BayesianBernoulli(VariationalCounts):
    """Bernoulli components with Beta posteriors and Dirichlet(-process) weights.

    Parameters
    ----------
    prior : BetaPrior
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}
    data_weight : float or None
        The row weight the statistics stand for in the update (stochastic variational
        inference); None: as given.
    missing : {'error', 'drop'}
    """

    prior: BetaPrior
    weight_concentration_prior_type: str = "dirichlet_process"
    data_weight: float | None = None
    missing: str = "error"

    _params_type = BetaParams

    @property
    def _plain(self) -> Bernoulli:
        return Bernoulli(missing=self.missing)

    def _expected_coefficients(self, params: BetaParams) -> tuple[np.ndarray, np.ndarray]:
        log_p, log_q = _beta_expectations(params)
        return log_p - log_q, log_q.sum(axis=1)

    def _posterior(self, stats: Any) -> tuple[np.ndarray, np.ndarray]:
        failures = np.maximum(stats.counts[:, None] - stats.sums, 0.0)
        return self.prior.successes + stats.sums, self.prior.failures + failures

    def _components_kl(self, params: BetaParams) -> float:
        return beta_kl(
            params.success_concentration,
            params.failure_concentration,
            self.prior.successes,
            self.prior.failures,
        )

    def point(self, params: BetaParams) -> BernoulliParams:
        """Posterior means of the probabilities."""
        a, b = params.success_concentration, params.failure_concentration
        return BernoulliParams(a / (a + b))


@dataclass(frozen=True, eq=False)
class BayesianBinomial(VariationalCounts):
    """Binomial components with Beta posteriors and Dirichlet(-process) weights.

    Parameters
    ----------
    prior : BetaPrior
    n_trials, trials_column
        As for :class:`~streamem.families.binomial.Binomial`.
    weight_concentration_prior_type, data_weight, missing
        As for :class:`BayesianBernoulli`.
    """

    prior: BetaPrior
    n_trials: int = 1
    trials_column: int | None = None
    weight_concentration_prior_type: str = "dirichlet_process"
    data_weight: float | None = None
    missing: str = "error"

    _params_type = BetaParams

    @property
    def _plain(self) -> Binomial:
        return Binomial(self.n_trials, self.trials_column, missing=self.missing)

    def _expected_coefficients(self, params: BetaParams) -> tuple[np.ndarray, np.ndarray]:
        log_p, log_q = _beta_expectations(params)
        log_complement = log_q.sum(axis=1)
        if self.trials_column is None:
            return log_p - log_q, self.n_trials * log_complement
        return np.column_stack([log_p - log_q, log_complement]), np.zeros(len(log_p))

    def _feature_sums(self, stats: Any) -> np.ndarray:
        if self.trials_column is None:
            return stats.successes
        return np.column_stack([stats.successes, stats.trials])

    def _posterior(self, stats: Any) -> tuple[np.ndarray, np.ndarray]:
        failures = np.maximum(stats.trials[:, None] - stats.successes, 0.0)
        return self.prior.successes + stats.successes, self.prior.failures + failures

    _components_kl = BayesianBernoulli._components_kl

    def point(self, params: BetaParams) -> BinomialParams:
        """Posterior means of the probabilities."""
        a, b = params.success_concentration, params.failure_concentration
        return BinomialParams(a / (a + b))


@dataclass(frozen=True, eq=False)
class BayesianPoisson(VariationalCounts):
    """Poisson components with Gamma posteriors and Dirichlet(-process) weights.

    Parameters
    ----------
    prior : GammaPrior
    weight_concentration_prior_type, data_weight, missing
        As for :class:`BayesianBernoulli`.
    """

    prior: GammaPrior
    weight_concentration_prior_type: str = "dirichlet_process"
    data_weight: float | None = None
    missing: str = "error"

    _params_type = GammaParams

    @property
    def _plain(self) -> Poisson:
        return Poisson(missing=self.missing)

    def _expected_coefficients(self, params: GammaParams) -> tuple[np.ndarray, np.ndarray]:
        shape, rate = params.shape, params.inverse_scale
        return digamma(shape) - np.log(rate), -(shape / rate).sum(axis=1)

    def _posterior(self, stats: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.prior.shape + stats.sums, self.prior.inverse_scale + stats.counts[:, None]

    def _components_kl(self, params: GammaParams) -> float:
        return gamma_kl(
            params.shape, params.inverse_scale, self.prior.shape, self.prior.inverse_scale
        )

    def point(self, params: GammaParams) -> PoissonParams:
        """Posterior means of the rates."""
        return PoissonParams(params.shape / params.inverse_scale)


@dataclass(frozen=True, eq=False)
class BayesianMultinomial(VariationalCounts):
    """Multinomial (or categorical) components with Dirichlet posteriors and
    Dirichlet(-process) weights.

    Parameters
    ----------
    prior : DirichletPrior
    n_categories, n_trials
        As for :class:`~streamem.families.multinomial.Multinomial`.
    weight_concentration_prior_type, data_weight, missing
        As for :class:`BayesianBernoulli`.
    """

    prior: DirichletPrior
    n_categories: int | None = None
    n_trials: int | None = None
    weight_concentration_prior_type: str = "dirichlet_process"
    data_weight: float | None = None
    missing: str = "error"

    _params_type = DirichletParams

    @property
    def _plain(self) -> Multinomial:
        return Multinomial(self.n_categories, self.n_trials, missing=self.missing)

    def _expected_coefficients(self, params: DirichletParams) -> tuple[np.ndarray, np.ndarray]:
        alpha = params.concentration
        log_p = digamma(alpha) - digamma(alpha.sum(axis=-1, keepdims=True))
        return log_p.reshape(len(log_p), -1), np.zeros(len(log_p))

    def _posterior(self, stats: Any) -> tuple[np.ndarray]:
        sums = stats.sums
        if self.n_categories is not None:
            sums = sums.reshape(len(sums), -1, self.n_categories)
        return (self.prior.concentration + sums,)

    def _components_kl(self, params: DirichletParams) -> float:
        return dirichlet_kl(params.concentration, self.prior.concentration)

    def point(self, params: DirichletParams) -> MultinomialParams:
        """Posterior means of the probabilities."""
        alpha = params.concentration
        return MultinomialParams(alpha / alpha.sum(axis=-1, keepdims=True))
