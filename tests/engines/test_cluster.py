"""Clusters and crashes: dask.distributed, a worker killed mid-fit, SIGKILL and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from streamem import GaussianMixture, ModelFileError, load
from streamem.datasets import make_mixture

from ..conftest import assert_close


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cluster") / "data.zarr"
    make_mixture(path, 200_000, 4, 3, "full", chunk_rows=5_000, seed=5, separation=2.0)
    return f"{path}/data"


def fit(X, **options):
    options = {"n_components": 3, "random_state": 0, "tol": 0, "max_iter": 6, **options}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(**options).fit(X)


def assert_same(a, b, rtol=1e-10):
    assert_close(a.weights_, b.weights_, rtol)
    assert_close(a.means_, b.means_, rtol)
    assert_close(a.covariances_, b.covariances_, rtol)


@pytest.mark.parametrize("algorithm", ["batch", "online", "incremental"])
def test_cluster_equals_local_scheduler(cluster_client, store, algorithm):
    options = dict(algorithm=algorithm, max_passes=3, batch_size=2_000, split_every=2)
    local = fit(store, **options)
    with cluster_client.as_current():
        remote = fit(store, **options)
        persisted = fit(store, persist=True, **options)
        auto = fit(store, persist="auto", **options)  # 3 MiB of data: fits, so persisted
    assert_same(remote, local)
    assert_same(persisted, local)
    assert_same(auto, local)


def test_worker_killed_mid_iteration(cluster_client, store):
    reference = fit(store, max_iter=5)
    pids = cluster_client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = []

    def kill_during_next_iteration(iteration):
        if iteration.n_iter == 2 and not killed:
            killed.append(victim)
            threading.Timer(0.05, os.kill, (victim, signal.SIGKILL)).start()

    with cluster_client.as_current():
        survived = fit(store, max_iter=5, callback=kill_during_next_iteration)
    assert killed
    assert_same(survived, reference)
    # the nanny restarts the worker; the scheduler may list the killed one a moment longer
    # (a broadcast to it then fails), so ask until two live workers answer
    deadline = time.monotonic() + 60
    while True:
        pids = cluster_client.run(os.getpid, on_error="ignore")
        if len(pids) == 2 and victim not in pids.values():
            break
        assert time.monotonic() < deadline, f"workers after the kill: {pids}"
        time.sleep(0.2)


def worker_bytes_written(client) -> int:
    """Bytes the worker processes have written (sockets included), from /proc."""
    total = 0
    for pid in client.run(os.getpid).values():
        with open(f"/proc/{pid}/io") as io:
            total += next(int(line.split()[1]) for line in io if line.startswith("wchar"))
    return total


def test_bytes_per_iteration_do_not_grow_with_rows(cluster_client, tmp_path):
    """10× the rows in as many chunks: workers send the same bytes per iteration."""
    sent = []
    for n_rows in (40_000, 400_000):
        path = tmp_path / f"s{n_rows}.zarr"
        make_mixture(path, n_rows, 8, 3, "diag", chunk_rows=n_rows // 8, seed=1)
        start = fit(path / "data", max_iter=0)
        init = dict(
            weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_
        )
        with cluster_client.as_current():
            fit(path / "data", max_iter=1, **init)  # warm the workers up
            before = worker_bytes_written(cluster_client)
            fit(path / "data", max_iter=5, **init)
            sent.append((worker_bytes_written(cluster_client) - before) / 5)
    data_per_pass = 400_000 * 8 * 4
    assert sent[1] < 1.2 * sent[0] + 0.01 * data_per_pass, sent
    assert sent[1] < 0.05 * data_per_pass


SCRIPT = textwrap.dedent(
    """
    import sys, time, warnings
    import streamem
    warnings.simplefilter("ignore")
    data, algorithm, checkpoint, out = sys.argv[1:]
    def report(iteration):
        print("pass", iteration.n_iter, flush=True)
        if iteration.n_iter >= 2 and "never" in out:
            time.sleep(1.0)  # the run to be killed: leave time to kill it mid-fit
    gm = streamem.GaussianMixture(
        3, tol=0, max_iter=8, max_passes=5, random_state=0, algorithm=algorithm,
        chunk_size=20_000, batch_size=5_000, init_size=5_000, checkpoint=checkpoint,
        callback=report,
    )
    gm.fit(data)
    gm.save(out)
    """
)


def run_fit(*args):
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("algorithm", ["batch", "online", "incremental"])
def test_sigkill_then_resume_gives_the_uninterrupted_model(store, tmp_path, algorithm):
    reference = run_fit(store, algorithm, tmp_path / "ref.ckpt", tmp_path / "ref.streamem")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    checkpoint = tmp_path / "fit.ckpt"
    victim = run_fit(store, algorithm, checkpoint, tmp_path / "never.streamem")
    for line in victim.stdout:
        if line.startswith("pass 2"):
            victim.send_signal(signal.SIGKILL)
            break
    assert victim.wait(timeout=60) == -signal.SIGKILL
    assert checkpoint.exists()

    resumed = run_fit(store, algorithm, checkpoint, tmp_path / "resumed.streamem")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert not out.startswith("pass 1\n")  # it continued, it did not start over
    assert not checkpoint.exists()  # removed once the fit completed
    a, b = load(tmp_path / "resumed.streamem"), load(tmp_path / "ref.streamem")
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_checkpoint_of_another_fit_is_refused(store, tmp_path):
    checkpoint = tmp_path / "c.ckpt"

    def stop(iteration):
        if iteration.n_iter == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(store, checkpoint=str(checkpoint), callback=stop)
    assert checkpoint.exists()
    with pytest.raises(ValueError, match="belongs to another fit: parameters covariance_type"):
        fit(store, checkpoint=str(checkpoint), covariance_type="diag")
    with pytest.raises(ValueError, match=r"n_rows \(saved 200000, now 100000\)"):
        fit(load_rows(store)[:100_000], checkpoint=str(checkpoint))
    checkpoint.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="damaged"):
        fit(store, checkpoint=str(checkpoint))


def load_rows(store):
    import zarr

    return zarr.open(store, mode="r")[:]
