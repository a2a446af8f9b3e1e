"""How chunks are mapped and reduced: in memory, on Dask's threads, or on a cluster."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from .._validation import check_sample_weight
from ..sources import chunk_rows, is_lazy
from ._blas import single_threaded_blas
from .base import Engine
from .dask_ import DaskEngine, cluster_can_hold
from .numpy_ import NumpyEngine

__all__ = ["DaskEngine", "Engine", "NumpyEngine", "make_engine", "single_threaded_blas"]


def make_engine(
    X: np.ndarray | da.Array,
    sample_weight: Any = None,
    *,
    chunk_size: int | str | None = None,
    split_every: int = 8,
    persist: bool | str = False,
    progress: bool = False,
    whole: bool = False,
) -> Engine:
    """The engine for validated rows ``X``: Dask's for lazy data, NumPy's for arrays.

    Parameters
    ----------
    X : ndarray or dask.array.Array of shape (n_rows, n_features)
        The rows (lazy rows are already chunked by :func:`streamem.sources.open_rows`).
    sample_weight : array-like of shape (n_rows,), optional
        Row weights.
    chunk_size : int or str, optional
        Rows (or bytes) per chunk of in-memory rows.
    split_every : int
        Fan-in of the merge tree.
    persist : bool or 'auto'
        Keep lazy rows in the workers' memory (``'auto'``: when a ``dask.distributed``
        cluster is active and they take less than half of its memory).
    progress : bool
        A progress bar over the chunks of each pass.
    whole : bool
        In-memory rows as one chunk (one online update).
    """
    if is_lazy(X):
        if persist is True or (persist == "auto" and cluster_can_hold(X)):
            X = X.persist()
        if sample_weight is not None and not is_lazy(sample_weight):
            sample_weight = check_sample_weight(sample_weight, X.shape[0])
        elif sample_weight is not None and sample_weight.shape != (X.shape[0],):
            raise ValueError(
                f"sample_weight must have shape ({X.shape[0]},) to match the rows of X, "
                f"got {sample_weight.shape}."
            )
        return DaskEngine(X, sample_weight, split_every=split_every, progress=progress)
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
    rows = max(X.shape[0], 1) if whole else chunk_rows(chunk_size, X.shape[1], X.dtype.itemsize)
    return NumpyEngine(
        X, sample_weight, chunk_rows=rows, split_every=split_every, progress=progress
    )
