"""Incremental EM on Dask's local threads: chunks read ahead, E-stepped on the engine's threads."""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np
import pytest
from dask.callbacks import Callback
from hypothesis import given, settings
from hypothesis import strategies as st

from streamem.drivers import Reporter, Settings
from streamem.drivers.incremental import _order, _visits, fit_incremental
from streamem.engines import DaskEngine, NumpyEngine
from streamem.estep import chunk_estep
from streamem.families._base import Mixture
from streamem.families.gaussian import Gaussian, GaussianParams

from ..conftest import make_blobs

ROWS = make_blobs(3000, 3, 3, seed=4)
WEIGHTS = np.random.RandomState(5).uniform(0.5, 2.0, len(ROWS))
CHUNK = 250  # 12 chunks


def a_model(k: int = 3, kind: str = "full") -> Mixture:
    """Means at the first ``k`` rows, unit covariances."""
    d = ROWS.shape[1]
    covariances = np.repeat(np.eye(d)[None], k, axis=0)
    if kind == "diag":
        covariances = np.ones((k, d))
        cholesky = covariances.copy()
    else:
        cholesky = np.linalg.cholesky(covariances)
    params = GaussianParams(ROWS[:k].copy(), covariances, cholesky)
    return Mixture(Gaussian(kind, 1e-6), np.full(k, 1 / k), params)


def leaves(results) -> list[np.ndarray]:
    """Every number of a list of E-step results, in order."""
    out = []
    for result in results:
        out += [np.asarray(field) for stats in result.stats for field in stats]
        out += [np.asarray(result.log_likelihood), np.array([result.weight, result.n_rows])]
    return out


def assert_identical(a, b) -> None:
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def reference(models, indices, weighted: bool) -> list:
    """The kernel on each chunk's rows taken straight from the NumPy array."""
    out = []
    for i in indices:
        rows = slice(i * CHUNK, (i + 1) * CHUNK)
        w = WEIGHTS[rows] if weighted else None
        out.append(chunk_estep(ROWS[rows], w, models, i * CHUNK))
    return out


class ChunkTasks(Callback):
    """Counts the chunk tasks Dask's local schedulers run."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        name = key[0] if isinstance(key, tuple) else key
        if str(name).startswith("streamem-chunk"):
            self.n += 1


def an_engine(weighted: bool, cls=DaskEngine) -> DaskEngine:
    X = da.from_array(ROWS, chunks=(CHUNK, 3))
    return cls(X, da.from_array(WEIGHTS, chunks=CHUNK) if weighted else None)


@pytest.mark.parametrize("weighted", [False, True])
def test_a_chunk_is_read_by_its_own_tasks(weighted):
    engine = an_engine(weighted)
    for i in (0, 5, 11):
        block, w = engine._read(i)
        np.testing.assert_array_equal(block, ROWS[i * CHUNK : (i + 1) * CHUNK])
        if weighted:
            np.testing.assert_array_equal(w, WEIGHTS[i * CHUNK : (i + 1) * CHUNK])
        else:
            assert w is None


@pytest.mark.parametrize("weighted", [False, True])
def test_groups_read_ahead_or_not_are_the_kernel_on_the_chunks_without_a_graph(weighted):
    models = (a_model(), a_model(2, "diag"))
    with dask.config.set(num_workers=2), ChunkTasks() as tasks:
        engine = an_engine(weighted)
        first = engine.estep_chunks(models, [3, 7])  # nothing read ahead: read by the tasks
        engine.prefetch([1, 10])
        second = engine.estep_chunks(models, [4])  # one chunk: on this thread
        third = engine.estep_chunks(models, [10, 1])  # read ahead, asked in another order
    assert tasks.n == 0  # no chunk task went through Dask
    assert_identical(first, reference(models, [3, 7], weighted))
    assert_identical(second, reference(models, [4], weighted))
    assert_identical(third, reference(models, [10, 1], weighted))
    assert engine._reading == {}


def test_larger_requests_go_through_dask_with_the_same_results():
    models = (a_model(),)
    with dask.config.set(num_workers=2), ChunkTasks() as tasks:
        engine = an_engine(False)
        every = engine.estep_chunks(models)
    assert tasks.n == engine.n_chunks
    assert_identical(every, reference(models, range(engine.n_chunks), False))


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.lists(st.integers(0, 11), max_size=3, unique=True),  # prefetched
            st.lists(st.integers(0, 11), min_size=1, max_size=3, unique=True),  # asked for
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_read_ahead_gives_the_kernel_results_and_holds_few_chunks(steps):
    models = (a_model(),)
    with dask.config.set(num_workers=2):
        engine = an_engine(False)
        for ahead, asked in steps:
            engine.prefetch(ahead)
            assert_identical(engine.estep_chunks(models, asked), reference(models, asked, False))
            # only the chunks of the last prefetch may stay (those not just E-stepped)
            assert set(engine._reading) <= set(ahead) - set(asked)
        engine.prefetch([])
        assert engine._reading == {}


class Recording(DaskEngine):
    """A Dask engine that records the driver's calls and which chunks were found read."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, list[int]]] = []
        self.found_read: list[tuple[int, bool]] = []
        self.most_held = 0

    def prefetch(self, indices):
        self.calls.append(("prefetch", list(indices)))
        super().prefetch(indices)

    def estep_chunks(self, models, indices=None):
        self.calls.append(("estep", list(indices)))
        self.most_held = max(self.most_held, len(self._reading))
        return super().estep_chunks(models, indices)

    def _estep_local(self, index, reading, models):
        self.found_read.append((index, reading is not None))
        return super()._estep_local(index, reading, models)


def fit(engine, callback=None, max_iter=4):
    settings = Settings(tol=0.0, max_iter=max_iter, rng=np.random.RandomState(1))
    return fit_incremental(engine, [a_model()], settings, Reporter(callback=callback))


def assert_same_fit(a, b) -> None:
    for x, y in zip(a.results, b.results, strict=True):
        assert x.lower_bounds == y.lower_bounds and x.n_iter == y.n_iter
        np.testing.assert_array_equal(x.model.weights, y.model.weights)
        for p, q in zip(x.model.params, y.model.params, strict=True):
            np.testing.assert_array_equal(p, q)


def test_every_group_after_the_first_is_read_ahead_and_the_fit_is_unchanged():
    with dask.config.set(num_workers=2):
        engine = Recording(da.from_array(ROWS, chunks=(CHUNK, 3)))
        outcome = fit(engine)
    # the same groups, the same M-steps: the NumPy engine's fit, bit for bit
    assert_same_fit(outcome, fit(NumpyEngine(ROWS, chunk_rows=CHUNK, n_threads=2)))
    steps = [i for i, (kind, _) in enumerate(engine.calls) if kind == "estep"]
    assert len(steps) == 4 * 6  # 4 passes of 6 groups of 2 chunks
    # each group's E-step was preceded by the prefetch of the next group (across passes)
    for now, after in itertools.pairwise(steps):
        assert engine.calls[now - 1] == ("prefetch", engine.calls[after][1])
    assert engine.calls[-1] == ("prefetch", [])  # nothing is left read ahead
    assert engine._reading == {}
    # every chunk but those of the very first group was found read
    assert [read for _, read in engine.found_read].count(False) == 2
    assert engine.most_held <= 2  # the group about to be E-stepped


def test_every_pass_visits_one_order_drawn_once():
    """The visiting order is drawn once, at the first pass; a callback drawing from the same
    generator after every pass changes nothing, and every pass visits the chunks in that
    order (so the next pass's first group read ahead is always the right one)."""

    def draws(rng):
        return lambda iteration: rng.random_sample()

    with dask.config.set(num_workers=2):
        engine = Recording(da.from_array(ROWS, chunks=(CHUNK, 3)))
        settings = Settings(tol=0.0, max_iter=4, rng=np.random.RandomState(1))
        outcome = fit_incremental(
            engine, [a_model()], settings, Reporter(callback=draws(settings.rng))
        )
    expected = fit(NumpyEngine(ROWS, chunk_rows=CHUNK, n_threads=2))
    assert_same_fit(outcome, expected)
    groups = [indices for kind, indices in engine.calls if kind == "estep"]
    order = np.random.RandomState(1).permutation(12)
    assert groups == _visits(order, 2) * 4
    assert [read for _, read in engine.found_read].count(False) == 2  # the very first group


def test_the_visiting_order_is_random_once_or_in_order():
    assert list(_order(None, 5)) == [0, 1, 2, 3, 4]
    order = _order(np.random.RandomState(7), 13)
    assert sorted(order) == list(range(13))
    visits = _visits(order, 4)
    assert [len(v) for v in visits] == [4, 4, 4, 1]
    assert [j for visit in visits for j in visit] == list(order)
