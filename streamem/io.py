"""Reading and writing: model files, and predictions to Zarr (both atomically).

A model file is a zip archive holding ``model.json`` (format version, estimator class and
parameters, fitted scalars, and the layout of every value) and one ``.npy`` entry per array.

Loading treats the file as hostile until it has been checked:

- nothing is unpickled, and no module is imported because a file names it. The top-level
  class must be an estimator registered with :func:`register_loadable`; the other values may
  only be NamedTuples and dataclasses of streamem modules that are already imported;
- only the members the manifest refers to are read, each after checking its size against the
  file's (members must be stored uncompressed, as streamem writes them) and, for arrays, the
  ``.npy`` header against the member's size, so no member can make it allocate more memory
  than the file takes on disk. The manifest's size and nesting depth are bounded;
- an estimator gets only ``_``-suffixed fitted attributes that shadow nothing of its class,
  and they are checked (shapes against ``n_components`` and ``n_features_in_``, finite
  values, weights on the simplex, valid probabilities and precision factors...).

Every problem is a :class:`ModelFileError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import inspect
import io
import json
import keyword
import math
import os
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import dask.array as da
import numpy as np
from numpy.lib import format as npy_format

from ._atomic import atomic_path, put_object, remote_atomic_path
from .sources import checksummed

FORMAT = "streamem-model"
# 2: fitted models carry the statistics of their data (``stepwise_state_``) and an
#    ``update_history_``; version 1 files load, and update from scratch with a warning.
FORMAT_VERSION = 2
MANIFEST = "model.json"

#: Largest ``model.json`` read, in bytes.
MAX_MANIFEST_BYTES = 64 * 2**20
#: Deepest nesting of JSON values in ``model.json`` (streamem's own files need about 15).
MAX_DEPTH = 64
#: Array kinds a model file may hold: booleans, numbers, strings (never objects).
ARRAY_KINDS = "biufcSU"


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be read: damaged, foreign, or too new."""


# Exceptions that reading a bad file raises from zipfile, json, numpy or a constructor: each
# becomes a ModelFileError naming the file.
_DAMAGE = (
    zipfile.BadZipFile,
    ArithmeticError,
    AttributeError,
    EOFError,
    LookupError,
    NotImplementedError,
    OSError,
    RecursionError,
    TypeError,
    ValueError,
    struct.error,
    zlib.error,
)

_ESTIMATORS: dict[str, type] = {}


def register_loadable(*classes: type) -> None:
    """Allow :func:`load` to create estimators of these classes.

    A model file names the class of its estimator; ``load`` creates only registered ones.
    streamem registers its estimators when :mod:`streamem.estimators` is imported.

    Parameters
    ----------
    *classes : type
        Estimator classes (scikit-learn style: parameters in ``__init__``, fitted attributes
        ending in ``_``).
    """
    for cls in classes:
        if not isinstance(cls, type):
            raise TypeError(f"register_loadable expects classes, got {cls!r}")
        _ESTIMATORS[_qualified(cls)] = cls


@contextlib.contextmanager
def _file_errors(path: str) -> Iterator[None]:
    """Turn every problem met while reading ``path`` into a ModelFileError naming it."""
    try:
        yield
    except ModelFileError as exc:
        raise ModelFileError(f"{path!r}: {exc}") from exc
    except _DAMAGE as exc:
        raise ModelFileError(
            f"{path!r} is damaged or not a streamem model file ({type(exc).__name__}: {exc})"
        ) from exc


# -- encoding values as JSON + arrays --------------------------------------------------------


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _in_streamem(module: Any) -> bool:
    return isinstance(module, str) and (module == "streamem" or module.startswith("streamem."))


def _resolve(name: Any) -> Any:
    """What ``module:qualname`` names in a streamem module already imported, else None.

    Never imports anything: a module a file names is looked up in ``sys.modules`` only.
    Re-exports resolve, so files keep loading when a class moves to another module.
    """
    if not isinstance(name, str):
        return None
    module, _, qualname = name.partition(":")
    if not (_in_streamem(module) and module in sys.modules and qualname.isidentifier()):
        return None
    return vars(sys.modules[module]).get(qualname)


def _estimator_class(name: Any) -> type:
    """The estimator class called ``name``: only classes given to :func:`register_loadable`."""
    resolved = _resolve(name)
    cls = _ESTIMATORS.get(name) if isinstance(name, str) else None
    if cls is None and any(resolved is c for c in _ESTIMATORS.values()):
        cls = resolved
    if cls is None:
        known = ", ".join(sorted(c.__name__ for c in _ESTIMATORS.values()))
        raise ModelFileError(
            f"refusing to create {name!r}: not a streamem estimator (model files hold one of "
            f"{known})"
        )
    return cls


def _value_class(name: Any, tag: str) -> type:
    """The NamedTuple (``tag="__tuple__"``) or dataclass called ``module:qualname``.

    Only classes defined in streamem and found by :func:`_resolve` qualify, so a file creates
    nothing but streamem's plain data.
    """
    cls = _resolve(name)
    if not (isinstance(cls, type) and _in_streamem(cls.__module__)):
        valid = False
    elif tag == "__tuple__":
        valid = cls.__bases__ == (tuple,) and hasattr(cls, "_fields")
    else:
        valid = dataclasses.is_dataclass(cls)
    if not valid:
        kind = "NamedTuple" if tag == "__tuple__" else "dataclass"
        raise ModelFileError(f"refusing to create {name!r}: not a streamem {kind}")
    return cls


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


# The JSON objects encode writes: a tag and the other keys that go with it.
_TAGS = {
    "__array__": set(),
    "__dict__": set(),
    "__tuple__": {"fields"},
    "__dataclass__": {"fields"},
}


def _tag(value: dict[str, Any], where: str) -> str:
    for tag, others in _TAGS.items():
        if value.keys() == {tag, *others}:
            return tag
    raise ModelFileError(f"unexpected JSON object at {where} (keys {sorted(value)[:5]})")


def _json_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelFileError(f"expected a JSON object at {where}, found {type(value).__name__}")
    return value


def decode(value: Any, arrays: Mapping[str, np.ndarray], where: str = "content") -> Any:
    """The inverse of :func:`encode`.

    Raises
    ------
    ModelFileError
        If ``value`` is not what :func:`encode` writes, names a class that may not be created
        from a file, or refers to an array missing from ``arrays``.
    """
    if isinstance(value, list):
        return [decode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    tag = _tag(value, where)
    if tag == "__array__":
        if not isinstance(value[tag], str) or value[tag] not in arrays:
            raise ModelFileError(f"{where} refers to a missing array {value[tag]!r}")
        return arrays[value[tag]]
    if tag == "__dict__":
        items = _json_object(value[tag], where).items()
        return {k: decode(v, arrays, f"{where}.{k}") for k, v in items}
    cls = _value_class(value[tag], tag)
    fields = {
        k: decode(v, arrays, f"{where}.{k}")
        for k, v in _json_object(value["fields"], where).items()
    }
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"cannot create {value[tag]} at {where}: {exc}") from exc


# -- files -----------------------------------------------------------------------------------


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an object in an fsspec file system (``s3://…``)."""
    return "://" in os.fspath(path)


def write_archive(
    path: str | os.PathLike,
    kind: str,
    content: dict[str, Any],
    *,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Write ``content`` (JSON-able with arrays) as a versioned archive, atomically; an
    existing file is replaced only with ``overwrite``, a directory never. A URL is written
    through fsspec in one upload (see :func:`streamem._atomic.put_object`)."""
    arrays: dict[str, np.ndarray] = {}
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "content": encode(content, arrays, "value"),
    }

    def write(target: Any) -> None:
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=1, allow_nan=True))
            for key, array in arrays.items():
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
                archive.writestr(key, buffer.getvalue())

    if is_url(path):
        buffer = io.BytesIO()
        write(buffer)
        put_object(
            os.fspath(path),
            buffer.getvalue(),
            overwrite=overwrite,
            storage_options=storage_options,
        )
        return
    with atomic_path(path, overwrite=overwrite) as temporary:
        write(temporary)


def _member(archive: zipfile.ZipFile, name: str, limit: int) -> zipfile.ZipInfo:
    """The entry of member ``name``, checked to be readable in at most ``limit`` bytes."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"member {name!r} is missing") from None
    if info.flag_bits & 0x1:
        raise ModelFileError(f"member {name!r} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ModelFileError(
            f"member {name!r} is compressed; streamem writes and reads only uncompressed "
            "members (re-pack the archive without compression, e.g. `zip -0`)"
        )
    if info.compress_size != info.file_size:
        raise ModelFileError(
            f"member {name!r} is stored in {info.compress_size} bytes but says it holds "
            f"{info.file_size}"
        )
    if info.file_size > limit:
        raise ModelFileError(
            f"member {name!r} says it holds {info.file_size} bytes, more than the "
            f"{limit} bytes it can have"
        )
    return info


def _walk(value: Any) -> Iterator[tuple[Any, int]]:
    """Every JSON value inside ``value`` with its depth (iteratively: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def _read_manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    duplicated = [n for n, count in collections.Counter(archive.namelist()).items() if count > 1]
    if duplicated:
        raise ModelFileError(f"the archive holds more than one member called {duplicated[0]!r}")
    info = _member(archive, MANIFEST, MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(archive.read(info))
        too_deep = max(depth for _, depth in _walk(manifest)) > MAX_DEPTH
    except RecursionError:
        too_deep = True
    if too_deep:
        raise ModelFileError(f"{MANIFEST} is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{MANIFEST} does not describe a {FORMAT} file")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{MANIFEST} gives no valid format version ({version!r})")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"written in model format version {version}, newer than this streamem reads "
            f"({FORMAT_VERSION}); upgrade streamem to load it."
        )
    if manifest.keys() != {"format", "version", "kind", "content"}:
        raise ModelFileError(f"{MANIFEST} has keys {sorted(manifest)}, expected kind and content")
    if not isinstance(manifest["kind"], str):
        raise ModelFileError(f"{MANIFEST} gives no valid kind ({manifest['kind']!r})")
    return manifest


def _read_array(archive: zipfile.ZipFile, name: str, limit: int) -> np.ndarray:
    """The array in ``.npy`` member ``name``, its header checked before anything is allocated."""
    info = _member(archive, name, limit)
    with archive.open(info) as stream:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ModelFileError(f"member {name!r} is in .npy format {version}, not 1.0 or 2.0")
        if dtype.kind not in ARRAY_KINDS:  # objects, structured and subarray dtypes too
            raise ModelFileError(f"member {name!r} holds an array of unsupported dtype {dtype}")
        if not all(type(n) is int and n >= 0 for n in shape):
            raise ModelFileError(f"member {name!r} has an invalid shape {shape!r}")
        size = math.prod(shape) * dtype.itemsize
        stored = info.file_size - stream.tell()
        if size != stored:
            raise ModelFileError(
                f"member {name!r} declares a {dtype} array of shape {shape} ({size} bytes) "
                f"but holds {stored} bytes of data"
            )
        data = bytearray(size)
        if stream.readinto(data) != size:
            raise ModelFileError(f"member {name!r} ends early")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


def _read_arrays(archive: zipfile.ZipFile, content: Any, budget: int) -> dict[str, np.ndarray]:
    """The arrays ``content`` refers to, in all at most ``budget`` bytes of members."""
    names = set()
    for node, _ in _walk(content):
        if isinstance(node, dict) and "__array__" in node:
            name = node["__array__"]
            if not isinstance(name, str) or name == MANIFEST:
                raise ModelFileError(f"{MANIFEST} refers to an array as {name!r}")
            names.add(name)
    arrays = {}
    for name in sorted(names):
        arrays[name] = _read_array(archive, name, budget)
        budget -= archive.getinfo(name).file_size
    return arrays


def read_archive(
    path: str | os.PathLike, *, storage_options: dict[str, Any] | None = None
) -> tuple[str, Any]:
    """Read an archive written by :func:`write_archive`: its kind and content (from a local
    path, or a URL through fsspec with ``storage_options``).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ModelFileError
        If the file is damaged, not a streamem archive, from a newer format version, or
        anything in it fails the checks described in :mod:`streamem.io`.
    """
    path = os.fspath(path)
    source: Any = path
    if is_url(path):
        import fsspec

        fs, key = fsspec.core.url_to_fs(path, **(storage_options or {}))
        fs.invalidate_cache(key)  # another process may have written it since the last look
        if not fs.isfile(key):
            raise FileNotFoundError(f"No such model file: {path!r}")
        with _file_errors(path):
            budget = int(fs.size(key))
            # the object's own size bounds what is read; its members are checked against it
            source = io.BytesIO(fs.cat_file(key))
    elif not os.path.exists(path):
        raise FileNotFoundError(f"No such model file: {path!r}")
    else:
        budget = os.path.getsize(path)
    with _file_errors(path):
        with zipfile.ZipFile(source) as archive:
            manifest = _read_manifest(archive)
            arrays = _read_arrays(archive, manifest["content"], budget)
            return manifest["kind"], decode(manifest["content"], arrays)


def save(
    estimator: Any,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Save a fitted estimator (parameters, fitted attributes and any running state).

    Parameters
    ----------
    estimator : MixtureEstimator
        A fitted streamem estimator.
    path : str or path-like
        The file to write.
    overwrite : bool, default=False
        Replace an existing file (atomically); a directory is never replaced.
    storage_options : dict, optional
        fsspec options (endpoint, credentials, ``anon``…) when ``path`` is a URL
        (``s3://bucket/model.streamem``); the file is uploaded in one piece, so it appears
        whole or not at all.
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
        overwrite=overwrite,
        storage_options=storage_options,
    )


def load(path: str | os.PathLike, *, storage_options: dict[str, Any] | None = None) -> Any:
    """Load an estimator saved with ``save``; it predicts and continues fitting as before.

    The file is checked before and after the estimator is made from it (see
    :mod:`streamem.io`); a file that fails any check is refused as a whole.

    Parameters
    ----------
    path : str or path-like
        A file written by ``save``: a local path or a URL (``s3://…``, through fsspec).
    storage_options : dict, optional
        fsspec options when ``path`` is a URL.

    Returns
    -------
    MixtureEstimator
        The estimator, of the class it was saved from.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ModelFileError
        If the file is damaged, not a streamem model file, from a newer format version, or
        its content is not a valid model.
    """
    kind, content = read_archive(path, storage_options=storage_options)
    with _file_errors(os.fspath(path)):
        return _estimator(kind, content)


# -- checking an estimator's content ---------------------------------------------------------


def _estimator(kind: str, content: Any) -> Any:
    """The estimator described by the decoded ``content`` of a model file, checked."""
    if kind != "estimator":
        hint = "; continue a checkpoint by fitting with checkpoint=<its path>"
        raise ModelFileError(
            f"holds a {kind}, not an estimator{hint if kind == 'checkpoint' else ''}"
        )
    if not isinstance(content, dict) or content.keys() != {"class", "params", "fitted"}:
        raise ModelFileError("content is not class, params and fitted attributes")
    name, params, fitted = content["class"], content["params"], content["fitted"]
    cls = _estimator_class(name)
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise ModelFileError("params and fitted must be JSON objects")
    unknown = sorted(set(params) - set(inspect.signature(cls).parameters))
    if unknown:
        raise ModelFileError(f"{cls.__name__} has no parameter {unknown[0]!r}")
    estimator = cls(**params)
    for attribute, value in fitted.items():
        _check_attribute_name(cls, attribute)
        setattr(estimator, attribute, value)
    check_fitted(estimator)
    return estimator


def _check_attribute_name(cls: type, name: str) -> None:
    if not (name.isidentifier() and name.endswith("_") and not name.startswith("_")):
        raise ModelFileError(
            f"fitted attribute {name!r} is not a fitted-attribute name (those end in '_')"
        )
    if keyword.iskeyword(name) or hasattr(cls, name):
        raise ModelFileError(f"fitted attribute {name!r} would replace {cls.__name__}.{name}")


def check_fitted(estimator: Any) -> None:
    """Check the fitted attributes of a loaded estimator, by their names.

    The rules, each applied when the estimator has the attribute:

    - counters (``n_iter_``, ``n_steps_``) are ints ≥ 0, ``converged_`` is a bool, lower
      bounds are numbers, and every float array, running state included, is finite;
    - parameter arrays are float arrays shaped by ``n_components`` and ``n_features_in_``
      (``weights_``, ``means_``, ``probabilities_``, ``rates_``, ``variances_``; ``covariances_``,
      ``precisions_`` and ``precisions_cholesky_`` by ``covariance_type``), and come with
      ``weights_`` and ``n_features_in_`` (and a Gaussian's with ``means_`` and
      ``covariances_``);
    - ``weights_`` lie on the simplex; ``probabilities_`` in [0, 1] (each categorical
      distribution summing to 1); ``rates_`` are non-negative and ``variances_`` positive;
      covariances and precisions have a positive diagonal; ``precisions_cholesky_`` is
      triangular with a positive diagonal;
    - the models in ``stepwise_state_`` have ``n_components`` weights on the simplex and
      parameters of the fitted attributes' shapes;
    - a Bayesian mixture's posterior and prior (``weight_concentration_``,
      ``mean_precision_``, ``degrees_of_freedom_``, the Beta, Gamma and Dirichlet parameters
      of the discrete ones and the ``*_prior_`` values) are shaped by ``n_components``,
      ``n_features_in_`` and ``covariance_type`` (or the layout of the counts), and positive
      (but ``mean_prior_``).

    Parameters
    ----------
    estimator : MixtureEstimator
        The estimator, its fitted attributes set.

    Raises
    ------
    ModelFileError
        Naming the first attribute that is not valid.
    """
    fitted = {n: v for n, v in vars(estimator).items() if n.endswith("_") and n[0] != "_"}
    for name in fitted.keys() & _SCALAR_CHECKS.keys():
        _SCALAR_CHECKS[name](name, fitted[name])
    for where, array in _arrays(fitted):
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise ModelFileError(f"{where} holds NaN or infinite values")
    parameters = fitted.keys() & _PARAMETERS
    if not parameters:
        return  # not fitted as far as the model goes (a fit that failed early, say)
    gaussian = getattr(estimator, "covariance_type", None) is not None
    required = {"weights_", "n_features_in_"} | ({"means_", "covariances_"} if gaussian else set())
    missing = sorted(required - fitted.keys())
    if not missing and parameters == {"weights_"}:
        missing = ["component parameters"]
    if missing:
        raise ModelFileError(f"the fitted attributes lack {missing[0]}")
    k = _count("parameter n_components", getattr(estimator, "n_components", None), 1)
    d = _count("n_features_in_", fitted["n_features_in_"], 1)
    shapes = _parameter_shapes(estimator, k, d)
    matrices = getattr(estimator, "covariance_type", None) in ("full", "tied")
    names = fitted.get("feature_names_in_")
    if names is not None and not (isinstance(names, np.ndarray) and names.shape == (d,)):
        raise ModelFileError(f"feature_names_in_ must be an array of {d} names")
    with np.errstate(all="ignore"):  # huge values overflow sums: refused, not warned about
        for name in (name for name in _PARAMETERS if name in parameters):
            if name not in shapes:
                raise ModelFileError(f"{name} is not an attribute of a {type(estimator).__name__}")
            context = f"n_components={k}, n_features_in_={d}"
            _float_array(name, fitted[name], shapes[name], context)
            _VALUE_CHECKS.get(name, _no_check)(name, fitted[name], matrices)
        _check_state(fitted, k)
        _check_posterior(fitted, getattr(estimator, "covariance_type", None), k, d)
        _check_count_posterior(fitted, shapes["probabilities_"], k, d)


def _count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ModelFileError(f"{name} must be an int ≥ {low}, found {value!r}")
    return int(value)


def _parameter_shapes(estimator: Any, k: int, d: int) -> dict[str, tuple[int, ...]]:
    """The shape of each parameter array ``estimator`` may have."""
    shapes = {"weights_": (k,), "rates_": (k, d), "variances_": (k,), "means_": (k,)}
    covariance_type = getattr(estimator, "covariance_type", None)
    if covariance_type is not None:  # Gaussian; otherwise means_ are grouped Gaussians'
        by_type = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
        if not isinstance(covariance_type, str) or covariance_type not in by_type:
            raise ModelFileError(f"parameter covariance_type is {covariance_type!r}")
        shapes["means_"] = (k, d)
        for name in ("covariances_", "precisions_", "precisions_cholesky_"):
            shapes[name] = by_type[covariance_type]
    columns = d - (getattr(estimator, "trials_column", None) is not None)
    categories = getattr(estimator, "n_categories", None)
    shapes["probabilities_"] = (k, columns)
    if categories is not None:
        shapes["probabilities_"] += (_count("parameter n_categories", categories, 2),)
    return shapes


def _float_array(name: str, value: Any, shape: tuple[int, ...], context: str) -> None:
    if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
        raise ModelFileError(f"{name} must be a float array, found {type(value).__name__}")
    if value.shape != shape:
        raise ModelFileError(f"{name} has shape {value.shape}, expected {shape} ({context})")


# Checks of parameter values: ``matrices`` says covariance-like arrays hold (stacked) square
# matrices, as for covariance_type 'full' and 'tied', rather than variances.


def _no_check(name: str, value: np.ndarray, matrices: bool) -> None:
    pass


def _on_simplex(name: str, value: np.ndarray, matrices: bool = False) -> None:
    if np.any(value < 0) or not abs(value.sum() - 1.0) <= 1e-6:
        raise ModelFileError(f"{name} must be non-negative and sum to 1 (sum {value.sum():g})")


def _probabilities(name: str, value: np.ndarray, matrices: bool) -> None:
    if np.any((value < 0) | (value > 1)):
        raise ModelFileError(f"{name} must lie in [0, 1]")
    if value.ndim == 3 and not np.allclose(value.sum(axis=-1), 1.0, rtol=0, atol=1e-6):
        raise ModelFileError(f"each distribution in {name} (last axis) must sum to 1")


def _non_negative(name: str, value: np.ndarray, matrices: bool) -> None:
    if np.any(value < 0):
        raise ModelFileError(f"{name} must be non-negative")


def _positive_diagonal(name: str, value: np.ndarray, matrices: bool) -> None:
    diagonal = np.diagonal(value, axis1=-2, axis2=-1) if matrices else value
    if np.any(diagonal <= 0):
        raise ModelFileError(f"{name} must have a positive diagonal")


def _cholesky_factor(name: str, value: np.ndarray, matrices: bool) -> None:
    _positive_diagonal(name, value, matrices)
    if matrices and np.any(np.triu(value, 1)) and np.any(np.tril(value, -1)):
        raise ModelFileError(f"{name} must hold triangular Cholesky factors")


_PARAMETERS = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "probabilities_",
    "rates_",
    "variances_",
)
_VALUE_CHECKS = {
    "weights_": _on_simplex,
    "probabilities_": _probabilities,
    "rates_": _non_negative,
    "variances_": _positive_diagonal,
    "covariances_": _positive_diagonal,
    "precisions_": _positive_diagonal,
    "precisions_cholesky_": _cholesky_factor,
}


def _non_negative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelFileError(f"{name} must be an int ≥ 0, found {value!r}")


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ModelFileError(f"{name} must be True or False, found {value!r}")


def _number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ModelFileError(f"{name} must be a number, found {value!r}")


def _numbers(name: str, value: Any) -> None:
    if not isinstance(value, list):
        raise ModelFileError(f"{name} must be a list of numbers, found {type(value).__name__}")
    for i, number in enumerate(value):
        _number(f"{name}[{i}]", number)


_SCALAR_CHECKS = {
    "n_iter_": _non_negative_int,
    "n_steps_": _non_negative_int,
    "converged_": _bool,
    "lower_bound_": _number,
    "lower_bounds_": _numbers,
}


def _arrays(value: Any, where: str = "") -> Iterator[tuple[str, np.ndarray]]:
    """Every array inside ``value`` (dicts, lists, NamedTuples, dataclasses) and where."""
    stack = [(value, where)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, np.ndarray):
            yield where, node
        elif isinstance(node, dict):
            stack.extend((v, f"{where}.{k}".lstrip(".")) for k, v in node.items())
        elif isinstance(node, tuple) and hasattr(node, "_fields"):
            stack.extend((v, f"{where}.{f}") for f, v in zip(node._fields, node, strict=True))
        elif isinstance(node, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            fields = dataclasses.fields(node)
            stack.extend((getattr(node, f.name), f"{where}.{f.name}") for f in fields)


def _check_state(fitted: dict[str, Any], k: int) -> None:
    """The models in ``stepwise_state_`` have ``k`` weights and the fitted attributes' shapes."""
    state = fitted.get("stepwise_state_")
    if state is None:
        return
    if not (isinstance(state, tuple) and hasattr(state, "_fields")):
        raise ModelFileError("stepwise_state_ must be a NamedTuple")
    for i, model in enumerate(getattr(state, "models", ())):
        where = f"stepwise_state_.models[{i}]"
        weights, params = getattr(model, "weights", None), getattr(model, "params", None)
        _float_array(f"{where}.weights", weights, (k,), f"n_components={k}")
        _on_simplex(f"{where}.weights", weights)
        for field in getattr(params, "_fields", ()):
            reference = fitted.get(f"{field}_")
            if isinstance(reference, np.ndarray):
                value = getattr(params, field)
                _float_array(f"{where}.params.{field}", value, reference.shape, f"as {field}_")


def _check_posterior(fitted: dict[str, Any], covariance_type: Any, k: int, d: int) -> None:
    """A Bayesian mixture's posterior and prior values: shapes, and positive (but the mean)."""
    matrix = (d, d) if covariance_type in ("full", "tied") else (d,)
    shapes = {
        "weight_concentration_": (k,),
        "mean_precision_": (k,),
        "degrees_of_freedom_": () if covariance_type == "tied" else (k,),
        "weight_concentration_prior_": (),
        "mean_precision_prior_": (),
        "mean_prior_": (d,),
        "degrees_of_freedom_prior_": (),
        "covariance_prior_": () if covariance_type == "spherical" else matrix,
    }
    context = f"n_components={k}, n_features_in_={d}, covariance_type={covariance_type!r}"
    for name in (name for name in shapes if name in fitted):
        value = fitted[name]
        # a Dirichlet process's concentration: the two Beta parameters of each stick
        pair = isinstance(value, list | tuple) and name == "weight_concentration_"
        parts = value if pair else [value]
        if len(parts) not in (1, 2):
            raise ModelFileError(f"{name} must be an array or a pair of arrays")
        for part in parts:
            if shapes[name] == ():
                _number(name, part)
                part = np.float64(part)
                if not np.isfinite(part):
                    raise ModelFileError(f"{name} must be finite")
            else:
                _float_array(name, part, shapes[name], context)
            if name == "mean_prior_":
                continue
            diagonal = np.diagonal(part) if np.ndim(part) == 2 else part
            if np.any(diagonal <= 0):
                raise ModelFileError(f"{name} must be positive")


def _check_count_posterior(
    fitted: dict[str, Any], probabilities: tuple[int, ...], k: int, d: int
) -> None:
    """A Bayesian discrete mixture's posterior and prior arrays: shapes, and positive."""
    shapes = {
        "success_concentration_": probabilities,
        "failure_concentration_": probabilities,
        "concentration_": probabilities,
        "shape_": (k, d),
        "inverse_scale_": (k, d),
    }
    shapes |= {f"{name[:-1]}_prior_": shape[1:] for name, shape in shapes.items()}
    context = f"n_components={k}, n_features_in_={d}"
    for name in (name for name in shapes if name in fitted):
        _float_array(name, fitted[name], shapes[name], context)
        if np.any(fitted[name] <= 0):
            raise ModelFileError(f"{name} must be positive")


# -- predictions to Zarr ---------------------------------------------------------------------


def _default_name(result: Any) -> str:
    if type(result).__module__.startswith("xarray.") and result.name:
        return str(result.name)
    if str(getattr(result, "name", "")).startswith("imputed-"):  # estimator.impute(lazy data)
        return "imputed"
    if result.ndim == 2:
        in_memory = not isinstance(result, da.Array)
        return "imputed" if in_memory and not _probability_rows(result) else "responsibilities"
    return "labels" if np.dtype(result.dtype).kind in "iu" else "log_likelihood"


def _probability_rows(result: Any) -> bool:
    """Whether every row of an in-memory 2-D result is a probability vector (or NaN, a row
    left out): responsibilities, not imputed data."""
    values = np.asarray(result)
    if values.dtype.kind != "f":
        return False
    values = values[~np.isnan(values).all(axis=1)]
    inside = bool(((values >= 0) & (values <= 1)).all())
    return inside and bool(np.allclose(values.sum(axis=1), 1.0, rtol=0, atol=1e-6))


def to_zarr(
    result: Any,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """Write a (lazy) prediction to a new Zarr store, chunk by chunk, atomically.

    On a local disk the store is written under a temporary name and renamed into place once
    every chunk is written, so a failure (a bad chunk in the input, an interrupted job)
    leaves nothing behind. Object stores (``s3://``, ``gs://``, … URLs, through fsspec) have
    no rename: the store is written under a temporary prefix, then copied to its place —
    chunks first, array metadata next, the group's ``zarr.json`` last — and the temporary
    prefix removed, so the store at ``path`` opens only once it is complete. Dask arrays are
    computed chunk by chunk on the active scheduler (a cluster's workers write their own
    chunks) and never held whole; xarray objects keep their coordinates. Every chunk carries
    a CRC-32C checksum.

    Parameters
    ----------
    result : ndarray, dask.array.Array, xarray.DataArray or xarray.Dataset
        For example ``model.predict(store)``; a Dataset (``model.impute(dataset)``) is
        written whole, each variable under its own name (``name`` is then not used).
    path : str or path-like
        Local path or URL of the store to create (a group holding one array).
    name : str, optional
        Name of the array in the store (default: the DataArray's name, else ``labels``,
        ``responsibilities``, ``imputed`` or ``log_likelihood`` from the shape and dtype; an
        in-memory 2-D array is ``responsibilities`` if its rows are probability vectors).
    overwrite : bool, default=False
        Replace an existing store (only a Zarr store is ever replaced).
    storage_options : dict, optional
        fsspec options for URLs (credentials, ``client_kwargs={"endpoint_url": …}``, …).

    Returns
    -------
    str
        ``path/name``, which streamem and Zarr open directly (``path`` for a Dataset).
    """
    name = name or ("" if _is_dataset(result) else _default_name(result))
    path = os.fspath(path)
    if "://" in path:
        with remote_atomic_path(path, overwrite=overwrite, storage_options=storage_options) as tmp:
            _write_store(result, tmp, name, storage_options)
    else:
        with atomic_path(path, overwrite=overwrite, directory=True) as temporary:
            _write_store(result, str(temporary), name, None)
    return path if _is_dataset(result) else f"{path.rstrip('/')}/{name}"


def _is_dataset(result: Any) -> bool:
    return type(result).__module__.startswith("xarray.") and hasattr(result, "data_vars")


def _write_store(result: Any, url: str, name: str, storage_options: dict[str, Any] | None) -> None:
    """``result`` as the array ``name`` of a new Zarr group at ``url``."""
    import zarr

    if _is_dataset(result):  # impute(Dataset): every variable under its own name
        result.to_zarr(
            url,
            mode="w",
            consolidated=False,
            encoding={v: {"compressors": checksummed(result[v].dtype)} for v in result.data_vars},
            storage_options=storage_options,
        )
        return
    codecs = checksummed(np.dtype(result.dtype))
    if type(result).__module__.startswith("xarray."):
        result.to_dataset(name=name).to_zarr(
            url,
            mode="w",
            consolidated=False,
            encoding={name: {"compressors": codecs}},
            storage_options=storage_options,
        )
        return
    dims = ("sample", "feature" if name == "imputed" else "component")[: np.ndim(result)]
    group = zarr.open_group(url, mode="w", storage_options=storage_options)
    if isinstance(result, da.Array):
        da.to_zarr(
            result,
            url,
            component=name,
            dimension_names=dims,
            compressors=codecs,
            storage_options=storage_options,
        )
    else:
        group.create_array(name, data=np.asarray(result), dimension_names=dims, compressors=codecs)
