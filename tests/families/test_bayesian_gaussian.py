"""The Gaussian–Wishart variational family: its update, E-step and ELBO against scikit-learn's
BayesianGaussianMixture and against Monte Carlo, and its statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.special import betaln, gammaln
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesianGaussianMixture

from streamem.drivers.common import expected_complete_log_likelihood, m_step
from streamem.estep import chunk_estep, component_log_prob
from streamem.families._base import Mixture, is_variational, stats_from_responsibilities
from streamem.families.bayesian_gaussian import (
    WEIGHT_PRIOR_TYPES,
    BayesianGaussian,
    GaussianWishartPrior,
)
from streamem.families.gaussian import COVARIANCE_TYPES

from ..conftest import assert_close, make_blobs

K = 4


@pytest.fixture(scope="module")
def data():
    return make_blobs(1500, d=3, k=3, seed=7)


def sklearn_start(X, kind, weight_prior, **options):
    """A scikit-learn model after its initialisation from random responsibilities."""
    model = SklearnBayesianGaussianMixture(
        n_components=K,
        covariance_type=kind,
        weight_concentration_prior_type=weight_prior,
        init_params="random",
        **options,
    )
    model._check_parameters(X)
    model._initialize_parameters(X, np.random.RandomState(0))
    return model


def family_of(model) -> BayesianGaussian:
    prior = GaussianWishartPrior(
        float(model.weight_concentration_prior_),
        float(model.mean_precision_prior_),
        model.mean_prior_,
        float(model.degrees_of_freedom_prior_),
        model.covariance_prior_,
    )
    return BayesianGaussian(
        prior, model.covariance_type, model.reg_covar, model.weight_concentration_prior_type
    )


def random_responsibilities(n):
    resp = np.random.RandomState(0).uniform(size=(n, K))
    return resp / resp.sum(axis=1, keepdims=True)


def sklearn_constant(X, model) -> float:
    """What scikit-learn's ``_compute_lower_bound`` leaves out of the ELBO: the prior's
    normalisers, ``N D/2 log 2π``, and the ``log π`` term of its Wishart normaliser."""
    n, d = X.shape
    k = model.n_components
    kind = model.covariance_type
    covariance = model.covariance_prior_
    log_det = {
        "full": lambda: np.linalg.slogdet(covariance)[1],
        "tied": lambda: np.linalg.slogdet(covariance)[1],
        "diag": lambda: np.log(covariance).sum(),
        "spherical": lambda: d * np.log(covariance),
    }[kind]()
    nu0 = model.degrees_of_freedom_prior_
    log_b0 = (
        0.5 * nu0 * log_det
        - 0.5 * nu0 * d * np.log(2)
        - 0.25 * d * (d - 1) * np.log(np.pi)
        - sum(gammaln(0.5 * (nu0 - i)) for i in range(d))
    )
    gaussian = k * (
        0.5 * d * np.log(model.mean_precision_prior_) + log_b0 + 0.25 * d * (d - 1) * np.log(np.pi)
    )
    alpha0 = model.weight_concentration_prior_
    if model.weight_concentration_prior_type == "dirichlet_process":
        weights = -k * betaln(1.0, alpha0)
    else:
        weights = gammaln(k * alpha0) - k * gammaln(alpha0)
    return float(gaussian + weights - 0.5 * n * d * np.log(2 * np.pi))


@pytest.mark.parametrize("weight_prior", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_update_matches_sklearn(data, kind, weight_prior):
    """The conjugate update from the statistics of given responsibilities is scikit-learn's."""
    theirs = sklearn_start(data, kind, weight_prior)
    family = family_of(theirs)
    stats = stats_from_responsibilities(family, data, random_responsibilities(len(data)))
    params, notes = family.m_step(stats)
    assert notes == []
    theirs._set_parameters(theirs._get_parameters())  # computes weights_
    assert_close(params.weight_concentration, np.array(theirs.weight_concentration_), 1e-12)
    assert_close(params.mean_precision, theirs.mean_precision_, 1e-12)
    assert_close(params.means, theirs.means_, 1e-12)
    expected_dof = np.broadcast_to(theirs.degrees_of_freedom_, (K,))
    assert_close(params.degrees_of_freedom, expected_dof, 1e-12)
    assert_close(params.covariances, theirs.covariances_, 1e-12)
    assert_close(params.precisions_cholesky, theirs.precisions_cholesky_, 1e-12)
    assert_close(family.mixture_weights(params), theirs.weights_, 1e-12)


@pytest.mark.parametrize("weight_prior", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_expected_log_densities_match_sklearn(data, kind, weight_prior):
    """``log w + A F + b`` is scikit-learn's ``E[log π] + E[log p(x | θ)]``, and
    ``expected_log_prob`` is its responsibility-weighted sum from statistics alone."""
    theirs = sklearn_start(data, kind, weight_prior)
    family = family_of(theirs)
    stats = stats_from_responsibilities(family, data, random_responsibilities(len(data)))
    params, _ = family.m_step(stats)
    weights = family.mixture_weights(params)
    ours = component_log_prob(family, params, data) + np.log(weights)
    assert_close(ours, theirs._estimate_weighted_log_prob(data), 1e-12)
    resp = random_responsibilities(len(data))[::-1]
    other = stats_from_responsibilities(family, data, resp)
    direct = (resp * (ours - np.log(weights))).sum(axis=0)
    expected_log_prob = family.expected_log_prob(other, params)
    if kind == "tied":  # the shared scatter is counted once, not per component
        expected_log_prob, direct = expected_log_prob.sum(), direct.sum()
    assert_close(expected_log_prob, direct, 1e-11)


@pytest.mark.parametrize("weight_prior", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_elbo_is_sklearn_bound_plus_its_constant(data, kind, weight_prior):
    """Entropy (from the E-step) + expected complete log-likelihood − penalty, after each
    update, is scikit-learn's lower bound plus the constants it drops, at every iteration."""
    theirs = sklearn_start(data, kind, weight_prior)
    family = family_of(theirs)
    stats = stats_from_responsibilities(family, data, random_responsibilities(len(data)))
    params, _ = family.m_step(stats)
    model = Mixture(family, family.mixture_weights(params), params)
    constant = sklearn_constant(data, theirs)
    for _ in range(8):
        result = chunk_estep(data, None, (model,))
        stats = result.stats[0]
        entropy = result.log_likelihood[0] - expected_complete_log_likelihood(model, stats)
        _, log_resp = theirs._estimate_log_prob_resp(data)
        theirs._m_step(data, log_resp)
        expected = float(np.squeeze(theirs._compute_lower_bound(log_resp, None)))
        model, _ = m_step(model, stats, len(data), float(len(data)))
        elbo = (
            entropy
            + expected_complete_log_likelihood(model, stats)
            - family.elbo_penalty(model.params)
        )
        assert elbo - constant == pytest.approx(expected, rel=1e-12, abs=1e-9)


def draws_log_ratio(family, params, rng, n_draws):
    """``log q(θ) − log p(θ)`` for draws ``θ ~ q`` (weights and every component)."""
    prior, kind = family.prior, family.covariance_type
    k, d = params.means.shape
    total = np.zeros(n_draws)
    concentration = params.weight_concentration
    alpha0 = prior.weight_concentration
    if family.weight_concentration_prior_type == "dirichlet_process":
        for a, b in zip(*concentration, strict=True):
            v = rng.beta(a, b, size=n_draws)
            total += scipy_stats.beta(a, b).logpdf(v) - scipy_stats.beta(1.0, alpha0).logpdf(v)
    else:
        pi = rng.dirichlet(concentration, size=n_draws)
        total += scipy_stats.dirichlet(concentration).logpdf(pi.T)
        total -= scipy_stats.dirichlet(np.full(k, alpha0)).logpdf(pi.T)

    def as_matrix(value, component):
        value = np.asarray(value)
        if kind in ("full",):
            return value[component]
        if kind == "tied":
            return value
        if kind == "diag":
            return np.diag(value[component])
        return np.eye(d) * value[component]

    prior_scale = np.linalg.inv(
        {
            "full": prior.covariance,
            "tied": prior.covariance,
            "diag": np.diag(np.atleast_1d(prior.covariance)),
            "spherical": np.eye(d) * prior.covariance,
        }[kind]
    )
    for j in range(k):
        nu, beta = params.degrees_of_freedom[j], params.mean_precision[j]
        scale = np.linalg.inv(as_matrix(params.covariances, j)) / nu  # W
        wishart = scipy_stats.wishart(df=nu, scale=scale)
        precisions = wishart.rvs(size=n_draws, random_state=rng)
        log_q = wishart.logpdf(precisions.T)
        log_p = scipy_stats.wishart(df=prior.degrees_of_freedom, scale=prior_scale).logpdf(
            precisions.T
        )
        # μ | Λ ~ N(m, (βΛ)⁻¹): with Λ = L Lᵀ, μ = m + L⁻ᵀ z / √β
        chol = np.linalg.cholesky(precisions)
        z = rng.standard_normal((n_draws, d, 1))
        means = params.means[j] + np.linalg.solve(chol.transpose(0, 2, 1), z)[..., 0] / np.sqrt(
            beta
        )
        own, centred = means - params.means[j], means - prior.mean
        log_q += 0.5 * d * np.log(beta)
        log_q -= 0.5 * beta * np.einsum("ni,nij,nj->n", own, precisions, own)
        log_p += 0.5 * d * np.log(prior.mean_precision)
        log_p -= (
            0.5 * prior.mean_precision * np.einsum("ni,nij,nj->n", centred, precisions, centred)
        )
        total += log_q - log_p
    return total


@pytest.mark.parametrize(
    ("kind", "weight_prior"),
    [
        ("full", "dirichlet_process"),
        ("tied", "dirichlet_distribution"),
        ("diag", "dirichlet_process"),
        ("spherical", "dirichlet_distribution"),
    ],
)
def test_kl_divergence_by_monte_carlo(kind, weight_prior):
    """With ``reg_covar=0`` the penalty is ``KL(q(θ) ‖ p(θ))``, every constant included."""
    rng = np.random.RandomState(3)
    X = make_blobs(60, d=2, k=2, seed=3)
    theirs = SklearnBayesianGaussianMixture(
        n_components=2, covariance_type=kind, weight_concentration_prior_type=weight_prior
    )
    theirs._check_parameters(X)
    covariance = theirs.covariance_prior_
    covariance = covariance * 2 if kind == "spherical" else np.asarray(covariance) * 2
    prior = GaussianWishartPrior(0.5, 0.7, theirs.mean_prior_, 3.5, covariance)
    family = BayesianGaussian(prior, kind, 0.0, weight_prior)
    resp = np.random.RandomState(1).uniform(size=(len(X), 2))
    stats = stats_from_responsibilities(family, X, resp / resp.sum(axis=1, keepdims=True))
    params, _ = family.m_step(stats)
    log_ratio = draws_log_ratio(family, params, rng, 2000)
    error = 4 * log_ratio.std() / np.sqrt(len(log_ratio))
    assert family.elbo_penalty(params) == pytest.approx(log_ratio.mean(), abs=error)


@pytest.mark.parametrize("weight_prior", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_no_data_gives_the_prior(data, kind, weight_prior):
    """The update from empty statistics is the prior, whose divergence is zero."""
    theirs = sklearn_start(data, kind, weight_prior, reg_covar=0.0)
    family = family_of(theirs)
    stats = stats_from_responsibilities(family, data[:0], np.zeros((0, K)))
    params, _ = family.m_step(stats)
    prior = family.prior
    assert_close(params.means, np.broadcast_to(prior.mean, (K, data.shape[1])), 1e-12)
    assert_close(params.mean_precision, np.full(K, prior.mean_precision), 1e-12)
    assert family.elbo_penalty(params) == pytest.approx(0.0, abs=1e-10)


def test_data_weight_scales_the_statistics(data):
    """Stochastic VI keeps statistics per unit of row weight; ``data_weight`` scales them back."""
    theirs = sklearn_start(data, "full", "dirichlet_process")
    family = family_of(theirs)
    stats = stats_from_responsibilities(family, data, random_responsibilities(len(data)))
    expected, _ = family.m_step(stats)
    scaled, _ = family.with_data_weight(float(len(data))).m_step(
        family.scale(stats, 1.0 / len(data))
    )
    for ours, theirs_ in zip(scaled, expected, strict=True):
        assert_close(ours, theirs_, 1e-12)


def test_statistics_are_the_gaussian_ones(data):
    """Features, statistics and their merge are the Gaussian family's: A ⊕ B = A ∪ B."""
    theirs = sklearn_start(data, "full", "dirichlet_process")
    family = family_of(theirs)
    resp = random_responsibilities(len(data))
    whole = stats_from_responsibilities(family, data, resp)
    a = stats_from_responsibilities(family, data[:700], resp[:700])
    b = stats_from_responsibilities(family, data[700:] + 0.0, resp[700:])
    merged = family.merge(a, b)
    for ours, expected in zip(merged, whole, strict=True):
        assert_close(ours, expected, 1e-12)
    for ours, expected in zip(family.subtract(whole, b), a, strict=True):
        assert_close(ours, expected, 1e-10)


def test_empty_components_are_kept_not_reseeded(data):
    """A component without responsibility keeps its prior-driven posterior: no re-seeding,
    no warning; its weight is the posterior mean."""
    theirs = sklearn_start(data, "diag", "dirichlet_process")
    family = family_of(theirs)
    assert is_variational(family)
    resp = np.zeros((len(data), K))
    resp[:, :2] = random_responsibilities(len(data))[:, :2]
    resp /= resp.sum(axis=1, keepdims=True)
    stats = stats_from_responsibilities(family, data, resp)
    params, _ = family.m_step(stats)
    model = Mixture(family, family.mixture_weights(params), params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new, notes = m_step(model, stats, len(data), float(len(data)), reseed_rows=data)
    assert notes == []
    assert_close(new.params.means[2:], np.broadcast_to(family.prior.mean, (2, 3)), 1e-12)
    assert_close(new.weights, family.mixture_weights(new.params), 0)
    assert new.weights[2:].max() < 1e-3
