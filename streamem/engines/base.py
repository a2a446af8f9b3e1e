"""What the drivers need from an engine, and the choice of engine for some data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from ..estep import EStepResult
from ..families._base import Mixture


class Engine(Protocol):
    """Runs the chunk kernel over the row chunks of some data (in memory, Dask, a cluster).

    A *chunk task* is any function ``func(chunk, weights, *args, row_offset)``; the engine
    runs it where the chunk is and returns only its (small) result.
    """

    @property
    def n_rows(self) -> int: ...

    @property
    def n_features(self) -> int: ...

    @property
    def dtype(self) -> np.dtype: ...

    @property
    def n_chunks(self) -> int: ...

    @property
    def chunk_rows(self) -> list[int]:
        """Rows in each chunk, in order."""
        ...

    @property
    def parallelism(self) -> int:
        """How many chunks run at once."""
        ...

    def estep(self, models: tuple[Mixture, ...]) -> EStepResult:
        """One pass over the data: the merged E-step result of every model."""
        ...

    def estep_chunks(
        self, models: tuple[Mixture, ...], indices: list[int] | None = None
    ) -> list[EStepResult]:
        """The E-step results of the chunks at ``indices`` (all by default), not merged."""
        ...

    def prefetch(self, indices: list[int]) -> None:
        """Read the chunks at ``indices`` while the next ``estep_chunks`` runs, for the one
        after it (engines whose data are in memory, or on a cluster, do nothing). A wrong
        guess costs only reads; ``prefetch([])`` forgets what was read ahead."""
        ...

    def apply_chunk(self, index: int, func: Callable[..., Any], *args: Any) -> Any:
        """The chunk task ``func`` on chunk ``index``."""
        ...

    def sample(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows (and their weights) at sorted ``indices``."""
        ...


class ArrayEngine:
    """What engines over a 2-D array ``X`` share: its shape and dtype."""

    X: Any

    @property
    def n_rows(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def dtype(self) -> np.dtype:
        return self.X.dtype
