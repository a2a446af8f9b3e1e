"""Online (stepwise) and incremental EM, streams, and exact save / load / continue."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from streamem import GaussianMixture, load
from streamem.drivers.stepwise import Schedule

from ..conftest import assert_close, make_blobs


@pytest.fixture(scope="module")
def stream():
    return make_blobs(60_000, d=3, k=3, seed=21)


@pytest.fixture(scope="module")
def batch_fit(stream):
    return GaussianMixture(3, random_state=0, tol=1e-8).fit(stream)


def matched(means, reference):
    order = [int(np.argmin(((reference - m) ** 2).sum(axis=1))) for m in means]
    assert sorted(order) == list(range(len(means)))
    return reference[order]


def test_schedule():
    assert Schedule(0.6, 2.0).step_size(1) == pytest.approx(3**-0.6)
    assert Schedule(1.0, 0.0).step_size(10) == pytest.approx(0.1)
    assert Schedule(0.6, 2.0, rate=0.05).step_size(1000) == 0.05


def test_online_converges_to_batch(stream, batch_fit):
    gm = GaussianMixture(
        3, algorithm="online", random_state=0, chunk_size=6000, batch_size=2000, max_passes=4
    )
    gm.fit(stream)
    assert gm.n_steps_ == gm.n_iter_ * 30
    # within sampling tolerance of the batch optimum
    np.testing.assert_allclose(gm.means_, matched(gm.means_, batch_fit.means_), atol=0.03)
    assert gm.score(stream) == pytest.approx(batch_fit.score(stream), abs=2e-3)
    assert gm.lower_bounds_[-1] == pytest.approx(batch_fit.lower_bound_, abs=5e-3)


def test_online_on_dask_equals_numpy(stream):
    options = dict(
        algorithm="online", random_state=3, chunk_size=5000, batch_size=1000, max_passes=2
    )
    in_memory = GaussianMixture(3, **options).fit(stream)
    lazy = GaussianMixture(3, **options).fit(da.from_array(stream, chunks=(5000, 3)))
    assert_close(lazy.means_, in_memory.means_, 1e-10)
    assert_close(lazy.covariances_, in_memory.covariances_, 1e-10)
    assert lazy.n_steps_ == in_memory.n_steps_


def test_incremental_never_decreases_and_reaches_batch(stream):
    options = dict(random_state=1, reg_covar=0, tol=1e-9, init_params="random")
    batch = GaussianMixture(3, max_iter=500, **options).fit(stream)
    incremental = GaussianMixture(3, algorithm="incremental", chunk_size=4000, **options)
    incremental.fit(stream)
    bounds = np.array(incremental.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))
    assert incremental.lower_bound_ == pytest.approx(batch.lower_bound_, abs=1e-7)
    assert incremental.n_iter_ < batch.n_iter_
    assert_close(np.sort(incremental.means_, axis=0), np.sort(batch.means_, axis=0), 1e-4)


def test_incremental_statistics_can_live_in_zarr(stream, tmp_path):
    options = dict(algorithm="incremental", random_state=0, chunk_size=10_000, max_passes=3)
    in_memory = GaussianMixture(3, **options).fit(stream)
    spilled = GaussianMixture(3, incremental_store=str(tmp_path / "s.zarr"), **options)
    spilled.fit(stream)
    assert_close(spilled.means_, in_memory.means_, 1e-12)
    assert (tmp_path / "s.zarr").exists()


def test_partial_fit_first_call_initialises_and_counts_steps(stream):
    gm = GaussianMixture(3, random_state=0)
    gm.partial_fit(stream[:3000])
    assert gm.n_steps_ == 1 and gm.means_.shape == (3, 3)
    gm.partial_fit(stream[3000:6000])
    assert gm.n_steps_ == 2
    gm.partial_fit(da.from_array(stream[6000:12000], chunks=2000))  # one update per chunk
    assert gm.n_steps_ == 5
    gm2 = GaussianMixture(3, random_state=0, batch_size=1000).partial_fit(stream[:3000])
    assert gm2.n_steps_ == 3


def run_batches(gm, batches):
    for batch in batches:
        gm.partial_fit(batch)
    return gm


@pytest.mark.parametrize("average", [False, True])
def test_save_load_continue_is_exact(stream, tmp_path, average):
    batches = np.array_split(stream[:40_000], 10)
    uninterrupted = run_batches(GaussianMixture(3, random_state=0, average=average), batches)
    first = run_batches(GaussianMixture(3, random_state=0, average=average), batches[:4])
    first.save(tmp_path / "model.streamem")
    resumed = run_batches(load(tmp_path / "model.streamem"), batches[4:])
    assert resumed.n_steps_ == uninterrupted.n_steps_ == 10
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(uninterrupted, name))
    for a, b in zip(
        resumed.stepwise_state_.stats[0], uninterrupted.stepwise_state_.stats[0], strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_averaging_reports_the_mean_of_the_statistics(stream):
    plain = run_batches(GaussianMixture(3, random_state=0), np.array_split(stream, 30))
    averaged = run_batches(
        GaussianMixture(3, random_state=0, average=True), np.array_split(stream, 30)
    )
    assert averaged.stepwise_state_.n_averaged[0] > 0
    assert not np.allclose(averaged.means_, plain.means_)
    np.testing.assert_allclose(averaged.means_, plain.means_, atol=0.1)


def test_burn_in_waits_for_every_component():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    gm = GaussianMixture(3, means_init=means, random_state=0, covariance_type="full")
    gm.partial_fit(rng.normal(size=(500, 2)))  # only near the first component
    np.testing.assert_array_equal(gm.means_, means)  # no M-step yet: burn-in
    assert gm.n_steps_ == 1 and not all(gm.stepwise_state_.burned_in)
    gm.partial_fit(np.vstack([rng.normal(size=(100, 2)) + m for m in means]))
    assert all(gm.stepwise_state_.burned_in)
    assert not np.array_equal(gm.means_, means)


def test_forgetting_tracks_a_drifting_mixture():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [8.0, 8.0]])
    start = dict(means_init=centres, weights_init=[0.5, 0.5], random_state=0)
    forgetting = GaussianMixture(2, learning_rate=0.2, **start)
    decaying = GaussianMixture(2, **start)
    for step in range(200):
        drift = centres + np.array([0.03, -0.02]) * step
        batch = np.vstack([rng.normal(size=(200, 2)) + m for m in drift])
        forgetting.partial_fit(batch)
        decaying.partial_fit(batch)
    tracked = np.abs(np.sort(forgetting.means_, axis=0) - np.sort(drift, axis=0)).max()
    lagging = np.abs(np.sort(decaying.means_, axis=0) - np.sort(drift, axis=0)).max()
    assert tracked < 0.3 < lagging


def test_fit_stream_passes_and_one_shot_iterators(stream):
    blocks = np.array_split(stream, 20)
    passes = []
    gm = GaussianMixture(3, random_state=0, max_passes=6, tol=1e-4, callback=passes.append)
    gm.fit_stream(blocks)
    assert 1 < gm.n_iter_ <= 6 and len(passes) == gm.n_iter_
    assert gm.n_steps_ == 20 * gm.n_iter_
    once = GaussianMixture(3, random_state=0).fit_stream(iter(blocks))
    assert once.n_iter_ == 1 and once.n_steps_ == 20
    again = GaussianMixture(3, random_state=0, max_passes=2).fit_stream(lambda: iter(blocks))
    assert again.n_iter_ == 2


# -- bad input ---------------------------------------------------------------------------------


def snapshot(gm):
    return {k: np.copy(getattr(gm, k)) for k in ("weights_", "means_", "covariances_")} | {
        "steps": gm.n_steps_
    }


def test_rejected_batches_leave_the_model_unchanged(stream):
    gm = GaussianMixture(3, random_state=0).partial_fit(stream[:5000])
    before = snapshot(gm)
    bad = stream[5000:6000].copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity.*row 17"):
        gm.partial_fit(bad)
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is expecting 3"):
        gm.partial_fit(stream[:100, :2])
    with pytest.raises(ValueError, match="0 sample"):
        gm.partial_fit(stream[:0])
    with pytest.raises(ValueError, match="sample_weight"):
        gm.partial_fit(stream[:100], sample_weight=-np.ones(100))
    after = snapshot(gm)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"learning_decay": 0.5}, r"learning_decay must be a number in \(0.5, 1\]"),
        ({"learning_decay": 1.2}, "learning_decay"),
        ({"learning_rate": 0.0}, r"learning_rate must be a number in \(0, 1\]"),
        ({"learning_rate": 1.5}, "learning_rate"),
        ({"learning_offset": -1}, "learning_offset"),
        ({"algorithm": "sgd"}, "algorithm must be one of"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_passes": 0}, "max_passes"),
    ],
)
def test_invalid_schedule(stream, params, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(3, **params).partial_fit(stream[:500])


def test_first_batch_needs_enough_rows(stream):
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).partial_fit(stream[:3])


def test_online_fit_with_restarts(stream):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(
            3,
            algorithm="online",
            n_init=2,
            max_passes=2,
            random_state=0,
            init_params="random",
            chunk_size=10_000,
        ).fit(stream)
    assert np.isfinite(gm.lower_bound_) and gm.n_iter_ == 2


def test_averaging_can_start_after_a_number_of_rows(stream):
    gm = GaussianMixture(3, random_state=0, average=30_000)
    run_batches(gm, np.array_split(stream[:60_000], 12))  # 5 000 rows each
    assert gm.stepwise_state_.n_averaged == (7,)  # from the 6th batch (30 000 rows) on
    with pytest.raises(ValueError, match="average must be an integer"):
        GaussianMixture(3, average=-5).partial_fit(stream[:100])


def test_online_defaults_reach_batch_in_two_passes():
    X = make_blobs(100_000, d=3, k=4, seed=8)
    init = GaussianMixture(4, random_state=0, max_iter=0).fit(X)
    start = dict(
        weights_init=init.weights_, means_init=init.means_, precisions_init=init.precisions_
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        optimum = GaussianMixture(4, tol=1e-9, max_iter=500, **start).fit(X).score(X)
        online = GaussianMixture(4, algorithm="online", max_passes=2, chunk_size=4000, **start)
        last_iterate = online.set_params(average=False).fit(X).score(X)
        averaged = online.set_params(average="auto").fit(X).score(X)
    assert optimum - averaged < 1e-3
    assert optimum - averaged < optimum - last_iterate
