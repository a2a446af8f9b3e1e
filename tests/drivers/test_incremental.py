"""Incremental EM on a dask.distributed cluster: chunk E-steps by the workers that hold them."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import socket
import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest

from streamem import GaussianMixture
from streamem.engines import DaskEngine
from streamem.engines import dask_ as dask_engine
from streamem.families._base import Mixture
from streamem.families.gaussian import Gaussian, GaussianParams

from ..conftest import make_blobs

distributed = pytest.importorskip("distributed")


def a_model(X: np.ndarray, k: int = 3) -> Mixture:
    """A full-covariance model with means at the first ``k`` rows, unit covariances."""
    d = X.shape[1]
    covariances = np.repeat(np.eye(d)[None], k, axis=0)
    params = GaussianParams(X[:k].copy(), covariances, np.linalg.cholesky(covariances))
    return Mixture(Gaussian("full", 1e-6), np.full(k, 1 / k), params)


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


@pytest.fixture
def rows():
    return make_blobs(4000, 3, 3, seed=2)


@pytest.mark.parametrize("path", ["channel", "actor"])
def test_persisted_chunks_are_e_stepped_where_they_are(cluster_client, rows, path, monkeypatch):
    """By a direct connection to the holders, or by actor calls where none could be opened
    (here: the client's half of the handshake fails), with the same results."""
    if path == "actor":

        def refuse(*args):
            raise OSError("no route to the holder's port")

        monkeypatch.setattr(dask_engine, "handshake", refuse)
    models = (a_model(rows),)
    indices = [5, 0, 7, 2]
    local = DaskEngine(da.from_array(rows, chunks=(500, 3))).estep_chunks(models, indices)
    with cluster_client.as_current():
        engine = DaskEngine(da.from_array(rows, chunks=(500, 3)).persist())
        with distributed.get_task_stream(cluster_client) as tasks:
            held = engine.estep_chunks(models, indices)
            again = engine.estep_chunks(models, [3])
        computed = DaskEngine(da.from_array(rows, chunks=(500, 3))).estep_chunks(models, indices)
    assert engine._holders is not None and len(engine._holders) == 8
    assert [h.connection is not None for h in engine._held] == [path == "channel"] * 2
    # by the actors that hold the chunks: no chunk task went through the scheduler
    assert not [t for t in tasks.data if "estep" in str(t["key"])], tasks.data
    assert_identical(held, local)
    assert_identical(held, computed)
    assert_identical(
        again, DaskEngine(da.from_array(rows, chunks=(500, 3))).estep_chunks(models, [3])
    )


@pytest.mark.parametrize("placement", ["scheduler", "one worker"])
def test_chunks_of_one_worker_are_e_stepped_by_two(cluster_client, rows, placement):
    """Each worker's actor also holds the next worker's chunks (the data are far below a
    quarter of the cluster's memory), also a worker the scheduler gave none: a group whose
    chunks live on one worker is split between both, with the same results."""
    from streamem.engines.dask_ import held_calls

    models = (a_model(rows),)
    with cluster_client.as_current():
        X = da.from_array(rows, chunks=(500, 3))
        if placement == "one worker":
            X = cluster_client.persist(X, workers=[min(cluster_client.nthreads())])
        else:
            X = X.persist()
        engine = DaskEngine(X)
        holders = engine._chunk_holders()
        assert all(len(held) == 2 for held in holders.values())
        by_actor = {}
        for index, held in holders.items():
            by_actor.setdefault(id(held[0][0]), []).append(index)
        group = max(by_actor.values(), key=len)[:2]  # two chunks persisted on one worker
        assert len(held_calls(holders, group)) == 2
        assert [len(c[2]) for c in held_calls(holders, list(range(8)))] == [4, 4]
        held = engine.estep_chunks(models, group)
    local = DaskEngine(da.from_array(rows, chunks=(500, 3))).estep_chunks(models, group)
    assert_identical(held, local)


def test_lost_chunk_holders_fall_back_to_tasks_with_the_same_results(cluster_client, rows):
    models = (a_model(rows),)
    local = DaskEngine(da.from_array(rows, chunks=(500, 3))).estep_chunks(models, [1, 6])
    with cluster_client.as_current():
        engine = DaskEngine(da.from_array(rows, chunks=(500, 3)).persist())
        assert_identical(engine.estep_chunks(models, [1, 6]), local)
        cluster_client.cancel([held.future for held in engine._held])  # the actors are gone
        assert_identical(engine.estep_chunks(models, [1, 6]), local)
        assert engine._holders is None  # rebuilt at the next call
        assert_identical(engine.estep_chunks(models, [1, 6]), local)
        assert engine._holders is not None


def test_weighted_or_unpersisted_rows_go_through_the_scheduler(cluster_client, rows):
    models = (a_model(rows),)
    weights = np.linspace(0.5, 2.0, len(rows))
    local = DaskEngine(da.from_array(rows, chunks=(500, 3)), weights).estep_chunks(models, [4])
    with cluster_client.as_current():
        X = da.from_array(rows, chunks=(500, 3))
        weighted = DaskEngine(X.persist(), weights)
        lazy = DaskEngine(X)
        assert_identical(weighted.estep_chunks(models, [4]), local)
        lazy.estep_chunks(models, [4])
    assert weighted._holders is None and lazy._holders is None


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_incremental_fit_on_a_cluster_is_the_local_fit_bit_for_bit(
    cluster_client, rows, covariance_type
):
    options = dict(
        n_components=3,
        covariance_type=covariance_type,
        algorithm="incremental",
        random_state=0,
        tol=0,
        max_passes=4,
        chunk_size=400,
    )
    X = da.from_array(rows, chunks=(400, 3))
    with dask.config.set(num_workers=2):  # as many chunks at a time as the cluster's threads
        local = GaussianMixture(**options).fit(X)
    with cluster_client.as_current():
        held = GaussianMixture(persist=True, **options).fit(X)
        tasks = GaussianMixture(persist=False, **options).fit(X)
    for fit in (held, tasks):
        assert fit.lower_bounds_ == local.lower_bounds_
        for name in ("weights_", "means_", "covariances_"):
            np.testing.assert_array_equal(getattr(fit, name), getattr(local, name))


def channel_threads() -> int:
    return sum(t.name == "streamem-channel" for t in threading.enumerate())


def test_released_holders_close_their_channels(cluster_client, rows):
    """The workers' serving threads end with the client's connections (they hold the chunks)."""
    models = (a_model(rows),)
    with cluster_client.as_current():
        engine = DaskEngine(da.from_array(rows, chunks=(500, 3)).persist())
        engine.estep_chunks(models, [0, 1])
        assert sum(cluster_client.run(channel_threads).values()) == 2
        kept = list(engine._held)  # closed by the release, not by being collected
        engine._release_holders()
        deadline = time.monotonic() + 30
        while sum(cluster_client.run(channel_threads).values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(cluster_client.run(channel_threads).values()) == 0
        assert all(held.connection is None for held in kept)


def test_an_error_in_a_held_e_step_is_the_error_of_the_task_path(cluster_client, rows):
    """A model of the wrong width fails on the worker; the fall-back compute raises the error."""
    wrong = (a_model(np.hstack([rows, rows])),)
    with pytest.raises(ValueError) as local:
        DaskEngine(da.from_array(rows, chunks=(500, 3))).estep_chunks(wrong, [2])
    with cluster_client.as_current():
        engine = DaskEngine(da.from_array(rows, chunks=(500, 3)).persist())
        engine.estep_chunks((a_model(rows),), [0])
        with pytest.raises(ValueError) as held:
            engine.estep_chunks(wrong, [2])
    assert str(held.value) == str(local.value)


class Marker:
    """Unpickling this creates a file: proof that a payload was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("key", [None, b"a wrong key of thirty-two bytes!"])
def test_a_channel_loads_nothing_from_a_client_without_its_key(cluster_client, tmp_path, key):
    """The serving thread reads nothing but the handshake from a peer that does not prove
    the key (none, or a wrong one), and then closes the connection."""
    marker = tmp_path / "loaded"
    with cluster_client.as_current():
        holder = cluster_client.submit(dask_engine.ChunkHolder, 1, np.zeros((4, 2)), actor=True)
        address = holder.result().open_channel(os.urandom(32)).result()
    with socket.create_connection(address, timeout=30) as sock:
        if key is None:  # a pickle where the handshake should be
            payload = pickle.dumps(((Marker(str(marker)),), [0], [0]))
            sock.sendall(len(payload).to_bytes(4, "big") + payload)
        else:
            with pytest.raises(multiprocessing.AuthenticationError):
                dask_engine.handshake(sock, key, b"client")
            payload = pickle.dumps(((Marker(str(marker)),), [0], [0]))
            try:
                sock.sendall(len(payload).to_bytes(4, "big") + payload)
            except OSError:
                pass
        sock.settimeout(30)
        while True:  # the server closes its end
            try:
                if not sock.recv(4096):
                    break
            except ConnectionResetError:
                break
    time.sleep(0.2)
    assert not marker.exists()
    holder.release()


@pytest.mark.parametrize("client_key, ok", [(b"k" * 32, True), (b"j" * 32, False)])
def test_the_handshake_needs_the_same_key_on_both_ends(client_key, ok):
    left, right = socket.socketpair()
    outcome = {}

    def serve():
        try:
            dask_engine.handshake(left, b"k" * 32, b"server")
            outcome["server"] = True
        except (multiprocessing.AuthenticationError, EOFError, OSError):
            outcome["server"] = False
            left.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        dask_engine.handshake(right, client_key, b"client")
        outcome["client"] = True
    except (multiprocessing.AuthenticationError, EOFError, OSError):
        outcome["client"] = False
    right.close()
    thread.join(30)
    left.close()
    assert outcome == {"server": ok, "client": ok}


def test_a_cluster_without_plain_tcp_keeps_the_actor_calls(rows):
    """In-process workers (``inproc://``; likewise TLS): no channel, the same results."""
    models = (a_model(rows),)
    local = DaskEngine(da.from_array(rows, chunks=(500, 3))).estep_chunks(models, [3, 6])
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
        client.as_current(),
    ):
        assert all(a.startswith("inproc://") for a in client.nthreads())
        engine = DaskEngine(da.from_array(rows, chunks=(500, 3)).persist())
        held = engine.estep_chunks(models, [3, 6])
        assert engine._held and all(h.connection is None for h in engine._held)
    assert_identical(held, local)
