"""Reading and writing: predictions to Zarr (atomically)."""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np

from ._atomic import atomic_path


def _default_name(result: Any) -> str:
    if type(result).__module__.startswith("xarray.") and result.name:
        return str(result.name)
    if result.ndim == 2:
        return "responsibilities"
    return "labels" if np.dtype(result.dtype).kind in "iu" else "log_likelihood"


def to_zarr(
    result: Any, path: str | os.PathLike, *, name: str | None = None, overwrite: bool = False
) -> str:
    """Write a (lazy) prediction to a new Zarr store, chunk by chunk, atomically.

    The store is written under a temporary name and renamed into place once every chunk is
    written, so a failure (a bad chunk in the input, an interrupted job) leaves nothing
    behind. Dask arrays are computed chunk by chunk on the active scheduler and never held
    whole; xarray objects keep their coordinates.

    Parameters
    ----------
    result : ndarray, dask.array.Array or xarray.DataArray
        For example ``model.predict(store)``.
    path : str or path-like
        Local path of the store to create (a group holding one array).
    name : str, optional
        Name of the array in the store (default: the DataArray's name, else ``labels``,
        ``responsibilities`` or ``log_likelihood`` from the shape and dtype).
    overwrite : bool, default=False
        Replace an existing store.

    Returns
    -------
    str
        ``path/name``, which streamem and Zarr open directly.
    """
    import zarr

    name = name or _default_name(result)
    path = os.fspath(path)
    with atomic_path(path, overwrite=overwrite) as temporary:
        if type(result).__module__.startswith("xarray."):
            result.to_dataset(name=name).to_zarr(str(temporary), mode="w", consolidated=False)
        else:
            dims = ("sample", "component")[: np.ndim(result)]
            if isinstance(result, da.Array):
                zarr.open_group(str(temporary), mode="w")
                da.to_zarr(result, str(temporary), component=name, dimension_names=dims)
            else:
                group = zarr.open_group(str(temporary), mode="w")
                group.create_array(name, data=np.asarray(result), dimension_names=dims)
    return f"{path.rstrip('/')}/{name}"
