"""The chunk kernel: one pass over a chunk of rows gives each model's statistics.

For every cache-sized block of the chunk: build the family's expanded features ``F`` (P, B)
once, then for each model ``log p = A F + b + log w`` (one GEMM, (K, B)), normalise with a
log-sum-exp over components, and accumulate ``Σ r`` and ``r Fᵀ`` (one more GEMM). Several
models (restarts, a sweep over ``K``) share the same read of the chunk and the same features.

The functions here are pure and module-level: engines ship them to threads, processes or
cluster workers together with the small parameter values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NamedTuple

import dask
import numpy as np

from ._kernels import FLUSH_BELOW, NO_ROWS, compiled
from ._validation import check_weight_values, row_range
from .families import _frequent
from .families._base import (
    FLOATS,
    Mixture,
    add_statistics,
    block_rows,
    compiled_chunk_estep,
    log_weights,
)
from .families._missing import missing_policy, nan_hint, supports_missing
from .sources import Rows, labelled


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


def non_finite_error(X: np.ndarray, row_offset: int, family: Any = None) -> ValueError:
    finite = np.isfinite(X).all(axis=1) if X.dtype.kind == "f" else np.ones(len(X), bool)
    if finite.all():
        return ValueError(
            f"the log-likelihood of {row_range(row_offset, 0, len(X))} is not finite although "
            "every value is: some values are too large to square in float64. Rescale the "
            "features (for example to unit variance)."
        )
    bad = np.flatnonzero(~finite)
    if not np.isnan(X[bad]).any():
        return infinite_error(X, row_offset)
    return ValueError(
        f"Input contains NaN or infinity: {len(bad)} row(s) in "
        f"{row_range(row_offset, 0, len(X))}, the first at row {row_offset + bad[0]}. "
        f"Remove or impute those rows before fitting. {nan_hint(family=family)}"
    )


def infinite_error(X: np.ndarray, row_offset: int) -> ValueError:
    """The error for infinite values, which are never missing values."""
    bad = np.flatnonzero(np.isinf(X).any(axis=1))
    return ValueError(
        f"Input contains infinity: {len(bad)} row(s) in {row_range(row_offset, 0, len(X))}, "
        f"the first at row {row_offset + bad[0]}. Infinite values are not missing values (only "
        "NaN is): remove or replace them."
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
    hint = ""
    if block.dtype.kind == "f" and np.isnan(block[low]).any():
        hint = f". {nan_hint(family=family)}"
    return ValueError(
        f"{problem} in {row_range(offset, 0, len(block))}, the first at row {offset + low}{hint}"
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


def weigh_responsibilities(
    kernels: ModuleType | None,
    log_prob: np.ndarray,
    bias: np.ndarray,
    h: np.ndarray | None,
    w: np.ndarray | None,
    counts: np.ndarray,
    rows: np.ndarray | None = None,
) -> float:
    """``log_prob + bias`` (K, n) becomes the responsibilities times the row weights ``w``,
    in place; ``counts`` (K,) gets their sums; returns ``Σ w (log p(x) + h)``.

    With ``kernels`` (:func:`streamem._kernels.compiled`), three calls that release the GIL
    (``rows``, (2, ≥ n), is their work space); without, :func:`normalize_log_prob` and NumPy,
    the reference.
    """
    if kernels is None:
        log_prob += bias[:, None]
        norm, resp = normalize_log_prob(log_prob)
        if h is not None:
            norm += h
        if w is None:
            log_likelihood = norm.sum()
        else:
            log_likelihood = norm @ w
            resp *= w
        counts[:] = resp.sum(axis=1)
        return float(log_likelihood)
    n = log_prob.shape[1]
    rows = np.empty((2, n)) if rows is None else rows
    peak, norm = rows[0, :n], rows[1, :n]
    kernels.shift_by_peak(log_prob, bias, peak)
    np.exp(log_prob, out=log_prob)
    return kernels.responsibilities(
        log_prob,
        peak,
        NO_ROWS if h is None else h,
        NO_ROWS if w is None else w,
        norm,
        counts,
        FLUSH_BELOW,
    )


def _rows(buffer: np.ndarray, width: int) -> np.ndarray:
    """A (rows, ≤ step) work array's first ``rows × width`` entries as a contiguous
    (rows, width) array (so that BLAS takes a shorter last block without a copy)."""
    rows = buffer.shape[0]
    return buffer.reshape(-1)[: rows * width].reshape(rows, width)


def _compiled_features(family: Any, X: np.ndarray) -> int | None:
    """The code of ``gaussian_features`` that builds the family's features of rows ``X``,
    where the chunk kernel takes the whole chunk in one compiled call; else None."""
    code = getattr(family, "compiled_features", None)
    if code is None or X.dtype not in FLOATS or X.ndim != 2:
        return None
    return code


class _Missing(Exception):
    """A block has NaN and the models marginalise or drop them: the chunk is done again by
    the missing-value path."""


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
    # NaN in a block shows as an invalid block or a non-finite log-likelihood; only then is
    # the chunk done again by the missing-value path, so data without NaN cost nothing more
    policy = _pass_policy(models)
    if policy != "error" and _has_nan(X[:REFERENCE_ROWS]):  # skip a doomed first attempt
        return _chunk_estep_missing(X, sample_weight, models, row_offset, policy)
    n = X.shape[0]
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        check_weight_values(sample_weight, row_offset)
    weight = float(n if sample_weight is None else sample_weight.sum())

    references: dict[Any, Any] = {}
    terms = []  # per model: (family, A, b + log weights)
    for model in models:
        family = model.family
        key = family.feature_key
        if key not in references:
            references[key] = family.reference(X)
        A, b = family.coefficients(model.params, references[key])
        terms.append((family, A, b + log_weights(model.weights)))

    # the models of a family with compiled features: the whole chunk in one compiled call
    # per family, without the GIL; the others block by block
    kernels = compiled()
    together: dict[Any, list[int]] = {}
    blocks = []
    for i, (family, _, _) in enumerate(terms):
        if kernels is not None and _compiled_features(family, X) is not None:
            together.setdefault(family, []).append(i)
        else:
            blocks.append(i)
    counts = [np.zeros(A.shape[0]) for _, A, _ in terms]
    sums = [np.zeros(A.shape) for _, A, _ in terms]
    log_likelihood = np.zeros(len(models))

    def chosen_models(chosen: list[int]) -> tuple[list, list, list]:
        return [terms[i] for i in chosen], [counts[i] for i in chosen], [sums[i] for i in chosen]

    try:
        for family, chosen in together.items():
            reference = references[family.feature_key]
            log_likelihood[chosen] = _compiled_estep(
                X, sample_weight, family, reference, *chosen_models(chosen), row_offset, policy
            )
        if blocks:
            log_likelihood[blocks] = _blocks_estep(
                kernels, X, sample_weight, references, *chosen_models(blocks), row_offset, policy
            )
    except _Missing:
        return _chunk_estep_missing(X, sample_weight, models, row_offset, policy)

    stats = tuple(
        family.finalize(c, s, references[family.feature_key])
        for (family, _, _), c, s in zip(terms, counts, sums, strict=True)
    )
    if policy == "marginalize":  # one statistics layout for chunks with and without NaN
        stats = tuple(_promoted(model.family, s) for model, s in zip(models, stats, strict=True))
    return EStepResult(stats, log_likelihood, weight, n)


def _compiled_estep(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    family: Any,
    reference: np.ndarray,
    terms: list,
    counts: list[np.ndarray],
    sums: list[np.ndarray],
    row_offset: int,
    policy: str,
) -> np.ndarray:
    """The chunk in one compiled call (``gaussian_chunk_estep``) for models of one family
    with compiled features: their log-likelihoods, their summed statistics added to
    ``counts`` and ``sums``. Blocks hold features that stay in a core's cache, whatever the
    number of models, so a model's numbers do not depend on those it shares the pass with."""
    log_likelihood, bad, step = compiled_chunk_estep(
        X,
        reference,
        _compiled_features(family, X),
        [A for _, A, _ in terms],
        [b for _, _, b in terms],
        sample_weight,
        counts,
        sums,
    )
    if bad >= 0:
        block = X[bad : bad + step]
        if policy != "error" and _has_nan(block):
            raise _Missing
        raise non_finite_error(block, row_offset + bad, family)
    return log_likelihood


def _blocks_estep(
    kernels: ModuleType | None,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    references: dict,
    terms: list,
    counts: list[np.ndarray],
    sums: list[np.ndarray],
    row_offset: int,
    policy: str,
) -> np.ndarray:
    """The chunk block by block, each step a NumPy or compiled call: the models'
    log-likelihoods, their summed statistics added to ``counts`` and ``sums``."""
    n = len(X)
    log_likelihood = np.zeros(len(terms))
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
    row_buffers = np.empty((2, step))
    count_buffers = [np.empty(A.shape[0]) for _, A, _ in terms]
    # Non-finite values (NaN rows, overflow) make the log-likelihood non-finite; that is
    # checked after every block and raised with the rows, so the warnings are not needed.
    with np.errstate(all="ignore"):
        for start in range(0, n, step):
            stop = min(start + step, n)
            block = X[start:stop]
            width = stop - start
            if width < step:  # the last, shorter block: contiguous views of the buffers
                feature_buffers = {k: _rows(v, width) for k, v in feature_buffers.items()}
                log_prob_buffers = [_rows(v, width) for v in log_prob_buffers]
            features: dict[Any, tuple[np.ndarray, np.ndarray | None]] = {}
            for family, _, _ in terms:
                key = family.feature_key
                if key not in features:
                    problem = family.check_block(block)
                    if problem is not None:
                        if policy != "error" and _has_nan(block):
                            raise _Missing
                        raise invalid_block_error(family, block, problem, row_offset + start)
                    features[key] = (
                        family.features(block, references[key], out=feature_buffers[key]),
                        family.base_log_measure(block),
                    )
            w = None if sample_weight is None else sample_weight[start:stop]
            finite = True
            for i, (family, A, b) in enumerate(terms):
                F, h = features[family.feature_key]
                resp = np.matmul(A, F, out=log_prob_buffers[i])
                counted = count_buffers[i]
                part = weigh_responsibilities(kernels, resp, b, h, w, counted, row_buffers)
                log_likelihood[i] += part
                finite = finite and math.isfinite(part)
                counts[i] += counted
                add_statistics(sums[i], resp, F)
            if not finite:
                if policy != "error" and _has_nan(block):
                    raise _Missing
                raise non_finite_error(block, row_offset + start, terms[0][0])
    return log_likelihood


# -- missing values (NaN): estimators' ``missing`` parameter, see families/_missing.py ----------


def _pass_policy(models: tuple[Mixture, ...]) -> str:
    """What NaN means for the models of one pass (they must agree)."""
    policies = {missing_policy(model.family) for model in models}
    if len(policies) > 1:
        raise ValueError(
            f"models evaluated in one pass must treat missing values alike; got {policies}"
        )
    return policies.pop() if policies else "error"


def _has_nan(X: np.ndarray) -> bool:
    return X.dtype.kind == "f" and bool(np.isnan(X).any())


def _promoted(family: Any, stats: Any) -> Any:
    promote = getattr(family, "promote", None)
    return stats if promote is None else promote(stats)


def _check_marginalizable(
    families: Any, observed: np.ndarray, chunk_rows: np.ndarray, row_offset: int
) -> None:
    """Refuse families that cannot marginalise, and observed patterns they refuse."""
    for family in families:
        if not supports_missing(family):
            raise _unsupported(family)
        check_observed = getattr(family, "check_observed", None)
        found = None if check_observed is None else check_observed(observed)
        if found is not None:
            problem, first = found
            raise ValueError(f"{problem}; first at row {row_offset + int(chunk_rows[first])}")


def _unsupported(family: Any) -> ValueError:
    return ValueError(
        getattr(
            family,
            "missing_refusal",
            f"{type(family).__name__} components cannot marginalise missing values; use "
            "missing='drop' to leave rows with NaN out, or impute them first.",
        )
    )


def _rows_error(family: Any, X: np.ndarray, chunk_rows: np.ndarray, row_offset: int) -> Any:
    """The error for rows of a chunk (``chunk_rows``, in any order) that a family refuses or
    whose log-likelihood is not finite, naming the first such row of the chunk."""
    filled = np.where(np.isnan(X), 0, X) if X.dtype.kind == "f" else X
    problem = family.check_block(filled)
    if problem is not None:
        bad = np.array([family.check_block(filled[i : i + 1]) is not None for i in range(len(X))])
    else:
        bad = ~np.isfinite(filled).all(axis=1)
        if bad.any():
            problem = (
                "Input contains infinity (infinite values are not missing values: only NaN "
                "is; remove or replace them)"
            )
    if problem is None or not bad.any():
        return non_finite_error(filled, row_offset + int(chunk_rows.min()), family)
    first = row_offset + int(chunk_rows[bad].min())
    return ValueError(f"{problem}; {int(bad.sum())} such row(s), the first at row {first}")


def _missing_terms(X: np.ndarray, observed: np.ndarray, models: list):
    """The family, its reference for rows ``X`` and the terms of ``models`` (one key)."""
    family = models[0][1].family
    head = None if observed is None else observed[:REFERENCE_ROWS]
    reference = family.missing_reference(X[:REFERENCE_ROWS], head)
    terms = [(i, m, family.missing_coefficients(m.params, reference)) for i, m in models]
    width = max(family.missing_width(X.shape[1], np.shape(c[0])[-1]) for _, _, c in terms)
    step = block_rows(width, sum(m.n_components for _, m, _ in terms), X.shape[1])
    return family, reference, terms, step


# The reference point of rows with missing entries is the mean of the observed entries of
# this many of them: any central point keeps the expanded features free of cancellation.
REFERENCE_ROWS = 4096


def _by_key(models: Any) -> dict:
    groups: dict[Any, list] = {}
    for i, model in enumerate(models):
        groups.setdefault(model.family.feature_key, []).append((i, model))
    return groups


def _all_rows(family: Any) -> bool:
    """Whether the family's missing-value path takes every row of a chunk with NaN (masked
    features), or only those with a missing entry (the conditional kernel)."""
    return getattr(family, "missing_all_rows", True)


def _chunk_estep_missing(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    models: tuple[Mixture, ...],
    row_offset: int,
    policy: str,
    few: bool = True,
) -> EStepResult:
    """:func:`chunk_estep` of a chunk with NaN: rows with NaN left out (``drop``) or their
    missing entries marginalised (``marginalize``); ``few``: rows that share a few patterns
    first (:func:`_few_patterns`)."""
    if policy == "marginalize" and few:
        found = _few_patterns(X, sample_weight, models)
        if found is not None:
            return found
    groups = _by_key(models)
    families = [g[0][1].family for g in groups.values()]
    observed = complete = None
    if policy == "drop" or not all(
        _all_rows(f) and not hasattr(f, "check_observed") for f in families
    ):
        kernels = compiled()
        if kernels is not None and X.dtype in FLOATS:
            observed, complete = np.empty(X.shape, bool), np.empty(len(X), bool)
            kernels.observed_rows(X, observed, complete)
        else:
            observed = ~np.isnan(X)
            # a reduction along long rows: several times faster than over each row's entries
            complete = np.ascontiguousarray(observed.T).all(axis=0)
    if policy == "drop":
        rows = np.flatnonzero(complete)
        for family in {m.family.feature_key: m.family for m in models}.values():
            if family.check_block(X[rows]) is not None:
                raise _rows_error(family, X[rows], rows, row_offset)
        w = None if sample_weight is None else sample_weight[rows]
        return chunk_estep(X[rows], w, models, row_offset)
    if observed is None:
        for family in families:
            if not supports_missing(family):
                raise _unsupported(family)
    else:
        _check_marginalizable(families, observed, np.arange(len(X)), row_offset)
    stats: list[Any] = [None] * len(models)
    log_likelihood = np.zeros(len(models))
    kernels = compiled()
    partial = [(i, m) for i, m in enumerate(models) if not _all_rows(m.family)]
    if partial:  # complete rows as always, for the models that marginalise the others
        w = None if sample_weight is None else sample_weight[complete]
        result = chunk_estep(X[complete], w, tuple(m for _, m in partial), row_offset)
        for j, (i, _) in enumerate(partial):
            stats[i], log_likelihood[i] = result.stats[j], result.log_likelihood[j]
    with np.errstate(all="ignore"):
        for members in groups.values():
            # the whole chunk: a conditional family's blocks leave out the complete rows
            given = None if _all_rows(members[0][1].family) else observed
            family, reference, terms, step = _missing_terms(X, given, members)
            if kernels is not None and given is None and _masked_compiled(family, X):
                fused = _masked_chunk_estep(X, sample_weight, family, reference, terms, row_offset)
                for (i, _, _), part, ll in zip(terms, *fused, strict=True):
                    log_likelihood[i] += ll
                    stats[i] = part if stats[i] is None else family.merge(stats[i], part)
                continue
            counts = [np.zeros(m.n_components) for _, m, _ in terms]
            found = [np.empty(m.n_components) for _, m, _ in terms]
            biases = [log_weights(m.weights) for _, m, _ in terms]
            sums: list[Any] = [None] * len(terms)
            work = np.empty((2, step))
            whole = len(X) if kernels is not None else 0  # the compiled E-step's memory
            blocks = family.missing_blocks(X, given, reference, step, slab_rows=whole)
            for block in blocks:
                if family.missing_check(block) is not None:
                    raise _rows_error(family, X[block.rows], block.rows, row_offset)
                bw = None if sample_weight is None else sample_weight[block.rows]
                if block.empty.any():  # rows with nothing observed count for nothing
                    bw = np.where(block.empty, 0.0, 1.0 if bw is None else bw)
                finite = True
                for j, (i, _, coefficients) in enumerate(terms):
                    fused = family.missing_estep(block, coefficients, biases[j], bw, found[j])
                    if fused is not None:
                        part, block_sums = fused
                    else:
                        resp, carry = family.missing_log_prob(block, coefficients)
                        rows_work = work if resp.shape[1] <= step else None
                        part = weigh_responsibilities(
                            kernels, resp, biases[j], None, bw, found[j], rows_work
                        )
                        block_sums = family.missing_sums(block, coefficients, carry, resp)
                    log_likelihood[i] += part
                    finite = finite and math.isfinite(part)
                    counts[j] += found[j]
                    if sums[j] is None:
                        sums[j] = block_sums
                    else:
                        sums[j] += block_sums
                if not finite:
                    raise _rows_error(family, X[block.rows], block.rows, row_offset)
            for j, (i, _, _) in enumerate(terms):
                total = 0.0 if sums[j] is None else sums[j]
                part = family.missing_finalize(counts[j], total, reference)
                stats[i] = part if stats[i] is None else family.merge(stats[i], part)
    weight = float(len(X) if sample_weight is None else sample_weight.sum())
    return EStepResult(tuple(stats), log_likelihood, weight, len(X))


def _few_patterns(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    models: tuple[Mixture, ...],
) -> EStepResult | None:
    """:func:`chunk_estep` of a chunk whose rows share a few missingness patterns, one
    compiled call per model (:mod:`streamem.families._frequent`), the rows of its rare
    patterns (if any) by the general path; None where some model's family does not offer
    it, the chunk's patterns are not few, or a block's log-likelihood is not finite (the
    general path then names the row)."""
    if not all(getattr(m.family, "few_patterns", False) for m in models):
        return None
    table = _frequent.pattern_table(X)
    if table is None:
        return None
    references: dict[Any, np.ndarray] = {}
    stats = []
    log_likelihood = np.zeros(len(models))
    for i, model in enumerate(models):
        family = model.family
        key = family.feature_key
        if key not in references:
            references[key] = family.missing_reference(X[:REFERENCE_ROWS], None)
        with np.errstate(all="ignore"):  # infinite values: the general path names the row
            found = _frequent.chunk_estep(
                X, sample_weight, family, model.params, model.weights, references[key], table
            )
        if found is None:
            return None
        stats.append(found[0])
        log_likelihood[i] = found[1]
    rows = _frequent.rest(table)
    if len(rows):
        w = None if sample_weight is None else sample_weight[rows]
        try:
            others = _chunk_estep_missing(X[rows], w, models, 0, "marginalize", few=False)
        except ValueError:  # named by the general path over the whole chunk
            return None
        log_likelihood += others.log_likelihood
        stats = [m.family.merge(a, b) for m, a, b in zip(models, stats, others.stats, strict=True)]
    weight = float(len(X) if sample_weight is None else sample_weight.sum())
    return EStepResult(tuple(stats), log_likelihood, weight, len(X))


def _masked_compiled(family: Any, X: np.ndarray) -> bool:
    """Whether the family's masked features of rows ``X`` are built by the compiled chunk
    kernel (diagonal and spherical Gaussians)."""
    return bool(getattr(family, "compiled_masked_features", False)) and X.dtype in FLOATS


def _masked_chunk_estep(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    family: Any,
    reference: np.ndarray,
    terms: list,
    row_offset: int,
) -> tuple[list, np.ndarray]:
    """A chunk with NaN of a diagonal or spherical Gaussian in one compiled call: each term's
    statistics and log-likelihood; a block whose log-likelihood is not finite (infinite
    values) raises the error naming its first such row."""
    counts = [np.zeros(m.n_components) for _, m, _ in terms]
    sums = [np.zeros(np.shape(c[0])) for _, _, c in terms]
    biases = []
    for _, model, (_, b) in terms:
        bias = log_weights(model.weights)
        biases.append(bias if b is None else b + bias)
    log_likelihood, bad, step = compiled_chunk_estep(
        X, reference, -1, [c[0] for _, _, c in terms], biases, sample_weight, counts, sums
    )
    if bad >= 0:
        rows = np.arange(bad, min(bad + step, len(X)))
        raise _rows_error(family, X[rows], rows, row_offset)
    parts = [family.missing_finalize(c, s, reference) for c, s in zip(counts, sums, strict=True)]
    return parts, log_likelihood


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
    if missing_policy(family) != "error" and X.dtype.kind == "f":
        missing = np.isnan(X)
        if missing.any():
            return _log_prob_missing(X, family, params, bias, row_offset, ~missing)
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


def _blocks_with_gaps(
    X: np.ndarray, observed: np.ndarray, rows: np.ndarray, model: Mixture, row_offset: int
) -> Iterator[tuple[Any, Any, Any, np.ndarray, Any]]:
    """The blocks of rows with gaps (``X``, ``observed``: those rows; ``rows``: their indices
    in the chunk), each with the component log-densities of its observed entries (K, B):
    ``(family, coefficients, block, log_prob, carry)``, the family the one the gaps call for."""
    family, reference, terms, step = _missing_terms(X, observed, [(0, model)])
    coefficients = terms[0][2]
    for block in family.missing_blocks(X, observed, reference, step):
        if family.missing_check(block) is not None:
            raise _rows_error(family, X[block.rows], rows[block.rows], row_offset)
        log_prob, carry = family.missing_log_prob(block, coefficients)
        yield family, coefficients, block, log_prob, carry


def _log_prob_missing(
    X: np.ndarray,
    family: Any,
    params: Any,
    bias: np.ndarray,
    row_offset: int,
    observed: np.ndarray,
) -> np.ndarray:
    """:func:`_log_prob` of rows with NaN: NaN for them (``drop``) or the log-density of their
    observed entries (``marginalize``; 0 + bias for a row with none)."""
    complete = observed.all(axis=1)
    policy = missing_policy(family)
    bias = np.reshape(bias, (-1, 1))
    if policy == "drop" or not _all_rows(family):
        rows = np.flatnonzero(complete)
        first = _log_prob(X[rows], family, params, bias[:, 0], row_offset)
        out = np.full((first.shape[0], X.shape[0]), np.nan)
        out[:, rows] = first
        if policy == "drop":
            return out
        rows = np.flatnonzero(~complete)
    else:
        rows = np.arange(len(X))
        out = None
    _check_marginalizable([family], observed, np.arange(len(X)), row_offset)
    model = Mixture(family, np.ones(1), params)
    X, observed = X[rows], observed[rows]
    with np.errstate(all="ignore"):
        for _, _, block, log_prob, _ in _blocks_with_gaps(X, observed, rows, model, row_offset):
            if out is None:
                out = np.empty((log_prob.shape[0], len(rows)))
            out[:, rows[block.rows]] = log_prob + bias
    return out


def chunk_impute(X: np.ndarray, model: Mixture, row_offset: int = 0) -> np.ndarray:
    """A chunk with each NaN replaced by its conditional mean under the mixture,
    ``E[x_m | x_o] = Σ_k r_k E[x_m | x_o, k]`` (float64; other entries unchanged)."""
    X = np.asarray(X)
    out = np.array(X, dtype=np.float64)
    missing = np.isnan(out)
    rows = np.flatnonzero(missing.any(axis=1))
    if not len(rows):
        return out
    family = model.family
    _check_marginalizable([family], ~missing, np.arange(len(X)), row_offset)
    X, observed = X[rows], ~missing[rows]
    with np.errstate(all="ignore"):
        blocks = _blocks_with_gaps(X, observed, rows, model, row_offset)
        for family, coefficients, block, log_prob, carry in blocks:
            log_prob += log_weights(model.weights)[:, None]
            norm, resp = normalize_log_prob(log_prob)
            if not np.isfinite(norm).all():
                raise _rows_error(family, X[block.rows], rows[block.rows], row_offset)
            values = family.missing_impute(block, coefficients, carry, resp, model.params)
            where = rows[block.rows]
            out[where] = np.where(missing[where], values, out[where])
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
        bad = ~np.isfinite(norm)
        if missing_policy(model.family) == "drop":  # rows with NaN are NaN, on purpose
            bad &= ~np.isnan(X).any(axis=1)
        if bad.any():
            raise non_finite_error(X, row_offset, model.family)
    return norm, resp.T


def chunk_predict(X: np.ndarray, model: Mixture, row_offset: int = 0) -> np.ndarray:
    """Most probable component of each row of a chunk (-1 for a row left out: ``drop``)."""
    resp = chunk_log_prob_resp(X, model, row_offset)[1]
    labels = resp.argmax(axis=1)
    if missing_policy(model.family) == "drop":
        labels[np.isnan(resp).any(axis=1)] = -1
    return labels


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
    rows: Rows,
    kernel: RowKernel,
    model: Mixture,
    n_columns: int | None,
    dtype: Any,
    name: str,
    columns: str = "component",
) -> Any:
    """``kernel(chunk, model, row_offset)`` over every chunk of ``rows``: lazy for lazy rows.

    The result has one value (``n_columns`` None) or ``n_columns`` values per row (along a
    dimension called ``columns``), and is an xarray object called ``name`` when the rows came
    from one.
    """
    data = rows.data
    if n_columns is None:
        columns = None
    if not rows.lazy:
        with labelled(rows.label):
            return rows.wrap(kernel(data, model, 0), name, columns)
    shared = dask.delayed(model, traverse=False, pure=True)
    if n_columns is None:
        shape: dict[str, Any] = {"drop_axis": 1, "meta": np.empty(0, dtype)}
    else:
        shape = {"chunks": (data.chunks[0], (n_columns,)), "meta": np.empty((0, 0), dtype)}
    if columns == "feature":  # so that to_zarr names the array after what it holds
        shape["name"] = f"{name}-{dask.base.tokenize(data, kernel, model)}"
    result = data.map_blocks(_rows_task, kernel, shared, rows.label, dtype=dtype, **shape)
    return rows.wrap(result, name, columns)
