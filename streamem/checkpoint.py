"""Checkpoints: a fit's complete state after an iteration, to continue it after a crash.

A checkpoint holds the driver's progress (models, histories, running statistics...), the
random generator's state and the initialisation sample, next to a *fingerprint* of the
estimator's configuration and of the data: where they came from, their shape, dtype and
chunking, and a digest of their first and last rows (which reads at most two chunks), so
that other data of the same shape are refused rather than continued. Continuing from it replays
exactly the computations an uninterrupted fit would have made, so the final model is the same
to the last bit. Files are written atomically with :mod:`streamem.io` (JSON + arrays, never
pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from .io import ModelFileError, encode, is_url, read_archive, write_archive

# Parameters that do not change the computation: a checkpoint may be resumed with other values.
IGNORED_PARAMETERS = ("verbose", "verbose_interval", "callback", "checkpoint", "persist")


# Rows at each end of the data that the digest covers.
DIGEST_ROWS = 2
DATA_KEYS = ("n_rows", "n_features", "dtype", "chunks", "digest")


def data_digest(engine: Any) -> str:
    """SHA-256 of the first and last rows of the data (and their weights), as float64."""
    n = engine.n_rows
    indices = np.unique(np.r_[0 : min(DIGEST_ROWS, n), max(n - DIGEST_ROWS, 0) : n])
    rows, weights = engine.sample(indices)
    digest = hashlib.sha256(np.ascontiguousarray(rows, dtype=np.float64).tobytes())
    if weights is not None:
        digest.update(np.ascontiguousarray(weights, dtype=np.float64).tobytes())
    return digest.hexdigest()


def fingerprint(estimator: Any, engine: Any, source: str = "the data") -> dict[str, Any]:
    """What must be equal for a checkpoint to be continued: configuration and data.

    ``source`` names the data (a store and array, a file...); it is reported when the data
    differ, but the same data read from elsewhere still match.
    """
    params = {
        k: v
        for k, v in estimator.get_params(deep=False).items()
        if k not in IGNORED_PARAMETERS and not isinstance(v, np.random.RandomState)
    }
    arrays: dict[str, np.ndarray] = {}
    encoded = encode(params, arrays, "params")["__dict__"]
    return {
        "estimator": type(estimator).__name__,
        "params": json.loads(json.dumps(encoded, default=str)),
        "arrays": {k: np.asarray(v).tolist() for k, v in arrays.items()},
        "source": source,
        "n_rows": int(engine.n_rows),
        "n_features": int(engine.n_features),
        "dtype": str(engine.dtype),
        "chunks": [int(c) for c in engine.chunk_rows],
        "digest": data_digest(engine),
    }


class Checkpoint:
    """A checkpoint file for one fit.

    Parameters
    ----------
    path : str or path-like
        The file: a local path, or a URL (``s3://…``) written through fsspec in one upload
        per iteration.
    expected : dict
        The :func:`fingerprint` of the fit about to run.
    storage_options : dict, optional
        fsspec options when ``path`` is a URL (otherwise fsspec's configuration applies,
        e.g. the ``FSSPEC_S3_*`` environment variables).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        expected: dict[str, Any],
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.expected = expected
        self.storage_options = storage_options

    def _remote(self) -> tuple[Any, str]:
        import fsspec

        return fsspec.core.url_to_fs(self.path, **(self.storage_options or {}))

    def exists(self) -> bool:
        if is_url(self.path):
            fs, key = self._remote()
            fs.invalidate_cache(key)
            return bool(fs.isfile(key))
        return os.path.exists(self.path)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is no checkpoint yet.

        Raises
        ------
        ValueError
            If the checkpoint belongs to another configuration or data shape.
        ModelFileError
            If the file is damaged or not a checkpoint.
        """
        if not self.exists():
            return None
        kind, content = read_archive(self.path, storage_options=self.storage_options)
        if kind != "checkpoint":
            raise ModelFileError(f"{self.path!r} holds a {kind}, not a checkpoint")
        expected_keys = {"fingerprint", "algorithm", "progress", "rng", "sample"}
        if not isinstance(content, dict) or set(content) != expected_keys:
            raise ModelFileError(f"{self.path!r} is not a complete streamem checkpoint")
        saved = content["fingerprint"]
        if saved != self.expected:
            raise ValueError(
                f"the checkpoint {self.path!r} belongs to another fit: "
                f"{_differences(saved, self.expected)} differ. Use a new checkpoint path, or "
                "delete this file to start over."
            )
        return content

    def save(self, algorithm: str, progress: Any, rng: np.random.RandomState, sample: Any) -> None:
        """Write the state after an iteration (atomically: the old file stays until done)."""
        write_archive(
            self.path,
            "checkpoint",
            {
                "fingerprint": self.expected,
                "algorithm": algorithm,
                "progress": progress,
                "rng": list(rng.get_state()),
                "sample": sample,
            },
            overwrite=True,
            storage_options=self.storage_options,
        )

    def remove(self) -> None:
        if not self.exists():
            return
        if is_url(self.path):
            fs, key = self._remote()
            fs.rm_file(key)
        else:
            os.remove(self.path)


def _differences(saved: dict[str, Any], expected: dict[str, Any]) -> str:
    """What differs between two fingerprints, in words."""
    details = []
    for key in ("estimator", "params", "arrays", *DATA_KEYS):
        old, new = saved.get(key), expected.get(key)
        if old == new:
            continue
        if key == "params":
            old, new = old or {}, new or {}
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            details.append(f"parameters {', '.join(changed)}")
        elif key == "digest":
            details.append(
                f"the data (their first and last rows; saved from {saved.get('source')}, now "
                f"{expected.get('source')})"
            )
        elif key in DATA_KEYS:
            details.append(f"{key} (saved {_short(old)}, now {_short(new)})")
        else:
            details.append(key)
    return "; ".join(details)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) < 40 else text[:37] + "..."
