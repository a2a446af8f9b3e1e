"""Discrete families and grouped Gaussian rows: densities, statistics, M-steps and estimators."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer
from sklearn.utils.estimator_checks import parametrize_with_checks

import streamem
from streamem import DegenerateComponentWarning
from streamem.estep import chunk_estep, component_log_prob
from streamem.estimators.discrete import (
    BernoulliMixture,
    BinomialMixture,
    GroupedGaussianMixture,
    MultinomialMixture,
    PoissonMixture,
)
from streamem.families._base import Mixture, stats_from_responsibilities
from streamem.families.bernoulli import Bernoulli, BernoulliParams
from streamem.families.binomial import Binomial, BinomialParams
from streamem.families.grouped_gaussian import GroupedGaussian, GroupedGaussianParams
from streamem.families.multinomial import Multinomial, MultinomialParams
from streamem.families.poisson import Poisson, PoissonParams

from .test_gaussian_family import assert_close

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


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_equals_scipy(name):
    family, params, X = problem(name)
    ours = component_log_prob(family, params, X)
    for k in range(K):
        expected = scipy_log_prob(name, params, X, k)
        assert_close(ours[:, k], expected, 1e-13)


def test_grouped_log_prob_far_from_origin():
    """Centring rows on the chunk's mean keeps data offset by 1e6 as accurate as data at 0."""
    family, params, X = problem("grouped")
    shifted = params._replace(means=params.means + 1e6)
    near = component_log_prob(family, params, X)
    far = component_log_prob(family, shifted, X + 1e6)
    np.testing.assert_allclose(far, near, rtol=1e-9)


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


# -- the algebra of statistics -----------------------------------------------------------------


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


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    n=st.integers(3, 40),
    seed=st.integers(0, 2**31 - 1),
    cuts=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_merge_algebra(name, n, seed, cuts):
    """merge = statistics of the union, commutative and associative; subtract inverts it."""
    family, _, X = problem(name, n=n, seed=seed)
    resp = np.random.RandomState(seed).dirichlet(np.ones(K), size=n)
    i, j = sorted(int(c * n) for c in cuts)
    a, b, c = (stats_of(family, X[s], resp[s]) for s in (slice(0, i), slice(i, j), slice(j, n)))
    whole = stats_of(family, X, resp)
    ab = family.merge(a, b)
    assert_stats_close(family.merge(ab, c), whole)
    assert_stats_close(family.merge(c, ab), whole)
    assert_stats_close(family.merge(a, family.merge(b, c)), family.merge(ab, c))
    rest = family.subtract(whole, c)
    assert_stats_close(rest, ab, 1e-10) if name == "grouped" else assert_stats_close(rest, ab)
    assert_stats_close(family.scale(whole, 2.5), stats_of(family, X, resp * 2.5))


def test_grouped_merge_far_from_origin_has_no_cancellation():
    """Chunks of draws at 1e6 merge to the scatter of draws at 0, to 1e-9."""
    rng = np.random.RandomState(5)
    X = rng.normal(size=(500, 20))
    resp = rng.dirichlet(np.ones(2), size=500)
    family = GroupedGaussian()
    parts = [stats_of(family, X[s] + 1e6, resp[s]) for s in np.array_split(np.arange(500), 7)]
    merged = parts[0]
    for part in parts[1:]:
        merged = family.merge(merged, part)
    reference = stats_of(family, X, resp)
    assert_close(merged.scatter, reference.scatter, 1e-9)
    assert_close(merged.means - 1e6, reference.means, 1e-7, scale=1.0)


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


# -- estimators: one fit of each kind ---------------------------------------------------------

UNEQUAL = (1, 700, 13, 500, 86, 400, 300)  # 2000 rows in seven unequal chunks


def known_mixture(name: str, n: int, seed: int = 0):
    """An estimator, rows drawn from a known mixture, their labels and the true parameters."""
    rng = np.random.RandomState(seed)
    weights = np.array([0.3, 0.7])
    if name == "bernoulli":
        truth = np.array([[0.9, 0.8, 0.2, 0.1, 0.5, 0.9], [0.1, 0.3, 0.9, 0.7, 0.5, 0.2]])
        family, params, estimator = Bernoulli(), BernoulliParams(truth), BernoulliMixture(2)
    elif name == "binomial":
        truth = np.array([[0.2, 0.5, 0.8], [0.7, 0.3, 0.4]])
        family, params = Binomial(10), BinomialParams(truth)
        estimator = BinomialMixture(2, n_trials=10)
    elif name == "multinomial":
        truth = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.3, 0.1, 0.1]])
        family, params = Multinomial(n_trials=20), MultinomialParams(truth)
        estimator = MultinomialMixture(2)  # totals are not declared: any positive total
    elif name == "categorical":
        # latent-class models need three or more columns to be identifiable
        first = [[0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]]
        second = [[0.1, 0.1, 0.8], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]]
        truth = np.array([first, second])
        family, params = Multinomial(3), MultinomialParams(truth)
        estimator = MultinomialMixture(2, n_categories=3)
    elif name == "poisson":
        truth = np.array([[1.0, 10.0], [8.0, 2.0]])
        family, params, estimator = Poisson(), PoissonParams(truth), PoissonMixture(2)
    else:
        truth = (np.array([0.0, 3.0]), np.array([1.0, 4.0]))
        family, params = GroupedGaussian(group_size=30), GroupedGaussianParams(*truth)
        estimator = GroupedGaussianMixture(2)
        truth = np.column_stack(truth)
    counts = rng.multinomial(n, weights)
    X = family.sample(params, counts, rng)
    labels = np.repeat([0, 1], counts)
    order = rng.permutation(n)
    return estimator.set_params(random_state=0), X[order], labels[order], weights, truth


ESTIMATOR_NAMES = ["bernoulli", "binomial", "multinomial", "categorical", "poisson", "grouped"]


def parameters(estimator) -> np.ndarray:
    if isinstance(estimator, GroupedGaussianMixture):
        return np.column_stack([estimator.means_, estimator.variances_])
    if isinstance(estimator, PoissonMixture):
        return estimator.rates_
    return estimator.probabilities_


def assert_recovered(estimator, X, labels, truth, rtol=0.1, atol=0.04):
    """The fitted components match the true ones (in some order), and so do the labels."""
    found = parameters(estimator)
    cost = [[np.abs(f - t).sum() for t in truth] for f in found]
    order = linear_sum_assignment(cost)[1]  # fitted component → true component
    inverse = np.argsort(order)
    frequencies = np.bincount(labels) / len(labels)
    np.testing.assert_allclose(estimator.weights_[inverse], frequencies, atol=0.02)
    np.testing.assert_allclose(found[inverse], truth, rtol=rtol, atol=atol)
    assert np.mean(order[estimator.predict(X)] == labels) > 0.9


@pytest.mark.parametrize("name", ESTIMATOR_NAMES)
def test_known_mixture_is_recovered(name):
    n = 300 if name == "grouped" else 3000
    estimator, X, labels, _, truth = known_mixture(name, n)
    estimator.fit(X)
    assert estimator.converged_
    assert_recovered(estimator, X, labels, truth)


def test_partial_fit_recovers_a_known_mixture():
    estimator, X, labels, _, truth = known_mixture("poisson", 3000)
    for batch in np.array_split(X, 10):
        estimator.partial_fit(batch)
    assert estimator.n_steps_ == 10
    assert_recovered(estimator, X, labels, truth, rtol=0.15)


@pytest.mark.parametrize("name", ESTIMATOR_NAMES)
def test_save_and_load_round_trip(name, tmp_path):
    estimator, X, _, _, _ = known_mixture(name, 200)
    estimator.fit(X)
    estimator.save(tmp_path / "model")
    loaded = streamem.load(tmp_path / "model")
    assert type(loaded) is type(estimator) and loaded._family() == estimator._family()
    np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
    np.testing.assert_array_equal(parameters(loaded), parameters(estimator))


@pytest.mark.parametrize("name", ESTIMATOR_NAMES)
def test_dask_engine_equals_numpy(name):
    estimator, X, _, _, _ = known_mixture(name, 2000, seed=1)
    estimator.set_params(tol=0, max_iter=8, split_every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        in_memory = estimator.fit(X)
        expected = parameters(in_memory), in_memory.weights_, in_memory.lower_bounds_
        lazy = estimator.fit(da.from_array(X, chunks=(UNEQUAL, X.shape[1])))
    assert_close(parameters(lazy), expected[0], 1e-10)
    assert_close(lazy.weights_, expected[1], 1e-10)
    np.testing.assert_allclose(lazy.lower_bounds_, expected[2], rtol=1e-10)
    assert len(lazy.lower_bounds_) == 8


@pytest.mark.parametrize("name", ESTIMATOR_NAMES)
def test_incremental_em_reaches_the_batch_fit(name):
    estimator, X, _, _, _ = known_mixture(name, 300 if name == "grouped" else 2000)
    batch = estimator.fit(X).lower_bound_
    estimator.set_params(algorithm="incremental", chunk_size=len(X) // 6).fit(X)
    assert estimator.lower_bound_ <= estimator.score(X) + 1e-12  # a free energy: a lower bound
    assert estimator.score(X) == pytest.approx(batch, abs=2e-3)


def test_per_row_trials_equal_constant_trials_when_they_are_equal():
    estimator, X, _, _, _ = known_mixture("binomial", 500)
    constant = estimator.fit(X)
    with_column = BinomialMixture(2, trials_column=-1, random_state=0)
    with_column.fit(np.column_stack([X, np.full(len(X), 10)]))
    assert with_column.n_features_in_ == 4 and with_column.probabilities_.shape == (2, 3)
    assert_close(with_column.probabilities_, constant.probabilities_, 1e-12)
    assert with_column.lower_bound_ == pytest.approx(constant.lower_bound_, rel=1e-12)


def test_categorical_with_two_labels_is_bernoulli():
    estimator, X, _, _, _ = known_mixture("bernoulli", 500)
    bernoulli = estimator.fit(X)
    categorical = MultinomialMixture(2, n_categories=2, random_state=0).fit(X)
    assert_close(categorical.probabilities_[:, :, 1], bernoulli.probabilities_, 1e-9)
    assert categorical.lower_bound_ == pytest.approx(bernoulli.lower_bound_, rel=1e-12)


def test_learn_weights_false_keeps_weights():
    estimator, X, _, _, _ = known_mixture("poisson", 500)
    estimator.set_params(learn_weights=False, weights_init=[0.5, 0.5]).fit(X)
    np.testing.assert_array_equal(estimator.weights_, [0.5, 0.5])
    assert np.ptp(estimator.rates_[:, 0]) > 4  # the rates were learned


def test_n_init_keeps_the_best():
    X = known_mixture("bernoulli", 400, seed=3)[1]
    restarts = []
    best = BernoulliMixture(
        2, n_init=4, init_params="random_from_data", random_state=5, callback=restarts.append
    ).fit(X)
    rng = np.random.RandomState(5)
    starts = [
        BernoulliMixture(2, init_params="random_from_data", random_state=rng, max_iter=0).fit(X)
        for _ in range(4)
    ]
    singles = [
        BernoulliMixture(
            2, weights_init=s.weights_, probabilities_init=s.probabilities_, random_state=0
        ).fit(X)
        for s in starts
    ]
    finals = [[r.lower_bound for r in restarts if r.init == i][-1] for i in range(4)]
    np.testing.assert_allclose(finals, [s.lower_bound_ for s in singles], rtol=1e-12)
    assert best.lower_bound_ == max(finals)


def test_sample_weight_equals_repeated_rows():
    estimator, X, _, _, _ = known_mixture("binomial", 400)
    counts = np.random.RandomState(0).randint(0, 3, size=len(X))
    start = estimator.set_params(max_iter=0).fit(X)
    init = dict(weights_init=start.weights_, probabilities_init=start.probabilities_)
    weighted = BinomialMixture(2, n_trials=10, **init).fit(X, sample_weight=counts)
    repeated = BinomialMixture(2, n_trials=10, **init).fit(np.repeat(X, counts, axis=0))
    assert_close(weighted.probabilities_, repeated.probabilities_, 1e-12)
    assert_close(weighted.weights_, repeated.weights_, 1e-12)


def test_sample_draws_from_the_fitted_model():
    for name in ESTIMATOR_NAMES:
        estimator, X, _, _, _ = known_mixture(name, 200)
        if name == "multinomial":
            estimator.set_params(n_trials=20)
        Y, y = estimator.fit(X).sample(50)
        assert Y.shape == (50, X.shape[1]) and y.shape == (50,)
        estimator.score(Y)  # valid data for the model
    with pytest.raises(ValueError, match="per-row trials"):
        BinomialMixture(trials_column=0).fit([[3, 1], [4, 4]]).sample(2)
    with pytest.raises(ValueError, match="set n_trials"):
        MultinomialMixture().fit([[3, 1], [4, 4]]).sample(2)


def test_information_criteria_count_free_parameters():
    cases = [
        (BernoulliMixture(3), (3 * 6), "bernoulli"),
        (MultinomialMixture(3), 3 * 3, "multinomial"),
        (MultinomialMixture(3, n_categories=3), 3 * 4 * 2, "categorical"),
        (GroupedGaussianMixture(3), 3 * 2, "grouped"),
    ]
    for estimator, n_parameters, name in cases:
        X = known_mixture(name, 300)[1]
        estimator.set_params(random_state=0).fit(X)
        expected = -2 * estimator.score(X) * len(X) + (n_parameters + 2) * np.log(len(X))
        assert estimator.bic(X) == pytest.approx(expected, rel=1e-12)


def test_collapsed_component_is_reseeded():
    estimator, X, _, _, _ = known_mixture("poisson", 1000)
    far = np.array([[1.0, 10.0], [8.0, 2.0], [500.0, 500.0]])
    estimator.set_params(n_components=3, rates_init=far, weights_init=[0.3, 0.4, 0.3])
    with pytest.warns(DegenerateComponentWarning, match="component 2 collapsed"):
        estimator.fit(X)
    assert estimator.rates_.max() < 50 and np.isfinite(estimator.lower_bound_)


# -- bad input ---------------------------------------------------------------------------------


def valid_rows(estimator) -> np.ndarray:
    """600 rows of small counts, valid data for ``estimator``."""
    X = np.random.RandomState(0).poisson(1.5, size=(600, 3)).clip(0, 3).astype(np.float64)
    if isinstance(estimator, BernoulliMixture):
        X = (X > 1).astype(np.float64)
    elif isinstance(estimator, BinomialMixture) and estimator.trials_column == 0:
        X[:, 0] = 3
    elif isinstance(estimator, MultinomialMixture) and estimator.n_categories is None:
        X[:, 0] += 1  # no row of all zeros
    return X


BAD_INPUTS = [
    (BernoulliMixture(2), 2.0, "Bernoulli features must be 0 or 1 (or bool); found 2.0"),
    (PoissonMixture(2), -1.0, "Negative values in data: Poisson counts must be non-negative"),
    (PoissonMixture(2), 2.5, "Poisson counts must be non-negative integers; found 2.5"),
    (PoissonMixture(2), np.nan, "Input contains NaN or infinity"),
    (BinomialMixture(2, n_trials=6), 7.0, "from 0 to n_trials=6; found 7.0"),
    (BinomialMixture(2, trials_column=0), 4.0, "no more successes than the row's number"),
    (MultinomialMixture(2), None, "found 1 row(s) of all zeros"),
    (MultinomialMixture(2, n_categories=4), 4.0, "from 0 to n_categories - 1 = 3; found 4.0"),
]


@pytest.mark.parametrize(("estimator", "value", "message"), BAD_INPUTS)
def test_bad_values_name_the_rows(estimator, value, message):
    X = valid_rows(estimator)
    if value is None:
        X[321] = 0
    else:
        X[321, 1] = value
    pattern = re.escape(message) + ".* in rows 300–399"
    estimator.set_params(random_state=0, init_size=50)
    with pytest.raises(ValueError, match=pattern):
        estimator.fit(da.from_array(X, chunks=(100, 3)))
    fitted = estimator.fit(np.delete(X, 321, axis=0))
    with pytest.raises(ValueError, match=pattern):
        fitted.predict(da.from_array(X, chunks=(100, 3))).compute()
    with pytest.raises(ValueError, match=re.escape(message) + ".* in rows 0–599"):
        fitted.score_samples(X)


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (BernoulliMixture(min_probability=0), "min_probability must be a number in"),
        (BernoulliMixture(min_probability=0.5), "min_probability must be a number in"),
        (PoissonMixture(min_rate=-1), "min_rate must be a number in"),
        (BinomialMixture(n_trials=0), "n_trials must be an integer ≥ 1"),
        (BinomialMixture(trials_column=3), "trials_column=3 is not a column of X"),
        (BinomialMixture(trials_column=1.0), "trials_column must be None or an int"),
        (MultinomialMixture(n_categories=1), "n_categories must be an integer ≥ 2"),
        (MultinomialMixture(n_categories=3, n_trials=2), "n_trials applies to count vectors"),
        (BernoulliMixture(2, probabilities_init=np.ones((2, 2))), r"must have shape \(2, 3\)"),
        (BernoulliMixture(2, probabilities_init=np.full((2, 3), 2)), r"must lie in \[0, 1\]"),
        (MultinomialMixture(2, probabilities_init=np.ones((2, 3))), "must sum to 1"),
        (PoissonMixture(2, rates_init=-np.ones((2, 3))), "rates_init must be non-negative"),
        (GroupedGaussianMixture(2, variances_init=[1, 0]), "variances_init must be positive"),
        (GroupedGaussianMixture(2, means_init=[[1, 0]]), r"means_init must have shape \(2,\)"),
        (GroupedGaussianMixture(reg_covar=-1), "reg_covar must be a number"),
        (PoissonMixture(learn_weights=False), "weights_init must give them"),
    ],
)
def test_invalid_parameters(estimator, message):
    X = np.eye(3)[np.arange(40) % 3]  # one-hot rows: valid data for every estimator
    with pytest.raises(ValueError, match=message):
        estimator.fit(X)


# -- scikit-learn's estimator checks -----------------------------------------------------------

NOT_INTEGER_DATA = (
    "this check draws continuous data without applying the input tags; counts and labels must "
    "be integers"
)
KMEANS_WEIGHTS = "k-means initialisation with sample weights is not equivalent to repeated rows"
NOT_BINARY = (
    "the checks give integer data from 0 up (the categorical input tag); a Bernoulli mixture "
    "rejects values other than 0 and 1 with a ValueError (run on binarised data below)"
)
ZERO_ROWS = "the rounded check data hold rows of all zeros, which a multinomial mixture rejects"
BERNOULLI_FAILURES = [
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_estimators_dtypes",
    "check_sample_weights_pandas_series",
    "check_sample_weights_not_an_array",
    "check_sample_weights_shape",
    "check_sample_weights_not_overwritten",
    "check_f_contiguous_array_estimator",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
]
MULTINOMIAL_FAILURES = [
    "check_fit_score_takes_y",
    "check_sample_weights_pandas_series",
    "check_sample_weights_not_an_array",
    "check_sample_weights_list",
    "check_pipeline_consistency",
    "check_estimators_pickle",
    "check_fit2d_1feature",
]
PIPELINE_FAILURES = {
    name: "Pipeline replaces its steps with fitted clones (scikit-learn's own Pipeline fails too)"
    for name in ("check_estimators_overwrite_params", "check_dont_overwrite_parameters")
}


def expected_failed_checks(estimator) -> dict[str, str]:
    if not hasattr(estimator, "n_components"):
        return PIPELINE_FAILURES
    if isinstance(estimator, GroupedGaussianMixture):
        if estimator.n_components == 1:
            return {}
        return {"check_sample_weight_equivalence_on_dense_data": KMEANS_WEIGHTS}
    failures = {"check_sample_weight_equivalence_on_dense_data": NOT_INTEGER_DATA}
    if isinstance(estimator, BernoulliMixture):
        failures |= dict.fromkeys(BERNOULLI_FAILURES, NOT_BINARY)
    if isinstance(estimator, MultinomialMixture) and estimator.n_categories is None:
        failures |= dict.fromkeys(MULTINOMIAL_FAILURES, ZERO_ROWS)
    return failures


@parametrize_with_checks(
    [
        BernoulliMixture(),
        BernoulliMixture(2),
        make_pipeline(Binarizer(threshold=1.5), BernoulliMixture(2)),
        BinomialMixture(n_trials=20),
        BinomialMixture(2, n_trials=20),
        MultinomialMixture(),
        MultinomialMixture(2),
        MultinomialMixture(2, n_categories=20),
        PoissonMixture(),
        PoissonMixture(2),
        GroupedGaussianMixture(),
        GroupedGaussianMixture(2),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
