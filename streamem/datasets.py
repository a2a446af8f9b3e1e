"""Synthetic mixture data of any size, written straight to Zarr chunk by chunk.

Each chunk is drawn from its own random generator (seeded by the dataset seed and the chunk
index), so chunks are written in parallel by Dask and the same seed always gives the same
store, whatever the scheduler. Nothing larger than one chunk is ever held in memory.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import dask
import numpy as np
from dask.utils import parse_bytes

from ._atomic import atomic_path
from .families.gaussian import COVARIANCE_TYPES
from .sources import checksummed

TRUTH_ATTRIBUTE = "streamem_truth"


@dataclass(frozen=True)
class MixtureTruth:
    """The parameters a synthetic store was drawn from.

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features), or None
        Gaussian mixtures only (as ``covariances`` and ``covariance_type``).
    covariances : ndarray
        Shaped by ``covariance_type`` as in :class:`streamem.GaussianMixture`.
    covariance_type : str
    path : str
        The Zarr store: a group with arrays ``data`` (n_samples, n_features) and ``labels``.
    seed : int
    family : str
        ``gaussian``, ``bernoulli``, ``binomial``, ``multinomial`` or ``poisson``.
    parameters : dict or None
        Discrete mixtures: the component parameters by name (``probabilities``, ``rates``)
        and ``n_trials`` where it applies.
    """

    weights: np.ndarray
    means: np.ndarray | None
    covariances: np.ndarray | None
    covariance_type: str | None
    path: str
    seed: int
    family: str = "gaussian"
    parameters: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {key: plain(value) for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MixtureTruth:
        arrays = ("weights", "means", "covariances")
        data = {k: np.asarray(v) if k in arrays and v is not None else v for k, v in data.items()}
        if data.get("parameters"):
            data["parameters"] = {k: np.asarray(v) for k, v in data["parameters"].items()}
        return cls(**data)


def true_parameters(
    n_features: int,
    n_components: int,
    covariance_type: str = "full",
    seed: int = 0,
    separation: float = 4.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and covariances of a random, well-separated Gaussian mixture."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
        )
    rng = np.random.default_rng([seed, 2**31])
    d, k = n_features, n_components
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(scale=separation, size=(k, d))

    def spd() -> np.ndarray:
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        return (q * rng.uniform(0.3, 1.5, size=d)) @ q.T

    covariances = {
        "full": lambda: np.array([spd() for _ in range(k)]),
        "tied": spd,
        "diag": lambda: rng.uniform(0.3, 1.5, size=(k, d)),
        "spherical": lambda: rng.uniform(0.3, 1.5, size=k),
    }[covariance_type]()
    return weights, means, covariances


def _draw_chunk(
    index: int,
    rows: int,
    seed: int,
    weights: np.ndarray,
    means: np.ndarray,
    factors: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, index])
    labels = rng.choice(len(weights), size=rows, p=weights)
    X = np.empty((rows, means.shape[1]))
    for k, factor in enumerate(factors):
        mine = labels == k
        noise = rng.standard_normal((int(mine.sum()), means.shape[1]))
        X[mine] = noise @ factor.T + means[k] if factor.ndim == 2 else noise * factor + means[k]
    return X, labels


def _write_chunk(path: str, index: int, start: int, stop: int, seed: int, params: tuple) -> None:
    import zarr

    X, labels = _draw_chunk(index, stop - start, seed, *params)
    group = zarr.open_group(path, mode="r+")
    data = group["data"]
    data[start:stop] = X.astype(data.dtype)
    group["labels"][start:stop] = labels.astype(group["labels"].dtype)


def make_mixture(
    path: str | os.PathLike,
    n_samples: int,
    n_features: int = 2,
    n_components: int = 3,
    covariance_type: str = "full",
    dtype: str | np.dtype = "float32",
    chunk_rows: int | None = None,
    seed: int = 0,
    *,
    separation: float = 4.0,
    overwrite: bool = False,
) -> MixtureTruth:
    """Write ``n_samples`` rows of a known Gaussian mixture to a Zarr store.

    The store is a group with ``data`` (n_samples, n_features) and the true component of each
    row in ``labels``; the true parameters are also kept in the group's attributes. Chunks are
    drawn and written in parallel with Dask (the active scheduler), into a temporary store
    that is renamed into place when complete.

    Parameters
    ----------
    path : str or path-like
        Local path of the store to create.
    n_samples, n_features, n_components : int
        Size of the data and of the mixture.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
        Shape of the true covariances.
    dtype : dtype, default='float32'
        Data type of ``data``.
    chunk_rows : int, optional
        Rows per chunk (default: about 64 MiB per chunk).
    seed : int
        Seed of the parameters and of every chunk.
    separation : float
        Standard deviation of the component means (larger separates the components more).
    overwrite : bool
        Replace an existing store at ``path``.

    Returns
    -------
    MixtureTruth
    """

    dtype = np.dtype(dtype)
    if n_samples < 1 or n_features < 1 or n_components < 1:
        raise ValueError("n_samples, n_features and n_components must all be at least 1.")
    weights, means, covariances = true_parameters(
        n_features, n_components, covariance_type, seed, separation
    )
    if chunk_rows is None:
        chunk_rows = max(1, parse_bytes("64MiB") // (n_features * dtype.itemsize))
    chunk_rows = int(min(chunk_rows, n_samples))
    if covariance_type in ("full", "tied"):
        matrices = covariances if covariance_type == "full" else [covariances] * n_components
        factors = [np.linalg.cholesky(c) for c in matrices]
    else:
        spread = np.sqrt(covariances)
        factors = [
            spread[k] if covariance_type == "diag" else np.full(n_features, spread[k])
            for k in range(n_components)
        ]
    path = os.fspath(path)
    truth = MixtureTruth(weights, means, covariances, covariance_type, path, seed)
    _write_store(
        path,
        truth,
        (n_samples, n_features),
        chunk_rows,
        dtype,
        n_components,
        overwrite,
        _write_chunk,
        (weights, means, factors),
    )
    return truth


def _write_store(
    path: str,
    truth: MixtureTruth,
    shape: tuple[int, int],
    chunk_rows: int,
    dtype: np.dtype,
    n_components: int,
    overwrite: bool,
    write_chunk: Any,
    params: tuple,
) -> None:
    """Create the store's arrays under a temporary name, fill them chunk by chunk with
    ``write_chunk(path, index, start, stop, seed, params)`` in parallel, then rename."""
    import zarr

    n_samples, n_features = shape
    with atomic_path(path, overwrite=overwrite, directory=True) as temporary:
        group = zarr.open_group(str(temporary), mode="w")
        group.create_array(
            "data",
            shape=shape,
            chunks=(chunk_rows, n_features),
            dtype=dtype,
            compressors=checksummed(dtype),
            config={"write_empty_chunks": True},
            dimension_names=("sample", "feature"),
        )
        group.create_array(
            "labels",
            shape=(n_samples,),
            chunks=(chunk_rows,),
            dtype=np.int16 if n_components < 2**15 else np.int32,
            compressors=checksummed(np.int16),
            config={"write_empty_chunks": True},
            dimension_names=("sample",),
        )
        group.attrs[TRUTH_ATTRIBUTE] = json.loads(json.dumps(truth.to_json()))
        tasks = [
            dask.delayed(write_chunk, pure=True)(
                str(temporary), i, start, min(start + chunk_rows, n_samples), truth.seed, params
            )
            for i, start in enumerate(range(0, n_samples, chunk_rows))
        ]
        dask.compute(*tasks)


def load_truth(path: str | os.PathLike) -> MixtureTruth:
    """The true parameters stored by :func:`make_mixture` in ``path``."""
    import zarr

    attrs = zarr.open_group(os.fspath(path), mode="r").attrs
    if TRUTH_ATTRIBUTE not in attrs:
        raise ValueError(f"{os.fspath(path)!r} was not written by streamem.datasets.make_mixture")
    return MixtureTruth.from_json(dict(attrs[TRUTH_ATTRIBUTE]))


DISCRETE_FAMILIES = ("bernoulli", "binomial", "multinomial", "poisson")


def discrete_parameters(
    family: str, n_features: int, n_components: int, seed: int = 0, n_trials: int = 10
) -> tuple[np.ndarray, Any, Any]:
    """Weights, the family and the component parameters of a random discrete mixture."""
    from .families.bernoulli import Bernoulli, BernoulliParams
    from .families.binomial import Binomial, BinomialParams
    from .families.multinomial import Multinomial, MultinomialParams
    from .families.poisson import Poisson, PoissonParams

    if family not in DISCRETE_FAMILIES:
        raise ValueError(f"family must be one of {DISCRETE_FAMILIES}, got {family!r}")
    rng = np.random.default_rng([seed, 2**31])
    weights = rng.dirichlet(np.full(n_components, 5.0))
    shape = (n_components, n_features)
    if family == "bernoulli":
        return weights, Bernoulli(), BernoulliParams(rng.beta(0.5, 0.5, size=shape))
    if family == "binomial":
        return weights, Binomial(n_trials=n_trials), BinomialParams(rng.beta(1, 1, size=shape))
    if family == "multinomial":
        probabilities = rng.dirichlet(np.full(n_features, 0.5), size=n_components)
        return weights, Multinomial(n_trials=n_trials), MultinomialParams(probabilities)
    return weights, Poisson(), PoissonParams(rng.gamma(2.0, 5.0, size=shape))


def _write_discrete_chunk(
    path: str, index: int, start: int, stop: int, seed: int, model: tuple
) -> None:
    import zarr

    weights, family, params = model
    rng = np.random.RandomState([seed, index])
    counts = rng.multinomial(stop - start, weights)
    X = family.sample(params, counts, rng)
    labels = np.repeat(np.arange(len(weights)), counts)
    order = rng.permutation(stop - start)
    group = zarr.open_group(path, mode="r+")
    group["data"][start:stop] = X[order].astype(group["data"].dtype)
    group["labels"][start:stop] = labels[order]


def make_discrete_mixture(
    path: str | os.PathLike,
    n_samples: int,
    n_features: int = 8,
    n_components: int = 3,
    family: str = "bernoulli",
    chunk_rows: int | None = None,
    seed: int = 0,
    *,
    n_trials: int = 10,
    overwrite: bool = False,
) -> MixtureTruth:
    """Write ``n_samples`` rows of a known discrete mixture to a Zarr store.

    Like :func:`make_mixture`: a group with ``data`` (integers; 0/1 for Bernoulli) and
    ``labels``, drawn chunk by chunk in parallel, deterministic per chunk, written under a
    temporary name. Binomial rows have ``n_trials`` trials per feature and multinomial rows
    ``n_trials`` draws over ``n_features`` categories.

    Returns
    -------
    MixtureTruth
        With ``family`` and ``parameters`` (``probabilities`` or ``rates``, ``n_trials``).
    """

    if n_samples < 1 or n_features < 1 or n_components < 1:
        raise ValueError("n_samples, n_features and n_components must all be at least 1.")
    weights, family_object, params = discrete_parameters(
        family, n_features, n_components, seed, n_trials
    )
    dtype = np.dtype(np.uint8 if family == "bernoulli" else np.int32)
    if chunk_rows is None:
        chunk_rows = max(1, parse_bytes("64MiB") // (n_features * dtype.itemsize))
    chunk_rows = int(min(chunk_rows, n_samples))
    path = os.fspath(path)
    parameters = {
        **params._asdict(),
        **({"n_trials": n_trials} if family in ("binomial", "multinomial") else {}),
    }
    truth = MixtureTruth(weights, None, None, None, path, seed, family, parameters)
    _write_store(
        path,
        truth,
        (n_samples, n_features),
        chunk_rows,
        dtype,
        n_components,
        overwrite,
        _write_discrete_chunk,
        (weights, family_object, params),
    )
    return truth
