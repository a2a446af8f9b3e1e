"""The three drivers through their one signature: bars or none, checkpoints, callbacks."""

from __future__ import annotations

import numpy as np
import pytest
from tqdm import tqdm

from streamem.drivers import DRIVERS, Reporter, Settings
from streamem.drivers.batch import BatchProgress, fit_em
from streamem.drivers.common import describe
from streamem.drivers.init import InitSample, initial_models
from streamem.engines import NumpyEngine
from streamem.families.gaussian import Gaussian

from ..conftest import make_blobs


class Bar:
    """Records what a driver tells its progress bar."""

    def __init__(self) -> None:
        self.n, self.postfix = 0, []

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix.append(s)


def start(engine, n_init=2, seed=0):
    rng = np.random.RandomState(seed)
    return initial_models(
        Gaussian("full", 1e-6),
        InitSample(engine, 10_000, rng),
        rng,
        n_components=3,
        n_init=n_init,
        init_params="random_from_data",
        user_init=lambda model: model,
    )


def run(algorithm, progress=None, save=None, callback=None, max_iter=4):
    engine = NumpyEngine(make_blobs(3000, 3, 3), chunk_rows=500, n_threads=1)
    settings = Settings(tol=0.0, max_iter=max_iter, rng=np.random.RandomState(1), batch_size=250)
    reporter = Reporter(callback=callback, progress=progress, save=save)
    return DRIVERS[algorithm](engine, start(engine), settings, reporter)


@pytest.mark.parametrize("algorithm", sorted(DRIVERS))
def test_every_driver_runs_without_a_bar_and_with_one(algorithm):
    quiet = run(algorithm)
    bar = Bar()
    shown = run(algorithm, progress=bar)
    assert bar.n == 4 and len(bar.postfix) == 4
    label = "free energy" if algorithm == "incremental" else "log-likelihood"
    assert all(text.startswith(label) for text in bar.postfix)
    for a, b in zip(quiet.results, shown.results, strict=True):
        np.testing.assert_array_equal(a.model.params.means, b.model.params.means)
        assert a.lower_bounds == b.lower_bounds and a.n_iter == b.n_iter == 4
    assert (quiet.state is None) == (algorithm != "online")


@pytest.mark.parametrize("algorithm", sorted(DRIVERS))
def test_every_driver_works_with_a_real_tqdm_bar(algorithm):
    with tqdm(total=4, disable=True) as bar:
        outcome = run(algorithm, progress=bar)
    assert len(outcome.results) == 2


@pytest.mark.parametrize("algorithm", sorted(DRIVERS))
def test_every_driver_reports_each_model_after_each_pass(algorithm):
    seen, saved = [], []
    outcome = run(algorithm, callback=seen.append, save=saved.append)
    assert sorted({(it.init, it.n_iter) for it in seen}) == [
        (i, n) for i in range(2) for n in range(1, 5)
    ]
    for i, result in enumerate(outcome.results):
        assert [it.lower_bound for it in seen if it.init == i] == result.lower_bounds
    assert saved  # a checkpoint value after every iteration (online: after every chunk)


def test_batch_continues_from_its_saved_progress_bit_for_bit():
    saved = []
    whole = run("batch", max_iter=4)
    run("batch", save=saved.append, max_iter=2)
    engine = NumpyEngine(make_blobs(3000, 3, 3), chunk_rows=500, n_threads=1)
    assert isinstance(saved[-1], BatchProgress) and saved[-1].n_iter == 2
    bar = Bar()
    resumed = fit_em(engine, saved[-1], Settings(tol=0.0, max_iter=4), Reporter(progress=bar))
    assert bar.n == 4  # two done before, two now
    for a, b in zip(whole.results, resumed.results, strict=True):
        np.testing.assert_array_equal(a.model.params.means, b.model.params.means)
        assert a.lower_bounds == b.lower_bounds


def test_describe():
    assert describe("log-likelihood", [-3.0]) == "log-likelihood -3"
    assert describe("free energy", [-3.0, -2.5]) == "free energy -2.5 (change +0.5)"
