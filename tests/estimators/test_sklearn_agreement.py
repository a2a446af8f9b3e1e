"""From the same initial parameters, streamem and scikit-learn agree iteration by iteration."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from streamem import GaussianMixture
from streamem.drivers.init import INIT_PARAMS
from streamem.families.gaussian import COVARIANCE_TYPES

from ..conftest import assert_close, make_blobs


def start_from(X, kind, seed=0):
    """Initial parameters both libraries are given (one sklearn initialisation)."""
    init = SklearnGaussianMixture(3, covariance_type=kind, max_iter=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init.fit(X)
    return dict(
        weights_init=init.weights_, means_init=init.means_, precisions_init=init.precisions_
    )


def fit_both(X, kind, max_iter, start, X_sklearn=None, start_sklearn=None):
    options = dict(covariance_type=kind, tol=0, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(3, **options, **start).fit(X)
        theirs = SklearnGaussianMixture(3, **options, **(start_sklearn or start))
        theirs.fit(X if X_sklearn is None else X_sklearn)
    return ours, theirs


@pytest.fixture(scope="module")
def data():
    return make_blobs(2000, d=4, k=3, seed=11)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter", [1, 10, 100])
def test_same_model_as_sklearn(data, kind, max_iter):
    ours, theirs = fit_both(data, kind, max_iter, start_from(data, kind))
    assert ours.n_iter_ == theirs.n_iter_ == max_iter
    assert_close(ours.weights_, theirs.weights_, 1e-8)
    assert_close(ours.means_, theirs.means_, 1e-8)
    assert_close(ours.covariances_, theirs.covariances_, 1e-8)
    assert_close(ours.precisions_cholesky_, theirs.precisions_cholesky_, 1e-8)
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-8)
    np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-8)
    np.testing.assert_allclose(ours.score_samples(data), theirs.score_samples(data), rtol=1e-8)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter", [1, 10, 100])
def test_data_offset_by_a_million(data, kind, max_iter):
    """Data at 1e6 fit to the digits of data at 0 (scikit-learn's own diag/spherical/tied
    M-steps lose them there, so the reference is scikit-learn on the unshifted data)."""
    start = start_from(data, kind)
    shifted_start = dict(start, means_init=start["means_init"] + 1e6)
    ours, theirs = fit_both(data + 1e6, kind, max_iter, shifted_start, data, start)
    assert_close(ours.weights_, theirs.weights_, 1e-8)
    assert_close(ours.means_ - 1e6, theirs.means_, 1e-8)
    assert_close(ours.covariances_, theirs.covariances_, 1e-8)
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-8)


@pytest.mark.parametrize("init_params", INIT_PARAMS)
@pytest.mark.parametrize("kind", ["full", "diag"])
def test_same_initialisation_as_sklearn(data, init_params, kind):
    """With every row in the initialisation sample, the same random_state gives sklearn's start."""
    options = dict(covariance_type=kind, init_params=init_params, random_state=3, max_iter=0)
    ours = GaussianMixture(3, **options).fit(data)
    theirs = SklearnGaussianMixture(3, **options).fit(data)
    assert_close(ours.means_, theirs.means_, 1e-10)
    # one-row components have covariance reg_covar; sklearn's diag E[x²]−E[x]² misses it by
    # ~1e-13, so compare on the scale of the data's variance
    assert_close(ours.covariances_, theirs.covariances_, 1e-10, scale=data.var())
    # scikit-learn leaves k-means++ / random_from_data weights unnormalised (1/n each);
    # streamem normalises them, which shifts only the log-likelihood of the first iteration
    assert_close(ours.weights_, theirs.weights_ / theirs.weights_.sum(), 1e-10)
