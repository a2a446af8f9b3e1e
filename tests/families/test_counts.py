"""Family-level checks of the count families and of grouped Gaussian rows.

Bernoulli, binomial (constant and per-row trials), multinomial count vectors, categorical
labels and Poisson components, with grouped Gaussian rows, which pass the same checks:
log-densities against scipy.stats, the M-step against the plain MLE, reseeding, the chunk
kernel and statistics. The merge algebra of every family is in test_merge_algebra.py; the
estimators built on these families are tested in tests/estimators/test_discrete.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.special import logsumexp

from streamem.estep import chunk_estep, component_log_prob
from streamem.families._base import Mixture, stats_from_responsibilities
from streamem.families.bernoulli import Bernoulli, BernoulliParams
from streamem.families.binomial import Binomial, BinomialParams
from streamem.families.grouped_gaussian import GroupedGaussian, GroupedGaussianParams
from streamem.families.multinomial import Multinomial, MultinomialParams
from streamem.families.poisson import Poisson, PoissonParams

from ..conftest import assert_close

K = 3

# -- one small, valid problem per family -------------------------------------------------------


def problem(name: str, n: int = 60, seed: int = 0):
    """A family, parameters of K components, and ``n`` valid rows for it."""
    rng = np.random.RandomState(seed)
    if name == "bernoulli":
        p = rng.uniform(0.05, 0.95, size=(K, 5))
        return Bernoulli(), BernoulliParams(p), rng.binomial(1, 0.4, size=(n, 5))
    if name == "binomial":
        p = rng.uniform(0.05, 0.95, size=(K, 4))
        return Binomial(7), BinomialParams(p), rng.binomial(7, 0.4, size=(n, 4))
    if name == "binomial-trials-column":
        p = rng.uniform(0.05, 0.95, size=(K, 3))
        trials = rng.randint(0, 12, size=n)
        successes = rng.binomial(trials[:, None], 0.4, size=(n, 3))
        X = np.column_stack([successes[:, :1], trials, successes[:, 1:]])  # trials in column 1
        return Binomial(trials_column=1), BinomialParams(p), X
    if name == "multinomial":
        p = rng.dirichlet(np.ones(4), size=K)
        totals = rng.randint(1, 30, size=n)
        X = np.array([rng.multinomial(t, [0.1, 0.2, 0.3, 0.4]) for t in totals])
        return Multinomial(), MultinomialParams(p), X
    if name == "categorical":
        p = rng.dirichlet(np.ones(4), size=(K, 3))
        return Multinomial(4), MultinomialParams(p), rng.randint(0, 4, size=(n, 3))
    if name == "poisson":
        rates = rng.uniform(0.2, 8, size=(K, 4))
        return Poisson(), PoissonParams(rates), rng.poisson(3.0, size=(n, 4))
    if name == "grouped":
        params = GroupedGaussianParams(rng.normal(size=K) * 3, rng.uniform(0.5, 4, size=K))
        return GroupedGaussian(), params, rng.normal(1.0, 2.0, size=(n, 12))
    raise ValueError(name)


NAMES = [
    "bernoulli",
    "binomial",
    "binomial-trials-column",
    "multinomial",
    "categorical",
    "poisson",
    "grouped",
]


def scipy_log_prob(name: str, params, X: np.ndarray, k: int) -> np.ndarray:
    """Log-density of every row under component ``k``, from scipy.stats."""
    if name == "bernoulli":
        return scipy_stats.bernoulli.logpmf(X, params.probabilities[k]).sum(axis=1)
    if name == "binomial":
        return scipy_stats.binom.logpmf(X, 7, params.probabilities[k]).sum(axis=1)
    if name == "binomial-trials-column":
        successes, trials = np.delete(X, 1, axis=1), X[:, 1:2]
        return scipy_stats.binom.logpmf(successes, trials, params.probabilities[k]).sum(axis=1)
    if name == "multinomial":
        return scipy_stats.multinomial.logpmf(X, X.sum(axis=1), params.probabilities[k])
    if name == "categorical":
        one_hot = np.eye(4)[X]  # (n, D, C)
        return sum(
            scipy_stats.multinomial.logpmf(one_hot[:, d], 1, params.probabilities[k, d])
            for d in range(X.shape[1])
        )
    if name == "poisson":
        return scipy_stats.poisson.logpmf(X, params.rates[k]).sum(axis=1)
    scale = np.sqrt(params.variances[k])
    return scipy_stats.norm.logpdf(X, params.means[k], scale).sum(axis=1)


def stats_of(family, X, resp):
    return stats_from_responsibilities(family, X, resp)


def defined(stats):
    """Statistics with the (arbitrary) mean of components that have no draws set to 0."""
    if hasattr(stats, "entries"):
        return stats._replace(means=np.where(stats.entries > 0, stats.means, 0.0))
    return stats


def assert_stats_close(a, b, rtol=1e-12):
    assert type(a) is type(b)
    for x, y in zip(defined(a), defined(b), strict=True):
        assert_close(x, y, rtol, max(np.max(np.abs(y)), 1.0))


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_equals_scipy(name):
    family, params, X = problem(name)
    ours = component_log_prob(family, params, X)
    for k in range(K):
        expected = scipy_log_prob(name, params, X, k)
        assert_close(ours[:, k], expected, 1e-13)


# -- the M-step --------------------------------------------------------------------------------


def without_smoothing(family):
    field = {"Poisson": "min_rate", "GroupedGaussian": "reg_covar"}.get(
        type(family).__name__, "min_probability"
    )
    return dataclasses.replace(family, **{field: 0.0})


def plain_mle(name: str, group: np.ndarray) -> tuple[np.ndarray, ...]:
    """The textbook maximum-likelihood estimate from the rows of one component."""
    if name in ("bernoulli", "poisson"):
        return (group.mean(axis=0),)
    if name == "binomial":
        return (group.sum(axis=0) / (7 * len(group)),)
    if name == "binomial-trials-column":
        return (np.delete(group, 1, axis=1).sum(axis=0) / group[:, 1].sum(),)
    if name == "multinomial":
        return (group.sum(axis=0) / group.sum(),)
    if name == "categorical":
        return (np.stack([np.bincount(column, minlength=4) / len(group) for column in group.T]),)
    return group.mean(), group.var()


@pytest.mark.parametrize("name", NAMES)
def test_one_hot_m_step_is_plain_mle(name):
    family, _, X = problem(name, n=90, seed=1)
    family = without_smoothing(family)
    labels = np.arange(len(X)) % K
    params, notes = family.m_step(stats_from_responsibilities(family, X, np.eye(K)[labels]))
    assert notes == []
    for k in range(K):
        for ours, expected in zip(params, plain_mle(name, X[labels == k]), strict=True):
            assert_close(ours[k], expected, 1e-14)


def test_smoothing_floors_what_the_data_leave_at_zero():
    X = np.array([[0, 1, 3], [0, 1, 5]])
    one = np.ones((2, 1))
    bernoulli = Bernoulli(min_probability=1e-3)
    p = bernoulli.m_step(stats_from_responsibilities(bernoulli, X[:, :2], one))[0]
    np.testing.assert_array_equal(p.probabilities, [[1e-3, 1 - 1e-3]])
    poisson = Poisson(min_rate=1e-3)
    rates = poisson.m_step(stats_from_responsibilities(poisson, X, one))[0].rates
    np.testing.assert_array_equal(rates, [[1e-3, 1.0, 4.0]])
    multinomial = Multinomial(min_probability=1e-3)
    p = multinomial.m_step(stats_from_responsibilities(multinomial, X, one))[0].probabilities
    expected = np.array([1e-3, 2 / 10, 8 / 10])
    assert_close(p, [expected / expected.sum()], 1e-15)


def test_empty_component_gets_finite_parameters():
    for name in NAMES:
        family, _, X = problem(name)
        resp = np.zeros((len(X), K))
        resp[:, 0] = 1.0  # components 1 and 2 have no rows
        params, _ = family.m_step(stats_from_responsibilities(family, X, resp))
        A, b = family.coefficients(params, family.reference(X))
        assert np.all(np.isfinite(A)) and np.all(np.isfinite(b)), name


@pytest.mark.parametrize("name", NAMES)
def test_reseed_restarts_one_component_at_a_row(name):
    family, params, X = problem(name)
    stats = stats_of(family, X, np.random.RandomState(0).dirichlet(np.ones(K), size=len(X)))
    row = X[5].astype(np.float64)
    new = family.reseed(params, 1, row, stats)
    for before, after in zip(params, new, strict=True):
        np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])  # the others: untouched
    log_prob = component_log_prob(family, new, X)
    assert np.all(np.isfinite(log_prob))
    assert log_prob[5, 1] >= component_log_prob(family, params, X[5:6])[0, 1]


# -- the chunk kernel --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_chunk_estep_equals_dense_computation(name):
    family, params, X = problem(name, n=500)
    weights = np.array([0.2, 0.3, 0.5])
    model = Mixture(family, weights, params)
    weighted = component_log_prob(family, params, X) + np.log(weights)
    norm = logsumexp(weighted, axis=1)
    expected = stats_of(family, X, np.exp(weighted - norm[:, None]))
    result = chunk_estep(X, None, (model,))
    np.testing.assert_allclose(result.log_likelihood[0], norm.sum(), rtol=1e-12)
    assert_stats_close(result.stats[0], expected, 1e-12)


@pytest.mark.parametrize(
    "name", ["bernoulli", "binomial", "multinomial", "categorical", "poisson"]
)
@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.float32, bool])
def test_any_input_dtype_accumulates_in_float64(name, dtype):
    family, params, X = problem(name, n=300)
    if dtype is bool:
        X = X > 0  # valid 0/1 data for every family (and no multinomial row of zeros)
    model = Mixture(family, np.full(K, 1 / K), params)
    narrow = chunk_estep(X.astype(dtype), None, (model,))
    wide = chunk_estep(X.astype(np.float64), None, (model,))
    assert narrow.log_likelihood[0] == wide.log_likelihood[0]
    for ours, theirs in zip(narrow.stats[0], wide.stats[0], strict=True):
        assert ours.dtype == np.float64
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("name", NAMES)
def test_expected_log_prob_from_statistics(name):
    """``Σ r (log p_k(x) − h(x))`` per component, from the statistics alone."""
    family, params, X = problem(name, n=200)
    resp = np.random.RandomState(1).dirichlet(np.ones(K), size=len(X))
    h = family.base_log_measure(X)
    log_prob = component_log_prob(family, params, X) - (0.0 if h is None else h[:, None])
    expected = (resp * log_prob).sum(axis=0)
    assert_close(family.expected_log_prob(stats_of(family, X, resp), params), expected, 1e-12)


def test_families_are_json_serialisable_values():
    for name in NAMES:
        family = problem(name)[0]
        text = json.dumps(dataclasses.asdict(family))
        assert type(family)(**json.loads(text)) == family
        hash(family.feature_key)
