"""The Dask engine: one E-step task per row chunk, then a tree-reduce; one compute per pass.

The graph of a pass is built from the array's own chunk keys, so the data are read where the
scheduler runs the tasks (threads here, or the workers of a ``dask.distributed`` cluster) and
only the small merged statistics come back to the client. Parameters travel as one literal in
the graph, shared by every chunk task. Incremental EM's small groups of chunks are E-stepped
without a graph: read ahead on local threads, or by actors on the workers that hold the
persisted chunks of a cluster, called over a direct connection where the cluster's comm is
plain TCP.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection
from typing import Any

import dask
import dask.array as da
import dask.local
import numpy as np
from dask.base import tokenize
from dask.callbacks import Callback
from dask.optimization import cull
from tqdm.auto import tqdm

from ..estep import EStepResult, chunk_estep, merge_results
from ..families._base import Mixture
from ._blas import single_threaded_blas
from .base import ArrayEngine
from .numpy_ import default_threads

LOCAL_THREADS_PER_CORE = 2

# the key prefix of chunk tasks, which the progress bar counts
CHUNK_TASK = "streamem-chunk"

# seconds a chunk holder waits for the client to connect, and the client for the holder
CHANNEL_TIMEOUT = 30.0


class ChunkProgress(Callback):
    """A tqdm bar advanced by every finished chunk task of a local Dask computation."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total

    def _start(self, dsk: Any) -> None:
        self.bar = tqdm(total=self.total, desc="chunks", unit="chunk", leave=False)

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        name = key[0] if isinstance(key, tuple) else key
        if str(name).startswith(CHUNK_TASK):
            self.bar.update(1)

    def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
        self.bar.close()


class ChunkHolder:
    """The persisted chunks of one ``dask.distributed`` worker, E-stepped where they are.

    Created as an actor on the worker that holds the chunks (so nothing is copied); the
    client calls :meth:`estep` on it directly, without a round trip through the scheduler
    and without building a graph: incremental EM asks for a few chunks after every M-step,
    and that latency, not the E-step, bounded its speed on a cluster.

    Parameters
    ----------
    n_threads : int
        Threads to E-step this worker's chunks of one call on (the worker's).
    *blocks : ndarray
        The chunks this worker holds.
    """

    def __init__(self, n_threads: int, *blocks: np.ndarray) -> None:
        self.blocks = blocks
        self.n_threads = max(1, int(n_threads))
        self._pool: ThreadPoolExecutor | None = None

    def estep(
        self, models: tuple[Mixture, ...], positions: list[int], offsets: list[int]
    ) -> list[EStepResult]:
        """The E-step results of the chunks at ``positions`` (of this holder's chunks)."""
        if len(positions) == 1 or self.n_threads == 1:
            return [
                chunk_estep(self.blocks[p], None, models, o)
                for p, o in zip(positions, offsets, strict=True)
            ]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.n_threads, thread_name_prefix="streamem-estep")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        tasks = [
            self._pool.submit(chunk_estep, self.blocks[p], None, models, o)
            for p, o in zip(positions, offsets, strict=True)
        ]
        return [task.result() for task in tasks]

    def open_channel(self, key: bytes) -> tuple[str, int] | None:
        """Listen on this worker's host for one connection from the client that knows
        ``key``, and serve :meth:`estep` calls on it from a thread of its own until it closes.

        Returns the address to connect to, or None where the worker's comm is not plain TCP
        (TLS, not to be bypassed in the clear; UCX; in-process). An actor call takes ~2 ms on
        a 2-core machine (the client's and the worker's event loops, the actor's thread,
        distributed's messages) where this takes ~0.2 ms: incremental EM makes one such call
        per worker after every M-step, E-steps of a few milliseconds each.
        """
        from distributed import get_worker
        from distributed.comm.addressing import parse_address, parse_host_port

        scheme, location = parse_address(get_worker().address)
        if scheme != "tcp":
            return None
        host, _ = parse_host_port(location)
        server = socket.create_server(
            (host, 0), family=socket.AF_INET6 if ":" in host else socket.AF_INET
        )
        server.settimeout(CHANNEL_TIMEOUT)
        threading.Thread(
            target=_serve_channel, args=(self, server, key), name="streamem-channel", daemon=True
        ).start()
        return server.getsockname()[:2]


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            raise EOFError("the connection closed during the handshake")
        data += more
    return data


def handshake(sock: socket.socket, key: bytes, role: bytes) -> None:
    """Both ends prove they know ``key`` before anything else is read from the connection:
    each answers the other's random challenge with its HMAC-SHA256 under the key, tagged
    with its role (so that an answer cannot be reflected back).

    Raises
    ------
    multiprocessing.AuthenticationError
        If the other end does not know the key.
    """
    other = b"client" if role == b"server" else b"server"
    challenge = secrets.token_bytes(32)
    sock.sendall(challenge)
    sock.sendall(hmac.digest(key, role + _receive_exactly(sock, 32), "sha256"))
    answer = _receive_exactly(sock, 32)
    if not hmac.compare_digest(answer, hmac.digest(key, other + challenge, "sha256")):
        raise AuthenticationError("the other end of a chunk holder's channel lacks its key")


def _as_connection(sock: socket.socket) -> Connection:
    """A blocking, unbuffered (``TCP_NODELAY``: no 40 ms wait for an acknowledgement)
    message connection over ``sock``."""
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Connection(sock.detach())


def _serve_channel(holder: ChunkHolder, server: socket.socket, key: bytes) -> None:
    """Serve one client's E-step calls on ``holder`` (see :meth:`ChunkHolder.open_channel`)."""
    try:
        with server:
            sock, _ = server.accept()
        with sock:
            sock.settimeout(CHANNEL_TIMEOUT)
            handshake(sock, key, b"server")
            connection = _as_connection(sock)
    except Exception:  # no client, or not ours: the client calls the actor instead
        return
    with connection:
        while True:
            try:
                models, positions, offsets = connection.recv()
            except Exception:  # closed: the client released the holder, or is gone
                return
            try:
                reply: tuple = ("ok", holder.estep(models, positions, offsets))
            except Exception as error:
                reply = ("error", error)
            try:
                connection.send(reply)
            except Exception as error:  # an exception that does not pickle
                try:
                    connection.send(("error", RuntimeError(repr(error))))
                except Exception:
                    return


class HeldChunks:
    """The client's side of one :class:`ChunkHolder`: calls by a direct connection where one
    could be opened (:meth:`ChunkHolder.open_channel`), else through the actor.

    Parameters
    ----------
    future : distributed.Future
        The actor's future (its status tells whether the worker still holds it).
    """

    def __init__(self, future: Any) -> None:
        self.future, self.actor = future, future.result()
        self.connection: Connection | None = None
        try:
            key = secrets.token_bytes(32)
            address = self.actor.open_channel(key).result()
            if address is None:
                return
            sock = socket.create_connection(address, timeout=CHANNEL_TIMEOUT)
            try:
                handshake(sock, key, b"client")
                self.connection = _as_connection(sock)
            finally:
                sock.close()
        except Exception:  # e.g. a firewall between client and worker ports
            self.connection = None

    def estep(
        self, models: tuple[Mixture, ...], positions: list[int], offsets: list[int]
    ) -> Callable[[], list[EStepResult]]:
        """Start :meth:`ChunkHolder.estep`; returns the function that waits for its results."""
        if self.future.status != "finished":
            raise RuntimeError(f"the worker holding chunks lost them ({self.future.status})")
        if self.connection is None:
            return self.actor.estep(models, positions, offsets).result
        self.connection.send((models, positions, offsets))
        return self._reply

    def _reply(self) -> list[EStepResult]:
        status, value = self.connection.recv()
        if status != "ok":
            raise value
        return value

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        self.future.release()


def _cluster_memory() -> int:
    """The memory limits of the active dask.distributed cluster's workers, summed (0: none)."""
    try:
        from distributed import get_client

        workers = get_client().scheduler_info()["workers"].values()
    except (ImportError, ValueError):
        return 0
    return sum(w.get("memory_limit", 0) or 0 for w in workers)


def held_calls(
    holders: dict[int, list[tuple[HeldChunks, int]]], indices: list[int]
) -> list[tuple[HeldChunks, list[int], list[int]]]:
    """``(holder, positions, indices)`` of one call per holder E-stepping the chunks at
    ``indices``: each chunk by the holder with the fewest chunks so far (the first on a tie)."""
    calls: dict[int, tuple[HeldChunks, list[int], list[int]]] = {}
    for index in indices:
        holder, position = min(
            holders[index], key=lambda held: len(calls.get(id(held[0]), ((), ()))[1])
        )
        _, positions, wanted = calls.setdefault(id(holder), (holder, [], []))
        positions.append(position)
        wanted.append(index)
    return list(calls.values())


def cluster_can_hold(X: da.Array) -> bool:
    """Whether a dask.distributed cluster is active and ``X`` takes < half its memory."""
    memory = _cluster_memory()
    return bool(memory) and X.nbytes < memory / 2


def _local_threads(scheduler: Any) -> bool:
    """Whether ``dask.compute`` with this ``scheduler`` runs on Dask's local thread pool."""
    import dask.threaded
    from dask.base import get_scheduler

    # None: no scheduler configured and no distributed client, so Dask's default, threads
    return (get_scheduler(scheduler=scheduler) or dask.threaded.get) is dask.threaded.get


class DaskEngine(ArrayEngine):
    """Map the chunk kernel over the row chunks of a Dask array and tree-reduce the results.

    Parameters
    ----------
    X : dask.array.Array of shape (n_rows, n_features)
        The data; the feature axis is rechunked to one block if it is not already.
    sample_weight : dask.array.Array or ndarray of shape (n_rows,), or None
        Row weights, rechunked to match ``X``'s rows.
    split_every : int
        Fan-in of the merge tree.
    scheduler : str or None
        Passed to ``dask.compute`` (None: the active ``distributed.Client`` if any, else
        Dask's threaded scheduler).
    progress : bool
        Show a progress bar over the chunks of each pass (local schedulers; a
        ``dask.distributed`` cluster has its dashboard).
    """

    def __init__(
        self,
        X: da.Array,
        sample_weight: da.Array | np.ndarray | None = None,
        split_every: int = 8,
        scheduler: str | None = None,
        progress: bool = False,
    ) -> None:
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        self.X = X
        if sample_weight is not None:
            if not isinstance(sample_weight, da.Array):
                sample_weight = da.from_array(np.asarray(sample_weight), chunks=(X.chunks[0],))
            elif sample_weight.chunks[0] != X.chunks[0]:
                sample_weight = sample_weight.rechunk((X.chunks[0],))
        self.sample_weight = sample_weight
        self.split_every = max(2, int(split_every))
        self.scheduler = scheduler
        self.progress = progress
        self._blocks = list(X.to_delayed().ravel())
        self._weights = (
            [None] * len(self._blocks)
            if sample_weight is None
            else list(sample_weight.to_delayed().ravel())
        )
        self._offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).tolist()
        # incremental EM on local threads: chunks being read ahead, the chunks the last
        # prefetch named (and those of them whose reads are still to start), and each
        # chunk's reading tasks alone
        self._reading: dict[int, Future] = {}
        self._ahead: set[int] = set()
        self._unread: list[int] = []
        self._read_graphs: dict[int, tuple[dict, list]] = {}
        self._pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None
        # chunk index -> (holder actor, position in it), on a cluster with persisted rows
        self._holders: dict[int, list[tuple[HeldChunks, int]]] | None = None
        self._held: list[HeldChunks] = []
        self._unheld = False

    def _compute(self, *collections: Any) -> tuple:
        """``dask.compute`` on the chosen scheduler.

        On Dask's local threads, with more threads than cores (unless the user set
        ``num_workers``): a chunk task first waits for its read, then computes, and with one
        thread per core the disk sits idle whenever every thread computes at once. Two
        threads per core keep a read in flight (measured: a cold 2 GiB pass went from 2.5× to
        1.3× the time of merely reading it); the kernel holds BLAS to one thread, so the extra
        threads cost little when the data are in memory.
        """
        options: dict[str, Any] = {"scheduler": self.scheduler}
        local = _local_threads(self.scheduler)
        if local and dask.config.get("num_workers", None) is None:
            options["num_workers"] = LOCAL_THREADS_PER_CORE * default_threads()
        if not (self.progress and local):
            return dask.compute(*collections, **options)
        with ChunkProgress(self.n_chunks):
            return dask.compute(*collections, **options)

    def graph(self, models: tuple[Mixture, ...]) -> dask.delayed:
        """The lazy E-step of one pass: chunk tasks, then the merge tree."""
        models = tuple(models)
        shared = dask.delayed(models, traverse=False, pure=True)
        families = tuple(model.family for model in models)
        level = [self._chunk_task(i, chunk_estep, shared) for i in range(self.n_chunks)]
        while len(level) > 1:
            level = [
                dask.delayed(merge_results, pure=True)(families, *level[i : i + self.split_every])
                for i in range(0, len(level), self.split_every)
            ]
        return level[0]

    @property
    def n_chunks(self) -> int:
        return len(self._blocks)

    @property
    def chunk_rows(self) -> list[int]:
        return list(self.X.chunks[0])

    def _chunk_task(self, index: int, func: Any, *args: Any) -> Any:
        """``func(chunk, weights, *args, row_offset)`` as a task whose key marks it a chunk
        task (deterministic, as ``pure=True`` would make it)."""
        arguments = (self._blocks[index], self._weights[index], *args, self._offsets[index])
        key = f"{CHUNK_TASK}-{func.__name__}-{tokenize(func, *arguments)}"
        return dask.delayed(func, pure=True)(*arguments, dask_key_name=key)

    @property
    def parallelism(self) -> int:
        """How many chunks run at once: the cluster's threads, or the local ones."""
        try:
            from distributed import get_client

            return max(1, sum(get_client().nthreads().values()))
        except (ImportError, ValueError):
            return int(dask.config.get("num_workers", None) or default_threads())

    def _local_pools(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        """Threads that read chunks ahead, and threads that E-step them (this engine's): as
        many E-step threads as chunks run at once, so a group of chunks is one round."""
        if self._pools is None:
            readers = ThreadPoolExecutor(default_threads(), thread_name_prefix="streamem-read")
            workers = ThreadPoolExecutor(self.parallelism, thread_name_prefix="streamem-estep")
            self._pools = readers, workers
            for pool in self._pools:
                weakref.finalize(self, pool.shutdown, wait=False, cancel_futures=True)
        return self._pools

    def _read_graph(self, index: int) -> tuple[dict, list]:
        """The tasks that read chunk ``index`` (and its weights) alone, culled once: handing
        ``dask.compute`` the whole array's graph for every chunk cost 3.6 ms of CPU per
        read, against 0.7 ms for the read itself (1.3 MB from a local Zarr store)."""
        if index not in self._read_graphs:
            parts = [self._blocks[index], self._weights[index]]
            keys = [part.key for part in parts if part is not None]
            graph: dict = {}
            for part in parts:
                if part is not None:
                    graph.update(part.__dask_graph__())
            self._read_graphs[index] = cull(graph, keys)[0], keys
        return self._read_graphs[index]

    def _read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        graph, keys = self._read_graph(index)
        found = dask.local.get_sync(graph, keys)
        return found[0], (found[1] if len(found) > 1 else None)

    def _reads_locally(self) -> bool:
        """Whether chunks are read and E-stepped on this engine's threads (Dask's local
        threads without a progress bar, which counts Dask's tasks)."""
        return not self.progress and _local_threads(self.scheduler)

    def prefetch(self, indices: Sequence[int]) -> None:
        """Read the chunks at ``indices`` in the background, while the next
        :meth:`estep_chunks` runs, so that the one after finds them read (on Dask's local
        threads; a cluster keeps its data where they are): incremental EM reads the next
        group of chunks while it E-steps the current one and takes its M-step.

        The reads start once that E-step's tasks have started: chunk reads are mostly
        Python (Zarr's event loop), and begun first they held the interpreter lock while
        the E-step threads waited to start (~2 ms per group). Chunks read ahead stay until
        asked for, or until an :meth:`estep_chunks` after a later call that does not name
        them; ``prefetch([])`` forgets them all.
        """
        self._ahead = {int(index) for index in indices}
        self._unread = [int(index) for index in indices]
        if not indices:
            self._forget(set())

    def _start_reads(self, busy: list[int]) -> None:
        """Start reading the chunks the last :meth:`prefetch` named, but those being
        E-stepped (``busy``) or read already."""
        readers, _ = self._local_pools()
        for index in self._unread:
            if index not in self._reading and index not in busy:
                self._reading[index] = readers.submit(self._read, index)
        self._unread = []

    def _forget(self, keep: set[int]) -> None:
        """Drop the chunks read ahead but not in ``keep`` (memory stays bounded)."""
        for index in [i for i in self._reading if i not in keep]:
            self._reading.pop(index).cancel()

    def _estep_local(
        self, index: int, reading: Future | None, models: tuple[Mixture, ...]
    ) -> EStepResult:
        """Chunk ``index``'s E-step on this thread, reading it here unless it was read ahead."""
        block, weights = self._read(index) if reading is None else reading.result()
        return chunk_estep(block, weights, models, self._offsets[index])

    def _chunk_holders(self) -> dict[int, list[tuple[HeldChunks, int]]] | None:
        """For each chunk, the :class:`ChunkHolder` actors that hold it and its position in
        each, the worker that holds the persisted chunk first; None unless the rows are
        persisted on an active ``dask.distributed`` cluster (and unweighted).

        Where the cluster's memory allows a second copy (the data under a quarter of it), each
        worker's actor also holds the chunks of the next worker (in a ring over all the
        workers): a group of chunks that happen to live on one worker is then split between
        two, instead of one worker E-stepping them in turn while the others wait.
        """
        if self._holders is not None or self._unheld:
            return self._holders
        if self.sample_weight is not None or _local_threads(self.scheduler):
            return None
        try:
            from distributed import futures_of, get_client, wait

            client = get_client()
        except (ImportError, ValueError):
            return None
        futures = {future.key: future for future in futures_of(self.X)}
        keys = [block.key for block in self._blocks]
        if any(key not in futures for key in keys):
            self._unheld = True  # not persisted: it never will be
            return None
        # every chunk in memory first (it has to be read anyway), so each has one holder
        wait([futures[key] for key in keys])
        where = client.who_has([futures[key] for key in keys])
        if any(not where.get(key) for key in keys):
            return None  # a chunk failed: the task path raises its error
        threads = client.nthreads()
        by_worker: dict[str, list[int]] = {}
        for index, key in enumerate(keys):
            by_worker.setdefault(min(where[key]), []).append(index)
        # the ring runs over every worker, so that one the scheduler gave no chunk still
        # takes copies of its neighbour's
        workers = sorted(set(threads) | set(by_worker))
        copies = len(workers) > 1 and 4 * self.X.nbytes < _cluster_memory()
        holders: dict[int, list[tuple[HeldChunks, int]]] = {}
        created = []
        for i, worker in enumerate(workers):
            indices = by_worker.get(worker, [])
            if copies:  # the next worker's chunks too: copied here once, for the actor
                indices = indices + by_worker.get(workers[(i + 1) % len(workers)], [])
            if not indices:
                continue
            future = client.submit(
                ChunkHolder,
                threads.get(worker, 1),
                *[futures[keys[j]] for j in indices],
                actor=True,
                workers=[worker],
                allow_other_workers=True,
                pure=False,
            )
            held = HeldChunks(future)
            created.append(held)
            for n, index in enumerate(indices):
                holders.setdefault(index, []).append((held, n))
        self._held, self._holders = created, holders
        return holders

    def _release_holders(self) -> None:
        for held in self._held:
            held.close()
        self._held, self._holders = [], None

    def _estep_held(
        self,
        holders: dict[int, list[tuple[HeldChunks, int]]],
        models: tuple[Mixture, ...],
        indices: list[int],
    ) -> list[EStepResult]:
        """The E-step of the chunks at ``indices`` by the actors that hold them
        (:func:`held_calls`): one direct call per worker, all in flight together."""
        pending = [
            (wanted, held.estep(models, positions, [self._offsets[i] for i in wanted]))
            for held, positions, wanted in held_calls(holders, indices)
        ]
        found: dict[int, EStepResult] = {}
        for wanted, reply in pending:
            found.update(zip(wanted, reply(), strict=True))
        return [found[index] for index in indices]

    def estep_chunks(
        self, models: tuple[Mixture, ...], indices: list[int] | None = None
    ) -> list[EStepResult]:
        """The E-step result of every chunk (or of those at ``indices``), not merged.

        One compute; or, on Dask's local threads, for a group of at most
        :attr:`parallelism` chunks or chunks being read ahead (:meth:`prefetch`), one task
        each on this engine's threads; or, for rows persisted on a ``dask.distributed`` cluster,
        one direct call to each worker that holds some of the chunks (:class:`ChunkHolder`),
        which skips the scheduler's round trip. Any failure there (a worker lost, its
        chunks being recomputed) falls back to a compute, which gives the same results.
        """
        indices = list(range(self.n_chunks) if indices is None else indices)
        holders = self._chunk_holders()
        if holders is not None:
            try:
                return self._estep_held(holders, tuple(models), indices)
            except Exception:
                self._release_holders()  # rebuilt at the next call, where the data are then
        if self._reads_locally() and (
            len(indices) <= self.parallelism or any(i in self._reading for i in indices)
        ):
            return self._estep_local_group(tuple(models), indices)
        self._forget(self._ahead)
        shared = dask.delayed(tuple(models), traverse=False, pure=True)
        tasks = [self._chunk_task(i, chunk_estep, shared) for i in indices]
        with single_threaded_blas():
            return list(self._compute(*tasks))

    def _estep_local_group(
        self, models: tuple[Mixture, ...], indices: list[int]
    ) -> list[EStepResult]:
        """Chunks on this engine's threads, without a graph: each task E-steps one chunk,
        read ahead (:meth:`prefetch`) or read by the task itself (so at most one chunk per
        thread is in memory beyond those read ahead).

        The calling thread waits rather than E-step a chunk itself: that was measured
        7–12% slower per pass with other work on the cores.
        """
        _, workers = self._local_pools()
        reading = [self._reading.pop(index, None) for index in indices]
        self._forget(self._ahead)
        with single_threaded_blas():
            if len(indices) == 1:
                self._start_reads(indices)
                return [self._estep_local(indices[0], reading[0], models)]
            tasks = [
                workers.submit(self._estep_local, index, read, models)
                for index, read in zip(indices, reading, strict=True)
            ]
            self._start_reads(indices)
            return [task.result() for task in tasks]

    def apply_chunk(self, index: int, func: Any, *args: Any) -> Any:
        """``func(chunk, weights, *args, row_offset)`` on one chunk, where the chunk is read."""
        shared = [dask.delayed(a, traverse=False, pure=True) for a in args]
        with single_threaded_blas():
            (result,) = self._compute(self._chunk_task(index, func, *shared))
        return result

    def estep(self, models: tuple[Mixture, ...]) -> EStepResult:
        """One pass over the data: the merged E-step result of every model (one compute)."""
        with single_threaded_blas():
            (result,) = self._compute(self.graph(models))
        return result

    def sample(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows (and their weights) at sorted ``indices``, in one compute."""
        rows = self.X[indices]
        w = None if self.sample_weight is None else self.sample_weight[indices]
        with single_threaded_blas():
            rows, w = self._compute(rows, w)
        return np.asarray(rows), w
