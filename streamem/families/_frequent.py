"""The E-step of a chunk whose rows share a few missingness patterns.

Profiles cut at a few depths, sensors that drop out together, bands missing from some
scenes: the rows of a chunk then have a handful of patterns, each shared by thousands of
rows. Under one component a pattern's observed entries are Gaussian (with the Schur
complement of the precision as theirs), so each pattern's rows take the complete-data
E-step of its observed entries — one GEMM over their expanded features for the
log-densities and one for the moments — and the moments become the complete statistics
once per pattern and chunk (Ghahramani & Jordan 1994; Little & Rubin 2002, ch. 11).

Here that is one compiled call per model over the chunk in its own order
(``_compiled.pattern_chunk_estep``): a pass numbers the rows' patterns
(``_compiled.pattern_ids``, a hash table of at most :data:`PATTERN_LIMIT` patterns; with
more it stops early and the chunk goes to the general path), then each block's rows are put
in buckets by pattern and each bucket's features gathered from the chunk into a core's
cache. Nothing is sorted or copied beforehand, and no Python runs per pattern and block.

A family offers it with ``few_patterns`` (true), ``pattern_coefficients(params, reference,
missing)`` (for each pattern, ``A_u`` (K, P_u) over
the features ``[x'_o, x'_i x'_j (i ≤ j)]`` of its observed entries and ``b_u`` (K,), and what
the statistics need) and ``pattern_statistics(counts, sums, terms, reference)``: full and
tied Gaussians. (Diagonal and spherical Gaussians keep their masked features, one GEMM in
the chunk's order, which cost less than the buckets' gathers and small GEMMs.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._kernels import FLUSH_BELOW, NO_ROWS, compiled
from ._base import FLOATS, cached_block_rows, log_weights

#: Chunks with more distinct patterns take the general path (random gaps: nearly every row
#: its own pattern), as do those with fewer than ``PATTERN_MIN_ROWS`` rows a pattern.
PATTERN_LIMIT = 32
PATTERN_MIN_ROWS = 8
#: Rows of the chunk put in buckets at a time (their entries stay in a core's L2 cache).
PATTERN_STEP_ROWS = 4096


class PatternTable(NamedTuple):
    """The missingness patterns of a chunk's rows."""

    ids: np.ndarray  # (n,) each row's pattern
    missing: np.ndarray  # (U, D) bool: the patterns
    rows: np.ndarray  # (U,) rows of each


def pattern_table(X: np.ndarray) -> PatternTable | None:
    """The patterns of rows ``X``, or None where they are too many for this path (or the
    compiled kernels are not available)."""
    kernels = compiled()
    if kernels is None or X.ndim != 2 or X.dtype not in FLOATS or not 0 < X.shape[1] <= 64:
        return None
    ids, keys, rows = kernels.pattern_ids(X, PATTERN_LIMIT)
    if not len(keys) or len(X) < PATTERN_MIN_ROWS * len(keys):
        return None
    bits = np.arange(X.shape[1], dtype=np.uint64)
    missing = ((keys[:, None] >> bits[None, :]) & np.uint64(1)).astype(bool)
    return PatternTable(ids, missing, rows)


def chunk_estep(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    family: Any,
    params: Any,
    weights: np.ndarray,
    reference: np.ndarray,
    table: PatternTable,
) -> tuple[Any, float] | None:
    """One model's statistics and log-likelihood of rows ``X`` whose patterns are
    ``table``, with ``reference`` the point the rows are centred on; None where a block's
    log-likelihood is not finite (infinite values: the general path names the row)."""
    kernels = compiled()
    coefficients, terms = family.pattern_coefficients(params, reference, table.missing)
    u_count, d = table.missing.shape
    k = len(weights)
    widths = np.zeros(u_count, np.int64)
    columns = np.zeros((u_count, d), np.int64)
    for u, missing in enumerate(table.missing):
        observed = np.flatnonzero(~missing)
        widths[u] = len(observed)
        columns[u, : len(observed)] = observed
    sizes = [A.shape[1] for A, _ in coefficients]
    offsets = np.zeros(u_count + 1, np.int64)
    np.cumsum([k * p for p in sizes], out=offsets[1:])
    flat = np.concatenate([np.ravel(A) for A, _ in coefficients]) if offsets[-1] else np.zeros(0)
    bias = log_weights(weights)
    biases = np.stack([b + bias for _, b in coefficients])
    counts, sums = np.zeros((u_count, k)), np.zeros(offsets[-1])
    w = NO_ROWS if sample_weight is None else np.ascontiguousarray(sample_weight, np.float64)
    log_likelihood, bad = kernels.pattern_chunk_estep(
        X,
        table.ids,
        np.ascontiguousarray(reference, np.float64),
        columns,
        widths,
        np.ascontiguousarray(flat, np.float64),
        offsets,
        biases,
        w,
        PATTERN_STEP_ROWS,
        np.array([cached_block_rows(p) for p in sizes], np.int64),
        FLUSH_BELOW,
        counts,
        sums,
    )
    if bad >= 0:
        return None
    parts = [sums[offsets[u] : offsets[u + 1]].reshape(k, p) for u, p in enumerate(sizes)]
    return family.pattern_statistics(counts, parts, terms, reference), log_likelihood
