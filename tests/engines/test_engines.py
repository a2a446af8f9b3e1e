"""Every engine gives the NumPy engine's model, whatever the chunking, merge tree or scheduler."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from streamem import GaussianMixture
from streamem.engines import DaskEngine, NumpyEngine
from streamem.families.gaussian import COVARIANCE_TYPES

from ..conftest import CountComputes, assert_close, make_blobs

N = 3000
UNEQUAL = (1, 900, 13, 700, 86, 1000, 300)  # seven unequal chunks


def fitted(X, kind, max_iter=20, **options):
    """A fit of ``max_iter`` iterations from a fixed k-means initialisation (no early stop)."""
    gm = GaussianMixture(
        3, covariance_type=kind, tol=0, max_iter=max_iter, random_state=0, split_every=2, **options
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gm.fit(X)


def assert_same_model(a, b, rtol=1e-10):
    assert_close(a.weights_, b.weights_, rtol)
    assert_close(a.means_, b.means_, rtol)
    assert_close(a.covariances_, b.covariances_, rtol)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol)


@pytest.fixture(scope="module")
def data():
    return make_blobs(N, d=4, k=3, seed=7)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("chunks", [N, UNEQUAL, 3], ids=["one-chunk", "seven-unequal", "1000"])
def test_dask_chunkings_equal_numpy(data, kind, chunks):
    max_iter = 5 if chunks == 3 else 20  # 1000 tasks per pass: keep the test short
    reference = fitted(data, kind, max_iter)
    lazy = da.from_array(data, chunks=(chunks, 4))
    assert lazy.numblocks[0] in (1, 7, 1000)
    assert_same_model(fitted(lazy, kind, max_iter), reference)


@pytest.mark.parametrize("chunk_size", [1, 77, "16KiB"])
def test_numpy_chunk_sizes_equal(data, chunk_size):
    assert_same_model(fitted(data, "full", 5, chunk_size=chunk_size), fitted(data, "full", 5))


def test_chunk_order_does_not_matter(data):
    """Reversing the rows reverses the chunks and the merge order: same model."""
    init = GaussianMixture(3, random_state=0, max_iter=0).fit(data)
    start = dict(
        weights_init=init.weights_, means_init=init.means_, precisions_init=init.precisions_
    )
    reference = fitted(da.from_array(data, chunks=(UNEQUAL, 4)), "full", **start)
    flipped = fitted(da.from_array(data[::-1], chunks=(UNEQUAL[::-1], 4)), "full", **start)
    assert_same_model(flipped, reference)


def test_distributed_cluster_equals_numpy(data, cluster_client):
    lazy = da.from_array(data, chunks=(UNEQUAL, 4))
    with cluster_client.as_current():
        on_cluster = fitted(lazy, "full")
        labels = on_cluster.predict(lazy).compute()
    reference = fitted(data, "full")
    assert_same_model(on_cluster, reference)
    np.testing.assert_array_equal(labels, reference.predict(data))


def test_one_compute_per_iteration(data):
    lazy = da.from_array(data, chunks=(500, 4))
    init = GaussianMixture(3, random_state=0).fit(data)
    gm = GaussianMixture(
        3,
        tol=0,
        max_iter=7,
        weights_init=init.weights_,
        means_init=init.means_,
        precisions_init=init.precisions_,
    )
    with CountComputes() as counter, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(lazy)
    assert counter.count == 7
    # and a k-means initialisation adds exactly one pass: the sample of rows
    with CountComputes() as counter:
        GaussianMixture(3, random_state=0, init_size=100).fit(lazy)
    assert counter.count == GaussianMixture(3, random_state=0, init_size=100).fit(data).n_iter_ + 1


def test_engine_results_agree_directly(data):
    init = GaussianMixture(3, random_state=0, max_iter=0).fit(data)
    model = init._get_model()
    in_memory = NumpyEngine(data, chunk_rows=100).estep((model,))
    graph = DaskEngine(da.from_array(data, chunks=(UNEQUAL, 4)), split_every=3).graph((model,))
    lazy = dask.compute(graph, scheduler="sync")[0]
    np.testing.assert_allclose(lazy.log_likelihood, in_memory.log_likelihood, rtol=1e-12)
    for ours, theirs in zip(lazy.stats[0], in_memory.stats[0], strict=True):
        assert_close(ours, theirs, 1e-12)


def test_data_never_reaches_the_client(data):
    """A pass returns only the merged statistics, whatever the number of rows."""
    init = GaussianMixture(3, random_state=0, max_iter=0).fit(data)
    model = init._get_model()
    small = DaskEngine(da.from_array(data, chunks=(300, 4))).estep((model,))
    big_data = np.tile(data, (10, 1))
    big = DaskEngine(da.from_array(big_data, chunks=(300, 4))).estep((model,))
    assert big.n_rows == 10 * small.n_rows
    assert sum(a.nbytes for a in big.stats[0]) == sum(a.nbytes for a in small.stats[0])


def test_numpy_engine_threads_give_the_same_bits(data):
    """The result of a pass depends neither on the number of threads nor on earlier passes
    (the engine keeps its threads from one pass to the next)."""
    model = GaussianMixture(3, random_state=0, max_iter=0).fit(data)._get_model()
    reference = NumpyEngine(data, chunk_rows=100, n_threads=1).estep((model,))
    engine = NumpyEngine(data, chunk_rows=100, n_threads=2)
    for _ in range(3):
        result = engine.estep((model,))
        np.testing.assert_array_equal(result.log_likelihood, reference.log_likelihood)
        for ours, theirs in zip(result.stats[0], reference.stats[0], strict=True):
            np.testing.assert_array_equal(ours, theirs)


def test_numpy_engine_runs_after_a_failed_pass(data):
    """An error in one chunk reaches the caller with its row, and the engine's threads still
    run the next pass."""
    model = GaussianMixture(3, random_state=0, max_iter=0).fit(data)._get_model()
    bad = data.copy()
    bad[2345, 1] = np.inf
    engine = NumpyEngine(bad, chunk_rows=100, n_threads=2)
    with pytest.raises(ValueError, match="row 2345"):
        engine.estep((model,))
    clean = NumpyEngine(data, chunk_rows=100, n_threads=1).estep_chunks((model,), [0, 1, 2])
    again = engine.estep_chunks((model,), [0, 1, 2])
    for ours, theirs in zip(again, clean, strict=True):
        np.testing.assert_array_equal(ours.log_likelihood, theirs.log_likelihood)
