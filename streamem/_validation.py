"""Checks of parameters and inputs, with messages that say what is wrong and how to fix it."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np


def check_int(name: str, value: Any, minimum: int, owner: str) -> int:
    """``value`` as an int ≥ ``minimum``, or a ValueError naming the parameter."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{owner}: {name} must be an integer ≥ {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer ≥ {minimum}, got {value}.")
    return int(value)


def check_float(
    name: str,
    value: Any,
    owner: str,
    *,
    low: float = -np.inf,
    high: float = np.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float in the interval, or a ValueError naming the parameter."""
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    interval = f"{lo}{low:g}, {high:g}{hi}"
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: {name} must be a number in {interval}, got {value!r}.")
    value = float(value)
    ok = (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high
    )
    if not ok or np.isnan(value):
        raise ValueError(f"{owner}: {name} must be a number in {interval}, got {value!r}.")
    return value


def check_chunk_size(value: Any, owner: str) -> int | str | None:
    """``chunk_size`` as rows (an int ≥ 1) or bytes (a string such as "64MiB"), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        return check_int("chunk_size", value, 1, owner)
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(value)
    except ValueError:
        size = 0
    if size <= 0:
        raise ValueError(
            f"{owner}: chunk_size must be a number of rows (an integer ≥ 1) or a positive size "
            f"in bytes such as '64MiB'; got {value!r}."
        )
    return value


def check_option(name: str, value: Any, options: Sequence[str], owner: str) -> str:
    """``value`` if it is one of ``options``, or a ValueError listing them."""
    if value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ValueError(f"{owner}: {name} must be one of {listed}; got {value!r}.")
    return value


def check_array_shape(
    name: str, value: Any, shape: tuple[int, ...], owner: str, hint: str = ""
) -> np.ndarray:
    """``value`` as a finite float64 array of exactly ``shape``."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        suffix = f" {hint}" if hint else ""
        raise ValueError(f"{owner}: {name} must have shape {shape}, got {array.shape}.{suffix}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{owner}: {name} contains NaN or infinity.")
    return array


def check_weights_init(weights: Any, n_components: int, owner: str) -> np.ndarray:
    """Mixture weights: shape (K,), non-negative, summing to one (to 1e-6)."""
    weights = check_array_shape("weights_init", weights, (n_components,), owner)
    if np.any(weights < 0) or np.any(weights > 1):
        raise ValueError(
            f"{owner}: weights_init must lie in [0, 1]; got min {weights.min():.6g}, max "
            f"{weights.max():.6g}."
        )
    if not np.allclose(weights.sum(), 1.0, rtol=0, atol=1e-6):
        raise ValueError(
            f"{owner}: weights_init must sum to 1, got {weights.sum():.8g}. Divide it by its sum."
        )
    return weights


def check_sample_weight(sample_weight: Any, n_rows: int) -> np.ndarray:
    """In-memory sample weights: shape (n_rows,), finite, non-negative, not all zero."""
    weights = np.asarray(sample_weight)
    if weights.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be numeric, got dtype {weights.dtype}.")
    weights = weights.astype(np.float64, copy=False)
    if weights.ndim == 0:
        weights = np.full(n_rows, float(weights))
    if weights.shape != (n_rows,):
        raise ValueError(
            f"sample_weight must have shape ({n_rows},) to match the rows of X, got "
            f"{weights.shape}."
        )
    check_weight_values(weights)
    if weights.sum() <= 0:
        raise ValueError("sample_weight sums to zero: at least one row must have weight > 0.")
    return weights


def row_range(offset: int, start: int, stop: int) -> str:
    """'rows a–b' (inclusive, 0-based) for local rows [start, stop) of a chunk at ``offset``."""
    return f"rows {offset + start}–{offset + stop - 1}"


def check_weight_values(weights: np.ndarray, row_offset: int = 0) -> None:
    """Raise a ValueError naming the rows if any weight is negative or not finite."""
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"sample_weight must be finite and non-negative; found {float(weights[first])!r} at "
            f"row {row_offset + first} (and {int(bad.sum()) - 1} more in "
            f"{row_range(row_offset, 0, len(weights))}). Fix or drop those weights."
        )
