"""Batch, incremental and online EM: passes and time to reach batch EM's optimum.

On a synthetic store (default 2 000 000 rows, D=16, K=8, overlapping components so that EM
has work to do), each algorithm starts from the same initial model (``--init``: k-means on a
sample by default) and records its model after every pass over the data. The mean
log-likelihood of every recorded model is then evaluated on the whole store (not timed), and
the table gives, for each algorithm, the number of passes and the wall time until it is within
``--within`` (1e-3) of batch EM's converged mean log-likelihood.

Run: ``python scripts/bench_online.py [--rows 2000000] [--chunk-size 8MiB] [--init kmeans]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings

import numpy as np
from dask.utils import parse_bytes

import streamem

D, K = 16, 8


def run(store, kind, algorithm, start, chunk_size, **options):
    stamps, models = [], []
    began = time.perf_counter()

    def record(iteration):
        stamps.append(time.perf_counter() - began)
        models.append(iteration.model)

    gm = streamem.GaussianMixture(
        K,
        covariance_type=kind,
        algorithm=algorithm,
        chunk_size=chunk_size,
        random_state=0,
        callback=record,
        **start,
        **options,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(store)
    return gm, stamps, models


def score_models(store, models, chunk_size):
    """Mean log-likelihood of each model on the whole store, all in one pass."""
    from streamem.engines import DaskEngine

    engine = DaskEngine(streamem.open_rows(store, chunk_size=chunk_size).data)
    result = engine.estep(tuple(models))
    return result.log_likelihood / result.weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-size", default="8MiB")
    parser.add_argument("--within", type=float, default=1e-3)
    parser.add_argument("--separation", type=float, default=1.2)
    parser.add_argument("--kinds", default="diag,full")
    parser.add_argument(
        "--init", default="kmeans", help="init_params of the shared start (e.g. random_from_data)"
    )
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="streamem-online-")
    try:
        for kind in args.kinds.split(","):
            store = f"{folder}/{kind}.zarr"
            # storage chunks of --chunk-size: streamem never splits a storage chunk
            streamem.make_mixture(
                store,
                args.rows,
                D,
                K,
                kind,
                seed=3,
                separation=args.separation,
                chunk_rows=parse_bytes(args.chunk_size) // (4 * D),
            )
            init = streamem.GaussianMixture(
                K, covariance_type=kind, max_iter=0, init_params=args.init, random_state=0
            ).fit(store)
            start = dict(
                weights_init=init.weights_,
                means_init=init.means_,
                precisions_init=init.precisions_,
            )
            runs = {
                "batch": run(store, kind, "batch", start, args.chunk_size, tol=1e-7, max_iter=500),
                "incremental": run(
                    store, kind, "incremental", start, args.chunk_size, tol=1e-7, max_passes=200
                ),
                "online": run(
                    store, kind, "online", start, args.chunk_size, tol=1e-4, max_passes=5
                ),
                # Polyak averaging over the second half of the first pass onwards
                "online avg": run(
                    store,
                    kind,
                    "online",
                    start,
                    args.chunk_size,
                    tol=1e-4,
                    max_passes=5,
                    average=args.rows // 2,
                ),
            }
            batch_models = runs["batch"][2]
            optimum = float(score_models(store, batch_models[-1:], args.chunk_size)[0])
            print(
                f"\n{kind}, init {args.init}: {args.rows:,} rows × {D}, K={K}, chunks of "
                f"{args.chunk_size}; "
                f"batch EM optimum {optimum:.6f} (mean log-likelihood)"
            )
            print(
                f"{'algorithm':>12} | {'passes to 1e-3':>14} {'seconds':>8} | "
                f"{'passes run':>10} {'final':>11}"
            )
            reached = {}
            for name, (gm, stamps, models) in runs.items():
                if name == "batch":
                    # the model after pass i is the one the next iteration starts from
                    scores = np.array([*gm.lower_bounds_[1:], optimum])
                else:
                    scores = score_models(store, models, args.chunk_size)
                hit = np.flatnonzero(scores >= optimum - args.within)
                if hit.size:
                    passes, seconds = int(hit[0]) + 1, stamps[hit[0]]
                    reached[name] = passes
                    text = f"{passes:>14} {seconds:>8.1f}"
                else:
                    text = f"{'not reached':>14} {'':>8}"
                # the initial sample costs one more read for every algorithm alike
                print(f"{name:>12} | {text} | {len(stamps):>10} {scores[-1]:>11.6f}")
            if "batch" in reached:
                for name in ("incremental", "online", "online avg"):
                    if name in reached:
                        print(
                            f"  {name}: {reached[name]} passes vs batch {reached['batch']} "
                            f"({reached[name] / reached['batch']:.2f}x)"
                        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
