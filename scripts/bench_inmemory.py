"""streamem vs scikit-learn on in-memory data: seconds per EM iteration and peak memory.

Both fit the same data from the same initial parameters (``weights_init``, ``means_init``,
``precisions_init``) with ``tol=0``. ``BayesianGaussianMixture`` has no initial parameters:
both draw their initial responsibilities with ``init_params='random_from_data'`` and the same
seed (streamem from its initialisation sample of ``init_size`` rows, the default 100 000).
Seconds per iteration are the difference between fits of ``1 + ITERATIONS`` and ``1``
iterations, divided by ``ITERATIONS``, so the fixed costs (input validation, initialisation,
scikit-learn's final E-step) cancel; the median of ``REPEATS`` runs is reported.
``ITERATIONS`` is ``--iterations`` (3) or, where those take less than ``--min-seconds`` (1 s),
as many as take that long ("iters", streamem's; scikit-learn's are counted alike). The same
difference of process CPU time (all threads) gives streamem's CPU seconds per wall second of an
iteration ("cpu/wall"; 2.0 is both cores of a 2-core machine busy). Peak memory above the data
is measured separately with ``tracemalloc`` (NumPy reports its allocations to it) over one fit
of two iterations.

The GEMM bound of a row is the time the kernel's two GEMMs per block would take at this
machine's GEMM rate, measured at the start on all cores (the best of seven square float64
and float32 products, one BLAS thread per core): per model and iteration they multiply the
(K, P) natural parameters by the (P, N) expanded features and the (P, N) features by the
(N, K) responsibilities, ``4 N K P`` flops, with P = D + D(D+1)/2 (full), 2D (diag). "x bound"
is streamem's seconds per iteration over that bound.

Run: ``python scripts/bench_inmemory.py [--quick] [--bayesian] [--rows 0,1]`` (``--bayesian``:
only the ``BayesianGaussianMixture`` rows; ``--rows``: only those rows of the table)
"""

from __future__ import annotations

import argparse
import gc
import math
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesianGaussianMixture
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_limits

from streamem import BayesianGaussianMixture, GaussianMixture
from streamem.engines.numpy_ import default_threads

CASES = [  # (n_samples, n_features, n_components, covariance_type)
    (1_000_000, 16, 8, "full"),
    (1_000_000, 16, 8, "diag"),
    (100_000, 32, 16, "full"),
    (200_000, 64, 16, "full"),
    (1_000_000, 64, 64, "diag"),
]
BAYESIAN_CASES = [
    (1_000_000, 16, 8, "full"),
    (1_000_000, 16, 8, "diag"),
    (100_000, 32, 16, "full"),
]
BAYESIAN = (BayesianGaussianMixture, SklearnBayesianGaussianMixture)


def make_data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """A mixture of k Gaussians with random means and correlated covariances."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    centres = rng.normal(scale=4.0, size=(k, d))
    mixing = rng.normal(scale=0.3, size=(k, d, d)) + np.eye(d)
    X = np.empty((n, d))
    for j in range(k):
        rows = labels == j
        X[rows] = rng.standard_normal((rows.sum(), d)) @ mixing[j] + centres[j]
    return X


def initial_parameters(X: np.ndarray, k: int, kind: str) -> dict:
    """One scikit-learn initialisation on a subsample, given to both libraries."""
    init = SklearnGaussianMixture(k, covariance_type=kind, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init.fit(X[:: max(1, len(X) // 50_000)])
    return dict(
        weights_init=init.weights_, means_init=init.means_, precisions_init=init.precisions_
    )


def fit(cls, X, k, kind, start, max_iter):
    if cls in BAYESIAN:  # the same initial responsibilities: the same rows, drawn by one seed
        start = {"init_params": "random_from_data", "random_state": 0}
    extra = {"init_params": "random_from_data"} if cls is SklearnGaussianMixture else {}
    model = cls(n_components=k, covariance_type=kind, tol=0, max_iter=max_iter, **start, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    return model


def seconds_per_iteration(
    cls, X, k, kind, start, iterations, repeats, min_seconds
) -> tuple[float, float, int]:
    """Median wall seconds per iteration, the CPU seconds per wall second of those, and the
    iterations timed: at least ``iterations``, more where those take under ``min_seconds``
    (a CPU-time ratio over a tenth of a second is mostly the noise of its two ends). A
    first fit warms up (compiled kernels, first-touch page faults): a compilation counted
    in the one-iteration fit made the difference negative."""
    fit(cls, X, k, kind, start, 1)
    per_iteration, _ = _timed(cls, X, k, kind, start, iterations, 1)
    iterations = max(iterations, math.ceil(min_seconds / max(per_iteration, 1e-6)))
    return (*_timed(cls, X, k, kind, start, iterations, repeats), iterations)


def _timed(cls, X, k, kind, start, iterations, repeats) -> tuple[float, float]:
    samples, cpu = [], []
    for _ in range(repeats):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fit(cls, X, k, kind, start, 1)
        t1, c1 = time.perf_counter(), time.process_time()
        fit(cls, X, k, kind, start, 1 + iterations)
        t2, c2 = time.perf_counter(), time.process_time()
        wall = (t2 - t1) - (t1 - t0)
        samples.append(wall / iterations)
        cpu.append(((c2 - c1) - (c1 - c0)) / wall)
    return float(np.median(samples)), float(np.median(cpu))


def gemm_rate(dtype: type, size: int = 2048, repeats: int = 7) -> float:
    """GEMM flops per second of this machine on all its cores: the best of ``repeats``
    square products (the machine's limit; other processes can only slow a product down)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    with threadpool_limits(limits=default_threads(), user_api="blas"):
        a @ b  # wake the BLAS threads
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            samples.append(time.perf_counter() - t0)
    return 2 * size**3 / min(samples)


def gemm_flops(n: int, d: int, k: int, kind: str) -> float:
    """Flops of the kernel's two GEMMs per iteration, ``(K, P) @ (P, N)``, ``(P, N) @ (N, K)``."""
    expanded = {"full": d + d * (d + 1) // 2, "tied": d + d * (d + 1) // 2, "diag": 2 * d}
    return 4.0 * n * k * expanded.get(kind, d + 1)


def peak_memory(cls, X, k, kind, start) -> float:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fit(cls, X, k, kind, start, 2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the rows, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument(
        "--min-seconds", type=float, default=1.0, help="time at least this much per fit"
    )
    parser.add_argument("--bayesian", action="store_true", help="only BayesianGaussianMixture")
    parser.add_argument("--rows", help="only these rows of the table, e.g. 0,1 (from 0)")
    args = parser.parse_args()
    scale, repeats = (10, 1) if args.quick else (1, args.repeats)

    rate64, rate32 = gemm_rate(np.float64), gemm_rate(np.float32)
    print(
        f"GEMM on all cores: float64 {rate64 / 1e9:.1f} GFLOP/s, "
        f"float32 {rate32 / 1e9:.1f} GFLOP/s"
    )
    header = (
        f"{'N':>9} {'D':>3} {'K':>3} {'type':>8} | {'s/iter streamem':>15} "
        f"{'s/iter sklearn':>14} {'speed-up':>8} | {'cpu/wall':>8} {'GEMM bound':>10} "
        f"{'x bound':>7} | {'MiB streamem':>12} {'MiB sklearn':>11} {'ratio':>6} | {'iters':>5}"
    )
    print(header)
    print("-" * len(header))
    rows = [] if args.bayesian else [(case, GaussianMixture) for case in CASES]
    rows += [(case, BayesianGaussianMixture) for case in BAYESIAN_CASES]
    if args.rows:
        rows = [rows[int(i)] for i in args.rows.split(",")]
    for (n, d, k, kind), cls in rows:
        peer = SklearnBayesianGaussianMixture if cls in BAYESIAN else SklearnGaussianMixture
        n //= scale
        X = make_data(n, d, k)
        start = {} if cls in BAYESIAN else initial_parameters(X, k, kind)
        timing = (args.iterations, repeats, args.min_seconds)
        ours, cpu, iterations = seconds_per_iteration(cls, X, k, kind, start, *timing)
        theirs, _, _ = seconds_per_iteration(peer, X, k, kind, start, *timing)
        bound = gemm_flops(n, d, k, kind) / (rate32 if X.dtype == np.float32 else rate64)
        mem_ours = peak_memory(cls, X, k, kind, start)
        mem_theirs = peak_memory(peer, X, k, kind, start)
        label = f"{kind}{'+VB' if cls in BAYESIAN else ''}"
        print(
            f"{n:>9} {d:>3} {k:>3} {label:>8} | {ours:>15.3f} {theirs:>14.3f} "
            f"{theirs / ours:>7.2f}x | {cpu:>8.2f} {bound:>10.3f} {ours / bound:>6.2f}x | "
            f"{mem_ours:>12.1f} {mem_theirs:>11.1f} "
            f"{mem_ours / mem_theirs:>6.3f} | {iterations:>5}",
            flush=True,
        )
        del X


if __name__ == "__main__":
    main()
