"""The GaussianMixture estimator: scikit-learn's contract, its API, errors and degenerate data."""

from __future__ import annotations

import re
import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from streamem import DegenerateComponentWarning, GaussianMixture, Iteration

from ..conftest import assert_close, make_blobs

EXPECTED_FAILED_CHECKS = {
    # EM with weights equals EM on repeated rows from the same start (see
    # test_sample_weight_equals_repeated_rows), but the k-means initialisation draws its
    # k-means++ seeds differently for weighted and repeated rows; scikit-learn lists the same
    # expected failure for KMeans.
    "check_sample_weight_equivalence_on_dense_data": (
        "k-means initialisation with sample weights is not equivalent to repeated rows"
    ),
}


@parametrize_with_checks(
    [GaussianMixture(), GaussianMixture(2, covariance_type="diag")],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS if est.n_components > 1 else {},
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- API ---------------------------------------------------------------------------------------


def test_fitted_attributes_and_methods(blobs):
    gm = GaussianMixture(3, random_state=0).fit(blobs)
    sk = SklearnGaussianMixture(3, random_state=0).fit(blobs)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert_close(getattr(gm, name), getattr(sk, name), 1e-8)
    assert gm.converged_ and gm.n_iter_ == sk.n_iter_ and gm.n_features_in_ == 3
    assert gm.lower_bounds_ == pytest.approx(sk.lower_bounds_, rel=1e-10)
    np.testing.assert_array_equal(gm.predict(blobs), sk.predict(blobs))
    np.testing.assert_array_equal(gm.fit_predict(blobs), sk.fit_predict(blobs))
    assert_close(gm.predict_proba(blobs), sk.predict_proba(blobs), 1e-8)
    assert gm.score(blobs) == pytest.approx(sk.score(blobs), rel=1e-10)
    assert gm.bic(blobs) == pytest.approx(sk.bic(blobs), rel=1e-10)
    assert gm.aic(blobs) == pytest.approx(sk.aic(blobs), rel=1e-10)
    X, y = gm.sample(50)
    X_sk, y_sk = sk.sample(50)
    assert_close(X, X_sk, 1e-6)
    np.testing.assert_array_equal(y, y_sk)


def test_dask_predictions_are_lazy_and_equal(blobs):
    gm = GaussianMixture(3, random_state=0).fit(blobs)
    lazy = da.from_array(blobs, chunks=(123, 3))
    for method in ("predict", "predict_proba", "score_samples"):
        result = getattr(gm, method)(lazy)
        assert isinstance(result, da.Array)
        assert result.chunks[0] == lazy.chunks[0]
        expected = getattr(gm, method)(blobs)
        np.testing.assert_allclose(result.compute(), expected, rtol=1e-10, atol=1e-15)
    assert gm.score(lazy) == pytest.approx(gm.score(blobs), rel=1e-12)
    labels = gm.fit_predict(lazy)
    assert isinstance(labels, da.Array)


def test_float32_data(blobs):
    single = blobs.astype(np.float32)
    gm = GaussianMixture(3, random_state=0).fit(single)
    reference = GaussianMixture(3, random_state=0).fit(single.astype(np.float64))
    assert_close(gm.means_, reference.means_, 1e-8)
    assert gm.means_.dtype == np.float64


def test_n_init_keeps_best_and_shares_passes(blobs):
    passes = []
    gm = GaussianMixture(
        3, n_init=4, init_params="random", random_state=1, callback=passes.append
    ).fit(blobs)
    singles = []
    rng = np.random.RandomState(1)
    for _ in range(4):
        seed = rng.randint(2**31)
        singles.append(GaussianMixture(3, init_params="random", random_state=seed).fit(blobs))
    assert gm.lower_bound_ >= max(s.lower_bound_ for s in singles) - 0.05
    assert {p.init for p in passes} == {0, 1, 2, 3}
    assert all(isinstance(p, Iteration) for p in passes)
    best = [p for p in passes if p.init == int(np.argmax([0]))]
    assert best  # callbacks name the restart they belong to


def test_n_init_best_equals_best_single_fit(blobs):
    """Restarts evaluated together give the model of the best restart run alone."""
    gm = GaussianMixture(3, n_init=3, init_params="random_from_data", random_state=5).fit(blobs)
    rng = np.random.RandomState(5)
    start = [
        GaussianMixture(3, init_params="random_from_data", random_state=rng, max_iter=0)
        .fit(blobs)
        .means_
        for _ in range(3)
    ]
    fits = [GaussianMixture(3, means_init=m, random_state=0).fit(blobs) for m in start]
    best = max(fits, key=lambda f: f.lower_bound_)
    assert gm.lower_bound_ == pytest.approx(best.lower_bound_, rel=1e-6)


def test_warm_start_continues(blobs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, random_state=0, max_iter=2, warm_start=True, tol=0)
        gm.fit(blobs)
        gm.fit(blobs)
        full = GaussianMixture(3, random_state=0, max_iter=4, tol=0).fit(blobs)
    assert_close(gm.means_, full.means_, 1e-12)


def test_convergence_warning_and_callback(blobs):
    seen = []
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm = GaussianMixture(3, max_iter=2, random_state=0, callback=seen.append).fit(blobs)
    assert [s.n_iter for s in seen] == [1, 2]
    assert [s.lower_bound for s in seen] == gm.lower_bounds_
    assert not gm.converged_


def test_max_iter_zero_keeps_initialisation(blobs):
    gm = GaussianMixture(3, max_iter=0, random_state=0).fit(blobs)
    sk = SklearnGaussianMixture(3, max_iter=0, random_state=0).fit(blobs)
    assert_close(gm.means_, sk.means_, 1e-10)
    assert gm.n_iter_ == 0 and gm.lower_bound_ == -np.inf and gm.lower_bounds_ == []


def test_sample_weight_equals_repeated_rows(blobs):
    counts = np.random.RandomState(0).randint(0, 3, size=len(blobs))
    start = GaussianMixture(3, random_state=0, max_iter=0).fit(blobs)
    init = dict(
        weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_
    )
    weighted = GaussianMixture(3, **init).fit(blobs, sample_weight=counts)
    repeated = GaussianMixture(3, **init).fit(np.repeat(blobs, counts, axis=0))
    assert_close(weighted.means_, repeated.means_, 1e-10)
    assert_close(weighted.covariances_, repeated.covariances_, 1e-10)
    lazy = GaussianMixture(3, **init).fit(
        da.from_array(blobs, chunks=100), sample_weight=da.from_array(counts, chunks=50)
    )
    assert_close(lazy.means_, weighted.means_, 1e-10)


def test_learn_weights_false_keeps_weights(blobs):
    weights = np.array([0.2, 0.3, 0.5])
    gm = GaussianMixture(3, learn_weights=False, weights_init=weights, random_state=0)
    gm.fit(blobs)
    np.testing.assert_array_equal(gm.weights_, weights)
    assert not np.allclose(gm.means_, 0)


# -- degenerate data ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["full", "tied", "diag", "spherical"])
def test_duplicated_points_and_constant_feature(kind):
    rng = np.random.RandomState(0)
    X = np.repeat(rng.normal(size=(5, 2)), 40, axis=0)
    X = np.column_stack([X, np.full(len(X), 7.0)])  # a constant feature
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(5, covariance_type=kind, random_state=0).fit(X)
    assert np.all(np.isfinite(gm.means_)) and np.isfinite(gm.lower_bound_)
    np.testing.assert_allclose(gm.means_[:, 2], 7.0)


def test_as_many_components_as_distinct_points():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 5.0], [4.0, -2.0]]), 30, axis=0)
    gm = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_allclose(np.sort(gm.means_[:, 0]), [0.0, 1.0, 4.0], atol=1e-9)
    expected = np.broadcast_to(np.eye(2) * 1e-6, (3, 2, 2))
    np.testing.assert_allclose(gm.covariances_, expected, rtol=1e-8, atol=1e-13)


def test_collapsed_component_is_reseeded_with_a_warning(blobs):
    means = np.array([blobs.mean(axis=0), blobs.mean(axis=0) + 1, [1e4, 1e4, 1e4]])
    gm = GaussianMixture(3, means_init=means, random_state=0, covariance_type="diag")
    with pytest.warns(DegenerateComponentWarning, match=r"component 2 collapsed"):
        gm.fit(blobs)
    assert np.all(np.abs(gm.means_) < 100)  # the far-away component was brought back
    assert gm.weights_.min() > 0.05


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_non_positive_definite_covariance_is_repaired(kind):
    X = np.column_stack([np.arange(60.0), np.full(60, 3.0)])  # constant feature, no reg_covar
    with pytest.warns(DegenerateComponentWarning, match=r"component 0: (covariance|variance)"):
        gm = GaussianMixture(1, covariance_type=kind, reg_covar=0, random_state=0).fit(X)
    assert np.all(np.isfinite(gm.precisions_cholesky_))
    assert np.isfinite(gm.score(X))


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_components": 0}, "n_components must be an integer ≥ 1"),
        ({"covariance_type": "banana"}, "covariance_type must be one of"),
        ({"tol": -1}, "tol must be a number"),
        ({"reg_covar": -1e-3}, "reg_covar must be a number"),
        ({"max_iter": -1}, "max_iter must be an integer"),
        ({"n_init": 0}, "n_init must be an integer"),
        ({"init_params": "kmeanz"}, "init_params must be one of"),
        ({"weights_init": [0.5, 0.6]}, "weights_init must sum to 1"),
        ({"weights_init": [1.0]}, r"weights_init must have shape \(2,\)"),
        ({"means_init": np.zeros((2, 5))}, r"means_init must have shape \(2, 3\)"),
        ({"precisions_init": -np.ones(2), "covariance_type": "spherical"}, "positive"),
        ({"precisions_init": -np.ones((2, 3, 3))}, "symmetric and positive definite"),
        ({"learn_weights": False}, "weights_init must give them"),
    ],
)
def test_invalid_parameters(blobs, params, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**{"n_components": 2, **params}).fit(blobs)


def test_bad_inputs(blobs):
    gm = GaussianMixture(2)
    with pytest.raises(ValueError, match="Expected 2D array"):
        gm.fit(blobs[:, 0])
    with pytest.raises(ValueError, match="dim 3"):
        gm.fit(blobs[None])
    with pytest.raises(ValueError, match="Expected a 2D array.*3D"):
        gm.fit(da.from_array(blobs[None]))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).fit(blobs[:4])
    with pytest.raises(ValueError, match="numeric"):
        gm.fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="numeric"):
        gm.fit(da.from_array(np.array([["a", "b"], ["c", "d"]])))
    gm.fit(blobs)
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is expecting 3"):
        gm.predict(blobs[:, :2])
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is expecting 3"):
        gm.predict(da.from_array(blobs[:, :2]))


def test_nan_names_the_rows(blobs):
    X = blobs.copy()
    X[321, 1] = np.nan
    with pytest.raises(ValueError, match=re.escape("row 321")):
        GaussianMixture(2).fit(X)
    lazy = da.from_array(X, chunks=100)
    with pytest.raises(ValueError, match=re.escape("rows 300–399, the first at row 321")):
        GaussianMixture(2, init_size=50, random_state=0).fit(lazy)
    gm = GaussianMixture(2).fit(blobs)
    with pytest.raises(ValueError, match=re.escape("rows 300–399, the first at row 321")):
        gm.predict(lazy).compute()


@pytest.mark.parametrize("bad", [-1.0, np.nan])
def test_bad_sample_weight(blobs, bad):
    w = np.ones(len(blobs))
    w[17] = bad
    with pytest.raises(ValueError, match="sample_weight.*row 17"):
        GaussianMixture(2).fit(blobs, sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight.*row 17"):
        GaussianMixture(2, init_size=10, random_state=0).fit(
            da.from_array(blobs, chunks=100), sample_weight=da.from_array(w, chunks=100)
        )
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(600,\)"):
        GaussianMixture(2).fit(blobs, sample_weight=np.ones(5))


def test_many_chunks_large_data_smoke():
    X = make_blobs(20000, d=5, k=4, seed=3)
    gm = GaussianMixture(4, random_state=0, chunk_size="64KiB").fit(da.from_array(X, chunks=999))
    sk = SklearnGaussianMixture(4, random_state=0).fit(X)
    assert gm.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-8)
