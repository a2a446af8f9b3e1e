"""The variational Bayesian discrete mixtures: known mixtures recovered with unneeded
components emptied, a monotone ELBO, every engine, files, updates, and scikit-learn's checks.
Their families are tested against a term-by-term reference in tests/families/."""

from __future__ import annotations

import functools
import warnings

import dask.array as da
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer
from sklearn.utils.estimator_checks import parametrize_with_checks

from streamem import (
    BayesianBernoulliMixture,
    BayesianBinomialMixture,
    BayesianGaussianMixture,
    BayesianMultinomialMixture,
    BayesianPoissonMixture,
    load,
)
from streamem.drivers.common import elbo_penalty
from streamem.estimators import mixture_of
from streamem.families.bernoulli import Bernoulli, BernoulliParams
from streamem.families.binomial import Binomial, BinomialParams
from streamem.families.multinomial import Multinomial, MultinomialParams
from streamem.families.poisson import Poisson, PoissonParams

from ..conftest import assert_close
from .test_discrete import (
    BERNOULLI_FAILURES,
    NOT_BINARY,
    NOT_INTEGER_DATA,
    PIPELINE_FAILURES,
)

WEIGHTS = np.array([0.5, 0.3, 0.2])
NAMES = [
    "bernoulli",
    "binomial",
    "binomial-trials-column",
    "poisson",
    "multinomial",
    "categorical",
]


@functools.cache
def known_mixture(name: str, n: int = 3000, seed: int = 0):
    """An estimator (six components allowed), rows of a known three-component mixture, and
    the true parameters (as the estimator's point estimates)."""
    rng = np.random.RandomState(seed)
    counts = rng.multinomial(n, WEIGHTS)
    options = dict(n_components=6, weight_concentration_prior=0.01, random_state=0)
    trials = None
    if name == "bernoulli":
        truth = np.array(
            [
                [0.9, 0.9, 0.1, 0.1, 0.8, 0.2],
                [0.1, 0.1, 0.9, 0.9, 0.8, 0.2],
                [0.5, 0.9, 0.9, 0.1, 0.1, 0.9],
            ]
        )
        X = Bernoulli().sample(BernoulliParams(truth), counts, rng)
        estimator = BayesianBernoulliMixture(**options)
    elif name == "binomial":
        truth = np.array([[0.1, 0.5, 0.9], [0.8, 0.2, 0.5], [0.5, 0.9, 0.1]])
        X = Binomial(10).sample(BinomialParams(truth), counts, rng)
        estimator = BayesianBinomialMixture(n_trials=10, **options)
    elif name == "binomial-trials-column":
        truth = np.array([[0.1, 0.5, 0.9], [0.8, 0.2, 0.5], [0.5, 0.9, 0.1]])
        trials = rng.randint(5, 20, size=(n, 1))
        labels = np.repeat(np.arange(3), counts)
        successes = rng.binomial(trials, truth[labels])
        X = np.column_stack([trials, successes])
        estimator = BayesianBinomialMixture(trials_column=0, **options)
    elif name == "poisson":
        truth = np.array([[1.0, 10.0, 4.0], [8.0, 2.0, 4.0], [15.0, 15.0, 0.5]])
        X = Poisson().sample(PoissonParams(truth), counts, rng)
        estimator = BayesianPoissonMixture(**options)
    elif name == "multinomial":
        truth = np.array([[0.1, 0.2, 0.3, 0.4], [0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1]])
        X = Multinomial(n_trials=20).sample(MultinomialParams(truth), counts, rng)
        estimator = BayesianMultinomialMixture(**options)
    else:
        truth = np.array(
            [
                [[0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]],
                [[0.1, 0.1, 0.8], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]],
                [[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]],
            ]
        )
        X = Multinomial(3).sample(MultinomialParams(truth), counts, rng)
        estimator = BayesianMultinomialMixture(n_categories=3, **options)
    order = rng.permutation(n)
    return estimator, X[order], truth


def elbo(model, X) -> float:
    """The exact ELBO per row of a fitted model with a fresh E-step on ``X``."""
    return model.score(X) - elbo_penalty(mixture_of(model)) / len(X)


def point(model):
    return model.rates_ if hasattr(model, "rates_") else model.probabilities_


def fit(estimator, X, **more):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.set_params(**more).fit(X)


@functools.cache
def fitted(name: str, **more):
    estimator, X, _ = known_mixture(name)
    return fit(estimator.__class__(**estimator.get_params()), X, **more)


def assert_same_model(a, b, rtol):
    for name in [n for n in vars(b) if n.endswith("_") and not n.startswith("_")]:
        value = getattr(b, name)
        if isinstance(value, np.ndarray) or name == "weight_concentration_":
            assert_close(np.asarray(getattr(a, name)), np.asarray(value), rtol)
    assert_close(a.lower_bounds_, b.lower_bounds_, rtol)


@pytest.mark.parametrize("name", NAMES)
def test_recovers_a_known_mixture_and_empties_the_other_components(name):
    """Six components allowed, three true: a Dirichlet-process prior of concentration 0.01
    leaves three components with more than 1% of the weight, at the true parameters (the
    best ELBO of four random starts: from one start, mean-field VB may keep a true component
    split in two, a local optimum)."""
    _, _, truth = known_mixture(name)
    model = fitted(name, max_iter=1000, n_init=4, init_params="random")
    assert model.converged_
    effective = model.weights_ > 0.01
    assert effective.sum() == 3
    found = point(model)[effective]
    cost = np.abs(found.reshape(3, -1)[:, None] - truth.reshape(3, -1)[None]).sum(-1)
    rows, columns = linear_sum_assignment(cost)
    scale = np.maximum(truth[columns], 1.0) if name == "poisson" else 1.0
    np.testing.assert_allclose(found[rows] / scale, truth[columns] / scale, atol=0.05)
    np.testing.assert_allclose(model.weights_[effective][rows], WEIGHTS[columns], atol=0.04)
    # the other components hold (nearly) nothing: their posterior is about the prior
    assert model.weights_[~effective].sum() < 0.01


@pytest.mark.parametrize("algorithm", ["batch", "incremental"])
@pytest.mark.parametrize("name", NAMES)
def test_elbo_never_decreases(name, algorithm):
    """Batch and incremental VB are coordinate ascent on the ELBO."""
    estimator, X, _ = known_mixture(name)
    lazy = da.from_array(X, chunks=(400, X.shape[1]))
    model = fit(
        estimator.__class__(**estimator.get_params()),
        lazy,
        algorithm=algorithm,
        tol=0,
        max_iter=25,
        init_params="random",
    )
    bounds = np.array(model.lower_bounds_)
    assert len(bounds) == 25
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))
    assert bounds[-1] > bounds[0]


@pytest.mark.parametrize("weight_prior", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("name", NAMES)
def test_numpy_and_dask_agree_whatever_the_chunks(name, weight_prior):
    """The same posterior from in-memory rows and from unequal Dask chunks merged two at a
    time (chunking and merge order change only rounding)."""
    estimator, X, _ = known_mixture(name)
    options = dict(max_iter=20, tol=0, weight_concentration_prior_type=weight_prior)
    ours = fit(estimator.__class__(**estimator.get_params()), X, **options)
    chunks = ((1, 700, 13, 500, 86, 400, 300, 1000), (X.shape[1],))
    lazy = da.from_array(X, chunks=chunks)
    theirs = fit(estimator.__class__(**estimator.get_params()), lazy, split_every=2, **options)
    assert_same_model(theirs, ours, 1e-10)
    # predictions on lazy data are lazy
    proba = theirs.predict_proba(lazy)
    assert isinstance(proba, da.Array)
    assert_close(proba.compute(), ours.predict_proba(X), 1e-9)


def test_local_cluster_agrees(cluster_client):
    estimator, X, _ = known_mixture("poisson")
    ours = fit(estimator.__class__(**estimator.get_params()), X, max_iter=15, tol=0)
    lazy = da.from_array(X, chunks=(700, X.shape[1]))
    with cluster_client.as_current():
        theirs = fit(estimator.__class__(**estimator.get_params()), lazy, max_iter=15, tol=0)
    assert_same_model(theirs, ours, 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_and_updates_continue(name, tmp_path):
    X = known_mixture(name)[1]
    model = fitted(name, max_iter=30)
    path = tmp_path / "model.streamem"
    model.save(path)
    loaded = load(path)
    assert type(loaded) is type(model)
    assert_same_model(loaded, model, 0)
    np.testing.assert_array_equal(loaded.predict_proba(X[:200]), model.predict_proba(X[:200]))
    np.testing.assert_array_equal(loaded.score_samples(X[:200]), model.score_samples(X[:200]))
    # an update of the loaded model is the update of the fitted one
    batch = known_mixture(name, n=300, seed=5)[1]
    model = fitted(name, max_iter=30)
    copy = load(path)
    copy.partial_fit(batch)
    reference = load(path).partial_fit(batch)
    assert_same_model(copy, reference, 0)


def test_partial_fit_continues_from_a_fitted_model():
    """A fitted model's posterior stands for its rows; an update adds the batch's share:
    with a Dirichlet prior on the weights, Σ α = K α₀ + all the rows seen."""
    estimator, X, _ = known_mixture("poisson")
    model = fit(
        estimator.__class__(**estimator.get_params()),
        X,
        weight_concentration_prior_type="dirichlet_distribution",
        max_iter=50,
    )
    k, alpha0 = model.n_components, model.weight_concentration_prior_
    np.testing.assert_allclose(model.weight_concentration_.sum(), k * alpha0 + len(X), rtol=1e-12)
    batch = known_mixture("poisson", n=500, seed=3)[1]
    before = model.rates_.copy()
    model.partial_fit(batch)
    assert model.stepwise_state_.weight_seen == len(X) + len(batch)
    total = model.weight_concentration_.sum()
    np.testing.assert_allclose(total, k * alpha0 + len(X) + len(batch), rtol=1e-12)
    np.testing.assert_allclose(
        model.inverse_scale_.sum(0),
        model.inverse_scale_prior_ * k + len(X) + len(batch),
        rtol=1e-12,
    )
    # the same model: components keep their identity, and barely move
    assert np.abs(model.rates_ - before)[model.weights_ > 0.01].max() < 0.5


@pytest.mark.parametrize("name", ["bernoulli", "poisson", "multinomial"])
def test_online_fit_reaches_the_batch_elbo(name):
    """Stochastic variational inference from a k-means start: two passes of mini-batches
    come within 1e-3 per row of the converged batch ELBO (with as many components as the
    truth: with more, both keep splits at different local optima)."""
    estimator, X, _ = known_mixture(name)
    options = dict(estimator.get_params(), n_components=3)
    batch = fit(estimator.__class__(**options), X, max_iter=500)
    online = fit(estimator.__class__(**options), X, algorithm="online", max_passes=2)
    assert abs(elbo(online, X) - elbo(batch, X)) < 1e-3


def test_the_default_gamma_prior_has_the_data_mean():
    estimator, X, _ = known_mixture("poisson")
    model = fit(estimator.__class__(**estimator.get_params()), X, max_iter=2, shape_prior=2.0)
    np.testing.assert_allclose(model.shape_prior_, 2.0)
    np.testing.assert_allclose(model.shape_prior_ / model.inverse_scale_prior_, X.mean(0), 1e-12)
    # a feature that is always 0: as if one count had been seen in all the rows
    zeros = np.column_stack([X, np.zeros(len(X), int)])
    model = fit(BayesianPoissonMixture(2, random_state=0), zeros, max_iter=2)
    assert model.inverse_scale_prior_[-1] == len(X)


def test_given_priors_are_used():
    _, X, _ = known_mixture("bernoulli")
    model = fit(
        BayesianBernoulliMixture(
            2,
            success_concentration_prior=0.5,
            failure_concentration_prior=np.arange(1.0, 7.0),
            weight_concentration_prior=3.0,
            weight_concentration_prior_type="dirichlet_distribution",
            random_state=0,
        ),
        X,
        max_iter=3,
    )
    np.testing.assert_array_equal(model.success_concentration_prior_, np.full(6, 0.5))
    np.testing.assert_array_equal(model.failure_concentration_prior_, np.arange(1.0, 7.0))
    assert model.weight_concentration_prior_ == 3.0
    total = model.success_concentration_ + model.failure_concentration_
    np.testing.assert_allclose(
        total, np.arange(1.5, 7.5) + (model.weight_concentration_ - 3.0)[:, None], rtol=1e-10
    )


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (BayesianBernoulliMixture(success_concentration_prior=0.0), "must be a positive"),
        (BayesianPoissonMixture(shape_prior=-1.0), "must be a positive"),
        (BayesianPoissonMixture(inverse_scale_prior=[1.0, 2.0]), r"broadcasts to \(6,\)"),
        (BayesianMultinomialMixture(concentration_prior="a"), "must be a positive"),
        (BayesianMultinomialMixture(n_categories=3, n_trials=4), "n_trials applies"),
        (BayesianBinomialMixture(trials_column=9), "is not a column"),
        (BayesianBernoulliMixture(weight_concentration_prior=0), "weight_concentration_prior"),
        (BayesianBernoulliMixture(missing="marginalize"), r"BernoulliMixture\(missing="),
    ],
)
def test_invalid_parameters_are_refused(estimator, message):
    X = np.random.RandomState(0).randint(0, 2, size=(50, 6))
    with pytest.raises(ValueError, match=message):
        estimator.fit(X)


def test_nan_is_refused_with_what_works():
    """The message offers missing='drop' (which works) and not 'marginalize' (which the
    variational mixtures refuse)."""
    X = np.random.RandomState(0).poisson(3.0, size=(100, 3)).astype(float)
    X[7, 1] = np.nan
    binary = np.where(np.isnan(X), np.nan, X > 2)
    for estimator, data in [
        (BayesianPoissonMixture(2), X),
        (BayesianPoissonMixture(2, inverse_scale_prior=1.0), X),  # no pass for the prior
        (BayesianBernoulliMixture(2), binary),
        (BayesianBernoulliMixture(2, init_size=10), binary),  # NaN after the sample
        (BayesianGaussianMixture(2), X),
    ]:
        with pytest.raises(ValueError, match="NaN") as error:
            estimator.fit(data)
        assert "missing='drop'" in str(error.value)
        assert "marginalize" not in str(error.value)
    model = BayesianPoissonMixture(2, missing="drop", random_state=0).fit(X)
    assert model.predict(X[6:9])[1] == -1


def expected_failed_checks(estimator) -> dict[str, str]:
    """As for the plain mixtures (tests/estimators/test_discrete.py): scikit-learn's check
    data are not binary for Bernoulli features, and its weighted and repeated rows start
    k-means differently."""
    if not hasattr(estimator, "n_components"):
        return PIPELINE_FAILURES
    failures = {"check_sample_weight_equivalence_on_dense_data": NOT_INTEGER_DATA}
    if isinstance(estimator, BayesianBernoulliMixture):
        failures |= dict.fromkeys(BERNOULLI_FAILURES, NOT_BINARY)
    return failures


@parametrize_with_checks(
    [
        BayesianBernoulliMixture(),
        make_pipeline(Binarizer(threshold=1.5), BayesianBernoulliMixture(2)),
        BayesianBinomialMixture(2, n_trials=100),
        BayesianPoissonMixture(2, weight_concentration_prior_type="dirichlet_distribution"),
        BayesianMultinomialMixture(2, n_categories=20, concentration_prior=0.5),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.slow
def test_command_line_fit_bayesian(tmp_path, capsys):
    from streamem.cli import main

    _, X, _ = known_mixture("poisson")
    path = tmp_path / "x.npy"
    np.save(path, X)
    output = tmp_path / "model.streamem"
    arguments = ["fit", str(path), "--family", "poisson", "-k", "6", "--bayesian"]
    code = main([*arguments, "--weight-concentration", "0.01", "-o", str(output)])
    assert code == 0
    model = load(output)
    assert isinstance(model, BayesianPoissonMixture)
    assert model.weight_concentration_prior_type == "dirichlet_process"
    assert model.weight_concentration_prior_ == 0.01
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12 * np.abs(model.lower_bounds_[1:]))
    code = main(["fit", str(path), "--family", "grouped-gaussian", "--prior", "dirichlet"])
    assert code == 2
    assert "applies to --family gaussian, bernoulli" in capsys.readouterr().err


def test_model_files_with_bad_posteriors_are_refused():
    from streamem.io import ModelFileError, check_fitted

    for name, attribute, value, message in [
        ("poisson", "shape_", lambda v: -v, "shape_ must be positive"),
        ("poisson", "inverse_scale_prior_", lambda v: v[:2], r"shape \(2,\), expected \(3,\)"),
        ("categorical", "concentration_", lambda v: v[:, :, :2], "concentration"),
        ("binomial-trials-column", "failure_concentration_", lambda v: 0 * v, "positive"),
    ]:
        model = fitted(name, max_iter=30)
        check_fitted(model)
        saved = getattr(model, attribute)
        try:
            setattr(model, attribute, value(saved))
            with pytest.raises(ModelFileError, match=message):
                check_fitted(model)
        finally:
            setattr(model, attribute, saved)


@pytest.mark.parametrize("algorithm", ["batch", "online", "incremental"])
def test_checkpoint_resumes_exactly(tmp_path, algorithm):
    """A fit stopped after two iterations continues from its checkpoint to the model and the
    bounds of an uninterrupted fit."""
    estimator, X, _ = known_mixture("binomial-trials-column")
    lazy = da.from_array(X, chunks=(500, X.shape[1]))
    settings = dict(estimator.get_params(), max_iter=4, tol=0, algorithm=algorithm, batch_size=250)
    uninterrupted = fit(estimator.__class__(**settings), lazy)

    def stop(iteration):
        if iteration.n_iter == 2:
            raise KeyboardInterrupt

    path = tmp_path / "fit.checkpoint"
    with pytest.raises(KeyboardInterrupt):
        fit(
            estimator.__class__(**{**settings, "checkpoint": str(path), "callback": stop}),
            lazy,
        )
    resumed = fit(estimator.__class__(**{**settings, "checkpoint": str(path)}), lazy)
    assert_same_model(resumed, uninterrupted, 0)
    assert resumed.lower_bounds_ == uninterrupted.lower_bounds_
    assert not path.exists()


def test_a_zarr_store_fits_as_its_rows(tmp_path):
    """Out of core: a Zarr store, read chunk by chunk, gives the posterior of its rows."""
    import zarr

    from streamem import make_discrete_mixture

    truth = make_discrete_mixture(
        tmp_path / "counts.zarr", 3000, n_features=4, family="poisson", chunk_rows=700
    )
    X = np.asarray(zarr.open_group(truth.path, mode="r")["data"][:])
    options = dict(n_components=4, max_iter=15, tol=0, random_state=0)
    ours = fit(BayesianPoissonMixture(**options), truth.path)
    theirs = fit(BayesianPoissonMixture(**options), X)
    assert_same_model(ours, theirs, 1e-10)
