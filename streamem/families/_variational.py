"""What the variational (Bayesian) families share: the posterior of the mixture weights.

The weights have a Dirichlet prior of concentration ``α₀`` (``dirichlet_distribution``) or a
stick-breaking Dirichlet-process prior truncated at ``K`` components, with sticks
``Beta(1, α₀)`` (``dirichlet_process``; Blei & Jordan 2006). Their posterior, its expected
log-weights ``E[log π_k]``, its mean and ``KL(q(π) ‖ p(π))`` are functions of the
concentration alone; every variational family uses these, whatever its components.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, digamma, gammaln

WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


def weight_concentration(counts: np.ndarray, alpha0: float, prior_type: str) -> np.ndarray:
    """The posterior concentration of the weights given component ``counts`` (K,): ``α``
    (K,) of a Dirichlet, or the two Beta parameters (2, K) of the sticks."""
    if prior_type == "dirichlet_process":
        rest = np.concatenate([np.cumsum(counts[::-1])[-2::-1], [0.0]])  # Σ_{j>k} N_j
        return np.stack([1.0 + counts, alpha0 + rest])
    return alpha0 + counts


def expected_log_weights(concentration: np.ndarray, prior_type: str) -> np.ndarray:
    """``E[log π_k]`` under the posterior of the weights (K,)."""
    if prior_type == "dirichlet_process":
        a, b = concentration
        digamma_sum = digamma(a + b)
        log_stick = digamma(a) - digamma_sum
        log_rest = digamma(b) - digamma_sum
        return log_stick + np.concatenate([[0.0], np.cumsum(log_rest)[:-1]])
    return digamma(concentration) - digamma(concentration.sum())


def posterior_mean_weights(concentration: np.ndarray, prior_type: str) -> np.ndarray:
    """Posterior means of the weights, normalised (scikit-learn's ``weights_``), each at
    least the smallest positive float (``log w`` stays finite)."""
    if prior_type == "dirichlet_process":
        a, b = concentration
        total = a + b
        weights = a / total * np.concatenate([[1.0], np.cumprod(b / total)[:-1]])
    else:
        weights = concentration.copy()
    weights = weights / weights.sum()
    return np.maximum(weights, np.finfo(np.float64).tiny)


def weights_kl(concentration: np.ndarray, alpha0: float, prior_type: str) -> float:
    """``KL(q(π) ‖ p(π))`` with every constant."""
    if prior_type == "dirichlet_process":
        a, b = concentration
        digamma_sum = digamma(a + b)
        elbo = (
            betaln(a, b)
            - betaln(1.0, alpha0)
            - (a - 1.0) * (digamma(a) - digamma_sum)
            + (alpha0 - b) * (digamma(b) - digamma_sum)
        )
        return float(-elbo.sum())
    k = concentration.shape[0]
    expected = digamma(concentration) - digamma(concentration.sum())
    elbo = (
        log_dirichlet_normaliser(np.full(k, alpha0))
        - log_dirichlet_normaliser(concentration)
        + ((alpha0 - concentration) * expected).sum()
    )
    return float(-elbo)


def log_dirichlet_normaliser(concentration: np.ndarray) -> np.ndarray:
    """``log Γ(Σ α) − Σ log Γ(α)`` over the last axis."""
    return gammaln(concentration.sum(axis=-1)) - gammaln(concentration).sum(axis=-1)


def log_prob_shift(concentration: np.ndarray, prior_type: str) -> np.ndarray:
    """``E[log π_k] − log w_k`` (K,): added to a component's log-normaliser, it turns the
    kernel's ``log w_k + A F + b`` into ``E[log π_k] + A F + b``."""
    weights = posterior_mean_weights(concentration, prior_type)
    return expected_log_weights(concentration, prior_type) - np.log(weights)
