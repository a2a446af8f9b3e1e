"""Anything that holds rows → a validated NumPy array or a row-chunked Dask array.

Accepted: NumPy arrays (and other in-memory array-likes), Dask arrays, ``zarr.Array``
objects, paths or URLs of Zarr stores (v2 or v3; an array, a group holding one 2-D array, or
``store.zarr/name``), ``.npy`` files (memory-mapped), ``xarray.DataArray`` (one sample
dimension, every other dimension a feature) and ``xarray.Dataset`` (chosen data variables
become features). Everything lazy becomes a Dask array chunked along rows only, about
``chunk_size`` bytes per chunk, and is never loaded whole.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
from dask.utils import parse_bytes
from sklearn.utils.validation import validate_data

DEFAULT_CHUNK_BYTES = "64MiB"


@dataclass(frozen=True)
class Rows:
    """Validated rows and what is needed to label results computed from them.

    Attributes
    ----------
    data : ndarray or dask.array.Array of shape (n_rows, n_features)
        The rows; lazy sources are Dask arrays with one chunk along the features.
    label : str
        What the rows are, for error messages ("array 'x' in store 'a.zarr'").
    sample_dim : str or None
        For xarray input: the sample dimension, so outputs are xarray objects again.
    coords : dict
        For xarray input: the coordinates along the sample dimension.
    """

    data: np.ndarray | da.Array
    label: str = "the data"
    sample_dim: str | None = None
    coords: dict = field(default_factory=dict)

    @property
    def lazy(self) -> bool:
        return isinstance(self.data, da.Array)

    def wrap(self, result: Any, name: str, columns: str | None = None) -> Any:
        """``result`` (rows first) as a DataArray called ``name`` when the input was xarray."""
        if self.sample_dim is None:
            return result
        import xarray as xr

        coords = dict(self.coords)
        dims: tuple[str, ...] = (self.sample_dim,)
        if columns is not None:
            dims += (columns,)
            coords[columns] = np.arange(result.shape[1])
        return xr.DataArray(result, dims=dims, coords=coords, name=name)


@contextlib.contextmanager
def labelled(label: str) -> Iterator[None]:
    """Prefix errors about the data with what the data are (store, array, variables)."""
    try:
        yield
    except (ValueError, OSError) as exc:
        if label == "the data" or label in str(exc):
            raise
        try:
            renamed = type(exc)(f"{label}: {exc}")
        except Exception:  # an exception type that takes other arguments: leave it as is
            raise exc from None
        raise renamed from exc


def checksummed(dtype: np.dtype) -> tuple:
    """Zarr codecs for stores streamem writes: a CRC-32C checksum of every chunk (so a
    damaged chunk is reported, never read as numbers), after Zstd for integers; floats of
    real data barely compress and read fastest raw."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    if np.dtype(dtype).kind == "f":
        return (Crc32cCodec(),)
    return (ZstdCodec(), Crc32cCodec())


def is_lazy(X: Any) -> bool:
    """Whether ``X`` is a Dask array (fitted and predicted on without loading it)."""
    return isinstance(X, da.Array)


def chunk_rows(chunk_size: int | str | None, n_features: int, itemsize: int) -> int | None:
    """Rows per chunk from ``chunk_size`` given as rows (int) or bytes ("64MiB")."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, str):
        return max(1, parse_bytes(chunk_size) // max(1, n_features * itemsize))
    return int(chunk_size)


def _aligned_rows(target: int, storage_rows: int, n_rows: int) -> int:
    """A multiple of the storage chunk rows close to ``target`` (never splitting a chunk)."""
    multiple = max(1, round(target / max(storage_rows, 1)))
    return min(max(n_rows, 1), multiple * storage_rows)


def _is_xarray(X: Any) -> bool:
    module = type(X).__module__
    return module.startswith("xarray.") and type(X).__name__ in ("DataArray", "Dataset")


def _is_zarr_array(X: Any) -> bool:
    return type(X).__module__.startswith("zarr.") and hasattr(X, "chunks") and hasattr(X, "shape")


def _describe_zarr(array: Any, where: str | None = None) -> str:
    store = where.rstrip("/") if where is not None else str(array.store_path.store)
    if not array.path:  # the array is the root of what was opened
        return f"Zarr array {store!r}"
    return f"array {array.path!r} in Zarr store {store!r}"


def _missing_chunks(array: Any) -> list[tuple[int, ...]]:
    """Chunk coordinates of ``array`` that are not in its store (only probed if any are)."""
    if array.nchunks_initialized >= array.nchunks:
        return []
    from zarr.core.sync import sync

    grid = [range(-(-s // c)) for s, c in zip(array.shape, array.chunks, strict=True)]
    return [
        coords
        for coords in itertools.product(*grid)
        if not sync((array.store_path / array.metadata.encode_chunk_key(coords)).exists())
    ]


class _ZarrRows:
    """Reads rows from a ``zarr.Array``, naming the store, array and rows when it fails."""

    def __init__(self, array: Any, label: str) -> None:
        self.array, self.label = array, label
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return self.array[key]
        except Exception as exc:
            rows = key[0] if isinstance(key, tuple) else key
            where, exc = self._failing_rows(rows, exc)
            reason = str(exc).rstrip(".")
            raise OSError(
                f"could not read {where} of {self.label} ({type(exc).__name__}: {reason}). "
                "The chunk may be corrupt or truncated; rewrite the store from its source."
            ) from exc

    def _failing_rows(self, rows: Any, error: Exception) -> tuple[str, Exception]:
        """The first storage chunk of ``rows`` that fails to read, and its error."""
        if not isinstance(rows, slice):
            return "some rows", error
        step = self.array.chunks[0]
        for start in range(rows.start - rows.start % step, rows.stop, step):
            part = slice(max(start, rows.start), min(start + step, rows.stop))
            try:
                self.array[part]
            except Exception as exc:
                return f"rows {part.start}–{part.stop - 1}", exc
        return f"rows {rows.start}–{rows.stop - 1}", error


def _from_zarr(array: Any, label: str, chunk_bytes: int, rows: int | None = None) -> da.Array:
    if array.ndim != 2:
        raise ValueError(
            f"{label} has {array.ndim} dimension(s), shape {array.shape}; expected 2 "
            "(samples × features). Reshape it, or open it with xarray and name the sample "
            "dimension."
        )
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{label} has dtype {array.dtype}; streamem needs numeric data.")
    missing = _missing_chunks(array)
    if missing:
        rows = sorted({c[0] for c in missing})
        step = array.chunks[0]
        spans = ", ".join(
            f"{r * step}–{min((r + 1) * step, array.shape[0]) - 1}" for r in rows[:5]
        )
        raise ValueError(
            f"{label}: {len(missing)} of {array.nchunks} chunks are missing (rows {spans}"
            f"{', …' if len(rows) > 5 else ''}); Zarr would read them as the fill value "
            f"{array.fill_value!r}. Rewrite the store, or, if those chunks were left out on "
            "purpose because they hold only the fill value, pass dask.array.from_zarr(...)."
        )
    if rows is None:
        row_bytes = max(1, array.shape[1] * array.dtype.itemsize)
        rows = _aligned_rows(chunk_bytes // row_bytes, array.chunks[0], array.shape[0])
    return da.from_array(
        _ZarrRows(array, label),
        chunks=(rows, array.shape[1]),
        name=f"zarr-rows-{da.core.tokenize(label, array.shape, rows)}",
        asarray=True,
        fancy=False,
        meta=np.empty((0, 0), dtype=array.dtype),
    )


def open_zarr(path: str, storage_options: dict[str, Any] | None = None) -> Any:
    """The 2-D ``zarr.Array`` at a local path or a URL (``s3://``, ``gs://``, … through
    fsspec): an array, or a group holding exactly one 2-D array.

    Parameters
    ----------
    path : str
        The store (``store.zarr``) or the array in it (``store.zarr/name``).
    storage_options : dict, optional
        Passed to fsspec for URLs: ``{"anon": True}``, ``{"key": …, "secret": …}``,
        ``{"client_kwargs": {"endpoint_url": …}}`` for an S3-compatible server, …
    """
    local = "://" not in path
    if local and not os.path.exists(path):
        raise FileNotFoundError(f"No such Zarr store: {path!r}")
    import zarr

    try:
        node = zarr.open(path, mode="r", storage_options=None if local else storage_options)
    except Exception as exc:
        raise ValueError(
            f"{path!r} is not a Zarr store (v2 or v3) that can be opened: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(node, zarr.Group):
        arrays = [(name, array) for name, array in node.arrays() if array.ndim == 2]
        if len(arrays) != 1:
            found = ", ".join(repr(name) for name, _ in node.arrays()) or "none"
            raise ValueError(
                f"the Zarr group {path!r} holds {len(arrays)} two-dimensional arrays "
                f"(arrays: {found}); name the one to use as '{path.rstrip('/')}/<name>'."
            )
        node = arrays[0][1]
    return node


def _open_path(
    path: str, chunk_bytes: int, rows: int | None, storage_options: dict[str, Any] | None = None
) -> tuple[Any, str]:
    """A lazy 2-D array from a ``.npy`` file or a Zarr store path/URL, and its label."""
    if path.endswith(".npy"):
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such file: {path!r}")
        label = f"the .npy file {path!r}"
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(
                f"{label} cannot be read ({exc}); it may be truncated or not a .npy file. "
                "Write it again from its source."
            ) from exc
        if array.ndim != 2:
            raise ValueError(f"{label} holds a {array.ndim}-D array; expected 2-D rows.")
        rows = rows or max(1, chunk_bytes // max(1, array.shape[1] * array.itemsize))
        return da.from_array(array, chunks=(rows, -1), name=f"npy-{path}"), label
    node = open_zarr(path, storage_options)
    label = _describe_zarr(node, path)
    return _from_zarr(node, label, chunk_bytes, rows), label


def _from_xarray(
    X: Any, sample_dim: str | None, variables: Sequence[str] | None, chunk_bytes: int
) -> Rows:
    import xarray as xr

    if isinstance(X, xr.Dataset):
        names = list(variables) if variables is not None else None
        if names is None:
            dim = sample_dim or next(iter(X.dims), None)
            names = [name for name, var in X.data_vars.items() if dim in var.dims]
        missing = [name for name in names if name not in X.data_vars]
        if missing or not names:
            raise ValueError(
                f"the Dataset has no data variable(s) {missing or names}; available: "
                f"{list(X.data_vars)}. Pass variables=[...] to choose the features."
            )
        dim = sample_dim or X[names[0]].dims[0]
        parts = [_from_xarray(X[name], dim, None, chunk_bytes) for name in names]
        data = da.concatenate([part.data for part in parts], axis=1)
        return Rows(data, f"variables {names} of the Dataset", dim, parts[0].coords)

    dim = sample_dim or (X.dims[0] if X.dims else None)
    if dim not in X.dims:
        raise ValueError(
            f"the DataArray has no dimension {dim!r} to use as samples; its dimensions are "
            f"{X.dims}. Pass sample_dim=<one of them>."
        )
    features = [d for d in X.dims if d != dim]
    X = X.transpose(dim, *features)
    n_features = int(np.prod([X.sizes[d] for d in features]))
    rows = max(1, chunk_bytes // max(1, n_features * X.dtype.itemsize))
    # chunking through xarray keeps lazily loaded (e.g. NetCDF) variables lazy
    X = X.chunk({dim: rows, **{d: -1 for d in features}})
    data = X.data.reshape(X.sizes[dim], n_features)
    coords = {name: coord for name, coord in X.coords.items() if coord.dims == (dim,)}
    name = f"DataArray {X.name!r}" if X.name is not None else "the DataArray"
    return Rows(data, name, dim, coords)


def open_rows(
    X: Any,
    *,
    sample_dim: str | None = None,
    variables: Sequence[str] | None = None,
    chunk_size: int | str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Rows:
    """Rows from any supported source, lazy unless ``X`` is already in memory.

    Parameters
    ----------
    X : array-like, dask.array.Array, zarr.Array, str, os.PathLike, xarray object
        The data (see the module docstring for every accepted kind).
    sample_dim : str, optional
        xarray input: the dimension that indexes samples (default: the first).
    variables : sequence of str, optional
        Dataset input: the data variables to use as features (default: all that have the
        sample dimension).
    chunk_size : int or str, optional
        Rows (int) or bytes ("64MiB", the default) per chunk for lazy sources. Dask arrays
        keep their chunks unless this is given.
    storage_options : dict, optional
        fsspec options for Zarr URLs (see :func:`open_zarr`).

    Returns
    -------
    Rows
    """
    target = chunk_size if isinstance(chunk_size, str) else DEFAULT_CHUNK_BYTES
    chunk_bytes = parse_bytes(target)
    fixed_rows = None if chunk_size is None or isinstance(chunk_size, str) else int(chunk_size)
    if isinstance(X, os.PathLike):
        X = os.fspath(X)
    if isinstance(X, str):
        return Rows(*_open_path(X, chunk_bytes, fixed_rows, storage_options))
    if _is_zarr_array(X):
        label = _describe_zarr(X)
        return Rows(_from_zarr(X, label, chunk_bytes, fixed_rows), label)
    if _is_xarray(X):
        if fixed_rows is not None:
            chunk_bytes = fixed_rows * _row_bytes(X, sample_dim)
        return _from_xarray(X, sample_dim, variables, chunk_bytes)
    if is_lazy(X) and chunk_size is not None and X.ndim == 2:
        rows = chunk_rows(chunk_size, X.shape[1], X.dtype.itemsize)
        if X.chunks[0][0] != rows or X.numblocks[1] != 1:
            X = X.rechunk({0: rows, 1: -1})
    return Rows(X)


def _row_bytes(X: Any, sample_dim: str | None) -> int:
    """Bytes per sample of an xarray object (all its features)."""
    import xarray as xr

    arrays = X.data_vars.values() if isinstance(X, xr.Dataset) else [X]
    total = 0
    for array in arrays:
        dim = sample_dim or array.dims[0]
        total += array.dtype.itemsize * int(array.size // max(array.sizes.get(dim, 1), 1))
    return max(total, 1)


def validate_rows(rows: Rows, estimator: Any, *, reset: bool, min_rows: int = 1) -> Rows:
    """Check ``rows`` for ``estimator`` (2-D, numeric, feature count) and record features.

    In-memory inputs go through scikit-learn's ``validate_data`` (which also records
    ``n_features_in_`` and ``feature_names_in_``); numeric dtypes are kept, so float32 and
    integer data are not copied. Non-finite values are found later, chunk by chunk, where the
    row range can be named. Lazy inputs are checked by their metadata only.
    """
    X = rows.data
    if not rows.lazy:
        X = validate_data(
            estimator,
            X,
            reset=reset,
            dtype="numeric",
            ensure_all_finite=False,
            ensure_min_samples=min_rows,
        )
        return Rows(X, rows.label, rows.sample_dim, rows.coords)
    name = type(estimator).__name__
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D array of shape (n_samples, n_features), got a {X.ndim}D Dask array "
            f"of shape {X.shape}. Reshape it, e.g. X.reshape(-1, 1) for a single feature."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} needs numeric data; got {rows.label} of dtype {X.dtype}. Convert it with "
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
    return Rows(X, rows.label, rows.sample_dim, rows.coords)
