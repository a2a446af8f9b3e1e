"""Reading and writing: model files, and predictions to Zarr (both atomically).

A model file is a zip archive holding ``model.json`` (format version, estimator class and
parameters, fitted scalars, and the layout of every value) and one ``.npy`` entry per array.
Loading it never unpickles anything: arrays are read with ``allow_pickle=False`` and the only
classes it instantiates are streamem's own estimators, families and NamedTuples, looked up by
name inside the ``streamem`` package.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import os
import zipfile
from typing import Any

import dask.array as da
import numpy as np

from ._atomic import atomic_path

FORMAT = "streamem-model"
FORMAT_VERSION = 1
MANIFEST = "model.json"


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be read: damaged, foreign, or too new."""


# -- encoding values as JSON + arrays --------------------------------------------------------


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _streamem_class(name: str) -> type:
    """The streamem class called ``module:qualname`` (nothing outside the package)."""
    module, _, qualname = name.partition(":")
    if not (module == "streamem" or module.startswith("streamem.")) or "." in qualname:
        raise ModelFileError(f"refusing to load {name!r}: not a streamem class")
    try:
        return getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError) as exc:
        raise ModelFileError(f"unknown class {name!r} in model file") from exc


def encode(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """``value`` as JSON, with arrays moved to ``arrays`` under keys derived from ``path``."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            value = value.astype(str)
        key = f"{path}.npy"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {
            "__tuple__": _qualified(type(value)),
            "fields": {k: encode(v, arrays, f"{path}.{k}") for k, v in value._asdict().items()},
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {
            "__dataclass__": _qualified(type(value)),
            "fields": {k: encode(v, arrays, f"{path}.{k}") for k, v in fields.items()},
        }
    if isinstance(value, dict):
        return {"__dict__": {str(k): encode(v, arrays, f"{path}.{k}") for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return [encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {path!r} in a model file")


def decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(value, list):
        return [decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__dict__" in value:
        return {k: decode(v, arrays) for k, v in value["__dict__"].items()}
    fields = {k: decode(v, arrays) for k, v in value["fields"].items()}
    if "__tuple__" in value:
        cls = _streamem_class(value["__tuple__"])
        if not (issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise ModelFileError(f"{value['__tuple__']!r} is not a NamedTuple")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    cls = _streamem_class(value["__dataclass__"])
    if not dataclasses.is_dataclass(cls):
        raise ModelFileError(f"{value['__dataclass__']!r} is not a dataclass")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


# -- files -----------------------------------------------------------------------------------


def write_archive(path: str | os.PathLike, kind: str, content: dict[str, Any]) -> None:
    """Write ``content`` (JSON-able with arrays) as a versioned archive, atomically."""
    arrays: dict[str, np.ndarray] = {}
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "content": encode(content, arrays, "value"),
    }
    with atomic_path(path, overwrite=True) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=1, allow_nan=True))
            for key, array in arrays.items():
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
                archive.writestr(key, buffer.getvalue())


def read_archive(path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """Read an archive written by :func:`write_archive`: its kind and content."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such model file: {path!r}")
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read(MANIFEST))
            if manifest.get("format") != FORMAT:
                raise ModelFileError(f"{path!r} is not a streamem model file")
            version = manifest.get("version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise ModelFileError(
                    f"{path!r} was written in model format version {version}, newer than this "
                    f"streamem reads ({FORMAT_VERSION}); upgrade streamem to load it."
                )
            arrays = {
                name: np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
                for name in archive.namelist()
                if name != MANIFEST
            }
            return manifest["kind"], decode(manifest["content"], arrays)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise ModelFileError(
            f"{path!r} is damaged or not a streamem model file ({type(exc).__name__}: {exc})"
        ) from exc


def save(estimator: Any, path: str | os.PathLike) -> None:
    """Save a fitted estimator (parameters, fitted attributes and any running state).

    Parameters
    ----------
    estimator : MixtureEstimator
        A fitted streamem estimator.
    path : str or path-like
        The file to write (a file there is replaced atomically; a directory never is).
    """
    params = {
        k: v
        for k, v in estimator.get_params(deep=False).items()
        if k != "callback" and not isinstance(v, np.random.RandomState)
    }
    fitted = {
        k: v for k, v in vars(estimator).items() if k.endswith("_") and not k.startswith("_")
    }
    write_archive(
        path,
        "estimator",
        {"class": _qualified(type(estimator)), "params": params, "fitted": fitted},
    )


def load(path: str | os.PathLike) -> Any:
    """Load an estimator saved with ``save``; it predicts and continues fitting as before.

    Raises
    ------
    ModelFileError
        If the file is damaged, not a streamem model file, or from a newer format version.
    """
    from .estimators._base import MixtureEstimator

    kind, content = read_archive(path)
    if kind != "estimator":
        raise ModelFileError(f"{os.fspath(path)!r} holds a {kind}, not an estimator")
    cls = _streamem_class(content["class"])
    if not (isinstance(cls, type) and issubclass(cls, MixtureEstimator)):
        raise ModelFileError(f"{content['class']!r} is not a streamem estimator")
    estimator = cls(**content["params"])
    for name, value in content["fitted"].items():
        setattr(estimator, name, value)
    return estimator


# -- predictions to Zarr ---------------------------------------------------------------------


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
    with atomic_path(path, overwrite=overwrite, directory=True) as temporary:
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
