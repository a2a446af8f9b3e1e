"""Benchmark: EM with missing values against the complete-data path.

1M rows × 16 features, K=8, ``diag`` and ``full`` covariances. For each, the time of one EM
iteration (one E-step pass over the data with the in-memory engine, plus the M-step) with

* complete data (``missing='error'``, today's path), and the same data with
  ``missing='marginalize'`` (0%: must cost the same),
* 5% and 30% of entries missing completely at random (patterns barely repeat),
* a nested pattern: each row observed down to a random depth (16 patterns, as profiles cut
  at different depths), and the same with 1% of the entries missing at random besides
  (stray gaps: a few hundred patterns, most rows in the 16),

and the ratio to the complete-data time. Timings are medians of ``--repeat`` iterations, the
cases taken in turn (one iteration of each per round), so that a shared machine's drift
weighs on every case alike.
Peak memory is the largest traced allocation of one iteration (``tracemalloc``, which NumPy
reports to) with 30% random gaps and with the nested pattern, at N and at N/4, in chunks of
a fixed number of rows as out of core: flat in N means it does not grow with the rows.

Run: ``python scripts/bench_missing.py [--rows 1000000] [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np

from streamem import GaussianMixture
from streamem.drivers.common import m_step
from streamem.engines import NumpyEngine
from streamem.estimators import mixture_of
from streamem.families._base import Mixture
from streamem.families.gaussian import Gaussian

FEATURES, COMPONENTS = 16, 8
CHUNK_ROWS = 65_536  # 8 MiB of float64 rows


def data(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(COMPONENTS, FEATURES))
    labels = rng.integers(0, COMPONENTS, n)
    mixing = rng.normal(scale=0.3, size=(FEATURES, FEATURES)) + np.eye(FEATURES)
    return rng.normal(size=(n, FEATURES)) @ mixing + centres[labels]


def with_gaps(X: np.ndarray, case: str, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = X.copy()
    if case.startswith("nested"):
        depth = rng.integers(1, FEATURES + 1, size=len(X))
        X[np.arange(FEATURES)[None, :] >= depth[:, None]] = np.nan
        if case != "nested":  # stray gaps besides
            X[rng.random(X.shape) < float(case.removeprefix("nested+").rstrip("%")) / 100] = np.nan
    elif case != "0%":
        X[rng.random(X.shape) < float(case.rstrip("%")) / 100] = np.nan
    return X


def iteration(engine: NumpyEngine, model: Mixture) -> float:
    start = time.perf_counter()
    result = engine.estep((model,))
    m_step(model, result.stats[0], result.n_rows, result.weight)
    return time.perf_counter() - start


def interleaved(runs: dict[str, tuple[NumpyEngine, Mixture]], repeat: int) -> dict[str, float]:
    """Median seconds per iteration of each run, the runs taken in turn."""
    for engine, model in runs.values():
        iteration(engine, model)  # warm up (page faults of the first pass)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, (engine, model) in runs.items():
            times[name].append(iteration(engine, model))
    return {name: float(np.median(seconds)) for name, seconds in times.items()}


def peak_memory(X: np.ndarray, model: Mixture) -> float:
    # chunks of a fixed size, as out of core (the in-memory engine's default chunks grow
    # with N: a few per thread)
    engine = NumpyEngine(X, chunk_rows=CHUNK_ROWS)
    tracemalloc.start()
    iteration(engine, model)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    X = data(args.rows)
    cases = ["0%", "5%", "30%", "nested", "nested+1%"]
    gapped = {case: with_gaps(X, case) for case in cases}
    print(f"{args.rows:,} rows × {FEATURES} features, K={COMPONENTS}; seconds per iteration")
    header = f"{'covariance':>10} {'complete':>9} " + " ".join(f"{c:>14}" for c in cases)
    print(header + f" {'peak MiB (N/4 → N) 30%':>24} {'nested':>14}")
    for covariance_type in ("diag", "full"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = GaussianMixture(
                COMPONENTS, covariance_type=covariance_type, max_iter=2, random_state=0
            ).fit(X[:50_000])
        plain = mixture_of(start)
        marginal = plain._replace(family=Gaussian(covariance_type, 1e-6, "marginalize"))
        runs = {"complete": (NumpyEngine(X), plain)}
        runs.update({case: (NumpyEngine(gapped[case]), marginal) for case in cases})
        seconds = interleaved(runs, args.repeat)
        reference = seconds["complete"]
        cells = [f"{seconds[c]:6.3f} ({seconds[c] / reference:4.2f}×)" for c in cases]
        peaks = [
            f"{peak_memory(gapped[c][: args.rows // 4], marginal):6.1f} → "
            f"{peak_memory(gapped[c], marginal):5.1f}"
            for c in ("30%", "nested")
        ]
        print(
            f"{covariance_type:>10} {reference:9.3f} "
            + " ".join(f"{c:>14}" for c in cells)
            + f" {peaks[0]:>24} {peaks[1]:>14}"
        )


if __name__ == "__main__":
    main()
