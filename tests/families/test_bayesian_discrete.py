"""The discrete variational families against a reference written here from the textbook
formulas: responsibilities from expected log-parameters, the conjugate update from
brute-force sums over rows, and the ELBO term by term,

    E_q[log p(X | Z, θ)] + E_q[log p(Z | π)] + H(q(Z)) + E_q[log p(π, θ)] − E_q[log q(π, θ)],

with every constant (Bishop 2006, §10.2; Blei & Jordan 2006 for the stick-breaking weights)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest
from scipy.special import betaln, digamma, gammaln, logsumexp

from streamem.drivers.batch import variational_bound
from streamem.drivers.common import m_step
from streamem.estep import chunk_estep, chunk_predict_proba
from streamem.families._base import Mixture, is_variational
from streamem.families._variational import WEIGHT_PRIOR_TYPES
from streamem.families.bayesian_discrete import (
    BayesianBernoulli,
    BayesianBinomial,
    BayesianMultinomial,
    BayesianPoisson,
    BetaParams,
    BetaPrior,
    DirichletParams,
    DirichletPrior,
    GammaParams,
    GammaPrior,
)

K, N, D, C = 3, 40, 4, 3


# -- the reference ------------------------------------------------------------------------------


def log_beta_density_expectation(c, d, log_v, log_w):
    """E_q[log Beta(v; c, d)] given E_q[log v] and E_q[log(1 − v)]."""
    return (c - 1) * log_v + (d - 1) * log_w - betaln(c, d)


def log_dirichlet_density_expectation(c, log_p):
    """E_q[log Dirichlet(p; c)] given E_q[log p], over the last axis."""
    return gammaln(c.sum(-1)) - gammaln(c).sum(-1) + ((c - 1) * log_p).sum(-1)


def log_gamma_density_expectation(shape, rate, log_x, x):
    """E_q[log Gamma(λ; shape, rate)] given E_q[log λ] and E_q[λ]."""
    return shape * np.log(rate) - gammaln(shape) + (shape - 1) * log_x - rate * x


def weights_terms(concentration, alpha0, prior_type):
    """E_q[log π_k] (K,) and E_q[log p(π)] − E_q[log q(π)]."""
    if prior_type == "dirichlet_process":
        a, b = concentration
        log_v = digamma(a) - digamma(a + b)
        log_w = digamma(b) - digamma(a + b)
        log_pi = np.array([log_v[k] + log_w[:k].sum() for k in range(len(a))])
        prior = log_beta_density_expectation(1.0, alpha0, log_v, log_w).sum()
        posterior = log_beta_density_expectation(a, b, log_v, log_w).sum()
        return log_pi, prior - posterior
    log_pi = digamma(concentration) - digamma(concentration.sum())
    prior = log_dirichlet_density_expectation(np.full(len(concentration), alpha0), log_pi)
    posterior = log_dirichlet_density_expectation(concentration, log_pi)
    return log_pi, prior - posterior


class Case(NamedTuple):
    family: Any
    X: np.ndarray
    params: Any  # component posterior (without the weights)
    log_density: Any  # (X, params) -> E_q[log p(x_n | θ_k)] (N, K), every constant
    parameter_terms: Any  # params -> E_q[log p(θ)] − E_q[log q(θ)]
    update: Any  # (X, r) -> the component posterior from responsibilities, brute force


def bernoulli_like(n_trials, trials_column, prior_type, rng):
    prior = BetaPrior(0.7, rng.uniform(0.5, 2, D), rng.uniform(0.5, 2, D))
    if trials_column is None:
        n = np.full((N, 1), n_trials)
        successes = rng.binomial(n_trials, rng.uniform(0.1, 0.9, D), size=(N, D))
        X = successes
    else:
        n = rng.randint(0, 12, size=(N, 1))
        successes = rng.binomial(n, rng.uniform(0.1, 0.9, D))
        X = np.column_stack([successes[:, :1], n, successes[:, 1:]])
    if n_trials == 1 and trials_column is None:
        family = BayesianBernoulli(prior, prior_type)
    else:
        family = BayesianBinomial(prior, n_trials, trials_column, prior_type)

    def expectations(params):
        a, b = params
        return digamma(a) - digamma(a + b), digamma(b) - digamma(a + b)

    def log_density(X, params):
        log_p, log_q = expectations(params)
        choose = gammaln(n + 1) - gammaln(successes + 1) - gammaln(n - successes + 1)
        return successes @ log_p.T + (n - successes) @ log_q.T + choose.sum(1, keepdims=True)

    def parameter_terms(params):
        log_p, log_q = expectations(params)
        a, b = params
        prior_term = log_beta_density_expectation(prior.successes, prior.failures, log_p, log_q)
        return (prior_term - log_beta_density_expectation(a, b, log_p, log_q)).sum()

    def update(X, r):
        a = prior.successes + np.array([(r[:, k : k + 1] * successes).sum(0) for k in range(K)])
        fails = n - successes
        b = prior.failures + np.array([(r[:, k : k + 1] * fails).sum(0) for k in range(K)])
        return a, b

    params = (rng.uniform(0.5, 30, (K, D)), rng.uniform(0.5, 30, (K, D)))
    return Case(family, X, params, log_density, parameter_terms, update)


def poisson(prior_type, rng):
    prior = GammaPrior(0.7, rng.uniform(0.5, 2, D), rng.uniform(0.1, 2, D))
    X = rng.poisson(rng.uniform(0.5, 9, D), size=(N, D))
    family = BayesianPoisson(prior, prior_type)

    def expectations(params):
        shape, rate = params
        return digamma(shape) - np.log(rate), shape / rate

    def log_density(X, params):
        log_rate, rate = expectations(params)
        return X @ log_rate.T - rate.sum(1) - gammaln(X + 1).sum(1, keepdims=True)

    def parameter_terms(params):
        log_rate, rate = expectations(params)
        shape, inverse_scale = params
        prior_term = log_gamma_density_expectation(
            prior.shape, prior.inverse_scale, log_rate, rate
        )
        posterior = log_gamma_density_expectation(shape, inverse_scale, log_rate, rate)
        return (prior_term - posterior).sum()

    def update(X, r):
        shape = prior.shape + np.array([(r[:, k : k + 1] * X).sum(0) for k in range(K)])
        return shape, prior.inverse_scale + r.sum(0)[:, None]

    params = (rng.uniform(0.5, 100, (K, D)), rng.uniform(0.5, 20, (K, D)))
    return Case(family, X, params, log_density, parameter_terms, update)


def multinomial(categorical, prior_type, rng):
    if categorical:
        prior = DirichletPrior(0.7, rng.uniform(0.5, 2, (D, C)))
        X = rng.randint(0, C, size=(N, D))
        family = BayesianMultinomial(prior, C, None, prior_type)
        shape = (K, D, C)
    else:
        prior = DirichletPrior(0.7, rng.uniform(0.5, 2, D))
        X = rng.multinomial(9, rng.dirichlet(np.ones(D)), size=N)
        family = BayesianMultinomial(prior, None, 9, prior_type)
        shape = (K, D)

    def expectations(alpha):
        return digamma(alpha) - digamma(alpha.sum(-1, keepdims=True))

    def log_density(X, params):
        (alpha,) = params
        log_p = expectations(alpha)
        if categorical:
            return np.array(
                [[sum(log_p[k, d, X[i, d]] for d in range(D)) for k in range(K)] for i in range(N)]
            )
        coefficient = gammaln(X.sum(1) + 1) - gammaln(X + 1).sum(1)
        return X @ log_p.T + coefficient[:, None]

    def parameter_terms(params):
        (alpha,) = params
        log_p = expectations(alpha)
        prior_term = log_dirichlet_density_expectation(
            np.broadcast_to(prior.concentration, alpha.shape), log_p
        )
        return (prior_term - log_dirichlet_density_expectation(alpha, log_p)).sum()

    def update(X, r):
        if categorical:
            one_hot = (X[:, :, None] == np.arange(C)).astype(float)
            sums = np.einsum("nk,ndc->kdc", r, one_hot)
        else:
            sums = r.T @ X
        return (prior.concentration + sums,)

    params = (rng.uniform(0.5, 30, shape),)
    return Case(family, X, params, log_density, parameter_terms, update)


MAKERS = {
    "bernoulli": lambda t, rng: bernoulli_like(1, None, t, rng),
    "binomial": lambda t, rng: bernoulli_like(7, None, t, rng),
    "binomial-trials-column": lambda t, rng: bernoulli_like(1, 1, t, rng),
    "poisson": poisson,
    "multinomial": lambda t, rng: multinomial(False, t, rng),
    "categorical": lambda t, rng: multinomial(True, t, rng),
}


def random_weight_concentration(prior_type, rng):
    if prior_type == "dirichlet_process":
        return rng.uniform(0.5, 20, (2, K))
    return rng.uniform(0.5, 20, K)


def reference(case, weight_concentration, params, prior_type, alpha0=0.7):
    """Per-row log ρ (N, K) under a posterior, and E_q[log p(π, θ)] − E_q[log q(π, θ)]."""
    log_pi, weights_term = weights_terms(weight_concentration, alpha0, prior_type)
    log_rho = log_pi + case.log_density(case.X, params)
    return log_rho, weights_term + case.parameter_terms(params)


@pytest.fixture(params=[(m, t) for m in MAKERS for t in WEIGHT_PRIOR_TYPES], ids=str)
def setup(request):
    name, prior_type = request.param
    rng = np.random.RandomState(sorted(MAKERS).index(name))
    case = MAKERS[name](prior_type, rng)
    concentration = random_weight_concentration(prior_type, rng)
    params = case.family._params_type(concentration, *case.params)
    model = Mixture(case.family, case.family.mixture_weights(params), params)
    return case, model, prior_type


def test_is_variational(setup):
    case, _, _ = setup
    assert is_variational(case.family)


def test_responsibilities_use_the_expected_log_parameters(setup):
    """The kernel's responsibilities and log-likelihood are those of log ρ = E[log π] +
    E[log p(x | θ)]."""
    case, model, prior_type = setup
    log_rho, _ = reference(case, model.params.weight_concentration, case.params, prior_type)
    expected = np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))
    np.testing.assert_allclose(chunk_predict_proba(case.X, model), expected, rtol=1e-12, atol=0)
    result = chunk_estep(case.X, None, (model,))
    np.testing.assert_allclose(result.log_likelihood[0], logsumexp(log_rho, axis=1).sum(), 1e-12)


def test_update_is_the_brute_force_conjugate_posterior(setup):
    case, model, prior_type = setup
    log_rho, _ = reference(case, model.params.weight_concentration, case.params, prior_type)
    r = np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))
    result = chunk_estep(case.X, None, (model,))
    after, notes = m_step(model, result.stats[0], result.n_rows, result.weight)
    assert notes == []
    counts = r.sum(0)
    if prior_type == "dirichlet_process":
        rest = np.array([counts[k + 1 :].sum() for k in range(K)])
        concentration = np.stack([1 + counts, 0.7 + rest])
    else:
        concentration = 0.7 + counts
    np.testing.assert_allclose(after.params.weight_concentration, concentration, rtol=1e-12)
    for actual, expected in zip(after.params[1:], case.update(case.X, r), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-12)
    np.testing.assert_allclose(after.weights.sum(), 1.0, rtol=1e-15)


def test_elbo_term_by_term(setup):
    """The drivers' bound after an update is the ELBO of (responsibilities under the old
    posterior, the new posterior), every constant included."""
    case, model, prior_type = setup
    log_rho, _ = reference(case, model.params.weight_concentration, case.params, prior_type)
    r = np.exp(log_rho - logsumexp(log_rho, axis=1, keepdims=True))
    result = chunk_estep(case.X, None, (model,))
    after, _ = m_step(model, result.stats[0], result.n_rows, result.weight)
    new_log_rho, parameter_terms = reference(
        case, after.params.weight_concentration, after.params[1:], prior_type
    )
    entropy = -(r * np.log(r)).sum()
    elbo = (r * new_log_rho).sum() + entropy + parameter_terms
    bound = variational_bound(model, after, result, 0) * result.weight
    np.testing.assert_allclose(bound, elbo, rtol=1e-12)


def test_kl_is_zero_at_the_prior(setup):
    """A posterior equal to the prior costs nothing: KL(p ‖ p) = 0."""
    case, model, _ = setup
    family = case.family
    empty = family.m_step(family.scale(chunk_estep(case.X, None, (model,)).stats[0], 0.0))[0]
    assert abs(family.elbo_penalty(empty)) < 1e-12


def test_sampling_uses_the_posterior_means(setup):
    case, model, _ = setup
    family = case.family
    if isinstance(family, BayesianBinomial) and family.trials_column is not None:
        return  # rows with per-row trials cannot be drawn (the trials are data)
    rows = family.sample(model.params, np.array([4000, 0, 0]), np.random.RandomState(0))
    expected = family.point(model.params)[0][0]
    if isinstance(family, BayesianMultinomial) and family.n_categories is not None:
        mean = np.array([(rows == c).mean(0) for c in range(C)]).T
    else:
        mean = rows.mean(0)
        expected = expected * getattr(family, "n_trials", 1)
    np.testing.assert_allclose(mean, expected, atol=0.1 * max(1.0, np.abs(expected).max()))


def test_unknown_weight_prior_type_is_refused():
    with pytest.raises(ValueError, match="weight_concentration_prior_type"):
        BayesianPoisson(GammaPrior(1.0, np.ones(2), np.ones(2)), "dirichlet")


def test_point_estimates_are_posterior_means():
    params = BetaParams(np.ones(2), np.array([[1.0, 3.0]]), np.array([[3.0, 1.0]]))
    np.testing.assert_allclose(
        BayesianBernoulli(BetaPrior(1, 1, 1)).point(params)[0], [[0.25, 0.75]]
    )
    params = GammaParams(np.ones(2), np.array([[6.0]]), np.array([[2.0]]))
    np.testing.assert_allclose(BayesianPoisson(GammaPrior(1, 1, 1)).point(params)[0], [[3.0]])
    params = DirichletParams(np.ones(2), np.array([[1.0, 3.0]]))
    point = BayesianMultinomial(DirichletPrior(1, 1)).point(params)[0]
    np.testing.assert_allclose(point, [[0.25, 0.75]])
