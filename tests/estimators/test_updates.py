"""Updating a fitted model: it continues from the statistics of its data, keeps its
components, forgets only when asked, and keeps a history of its updates."""

from __future__ import annotations

import json
import zipfile

import dask.array as da
import numpy as np
import pytest

from streamem import GaussianMixture, PoissonMixture, load
from streamem.drivers.stepwise import Schedule
from streamem.estep import chunk_estep
from streamem.estimators import mixture_of

from ..conftest import make_blobs

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    X = make_blobs(40_000, d=3, k=3, seed=5)
    return X[:30_000], X[30_000:]


@pytest.mark.parametrize("algorithm", ["batch", "incremental", "online"])
def test_every_fit_leaves_the_statistics_of_its_data(data, algorithm):
    archive, _ = data
    gm = GaussianMixture(
        3, algorithm=algorithm, random_state=0, tol=1e-6, chunk_size=5000, max_passes=5
    ).fit(archive)
    state = gm.stepwise_state_
    assert state.counting and state.weight_seen == pytest.approx(len(archive))
    # the statistics are the data's, per row: their counts sum to one
    assert state.stats[0].counts.sum() == pytest.approx(1.0)
    if algorithm != "online":  # the fitted parameters are the M-step of those statistics
        params, _ = mixture_of(gm).family.m_step(state.stats[0])
        np.testing.assert_allclose(params.means, gm.means_, rtol=1e-12)


def test_an_update_from_the_same_distribution_changes_little_and_keeps_order(data):
    archive, new = data
    gm = GaussianMixture(3, random_state=0, tol=1e-8).fit(archive)
    means, weights = gm.means_.copy(), gm.weights_.copy()
    gm.partial_fit(new)
    # 10 000 new rows joining 30 000: a quarter of the weight, sampling noise only
    assert np.abs(gm.means_ - means).max() < 0.05
    assert np.abs(gm.weights_ - weights).max() < 0.01
    # component k stays component k
    assert [int(np.argmin(((means - m) ** 2).sum(axis=1))) for m in gm.means_] == [0, 1, 2]
    assert gm.stepwise_state_.weight_seen == pytest.approx(40_000)


def test_update_equals_one_stepwise_step_weighted_by_share(data):
    archive, new = data
    gm = GaussianMixture(3, random_state=0, tol=1e-10, max_iter=500).fit(archive)
    fitted = mixture_of(gm)
    family = fitted.family
    # by hand: the statistics of A at the fitted parameters, of B under them, by row share
    stats_a = chunk_estep(archive, None, (fitted,), 0).stats[0]
    stats_b = chunk_estep(new, None, (fitted,), 0).stats[0]
    combined = family.merge(stats_a, stats_b)
    expected, _ = family.m_step(combined)
    weights = combined.counts / combined.counts.sum()
    gm.partial_fit(new)
    np.testing.assert_allclose(gm.means_, expected.means, rtol=1e-3)
    np.testing.assert_allclose(gm.covariances_, expected.covariances, rtol=1e-3)
    np.testing.assert_allclose(gm.weights_, weights, rtol=1e-3)


def test_save_load_update_equals_update_bit_for_bit(data, tmp_path):
    archive, new = data
    one = GaussianMixture(3, random_state=0).fit(archive)
    one.save(tmp_path / "m.streamem")
    two = load(tmp_path / "m.streamem")
    for model in (one, two):
        model.partial_fit(new[:5000])
        model.partial_fit(new[5000:])
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    for key in one.update_history_:
        np.testing.assert_array_equal(one.update_history_[key], two.update_history_[key])


def test_update_history_is_kept_saved_and_bounded(data, tmp_path):
    archive, new = data
    gm = GaussianMixture(3, random_state=0).fit(archive)
    assert not hasattr(gm, "update_history_")
    before = gm.score(new[:2000])
    gm.partial_fit(new[:2000])
    history = gm.update_history_
    assert history["n_rows"].tolist() == [2000]
    assert history["log_likelihood"][0] == pytest.approx(before, rel=1e-12)
    assert 0 < history["change"][0] < 0.05
    np.testing.assert_array_equal(history["weights"][0], gm.weights_)
    gm.save(tmp_path / "m.streamem")
    loaded = load(tmp_path / "m.streamem")
    np.testing.assert_array_equal(loaded.update_history_["weights"], history["weights"])
    from streamem.estimators import _online

    small = 3
    original, _online.MAX_HISTORY = _online.MAX_HISTORY, small
    try:
        for batch in np.array_split(new[2000:], 5):
            gm.partial_fit(batch)
    finally:
        _online.MAX_HISTORY = original
    assert len(gm.update_history_["n_rows"]) == small
    # a new fit starts a new history
    gm.fit(archive)
    assert not hasattr(gm, "update_history_")


def test_half_life_tracks_a_drifting_mixture():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [8.0, 8.0]])

    def batch(step):
        drift = centres + np.array([0.03, -0.02]) * step
        return drift, np.vstack([rng.normal(size=(200, 2)) + m for m in drift])

    _, first = batch(0)
    counting = GaussianMixture(2, random_state=0).fit(first)
    by_rows = GaussianMixture(2, random_state=0, half_life=2000).fit(first)
    by_updates = GaussianMixture(2, random_state=0, half_life=5, half_life_unit="updates").fit(
        first
    )
    for step in range(1, 200):
        drift, rows = batch(step)
        for model in (counting, by_rows, by_updates):
            model.partial_fit(rows)
    errors = [
        np.abs(np.sort(m.means_, axis=0) - np.sort(drift, axis=0)).max()
        for m in (counting, by_rows, by_updates)
    ]
    assert errors[1] < 0.5 and errors[2] < 0.5 < errors[0]


def test_half_life_step_sizes():
    assert Schedule(half_life=100).step_size(1, weight=100) == pytest.approx(0.5)
    assert Schedule(half_life=2, half_life_unit="updates").step_size(7, 5000) == pytest.approx(
        1 - 0.5**0.5
    )
    assert Schedule().step_size(1, weight=10, seen=30, counting=True) == pytest.approx(0.25)
    assert Schedule(rate=0.1, half_life=5).step_size(3, 10) == 0.1


def test_a_model_of_the_previous_format_loads_and_updates_from_scratch(data, tmp_path):
    archive, new = data
    GaussianMixture(3, random_state=0).fit(archive).save(tmp_path / "new.streamem")
    with zipfile.ZipFile(tmp_path / "new.streamem") as source:
        members = {name: source.read(name) for name in source.namelist()}
    manifest = json.loads(members["model.json"])
    manifest["version"] = 1
    fitted = manifest["content"]["__dict__"]["fitted"]["__dict__"]
    del fitted["stepwise_state_"], fitted["n_steps_"]
    members["model.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(tmp_path / "old.streamem", "w") as target:
        for name, raw in members.items():
            target.writestr(name, raw)
    old = load(tmp_path / "old.streamem")
    assert old.predict(new[:10]).shape == (10,)
    with pytest.warns(UserWarning, match="carries no statistics of the data it was fitted"):
        old.partial_fit(new)
    assert old.n_steps_ == 1


def test_updates_work_for_lazy_batches_and_discrete_families():
    rng = np.random.default_rng(0)
    rates = np.array([[1.0, 5.0], [8.0, 2.0]])
    labels = rng.integers(0, 2, 20_000)
    X = rng.poisson(rates[labels])
    pm = PoissonMixture(2, random_state=0).fit(X[:15_000])
    before = pm.rates_.copy()
    pm.partial_fit(da.from_array(X[15_000:], chunks=1000))
    assert np.abs(pm.rates_ - before).max() < 0.1
    assert pm.update_history_["n_rows"].tolist() == [5000]
