"""Batch, incremental and online EM: passes and wall time to reach batch EM's optimum.

On a synthetic store (default 1 000 000 rows, D=16, K=8 in 50 chunks, overlapping components
so that EM has work to do), each algorithm starts from the same initial model (k-means on a
sample, and ``random_from_data``) and records its model after every pass over the data, with
the wall time since the fit began. The mean log-likelihood of the recorded models is then
evaluated on the whole store (not timed; in order, until every threshold below is met). The
table gives, for each algorithm, the passes and seconds until it is within 1e-3 (absolute, per
row) and within 1e-6 (relative) of batch EM's converged mean log-likelihood, on Dask's local
threads and on a LocalCluster of 2 worker processes (``--engines``); the summary also gives
the ratio of the median seconds per pass. The machine's load average after the fits is
printed with each table: other work on the cores slows incremental EM (a barrier and an
M-step after every group of chunks) more than batch EM.

With ``--repeats R`` (> 1), batch and incremental EM are fitted R − 1 more times each, in
turn, each only as far as its passes to 1e-6 (the fits are deterministic, so the passes are
the same), and the seconds to 1e-6 are the median of the R fits: one fit's time on a shared
machine moves by tens of percent.

Run: ``python scripts/bench_online.py [--rows 1000000] [--chunks 50] [--kinds diag,full]
[--repeats 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
import warnings

import numpy as np

import streamem

D, K = 16, 8


def run(store, kind, algorithm, start, chunk_rows, **options):
    """Fit from ``start``; every pass's model and its wall time since the fit began."""
    stamps, models = [], []
    began = time.perf_counter()

    def record(iteration):
        if iteration.init == 0:
            stamps.append(time.perf_counter() - began)
            models.append(iteration.model)

    gm = streamem.GaussianMixture(
        K,
        covariance_type=kind,
        algorithm=algorithm,
        chunk_size=chunk_rows,
        random_state=0,
        callback=record,
        **start,
        **options,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(store)
    return gm, np.array(stamps), models


def score_models(store, models, chunk_rows):
    """Mean log-likelihood of each model on the whole store, all in one pass."""
    from streamem.engines import make_engine

    engine = make_engine(streamem.open_rows(store, chunk_size=chunk_rows).data)
    result = engine.estep(tuple(models))
    return result.log_likelihood / result.weight


def first_within(scores, optimum, within, relative):
    """Index of the first score within ``within`` of the optimum, or None."""
    gap = (optimum - scores) / (abs(optimum) if relative else 1.0)
    hit = np.flatnonzero(gap <= within)
    return int(hit[0]) if hit.size else None


def first_hits(store, models, chunk_rows, optimum, thresholds, piece=16):
    """For each ``(within, relative)`` threshold, the index of the first model within it
    of the optimum (or None): the models are scored in order, ``piece`` per pass over the
    store, until every threshold is met (the models after that need no score)."""
    found = dict.fromkeys(thresholds)
    for start in range(0, len(models), piece):
        scores = score_models(store, models[start : start + piece], chunk_rows)
        for key in [key for key, hit in found.items() if hit is None]:
            hit = first_within(scores, optimum, *key)
            found[key] = None if hit is None else start + hit
        if all(hit is not None for hit in found.values()):
            break
    return found


@contextlib.contextmanager
def engine_context(name):
    if name == "threads":
        yield
        return
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster),
    ):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--separation", type=float, default=1.2)
    parser.add_argument("--kinds", default="diag,full")
    parser.add_argument("--inits", default="kmeans,random_from_data")
    parser.add_argument("--engines", default="threads,cluster")
    parser.add_argument("--max-passes", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    chunk_rows = -(-args.rows // args.chunks)
    folder = tempfile.mkdtemp(prefix="streamem-online-")
    summary = []
    try:
        for kind in args.kinds.split(","):
            store = f"{folder}/{kind}.zarr"
            streamem.make_mixture(
                store,
                args.rows,
                D,
                K,
                kind,
                seed=3,
                separation=args.separation,
                chunk_rows=chunk_rows,
            )
            for init_params in args.inits.split(","):
                init = streamem.GaussianMixture(
                    K, covariance_type=kind, max_iter=0, init_params=init_params, random_state=0
                ).fit(store)
                start = dict(
                    weights_init=init.weights_,
                    means_init=init.means_,
                    precisions_init=init.precisions_,
                )
                for engine in args.engines.split(","):
                    with engine_context(engine):
                        runs = {
                            "batch": run(
                                store,
                                kind,
                                "batch",
                                start,
                                chunk_rows,
                                tol=1e-9,
                                max_iter=args.max_passes,
                            ),
                            "incremental": run(
                                store,
                                kind,
                                "incremental",
                                start,
                                chunk_rows,
                                tol=1e-9,
                                max_passes=args.max_passes,
                            ),
                            "online": run(
                                store, kind, "online", start, chunk_rows, tol=1e-5, max_passes=4
                            ),
                        }
                        load = os.getloadavg()[0]  # of the fits, before the scoring
                        reached, per_pass = report(
                            store, kind, init_params, engine, runs, chunk_rows, load
                        )
                        times = repeat(store, kind, start, chunk_rows, reached, args.repeats)
                    summary.append(summarise(kind, init_params, engine, reached, per_pass, times))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\nincremental (and online) vs batch, time to within 1e-6 relative (1e-3 for online)")
    for line in summary:
        print(line)


def repeat(store, kind, start, chunk_rows, reached, repeats) -> dict:
    """Seconds to 1e-6 of batch and incremental EM: the first fits' and those of ``repeats``
    − 1 more of each, in turn, each only as far as its passes to 1e-6."""
    times = {name: [reached[(name, True)][1]] for name in ("batch", "incremental")}
    if repeats <= 1 or any((name, True) not in reached for name in times):
        return {}
    for _ in range(repeats - 1):
        for name in times:
            passes = reached[(name, True)][0]
            limit = {"max_iter" if name == "batch" else "max_passes": passes}
            _, stamps, _ = run(store, kind, name, start, chunk_rows, tol=0, **limit)
            times[name].append(stamps[passes - 1])
    return times


def report(store, kind, init_params, engine, runs, chunk_rows, load) -> tuple[dict, dict]:
    """Print the table of one configuration; return when each algorithm reached each
    threshold ``{(name, relative): (passes, seconds)}`` and its median seconds per pass."""
    batch_models = runs["batch"][2]
    optimum = float(score_models(store, batch_models[-1:], chunk_rows)[0])
    print(
        f"\n{kind}, init {init_params}, {engine}: batch EM optimum {optimum:.8f} "
        f"(mean log-likelihood), {len(batch_models)} iterations; load average "
        f"{load:.1f} on {os.cpu_count()} cores after the fits"
    )
    print(
        f"{'algorithm':>12} | {'passes to 1e-3':>14} {'seconds':>8} | "
        f"{'passes to 1e-6 rel':>18} {'seconds':>8} | {'s/pass':>7}"
    )
    reached, per_pass = {}, {}
    for name, (_, stamps, models) in runs.items():
        hits = first_hits(store, models, chunk_rows, optimum, ((1e-3, False), (1e-6, True)))
        cells = []
        for within, relative in ((1e-3, False), (1e-6, True)):
            hit = hits[(within, relative)]
            if hit is None:
                cells.append(f"{'—':>{18 if relative else 14}} {'':>8}")
            else:
                reached[(name, relative)] = (hit + 1, stamps[hit])
                cells.append(f"{hit + 1:>{18 if relative else 14}} {stamps[hit]:>8.2f}")
        per_pass[name] = np.median(np.diff(np.r_[0.0, stamps])) if len(stamps) else np.nan
        print(f"{name:>12} | {cells[0]} | {cells[1]} | {per_pass[name]:>7.3f}")
    return reached, per_pass


def summarise(kind, init_params, engine, reached, per_pass, times) -> str:
    """One line: passes and (median) seconds to 1e-6 of batch and incremental EM."""
    batch = reached.get(("batch", True))
    incremental = reached.get(("incremental", True))
    online = reached.get(("online", False))
    batch_3 = reached.get(("batch", False))
    text = f"{kind:>5} {init_params:>16} {engine:>8}: "
    if batch and incremental:
        seconds = {name: float(np.median(t)) for name, t in times.items()} or {
            "batch": batch[1],
            "incremental": incremental[1],
        }
        fits = {
            name: f" (median of {len(t)} fits: {', '.join(f'{x:.1f}' for x in t)})"
            for name, t in times.items()
        }
        # a pass's cost from the median fits when there are several (the first fit's
        # per-pass times, which the table prints, can be one run's noise)
        ratio = per_pass["incremental"] / per_pass["batch"]
        if times:
            ratio = (seconds["incremental"] / incremental[0]) / (seconds["batch"] / batch[0])
        text += (
            f"batch {batch[0]} passes {seconds['batch']:.1f} s{fits.get('batch', '')}, "
            f"incremental {incremental[0]} passes {seconds['incremental']:.1f} s"
            f"{fits.get('incremental', '')} "
            f"({seconds['incremental'] / seconds['batch']:.2f}x time; a pass "
            f"{ratio:.2f}x batch's)"
        )
    if online and batch_3:
        text += f"; online to 1e-3 in {online[0]} passes (batch {batch_3[0]})"
    return text


if __name__ == "__main__":
    main()
