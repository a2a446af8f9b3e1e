"""BayesianGaussianMixture: scikit-learn's model iteration by iteration, on every engine and
algorithm, its ELBO, pruning, online updates, files and command line."""

from __future__ import annotations

import functools
import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs as sklearn_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesianGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from streamem import BayesianGaussianMixture, load
from streamem.drivers.common import elbo_penalty
from streamem.estimators import mixture_of
from streamem.families.bayesian_gaussian import WEIGHT_PRIOR_TYPES
from streamem.families.gaussian import COVARIANCE_TYPES

from ..conftest import assert_close, make_blobs
from ..families.test_bayesian_gaussian import sklearn_constant

K = 3
FITTED = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "weight_concentration_",
    "mean_precision_",
    "degrees_of_freedom_",
    "weight_concentration_prior_",
    "mean_precision_prior_",
    "mean_prior_",
    "degrees_of_freedom_prior_",
    "covariance_prior_",
)


@functools.cache
def data(offset: float = 0.0) -> np.ndarray:
    return make_blobs(2000, d=3, k=3, seed=11) + offset


def options(kind, weight_prior, max_iter, **more):
    return {
        "n_components": K,
        "covariance_type": kind,
        "weight_concentration_prior_type": weight_prior,
        "max_iter": max_iter,
        "tol": 0,
        "random_state": 0,
        **more,
    }


@functools.cache
def sklearn_fit(kind, weight_prior, max_iter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SklearnBayesianGaussianMixture(**options(kind, weight_prior, max_iter)).fit(data())


def fit(X, kind="full", weight_prior="dirichlet_process", max_iter=10, **more):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BayesianGaussianMixture(**options(kind, weight_prior, max_iter, **more)).fit(X)


def elbo(model, X) -> float:
    """The exact ELBO per row of a fitted model with a fresh E-step on ``X``."""
    return model.score(X) - elbo_penalty(mixture_of(model)) / len(X)


def assert_same_fit(ours, theirs, rtol, shift=0.0):
    for name in FITTED:
        expected = np.asarray(getattr(theirs, name), dtype=float)
        if name in ("means_", "mean_prior_"):
            expected = expected + shift
        assert_close(np.asarray(getattr(ours, name), dtype=float), expected, rtol)


# scikit-learn's 100 iterations take seconds ('full': ~3 s on a quiet machine)
ITERATIONS = [1, 10, pytest.param(100, marks=pytest.mark.slow)]


@pytest.mark.parametrize("max_iter", ITERATIONS)
@pytest.mark.parametrize("weight_prior", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_same_model_as_sklearn(kind, weight_prior, max_iter):
    """From the same initial responsibilities (k-means with the same seed on every row), every
    fitted attribute and the bound agree with scikit-learn's after 1, 10 and 100 iterations;
    the bound is scikit-learn's (a total without constants) plus its constants, per row."""
    X = data()
    ours, theirs = fit(X, kind, weight_prior, max_iter), sklearn_fit(kind, weight_prior, max_iter)
    assert ours.n_iter_ == theirs.n_iter_ == max_iter
    assert_same_fit(ours, theirs, 1e-8)
    constant = sklearn_constant(X, theirs)
    expected = (np.ravel(theirs.lower_bounds_) + constant) / len(X)
    np.testing.assert_allclose(ours.lower_bounds_, expected, rtol=1e-8)
    assert ours.lower_bound_ == pytest.approx(expected[-1], rel=1e-8)
    assert_close(ours.predict_proba(X), theirs.predict_proba(X), 1e-8)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-8)
    (rows, labels), (their_rows, their_labels) = ours.sample(20), theirs.sample(20)
    np.testing.assert_array_equal(labels, their_labels)
    assert_close(rows, their_rows, 1e-6)


# scikit-learn needs seconds to converge with 'full' and 'diag' (100 to 500 iterations)
STOPPING_KINDS = [
    pytest.param("full", marks=pytest.mark.slow),
    "tied",
    pytest.param("diag", marks=pytest.mark.slow),
    "spherical",
]


@pytest.mark.parametrize("weight_prior", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("kind", STOPPING_KINDS)
def test_default_tol_stops_where_sklearn_stops(kind, weight_prior):
    """With the default tol (applied, as scikit-learn's, to the change of the total ELBO),
    both converge at the same iteration from the same start, although ``lower_bound_``
    stays per row."""
    X = data()
    settings = dict(
        n_components=5,
        covariance_type=kind,
        weight_concentration_prior_type=weight_prior,
        max_iter=1000,
        random_state=0,
    )
    theirs = SklearnBayesianGaussianMixture(**settings).fit(X)
    ours = BayesianGaussianMixture(**settings).fit(X)
    assert theirs.converged_ and ours.converged_
    assert ours.n_iter_ == theirs.n_iter_ > 2
    changes = np.diff(ours.lower_bounds_) * len(X)
    assert abs(changes[-1]) < 1e-3 <= abs(changes[-2])
    assert_same_fit(ours, theirs, 1e-6)


@pytest.mark.parametrize("max_iter", ITERATIONS)
@pytest.mark.parametrize("weight_prior", WEIGHT_PRIOR_TYPES)
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_data_offset_by_a_million(kind, weight_prior, max_iter):
    """Data at 1e6 fit to the digits of data at 0 (the reference is scikit-learn on the
    unshifted data: its diag/spherical/tied statistics lose those digits at 1e6)."""
    ours = fit(data(1e6), kind, weight_prior, max_iter)
    theirs = sklearn_fit(kind, weight_prior, max_iter)
    assert_same_fit(ours, theirs, 1e-8, shift=1e6)
    expected = (np.ravel(theirs.lower_bounds_) + sklearn_constant(data(), theirs)) / 2000
    np.testing.assert_allclose(ours.lower_bounds_, expected, rtol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["full", "diag"])
def test_numpy_dask_and_cluster_agree(cluster_client, kind):
    """One model on every engine: NumPy, Dask chunks (merged two at a time), a LocalCluster."""
    X = data()
    lazy = da.from_array(X, chunks=(300, 3))
    reference = fit(X, kind, max_iter=10)
    local = fit(lazy, kind, max_iter=10, split_every=2)
    with cluster_client.as_current():
        remote = fit(lazy, kind, max_iter=10)
        incremental = fit(lazy, kind, max_iter=2, algorithm="incremental")
    incremental_local = fit(lazy, kind, max_iter=2, algorithm="incremental")
    for other in (local, remote):
        assert_same_fit(other, reference, 1e-10)
        np.testing.assert_allclose(other.lower_bounds_, reference.lower_bounds_, rtol=1e-10)
    assert_same_fit(incremental, incremental_local, 1e-10)
    predictions = reference.predict_proba(lazy)
    assert isinstance(predictions, da.Array)
    assert_close(predictions.compute(), reference.predict_proba(X), 1e-10)


EXPECTED_FAILED_CHECKS = {
    # as for GaussianMixture: k-means draws its seeds differently for weighted and repeated rows
    "check_sample_weight_equivalence_on_dense_data": (
        "k-means initialisation with sample weights is not equivalent to repeated rows"
    ),
}


@parametrize_with_checks(
    [
        BayesianGaussianMixture(),
        BayesianGaussianMixture(
            2, covariance_type="diag", weight_concentration_prior_type="dirichlet_distribution"
        ),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS if est.n_components > 1 else {},
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_dirichlet_process_empties_unneeded_components():
    """Four true components, twelve allowed, a Dirichlet-process prior of concentration 1e-3:
    the components with more than 1% of the weight are the four true ones (scikit-learn's
    iterates, which streamem's equal, need ~20× the time: its first iterations are compared)."""
    X, labels = sklearn_blobs(20_000, n_features=3, centers=4, cluster_std=1.0, random_state=1)
    settings = dict(
        n_components=12,
        weight_concentration_prior=1e-3,
        init_params="random_from_data",
        random_state=1,
    )
    ours = BayesianGaussianMixture(**settings, max_iter=400, tol=1e-6).fit(X)
    assert ours.converged_
    kept = np.flatnonzero(ours.weights_ > 0.01)
    assert len(kept) == 4
    centres = np.array([X[labels == j].mean(axis=0) for j in range(4)])
    nearest = np.linalg.norm(ours.means_[kept][:, None] - centres[None], axis=2).argmin(axis=1)
    assert sorted(nearest) == [0, 1, 2, 3]
    assert_close(np.sort(ours.weights_[kept]), np.full(4, 0.25), 0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = SklearnBayesianGaussianMixture(**settings, max_iter=5).fit(X)
        early = BayesianGaussianMixture(**settings, max_iter=5, tol=0).fit(X)
    assert_close(early.weights_, theirs.weights_, 1e-8)


@pytest.mark.parametrize("algorithm", ["batch", "incremental"])
def test_elbo_never_decreases(algorithm):
    """Batch and incremental VB are coordinate ascent on the ELBO."""
    X = make_blobs(3000, d=3, k=3, seed=4)
    model = fit(
        da.from_array(X, chunks=(400, 3)), "full", max_iter=25, n_components=6, algorithm=algorithm
    )
    steps = np.diff(model.lower_bounds_)
    assert np.all(steps >= -1e-12 * np.abs(model.lower_bounds_[1:]))
    assert steps.sum() > 0


def four_clusters(n, seed=0):
    rng = np.random.RandomState(seed)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0], [0, 0, 6]], dtype=float)
    labels = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    shapes = rng.normal(size=(4, 3, 3)) * 0.3 + np.eye(3)
    return centres[labels] + np.einsum("nij,nj->ni", shapes[labels], rng.normal(size=(n, 3)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_online_reaches_the_batch_elbo():
    """Stochastic variational inference from a k-means start: within 1e-3 per row of the
    converged batch ELBO in two passes."""
    X = four_clusters(20_000)
    batch = BayesianGaussianMixture(4, random_state=0, tol=1e-8, max_iter=500).fit(X)
    lazy = da.from_array(X, chunks=(2000, 3))
    online = BayesianGaussianMixture(
        4, random_state=0, algorithm="online", max_passes=2, batch_size=1000
    ).fit(lazy)
    assert online.n_iter_ == 2
    assert elbo(online, X) > batch.lower_bound_ - 1e-3
    assert online.lower_bound_ == pytest.approx(elbo(online, X), abs=5e-3)


def test_partial_fit_is_stochastic_variational_inference():
    """Updates batch by batch: the posterior stands for the rows seen so far, the bound is the
    ELBO's estimate, and a fitted model continues from its statistics."""
    X = four_clusters(6000, seed=2)
    model = BayesianGaussianMixture(4, random_state=0)
    for block in np.array_split(X, 6):
        model.partial_fit(block)
    assert model.n_steps_ == 6
    assert model.stepwise_state_.weight_seen == pytest.approx(6000)
    assert np.sum(model.mean_precision_ - model.mean_precision_prior_) == pytest.approx(6000)
    assert elbo(model, X) > BayesianGaussianMixture(4, random_state=0).fit(X).lower_bound_ - 0.02
    fitted = BayesianGaussianMixture(4, random_state=0).fit(X)
    fitted.partial_fit(X[:1000])
    assert np.sum(fitted.mean_precision_ - fitted.mean_precision_prior_) == pytest.approx(7000)


def test_save_load_round_trip(tmp_path):
    X = data()
    for kind, weight_prior in [
        ("tied", "dirichlet_process"),
        ("spherical", "dirichlet_distribution"),
    ]:
        model = fit(X, kind, weight_prior, max_iter=5)
        path = tmp_path / f"{kind}.streamem"
        model.save(path)
        loaded = load(path)
        assert type(loaded) is BayesianGaussianMixture
        assert_same_fit(loaded, model, 0)
        assert loaded.lower_bounds_ == model.lower_bounds_
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
        model.partial_fit(X[:500])
        loaded.partial_fit(X[:500])
        assert_same_fit(loaded, model, 0)


@pytest.mark.parametrize("algorithm", ["batch", "online", "incremental"])
def test_checkpoint_resumes_exactly(tmp_path, algorithm):
    """A fit stopped after two iterations continues from its checkpoint to the model and the
    bounds of an uninterrupted fit."""
    lazy = da.from_array(data(), chunks=(500, 3))
    settings = dict(max_iter=4, algorithm=algorithm, batch_size=250)
    uninterrupted = fit(lazy, **settings)

    def stop(iteration):
        if iteration.n_iter == 2:
            raise KeyboardInterrupt

    path = tmp_path / "fit.checkpoint"
    with pytest.raises(KeyboardInterrupt):
        fit(lazy, checkpoint=str(path), callback=stop, **settings)
    resumed = fit(lazy, checkpoint=str(path), **settings)
    assert_same_fit(resumed, uninterrupted, 0)
    assert resumed.lower_bounds_ == uninterrupted.lower_bounds_
    assert not path.exists()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_continues_the_posterior():
    X = data()
    model = fit(X, "diag", max_iter=4, warm_start=True)
    model.fit(X)
    assert_same_fit(model, fit(X, "diag", max_iter=8), 1e-12)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (dict(degrees_of_freedom_prior=1.5), "greater than n_features - 1 = 2"),
        (dict(covariance_prior=np.eye(2)), r"covariance_prior must have shape \(3, 3\)"),
        (dict(covariance_prior=-np.eye(3)), "symmetric and positive definite"),
        (dict(mean_prior=[0.0, 1.0]), r"mean_prior must have shape \(3,\)"),
        (dict(weight_concentration_prior=0.0), "weight_concentration_prior must be"),
        (dict(weight_concentration_prior_type="stick"), "weight_concentration_prior_type"),
    ],
)
def test_invalid_priors_are_refused(setting, message):
    with pytest.raises(ValueError, match=message):
        BayesianGaussianMixture(2, **setting).fit(data())


def test_given_priors_are_used():
    X = data()
    prior = dict(
        weight_concentration_prior=0.5,
        mean_precision_prior=0.1,
        mean_prior=np.ones(3),
        degrees_of_freedom_prior=5.0,
        covariance_prior=2 * np.eye(3),
    )
    ours = fit(X, max_iter=3, **prior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = SklearnBayesianGaussianMixture(**options("full", "dirichlet_process", 3, **prior))
        theirs.fit(X)
    assert_same_fit(ours, theirs, 1e-8)


def test_model_files_with_bad_posteriors_are_refused():
    from streamem.io import ModelFileError, check_fitted

    model = fit(data(), "tied", max_iter=2)
    check_fitted(model)
    for name, value in [
        ("mean_precision_", -model.mean_precision_),
        ("degrees_of_freedom_", np.ones(K)),  # 'tied': one value
        ("weight_concentration_", (model.weight_concentration_[0],) * 3),
        ("covariance_prior_", -model.covariance_prior_),
    ]:
        damaged = fit(data(), "tied", max_iter=2)
        setattr(damaged, name, value)
        with pytest.raises(ModelFileError, match=name):
            check_fitted(damaged)


def test_command_line_fit_bayesian(tmp_path, capsys):
    from streamem.cli import main

    path = tmp_path / "x.npy"
    np.save(path, data())
    output = tmp_path / "m.streamem"
    assert main(["fit", str(path), "-k", "5", "--bayesian", "-o", str(output), "--quiet"]) == 0
    assert "ELBO per row" in capsys.readouterr().out
    model = load(output)
    assert isinstance(model, BayesianGaussianMixture)
    assert model.weight_concentration_prior_type == "dirichlet_process"
    assert main(["fit", str(path), "--prior", "dirichlet", "--family", "poisson", "--quiet"]) == 2
