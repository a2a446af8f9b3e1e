"""Initialisation from a sample: scikit-learn's numbers without (N, K) or (N, D) temporaries."""

from __future__ import annotations

import tracemalloc
from unittest import mock

import numpy as np
import pytest
from sklearn.cluster import KMeans, kmeans_plusplus

from streamem.drivers import init
from streamem.drivers.init import InitSample, initial_models, initial_statistics
from streamem.engines import NumpyEngine
from streamem.families._base import stats_from_responsibilities
from streamem.families.gaussian import Gaussian

from ..conftest import make_blobs


def dense_responsibilities(X, w, n_components, init_params, rng):
    """The (N, K) responsibilities as scikit-learn's ``_initialize_parameters`` draws them."""
    n = X.shape[0]
    resp = np.zeros((n, n_components))
    if init_params == "kmeans":
        km = KMeans(n_clusters=n_components, n_init=1, random_state=rng)
        resp[np.arange(n), km.fit(X, sample_weight=w).labels_] = 1
    elif init_params == "random":
        resp = rng.uniform(size=(n, n_components))
        resp /= resp.sum(axis=1)[:, np.newaxis]
    elif init_params == "random_from_data":
        resp[rng.choice(n, size=n_components, replace=False), np.arange(n_components)] = 1
    else:
        _, indices = kmeans_plusplus(X, n_components, random_state=rng, sample_weight=w)
        resp[indices, np.arange(n_components)] = 1
    return resp if w is None else resp * w[:, None]


@pytest.mark.parametrize("init_params", init.INIT_PARAMS)
@pytest.mark.parametrize("n_components", [1, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_statistics_equal_those_of_dense_responsibilities(init_params, n_components, weighted):
    # D=30 full: blocks of 257 rows, so 1100 rows take five blocks (the last one short)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1100, 30)) + 1e6 * weighted
    w = rng.uniform(0.5, 2.0, size=len(X)) if weighted else None
    family = Gaussian("full", 1e-6)
    dense_rng, rng = np.random.RandomState(3), np.random.RandomState(3)
    expected = stats_from_responsibilities(
        family, X, dense_responsibilities(X, w, n_components, init_params, dense_rng)
    )
    got = initial_statistics(family, X, w, n_components, init_params, rng)
    for name, value in expected._asdict().items():
        np.testing.assert_array_equal(getattr(got, name), value, err_msg=name)
    # the stream of random numbers is left where the dense draw leaves it
    assert rng.randint(2**31) == dense_rng.randint(2**31)


def scan_dense(X):
    """The checks of the sample as one pass over (N, D) temporaries."""
    infinite = np.flatnonzero(np.isinf(X).any(axis=1))
    magnitudes = np.abs(X)
    magnitudes[np.isnan(magnitudes)] = 0.0
    return infinite, float(magnitudes.max(initial=0.0)), int(np.argmax(magnitudes.max(axis=1)))


@pytest.mark.parametrize("scan_bytes", [8, 24, 200, 2**21])
def test_blocked_scan_of_the_sample_equals_the_whole_one(scan_bytes):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(50, 3))
    X[[4, 17, 40], [0, 2, 1]] = [np.inf, -np.inf, np.inf]
    X[[5, 9], [1, 1]] = np.nan
    X[[23, 31], [2, 0]] = [-7e200, 7e200]  # a tie: the first row is reported
    with mock.patch.object(init, "SCAN_BYTES", scan_bytes):
        infinite, largest, row = init._scan_magnitudes(X)
        expected = scan_dense(X)
        np.testing.assert_array_equal(infinite, expected[0])
        assert (largest, row) == (np.inf, 4) == expected[1:]
        finite = np.where(np.isinf(X), 1.0, X)
        assert init._scan_magnitudes(finite)[1:] == scan_dense(finite)[1:] == (7e200, 23)
        assert init._scan_magnitudes(np.full((6, 2), np.nan))[1:] == (0.0, 0)


@pytest.mark.parametrize(("value", "message"), [(np.inf, "Input contains infinity"), (3e151, "")])
def test_the_sample_checks_name_the_row_of_the_data(value, message):
    X = make_blobs(1000, 3, 2)
    indices = init.sample_indices(len(X), 500, np.random.RandomState(0))
    X[indices[[60, 400]], [0, 2]] = value
    sample = InitSample(NumpyEngine(X, chunk_rows=100, n_threads=1), 500, np.random.RandomState(0))
    with mock.patch.object(init, "SCAN_BYTES", 100), pytest.raises(ValueError) as error:
        sample()
    assert (
        f"{message}: row {indices[60]} (and 1 more" in str(error.value)
        if message
        else (f"values as large as 3e+151 (row {indices[60]})" in str(error.value))
    )


@pytest.mark.parametrize("init_params", ["random", "random_from_data"])
def test_initialisation_allocates_far_less_than_the_sample(init_params):
    # 60 000 x 16 float64 = 7.3 MiB; one-hot responsibilities alone were 60 000 x 8 (3.7 MiB),
    # abs() of the sample 7.3 MiB; now about 2.3 MiB
    X = np.random.RandomState(0).normal(size=(60_000, 16))
    engine = NumpyEngine(X, chunk_rows=10_000, n_threads=1)
    rng = np.random.RandomState(0)
    sample = InitSample(engine, len(X), rng)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    initial_models(
        Gaussian("full", 1e-6),
        sample,
        rng,
        n_components=8,
        n_init=1,
        init_params=init_params,
        user_init=lambda model: model,
    )
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert peak < 0.4 * X.nbytes
