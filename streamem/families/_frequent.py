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
(``_compiled.pattern_ids``, a hash table; with more than :data:`HASH_LIMIT` patterns it
stops early and the chunk goes to the general path), then each block's rows are put in
buckets by pattern and each bucket's features gathered from the chunk into a core's cache.
Nothing is sorted or copied beforehand, and no Python runs per pattern and block. Where
the chunk has more than :data:`PATTERN_LIMIT` patterns, the buckets take those shared by
:data:`FREQUENT_ROWS` rows or more (profiles cut at depths with a stray gap here and there)
and the general path the other rows.

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

#: The buckets take at most this many patterns of a chunk: all of its rows when it has no
#: more and at least ``PATTERN_MIN_ROWS`` rows a pattern; else those of its patterns with
#: ``FREQUENT_ROWS`` rows or more (profiles cut at depths, a few of them with a stray gap
#: too), the other rows going to the general path. Random gaps (nearly every row its own
#: pattern) are found out after ``HASH_LIMIT`` patterns and go to the general path whole.
PATTERN_LIMIT = 32
PATTERN_MIN_ROWS = 8
FREQUENT_ROWS = 128
HASH_LIMIT = 4096
#: Rows of the chunk put in buckets at a time (their entries stay in a core's L2 cache).
PATTERN_STEP_ROWS = 4096


class PatternTable(NamedTuple):
    """The missingness patterns of a chunk's rows."""

    ids: np.ndarray  # (n,) each row's pattern
    missing: np.ndarray  # (U, D) bool: the patterns
    taken: np.ndarray  # (U,) bool: the patterns the buckets take


def pattern_table(X: np.ndarray) -> PatternTable | None:
    """The patterns of rows ``X`` and those the buckets take, or None where none is taken
    (or the compiled kernels are not available)."""
    kernels = compiled()
    if kernels is None or X.ndim != 2 or X.dtype not in FLOATS or not 0 < X.shape[1] <= 64:
        return None
    ids, keys, rows = kernels.pattern_ids(X, HASH_LIMIT)
    if not len(keys):
        return None
    if len(keys) <= PATTERN_LIMIT and len(X) >= PATTERN_MIN_ROWS * len(keys):
        taken = np.ones(len(keys), bool)
    else:
        taken = rows >= FREQUENT_ROWS
        if not taken.any() or np.count_nonzero(taken) > PATTERN_LIMIT:
            return None
    bits = np.arange(X.shape[1], dtype=np.uint64)
    missing = ((keys[:, None] >> bits[None, :]) & np.uint64(1)).astype(bool)
    return PatternTable(ids, missing, taken)


def rest(table: PatternTable) -> np.ndarray:
    """The rows whose patterns the buckets do not take (for the general path)."""
    return np.flatnonzero(~table.taken[table.ids])


def chunk_estep(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    family: Any,
    params: Any,
    weights: np.ndarray,
    reference: np.ndarray,
    table: PatternTable,
) -> tuple[Any, float] | None:
    """One model's statistics and log-likelihood of the rows of ``X`` whose patterns
    ``table`` takes, with ``reference`` the point the rows are centred on; None where a
    block's log-likelihood is not finite (infinite values: the general path names the
    row)."""
    kernels = compiled()
    chosen = np.flatnonzero(table.taken)
    coefficients, terms = family.pattern_coefficients(params, reference, table.missing[chosen])
    u_count, d = table.missing.shape
    k = len(weights)
    widths = np.zeros(u_count, np.int64)  # 0: rows the kernel leaves out
    columns = np.zeros((u_count, d), np.int64)
    sizes = np.zeros(u_count, np.int64)
    biases = np.zeros((u_count, k))
    bias = log_weights(weights)
    for u, (A, b) in zip(chosen, coefficients, strict=True):
        observed = np.flatnonzero(~table.missing[u])
        widths[u] = len(observed)
        columns[u, : len(observed)] = observed
        sizes[u] = A.shape[1]
        biases[u] = b + bias
    offsets = np.zeros(u_count + 1, np.int64)
    np.cumsum(k * sizes, out=offsets[1:])
    flat = np.zeros(offsets[-1])
    for u, (A, _) in zip(chosen, coefficients, strict=True):
        flat[offsets[u] : offsets[u + 1]] = np.ravel(A)
    counts, sums = np.zeros((u_count, k)), np.zeros(offsets[-1])
    w = NO_ROWS if sample_weight is None else np.ascontiguousarray(sample_weight, np.float64)
    log_likelihood, bad = kernels.pattern_chunk_estep(
        X,
        table.ids,
        np.ascontiguousarray(reference, np.float64),
        columns,
        widths,
        flat,
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
    parts = [sums[offsets[u] : offsets[u + 1]].reshape(k, sizes[u]) for u in chosen]
    return family.pattern_statistics(counts[chosen], parts, terms, reference), log_likelihood
