"""Out-of-core fits: memory stays flat as the store grows, and time tracks the I/O floor.

Writes synthetic float32 stores (D=16, K=8) with ``streamem.make_mixture`` under a temporary
folder, then, each in a fresh process:

* reads and decodes the whole store once with Dask, on as many threads as a fit reads with
  (the I/O floor; the time of the reads alone, not of opening the store);
* fits ``GaussianMixture(8, covariance_type=...)`` with default settings for 3 iterations,
  timing each iteration (a callback) and recording the process's peak RSS;
* the same for ``BayesianGaussianMixture(8, covariance_type="diag")`` (variational Bayes with
  a Dirichlet-process prior; its data-dependent prior takes one more pass, counted in its
  initialisation, not in the seconds per iteration);
* for comparison, scikit-learn (both estimators) on the smallest store loaded into memory.

With ``--cold`` (needs root) the page cache is dropped before every measurement and after every
iteration, so every pass reads from disk as it would for a store bigger than memory (the time
the drop itself takes, a ``sync`` and the kernel freeing gigabytes of cache, is not counted in
the iteration it follows); otherwise the store is read from the page cache. The folder is
removed at the end.

Run: ``python scripts/bench_outofcore.py [--size 8GiB] [--sizes 1GiB,2GiB,4GiB] [--cold]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

D, K = 16, 8


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def child(task: dict) -> dict:
    """Run one measurement in this (fresh) process and report it."""
    import numpy as np

    import streamem

    path = task["path"]
    start = time.perf_counter()
    out: dict = {}
    if task["what"] == "read":
        from streamem.engines.dask_ import LOCAL_THREADS_PER_CORE
        from streamem.engines.numpy_ import default_threads

        data = streamem.open_rows(f"{path}/data").data
        reads = data.map_blocks(lambda b: np.zeros((1, 1)), chunks=(1, 1), dtype=float)
        # the reads alone (not opening the store), on as many threads as a fit reads with
        start = time.perf_counter()
        reads.compute(num_workers=LOCAL_THREADS_PER_CORE * default_threads())
        out["seconds"] = time.perf_counter() - start
    elif task["what"] == "fit":
        stamps: list[float] = []
        dropping = [0.0]  # seconds spent dropping the page cache, not part of any pass

        def tick(_):
            now = time.perf_counter()
            if task.get("cold"):  # the next pass reads from disk too, as if out of memory
                drop_caches()
                dropping[0] += time.perf_counter() - now
            stamps.append(time.perf_counter() - dropping[0])

        estimator = (
            streamem.BayesianGaussianMixture
            if task.get("bayesian")
            else (streamem.GaussianMixture)
        )
        model = estimator(
            K,
            covariance_type=task["kind"],
            max_iter=3,
            tol=0,
            random_state=0,
            callback=tick,
        )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(f"{path}/data")
        out["init_seconds"] = stamps[0] - start - (stamps[1] - stamps[0])
        out["per_iteration"] = float(np.median(np.diff(stamps))) if len(stamps) > 1 else None
    else:  # scikit-learn, in memory
        import warnings

        import zarr
        from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

        estimator = BayesianGaussianMixture if task.get("bayesian") else GaussianMixture
        X = zarr.open(f"{path}/data", mode="r")[:]
        loaded = time.perf_counter()
        stamps = []
        for iterations in (1, 3):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimator(
                    n_components=K,
                    covariance_type=task["kind"],
                    max_iter=iterations,
                    tol=0,
                    random_state=0,
                ).fit(X)
            stamps.append(time.perf_counter() - t0)
        out["load_seconds"] = loaded - start
        out["per_iteration"] = (stamps[1] - stamps[0]) / 2
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited at exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(task: dict, cold: bool) -> dict:
    if cold:
        drop_caches()
    task = {**task, "cold": cold}
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(task)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def store_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="8GiB", help="the main store")
    parser.add_argument("--sizes", default="1GiB,2GiB,4GiB", help="smaller stores for RSS")
    parser.add_argument("--cold", action="store_true", help="drop the page cache first")
    parser.add_argument("--folder", default=None, help="where to write (default: a tmp dir)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    from dask.utils import format_bytes, parse_bytes

    import streamem

    if args.cold and not drop_caches():
        print("cannot drop the page cache (not root?): measuring warm reads", file=sys.stderr)
        args.cold = False
    folder = tempfile.mkdtemp(prefix="streamem-bench-", dir=args.folder)
    sizes = sorted({parse_bytes(s) for s in args.sizes.split(",") if s} | {parse_bytes(args.size)})
    try:
        print(f"reads: {'cold (page cache dropped)' if args.cold else 'warm (page cache)'}")
        print(
            f"{'store':>9} {'rows':>12} | {'write s':>8} {'read floor s':>12} | "
            f"{'diag s/iter':>11} {'ratio':>6} {'RSS MiB':>8} | {'full s/iter':>11} "
            f"{'ratio':>6} {'RSS MiB':>8} | {'VB diag s/iter':>14} {'ratio':>6} {'RSS MiB':>8}"
        )
        for size in sizes:
            n = size // (D * 4)
            path = os.path.join(folder, f"s{size}.zarr")
            t0 = time.perf_counter()
            streamem.make_mixture(path, n, D, K, "diag", dtype="float32", seed=0)
            written = time.perf_counter() - t0
            read = measure({"what": "read", "path": path}, args.cold)
            diag = measure({"what": "fit", "path": path, "kind": "diag"}, args.cold)
            vb = measure(
                {"what": "fit", "path": path, "kind": "diag", "bayesian": True}, args.cold
            )
            main_store = size == max(sizes)
            full = (
                measure({"what": "fit", "path": path, "kind": "full"}, args.cold)
                if main_store
                else None
            )
            line = (
                f"{format_bytes(store_bytes(path)):>9} {n:>12,} | {written:>8.1f} "
                f"{read['seconds']:>12.2f} | {diag['per_iteration']:>11.2f} "
                f"{diag['per_iteration'] / read['seconds']:>5.2f}x {diag['peak_rss_mib']:>8.0f} | "
            )
            if full:
                ratio = full["per_iteration"] / read["seconds"]
                line += (
                    f"{full['per_iteration']:>11.2f} {ratio:>5.2f}x {full['peak_rss_mib']:>8.0f}"
                )
            else:
                line += f"{'':>11} {'':>6} {'':>8}"
            line += (
                f" | {vb['per_iteration']:>14.2f} {vb['per_iteration'] / read['seconds']:>5.2f}x "
                f"{vb['peak_rss_mib']:>8.0f}"
            )
            print(line, flush=True)
            if size == min(sizes):
                peer = measure({"what": "sklearn", "path": path, "kind": "diag"}, args.cold)
                peer_vb = measure(
                    {"what": "sklearn", "path": path, "kind": "diag", "bayesian": True}, args.cold
                )
                ours_small, ours_small_vb = diag, vb
            if not main_store:
                shutil.rmtree(path)
        print(
            f"\nscikit-learn on the {format_bytes(min(sizes))} store, loaded into memory, diag: "
            f"{peer['per_iteration']:.2f} s/iter, peak RSS {peer['peak_rss_mib']:.0f} MiB "
            f"(streamem: {ours_small['per_iteration']:.2f} s/iter, "
            f"{ours_small['peak_rss_mib']:.0f} MiB)\n"
            f"scikit-learn BayesianGaussianMixture, the same, diag: "
            f"{peer_vb['per_iteration']:.2f} s/iter, peak RSS {peer_vb['peak_rss_mib']:.0f} MiB "
            f"(streamem: {ours_small_vb['per_iteration']:.2f} s/iter, "
            f"{ours_small_vb['peak_rss_mib']:.0f} MiB)"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
