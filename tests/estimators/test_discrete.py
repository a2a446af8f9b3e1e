"""The discrete estimators and GroupedGaussianMixture: one fit of each kind, and bad input.

Known mixtures recovered, persistence, the Dask engine and incremental EM against the
in-memory batch fit, and scikit-learn's estimator checks. Their families are tested in
tests/families/.
"""

from __future__ import annotations

import re
import warnings

import dask.array as da
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer
from sklearn.utils.estimator_checks import parametrize_with_checks

import streamem
from streamem import DegenerateComponentWarning
from streamem.estimators.discrete import (
    BernoulliMixture,
    BinomialMixture,
    GroupedGaussianMixture,
    MultinomialMixture,
    PoissonMixture,
)
from streamem.families.bernoulli import Bernoulli, BernoulliParams
from streamem.families.binomial import Binomial, BinomialParams
from streamem.families.grouped_gaussian import GroupedGaussian, GroupedGaussianParams
from streamem.families.multinomial import Multinomial, MultinomialParams
from streamem.families.poisson import Poisson, PoissonParams

from ..conftest import assert_close

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
