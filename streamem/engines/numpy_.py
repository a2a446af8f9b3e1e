"""The in-memory engine: row chunks of a NumPy array, mapped over a thread pool."""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..estep import EStepResult, chunk_estep, tree_merge
from ..families._base import Mixture
from ._blas import single_threaded_blas
from .base import ArrayEngine

# Rows per chunk are chosen so that the pool has several chunks per thread to balance (the
# last chunk of a pass leaves the other threads idle while it runs, and a core taken by
# another process makes its thread's chunks late), and chunks are not so small that Python
# overhead shows.
MIN_CHUNK_ROWS = 4096
CHUNKS_PER_THREAD = 8


def default_threads() -> int:
    """Threads to use: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def physical_memory() -> int:
    """Bytes of memory of this machine."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not on POSIX
        return 16 << 30


class NumpyEngine(ArrayEngine):
    """Map the chunk kernel over row chunks of an in-memory array and merge the results.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        The data; never copied (blocks are converted to float64 one at a time).
    sample_weight : ndarray of shape (n_rows,) or None
        Row weights.
    chunk_rows : int or None
        Rows per chunk (None: a few chunks per thread, at least ``MIN_CHUNK_ROWS`` rows).
    n_threads : int or None
        Threads to run chunks on (None: the available cores).
    split_every : int
        Fan-in of the merge tree, as in the Dask engine, so both merge in the same order.
    progress : bool
        Show a progress bar over the chunks of each pass.
    """

    def __init__(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray | None = None,
        chunk_rows: int | None = None,
        n_threads: int | None = None,
        split_every: int = 8,
        progress: bool = False,
    ) -> None:
        self.X = X
        self.sample_weight = sample_weight
        self.n_threads = n_threads or default_threads()
        n = X.shape[0]
        if chunk_rows is None:
            chunk_rows = max(MIN_CHUNK_ROWS, -(-n // (CHUNKS_PER_THREAD * self.n_threads)))
        self.bounds = [(start, min(start + chunk_rows, n)) for start in range(0, n, chunk_rows)]
        self.split_every = split_every
        self.progress = progress
        self._pool: ThreadPoolExecutor | None = None

    def _threads(self) -> ThreadPoolExecutor:
        """This engine's threads, started once: starting threads for every pass cost
        milliseconds per EM iteration."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.n_threads, thread_name_prefix="streamem-chunk")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._pool

    def _chunk(self, bounds: tuple[int, int], models: tuple[Mixture, ...]) -> EStepResult:
        start, stop = bounds
        w = None if self.sample_weight is None else self.sample_weight[start:stop]
        return chunk_estep(self.X[start:stop], w, models, start)

    @property
    def n_chunks(self) -> int:
        return len(self.bounds)

    @property
    def chunk_rows(self) -> list[int]:
        return [stop - start for start, stop in self.bounds]

    @property
    def parallelism(self) -> int:
        """How many chunks run at once."""
        return self.n_threads

    def estep_chunks(
        self, models: tuple[Mixture, ...], indices: list[int] | None = None
    ) -> list[EStepResult]:
        """The E-step result of every chunk (or of the chunks at ``indices``), not merged."""
        models = tuple(models)
        bounds = self.bounds if indices is None else [self.bounds[i] for i in indices]
        with single_threaded_blas():
            if len(bounds) == 1 or self.n_threads == 1:
                return [self._chunk(b, models) for b in bounds]
            results = self._threads().map(lambda b: self._chunk(b, models), bounds)
            return list(
                tqdm(
                    results,
                    total=len(bounds),
                    desc="chunks",
                    unit="chunk",
                    leave=False,
                    disable=not self.progress,
                )
            )

    def estep(self, models: tuple[Mixture, ...]) -> EStepResult:
        """One pass over the data: the merged E-step result of every model."""
        families = tuple(model.family for model in models)
        return tree_merge(families, self.estep_chunks(models), self.split_every)

    def prefetch(self, indices: list[int]) -> None:
        """Nothing to read ahead: the rows are in memory."""

    def apply_chunk(self, index: int, func: Any, *args: Any) -> Any:
        """``func(chunk, weights, *args, row_offset)`` on one chunk."""
        start, stop = self.bounds[index]
        w = None if self.sample_weight is None else self.sample_weight[start:stop]
        with single_threaded_blas():
            return func(self.X[start:stop], w, *args, start)

    def sample(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows (and their weights) at sorted ``indices``."""
        w = None if self.sample_weight is None else self.sample_weight[indices]
        return np.asarray(self.X[indices]), w
