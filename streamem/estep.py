"""The chunk kernel: one pass over a chunk of rows gives each model's statistics.

For every cache-sized block of the chunk: build the family's expanded features ``F`` (P, B)
once, then for each model ``log p = A F + b + log w`` (one GEMM, (K, B)), normalise with a
log-sum-exp over components, and accumulate ``Σ r`` and ``r Fᵀ`` (one more GEMM). Several
models (restarts, a sweep over ``K``) share the same read of the chunk and the same features.

The functions here are pure and module-level: engines ship them to threads, processes or
cluster workers together with the small parameter values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import dask
import numpy as np

from ._validation import check_weight_values, row_range
from .families._base import Mixture, block_rows, log_weights
from .sources import Rows, labelled

# Responsibilities below this are set to zero: subnormal numbers make the GEMMs slow.
FLUSH_BELOW = 1e-300


class EStepResult(NamedTuple):
    """What a pass over some rows gives for a tuple of models.

    Attributes
    ----------
    stats : tuple
        The expected sufficient statistics of each model.
    log_likelihood : ndarray of shape (n_models,)
        ``Σ w log p(x)`` over the rows, for each model.
    weight : float
        ``Σ w``, the total sample weight of the rows.
    n_rows : int
        Number of rows.
    """

    stats: tuple
    log_likelihood: np.ndarray
    weight: float
    n_rows: int


def non_finite_error(X: np.ndarray, row_offset: int) -> ValueError:
    finite = np.isfinite(X).all(axis=1) if X.dtype.kind == "f" else np.ones(len(X), bool)
    if finite.all():
        return ValueError(
            f"the log-likelihood of {row_range(row_offset, 0, len(X))} is not finite although "
            "every value is: some values are too large to square in float64. Rescale the "
            "features (for example to unit variance)."
        )
    bad = np.flatnonzero(~finite)
    return ValueError(
        f"Input contains NaN or infinity: {len(bad)} row(s) in "
        f"{row_range(row_offset, 0, len(X))}, the first at row {row_offset + bad[0]}. "
        "Remove or impute those rows before fitting."
    )


def invalid_block_error(family: Any, block: np.ndarray, problem: str, offset: int) -> ValueError:
    """The family's ``problem`` with a block of rows, naming the first invalid row (found by
    bisection, on this error path only)."""
    low, high = 0, len(block)  # block[low:high] holds an invalid row
    while high - low > 1:
        middle = (low + high) // 2
        if family.check_block(block[low:middle]) is not None:
            high = middle
        else:
            low = middle
    return ValueError(
        f"{problem} in {row_range(offset, 0, len(block))}, the first at row {offset + low}"
    )


def normalize_log_prob(log_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-sum-exp over components and responsibilities, from ``log_prob`` of shape (K, B).

    ``log_prob`` is overwritten with the responsibilities. Equivalent to
    ``scipy.special.logsumexp(log_prob, axis=0)`` followed by ``exp(log_prob - lse)``, with a
    single exponentiation; responsibilities below ``FLUSH_BELOW`` are flushed to zero.
    Columns that are all -inf or contain NaN give a non-finite log-sum-exp (callers raise on
    it). Call under ``np.errstate(all="ignore")``.
    """
    peak = log_prob.max(axis=0)
    if not np.isfinite(peak).all():
        peak[~np.isfinite(peak)] = 0.0
    log_prob -= peak
    np.exp(log_prob, out=log_prob)
    total = log_prob.sum(axis=0)
    log_prob /= total
    norm = np.log(total)
    norm += peak
    log_prob[log_prob < FLUSH_BELOW] = 0.0
    return norm, log_prob


def chunk_estep(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    models: tuple[Mixture, ...],
    row_offset: int = 0,
) -> EStepResult:
    """Expected sufficient statistics and log-likelihood of one chunk for each model.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        The chunk, any real or integer dtype; blocks are converted to float64 one at a time.
    sample_weight : ndarray of shape (n_rows,) or None
        Row weights (None: all ones).
    models : tuple of Mixture
        The models to evaluate; they share this read of the chunk.
    row_offset : int
        Index of the chunk's first row in the whole data, used in error messages.

    Returns
    -------
    EStepResult
    """
    X = np.asarray(X)
    n = X.shape[0]
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        check_weight_values(sample_weight, row_offset)
    weight = float(n if sample_weight is None else sample_weight.sum())

    references: dict[Any, Any] = {}
    terms = []  # per model: (family, A, b, log weights)
    for model in models:
        family = model.family
        key = family.feature_key
        if key not in references:
            references[key] = family.reference(X)
        A, b = family.coefficients(model.params, references[key])
        terms.append((family, A, (b + log_weights(model.weights))[:, None]))

    counts = [np.zeros(A.shape[0]) for _, A, _ in terms]
    sums = [np.zeros(A.shape) for _, A, _ in terms]
    log_likelihood = np.zeros(len(models))
    step = min(
        max(n, 1),
        block_rows(
            max(A.shape[1] for _, A, _ in terms),
            sum(A.shape[0] for _, A, _ in terms),
            X.shape[1],
        ),
    )
    # work arrays reused by every block: per-block allocations cost page faults where freed
    # memory goes back to the system at once (dask.distributed workers do that)
    feature_buffers = {family.feature_key: np.empty((A.shape[1], step)) for family, A, _ in terms}
    log_prob_buffers = [np.empty((A.shape[0], step)) for _, A, _ in terms]
    # Non-finite values (NaN rows, overflow) make the log-likelihood non-finite; that is
    # checked after every block and raised with the rows, so the warnings are not needed.
    with np.errstate(all="ignore"):
        for start in range(0, n, step):
            stop = min(start + step, n)
            block = X[start:stop]
            width = stop - start
            features: dict[Any, tuple[np.ndarray, np.ndarray | None]] = {}
            for family, _, _ in terms:
                key = family.feature_key
                if key not in features:
                    problem = family.check_block(block)
                    if problem is not None:
                        raise invalid_block_error(family, block, problem, row_offset + start)
                    features[key] = (
                        family.features(
                            block, references[key], out=feature_buffers[key][:, :width]
                        ),
                        family.base_log_measure(block),
                    )
            w = None if sample_weight is None else sample_weight[start:stop]
            for i, (family, A, b) in enumerate(terms):
                F, h = features[family.feature_key]
                log_prob = np.matmul(A, F, out=log_prob_buffers[i][:, :width])
                log_prob += b
                norm, resp = normalize_log_prob(log_prob)
                if h is not None:
                    norm += h
                if w is None:
                    log_likelihood[i] += norm.sum()
                else:
                    log_likelihood[i] += norm @ w
                    resp *= w
                counts[i] += resp.sum(axis=1)
                sums[i] += (F @ resp.T).T
            if not np.isfinite(log_likelihood).all():
                raise non_finite_error(block, row_offset + start)

    stats = tuple(
        family.finalize(c, s, references[family.feature_key])
        for (family, _, _), c, s in zip(terms, counts, sums, strict=True)
    )
    return EStepResult(stats, log_likelihood, weight, n)


def merge_results(families: tuple, *results: EStepResult) -> EStepResult:
    """Merge E-step results of disjoint rows, left to right (one step of a tree-reduce).

    ``families`` gives, for each model, the family whose ``merge`` combines its statistics.
    """
    stats, log_likelihood, weight, n_rows = results[0]
    for other in results[1:]:
        stats = tuple(
            family.merge(a, b) for family, a, b in zip(families, stats, other.stats, strict=True)
        )
        log_likelihood = log_likelihood + other.log_likelihood
        weight += other.weight
        n_rows += other.n_rows
    return EStepResult(stats, log_likelihood, weight, n_rows)


def tree_merge(families: tuple, results: list[EStepResult], split_every: int) -> EStepResult:
    """Merge a list of results in memory with the same tree a Dask tree-reduce would use."""
    while len(results) > 1:
        results = [
            merge_results(families, *results[i : i + split_every])
            for i in range(0, len(results), split_every)
        ]
    return results[0]


def _log_prob(X: np.ndarray, family: Any, params: Any, bias: np.ndarray, row_offset: int):
    """``A F + b + bias + h`` for every component and row, (K, n_rows), block by block."""
    X = np.asarray(X)
    n = X.shape[0]
    reference = family.reference(X)
    A, b = family.coefficients(params, reference)
    out = np.empty((A.shape[0], n))
    if n == 0:
        return out
    b = (b + bias)[:, None]
    step = min(n, block_rows(A.shape[1], A.shape[0], X.shape[1]))
    buffer = np.empty((A.shape[1], step))
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = X[start:stop]
        problem = family.check_block(block)
        if problem is not None:
            raise invalid_block_error(family, block, problem, row_offset + start)
        with np.errstate(all="ignore"):  # non-finite rows are raised on by the callers
            F = family.features(block, reference, out=buffer[:, : stop - start])
            np.matmul(A, F, out=out[:, start:stop])
            out[:, start:stop] += b
            h = family.base_log_measure(block)
            if h is not None:
                out[:, start:stop] += h
    return out


def component_log_prob(family: Any, params: Any, X: np.ndarray) -> np.ndarray:
    """Log-density of each row of ``X`` under each component, shape (N, K)."""
    return _log_prob(X, family, params, 0.0, 0).T


def weighted_log_prob(X: np.ndarray, model: Mixture, row_offset: int = 0) -> np.ndarray:
    """``log w_k + log p_k(x)`` for every component and row, shape (K, n_rows), block-wise."""
    return _log_prob(X, model.family, model.params, log_weights(model.weights), row_offset)


def chunk_log_prob_resp(
    X: np.ndarray, model: Mixture, row_offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log-likelihood (n_rows,) and responsibilities (n_rows, K) of one chunk."""
    X = np.asarray(X)
    log_prob = weighted_log_prob(X, model, row_offset)
    with np.errstate(all="ignore"):
        norm, resp = normalize_log_prob(log_prob)
    if not np.all(np.isfinite(norm)):
        raise non_finite_error(X, row_offset)
    return norm, resp.T


def chunk_predict(X: np.ndarray, model: Mixture, row_offset: int = 0) -> np.ndarray:
    """Most probable component of each row of a chunk."""
    return chunk_log_prob_resp(X, model, row_offset)[1].argmax(axis=1)


def chunk_predict_proba(X: np.ndarray, model: Mixture, row_offset: int = 0) -> np.ndarray:
    """Responsibilities of each component for each row of a chunk."""
    return np.ascontiguousarray(chunk_log_prob_resp(X, model, row_offset)[1])


def chunk_score_samples(X: np.ndarray, model: Mixture, row_offset: int = 0) -> np.ndarray:
    """Log-likelihood of each row of a chunk under the mixture."""
    return chunk_log_prob_resp(X, model, row_offset)[0]


RowKernel = Callable[[np.ndarray, Mixture, int], np.ndarray]


def _rows_task(
    block: np.ndarray, kernel: RowKernel, model: Mixture, label: str, block_info=None
) -> np.ndarray:
    offset = block_info[0]["array-location"][0][0] if block_info else 0
    with labelled(label):
        return kernel(block, model, offset)


def map_rows(
    rows: Rows, kernel: RowKernel, model: Mixture, n_columns: int | None, dtype: Any, name: str
) -> Any:
    """``kernel(chunk, model, row_offset)`` over every chunk of ``rows``: lazy for lazy rows.

    The result has one value (``n_columns`` None) or ``n_columns`` values per row, and is an
    xarray object called ``name`` when the rows came from one.
    """
    data = rows.data
    columns = None if n_columns is None else "component"
    if not rows.lazy:
        with labelled(rows.label):
            return rows.wrap(kernel(data, model, 0), name, columns)
    shared = dask.delayed(model, traverse=False, pure=True)
    if n_columns is None:
        shape: dict[str, Any] = {"drop_axis": 1, "meta": np.empty(0, dtype)}
    else:
        shape = {"chunks": (data.chunks[0], (n_columns,)), "meta": np.empty((0, 0), dtype)}
    result = data.map_blocks(_rows_task, kernel, shared, rows.label, dtype=dtype, **shape)
    return rows.wrap(result, name, columns)
