"""Anything that holds rows → a validated NumPy array or a row-chunked Dask array."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from dask.utils import parse_bytes
from sklearn.utils.validation import validate_data


def is_lazy(X: Any) -> bool:
    """Whether ``X`` is a Dask array (fitted and predicted on without loading it)."""
    return isinstance(X, da.Array)


def as_rows(X: Any, estimator: Any, *, reset: bool, min_rows: int = 1) -> np.ndarray | da.Array:
    """Validate ``X`` as a 2-D numeric array of rows for ``estimator``.

    In-memory inputs go through scikit-learn's ``validate_data`` (which also records
    ``n_features_in_`` and ``feature_names_in_``); numeric dtypes are kept, so float32 and
    integer data are not copied. Non-finite values are found later, chunk by chunk, where the
    row range can be named. Dask arrays are checked by their metadata only.
    """
    if not is_lazy(X):
        return validate_data(
            estimator,
            X,
            reset=reset,
            dtype="numeric",
            ensure_all_finite=False,
            ensure_min_samples=min_rows,
        )
    name = type(estimator).__name__
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D array of shape (n_samples, n_features), got a {X.ndim}D Dask array "
            f"of shape {X.shape}. Reshape it, e.g. X.reshape(-1, 1) for a single feature."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} needs numeric data; got a Dask array of dtype {X.dtype}. Convert it with "
            "X.astype(float)."
        )
    if np.isnan(X.shape[0]):
        X = X.compute_chunk_sizes()
    if X.shape[0] < min_rows:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) while a minimum of "
            f"{min_rows} is required by {name}."
        )
    if reset:
        estimator.n_features_in_ = X.shape[1]
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    return X


def chunk_rows(chunk_size: int | str | None, n_features: int, itemsize: int) -> int | None:
    """Rows per chunk from ``chunk_size`` given as rows (int) or bytes ("64MiB")."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, str):
        return max(1, parse_bytes(chunk_size) // max(1, n_features * itemsize))
    return int(chunk_size)
