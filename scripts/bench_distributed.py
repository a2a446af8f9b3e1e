"""Per-iteration time on Dask's threads vs a dask.distributed LocalCluster, and its overhead.

Fits the same synthetic store (default 1 GiB, float32, D=16, K=8, diag) for a few iterations
from the same initial parameters on: the local threaded scheduler (as streamem runs it: two
threads per core, to overlap reads with computation), a LocalCluster
of 1 worker process (2 threads) and one of 2 worker processes (1 thread each). For each it
reports the median seconds per iteration, the compute time inside the chunk tasks (the sum of
task durations over the threads that ran them) and the difference: the scheduling overhead
per iteration (graph construction, shipping, scheduling, gathering the statistics).

Run: ``python scripts/bench_distributed.py [--size 1GiB] [--iterations 5]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings

import numpy as np
from dask.callbacks import Callback

import streamem

D, K = 16, 8


class TaskTimes(Callback):
    """Sum of task durations on the local schedulers."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = 0.0
        self._started: dict = {}

    def _pretask(self, key, dsk, state):
        self._started[key] = time.perf_counter()

    def _posttask(self, key, result, dsk, state, worker_id):
        self.busy += time.perf_counter() - self._started.pop(key, time.perf_counter())


def fit_iterations(store: str, start: dict, iterations: int, client=None) -> tuple[list, float]:
    """Seconds of each iteration, and the seconds tasks spent computing in all of them."""
    stamps: list[float] = []
    gm = streamem.GaussianMixture(
        K,
        covariance_type="diag",
        tol=0,
        max_iter=iterations,
        callback=lambda _: stamps.append(time.perf_counter()),
        **start,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if client is None:
            with TaskTimes() as times:
                began = time.perf_counter()
                gm.fit(store)
            busy = times.busy
        else:
            from distributed import get_task_stream

            with get_task_stream(client) as stream:
                began = time.perf_counter()
                gm.fit(store)
            busy = sum(
                part["stop"] - part["start"]
                for task in stream.data
                for part in task["startstops"]
                if part["action"] == "compute"
            )
    return list(np.diff([began, *stamps])), busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--chunk-size", default="64MiB")
    args = parser.parse_args()

    from dask.utils import format_bytes, parse_bytes
    from distributed import Client, LocalCluster

    folder = tempfile.mkdtemp(prefix="streamem-dist-")
    try:
        n = parse_bytes(args.size) // (D * 4)
        rows = parse_bytes(args.chunk_size) // (D * 4)
        store = f"{folder}/s.zarr"
        streamem.make_mixture(store, n, D, K, "diag", chunk_rows=rows, seed=0, separation=1.0)
        store = f"{store}/data"
        # a poor start (rows picked at random), so that no two iterations compute the same
        init = streamem.GaussianMixture(
            K, covariance_type="diag", max_iter=0, random_state=0, init_params="random_from_data"
        )
        init.fit(store)
        start = dict(
            weights_init=init.weights_, means_init=init.means_, precisions_init=init.precisions_
        )
        print(
            f"store: {format_bytes(n * D * 4)}, {n:,} rows × {D} float32 in chunks of "
            f"{args.chunk_size}; diag K={K}; {args.iterations} iterations (page cache warm)"
        )
        header = (
            f"{'scheduler':>30} | {'s/iteration':>11} {'compute s':>9} {'overhead s':>10} "
            f"{'overhead %':>10} | {'vs threads':>10}"
        )
        print(header)
        print("-" * len(header))
        baseline = None
        from streamem.engines.dask_ import LOCAL_THREADS_PER_CORE
        from streamem.engines.numpy_ import default_threads

        local_threads = LOCAL_THREADS_PER_CORE * default_threads()
        setups = [
            (f"threads ({local_threads})", None, None),
            ("LocalCluster 1 worker × 2 thr", 1, 2),
            ("LocalCluster 2 workers × 1 thr", 2, 1),
        ]
        for name, workers, threads in setups:
            if workers is None:
                fit_iterations(store, start, 1)  # warm the page cache and imports
                seconds, busy = fit_iterations(store, start, args.iterations)
                slots = local_threads
            else:
                with (
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=threads,
                        dashboard_address=None,
                        memory_limit="8GiB",
                    ) as cluster,
                    Client(cluster) as client,
                ):
                    fit_iterations(store, start, 1, client)
                    seconds, busy = fit_iterations(store, start, args.iterations, client)
                slots = workers * threads
            per_iteration = float(np.median(seconds))
            compute = busy / slots / args.iterations
            overhead = per_iteration - compute
            baseline = baseline or per_iteration
            print(
                f"{name:>30} | {per_iteration:>11.3f} {compute:>9.3f} {overhead:>10.3f} "
                f"{100 * overhead / per_iteration:>9.1f}% | {per_iteration / baseline:>9.2f}x",
                flush=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
