"""Missing values (NaN) marginalised exactly: what the families share.

A family that supports ``missing="marginalize"`` gives the chunk kernel, for the rows of a
chunk that have missing entries, a sequence of *blocks* and four operations on them:

* ``missing_coefficients(params, reference)``: what the other operations need of one model;
* ``missing_log_prob(block, coefficients)``: ``log p_k(x_o)`` (K, b), the log-density of each
  row's observed entries under each component, and a ``carry`` for the next two;
* ``missing_sums(block, coefficients, carry, resp)``: the block's contribution to the summed
  statistics, which ``missing_finalize`` turns into statistics that merge with the others;
* ``missing_impute(block, coefficients, carry, resp, params)``: the rows with each missing
  entry replaced by its conditional mean ``Σ_k r_k E[x_m | x_o, k]``.
* optionally ``missing_estep(block, coefficients, bias, weights, counts)``: the log-likelihood
  and the summed statistics of a block in one pass, where the family has one for it (full
  and tied Gaussians, rows of rare patterns: :func:`conditional_estep`), else None.

Two kinds of families (Ghahramani & Jordan 1994; Little & Rubin 2002, ch. 11):

* **Features independent given the component** (diagonal and spherical Gaussians, Bernoulli,
  binomial, Poisson, categorical labels, grouped draws): a missing entry is simply left out of
  the row's log-density and statistics. With the observed mask ``m`` the features become
  ``m ⊙ F(x)`` plus ``m`` itself, so that the log-normaliser of each feature is counted only
  where it is observed; the E-step is still one GEMM per block, and the statistics gain
  per-feature observed weights ``Σ r m`` that the M-step divides by. :class:`MaskedFeatures`
  implements the operations from a family's ``masked_features``, ``masked_coefficients`` and
  ``masked_finalize``.
* **Full and tied Gaussians**: the missing entries are latent variables. Given the observed
  ones, under component ``k`` they are Gaussian with mean ``E[x_m | x_o, k]`` and covariance
  ``W = (P_mm)⁻¹`` (``P`` the precision); the expected statistics use the filled-in row
  ``x̂`` and add ``W`` to the scatter (without it the covariances would shrink). With the
  missing entries set to 0 (after centring) and ``g = (P (x̃ − μ))_m``,
  ``x̂_m = −W g`` and ``log p(x_o) = log p(x̃) + ½ gᵀWg + ½ s log 2π − ½ log|P_mm|``: the
  complete-data kernel at the zero-filled row, corrected by a solve of the size ``s`` of the
  missing set. Rows are sorted by pattern so that rows sharing one share ``W`` (one
  factorisation per pattern and component). A pattern shared by many rows is solved in the
  space of its observed entries (:class:`PatternTerms`): their own Gaussian, one GEMM over
  their expanded features for the log-densities and one for the moments, turned into
  complete statistics once per run; rows of rare patterns are solved together, batched along
  the rows (:func:`spd_inverse`).

A row with no observed entry carries no information: its log-likelihood is 0 and it adds
nothing to the statistics (the kernel sees to that from ``block.empty``).

References
----------
Z. Ghahramani and M. I. Jordan (1994), "Supervised learning from incomplete data via an EM
approach", NIPS 6.
R. J. A. Little and D. B. Rubin (2002), *Statistical Analysis with Missing Data*, 2nd ed.,
ch. 11, Wiley.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .._kernels import FLUSH_BELOW, NO_ROWS, compiled
from ._base import add_statistics, compiled_chunk_estep, work_array

#: What NaN means, as the estimators' ``missing`` parameter says it.
MISSING_POLICIES = ("error", "marginalize", "drop")

#: Rows sharing a missingness pattern are solved in the space of their observed entries from
#: this many on (a run of one pattern in a block): below, the pattern's own setup (its
#: observed-space terms, a few dozen NumPy calls) outweighs the rows' batched solves.
GROUP_MIN_ROWS = 128

LOG_2PI = np.log(2 * np.pi)


def missing_policy(family: Any) -> str:
    """What NaN means for ``family``: ``'error'`` (default), ``'marginalize'`` or ``'drop'``."""
    return getattr(family, "missing", "error")


def nan_hint(owner: str = "", family: Any = None) -> str:
    """The sentence of NaN errors that names the parameter accepting them (only
    ``missing='drop'`` for a ``family`` that cannot marginalise)."""
    who = f"{owner}(missing=...)" if owner else "the estimator's `missing` parameter"
    if family is not None and not supports_missing(family):
        return (
            f"To fit data with missing entries set missing='drop' ({who}: rows with NaN "
            "are left out)."
        )
    return (
        f"To fit data with missing entries set missing='marginalize' ({who}: NaN is then "
        "missing at random and marginalised exactly) or missing='drop' (rows with NaN are "
        "left out)."
    )


def supports_missing(family: Any) -> bool:
    """Whether ``family`` can marginalise missing entries (``can_marginalize`` may say no,
    and ``missing_refusal`` why)."""
    return hasattr(family, "missing_blocks") and getattr(family, "can_marginalize", True)


def masked_reference(X: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Column means over the observed entries (0 for a column with none), float64 (D,)."""
    kernels = compiled()
    if observed is None and kernels is not None and X.dtype in (np.float32, np.float64):
        means = np.empty(X.shape[1])
        kernels.observed_means(X, means)
        return means
    observed = ~np.isnan(X) if observed is None else observed
    counts = observed.sum(axis=0)
    sums = np.where(observed, X, 0.0).sum(axis=0, dtype=np.float64)
    return np.divide(sums, counts, out=np.zeros(X.shape[1]), where=counts > 0)


def zero_where(values: np.ndarray, mask: np.ndarray) -> None:
    """Set the float64 ``values`` to 0 where ``mask``, in place and without branches (a
    masked store mispredicts on random gaps): AND their bits with 0 there, all ones
    elsewhere."""
    bits = values.view(np.int64)
    np.bitwise_and(bits, (mask.view(np.int8) - np.int8(1)).astype(np.int64), out=bits)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, and 0 where the denominator is 0."""
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape))
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


# -- statistics with per-feature observed weights ---------------------------------------------


class MaskedGaussianStats(NamedTuple):
    """Gaussian statistics of rows with missing entries (diagonal and spherical types).

    ``counts`` (K,) are the responsibility sums of the rows (they give the weights),
    ``observed`` (K, D) those of the observed entries of each feature, ``means`` (K, D) the
    per-feature means over the observed entries and ``scatter`` the centred sums of squares
    over them: (K, D) for ``diag``, summed over the features (K,) for ``spherical``.
    """

    counts: np.ndarray
    observed: np.ndarray
    means: np.ndarray
    scatter: np.ndarray


class MaskedCountStats(NamedTuple):
    """Bernoulli and Poisson statistics of rows with missing entries: ``counts`` (K,) of the
    rows, ``sums`` (K, D) of the observed values and ``observed`` (K, D) weights."""

    counts: np.ndarray
    sums: np.ndarray
    observed: np.ndarray


class MaskedBinomialStats(NamedTuple):
    """Binomial statistics of rows with missing entries: ``counts`` (K,), ``successes`` and
    ``trials`` (K, D) over the observed entries of each feature."""

    counts: np.ndarray
    successes: np.ndarray
    trials: np.ndarray


MASKED_STATS = (MaskedGaussianStats, MaskedCountStats, MaskedBinomialStats)


def is_masked(stats: Any) -> bool:
    """Whether ``stats`` carry per-feature observed weights."""
    return isinstance(stats, MASKED_STATS)


def observed_weights(stats: Any) -> np.ndarray:
    """The per-feature observed weights of masked statistics (K, D)."""
    return stats.trials if isinstance(stats, MaskedBinomialStats) else stats.observed


def uniform(stats: Any, observed: np.ndarray) -> bool:
    """Whether every feature of masked ``stats`` is observed wherever their rows are: then
    they are plain statistics, and the plain formulas (bit for bit) apply."""
    return bool(np.array_equal(observed, np.broadcast_to(stats.counts[:, None], observed.shape)))


def chan_merge(
    observed_a: np.ndarray,
    means_a: np.ndarray,
    observed_b: np.ndarray,
    means_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature Chan merge: observed weights, means and the spread ``w_a w_b/w δ²``."""
    observed = observed_a + observed_b
    safe = np.where(observed > 0, observed, 1.0)
    delta = means_b - means_a
    means = means_a + delta * (observed_b / safe)
    return observed, means, observed_a * observed_b / safe * np.square(delta)


def chan_subtract(
    observed_total: np.ndarray,
    means_total: np.ndarray,
    observed_part: np.ndarray,
    means_part: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse of :func:`chan_merge`: what remains and the spread to take off."""
    observed = np.maximum(observed_total - observed_part, 0.0)
    safe = np.where(observed > 0, observed, 1.0)
    means = means_total + (means_total - means_part) * (observed_part / safe)
    delta = means_part - means
    weight = observed * observed_part / np.where(observed_total > 0, observed_total, 1.0)
    return observed, means, weight * np.square(delta)


# -- blocks of rows with missing entries --------------------------------------------------------


class MaskedBlock(NamedTuple):
    """Rows with missing entries, as masked features (families of independent features).

    Attributes
    ----------
    rows : ndarray of int
        Indices of the block's rows among the rows given to ``missing_blocks``.
    features : ndarray of shape (P', b)
        Masked features.
    base : ndarray of shape (b,) or None
        Base measure of the observed entries.
    empty : ndarray of bool, shape (b,)
        Rows without any observed entry.
    values : ndarray of shape (b, D)
        The rows, NaN where missing.
    mask : ndarray of bool, shape (b, D), or None
        Which entries are missing (None: those where ``values`` is NaN, found when
        ``missing`` is first needed).
    work : dict
        Work arrays shared by the blocks of one pass over a chunk (a block's arrays are
        valid until the next block is drawn).
    """

    rows: np.ndarray
    features: np.ndarray
    base: np.ndarray | None
    empty: np.ndarray
    values: np.ndarray
    mask: np.ndarray | None
    work: dict

    @property
    def missing(self) -> np.ndarray:
        """Which entries are missing (b, D)."""
        return np.isnan(self.values) if self.mask is None else self.mask

    @property
    def filled(self) -> np.ndarray:
        """The rows with missing entries set to 0 (what ``check_block`` checks)."""
        return np.where(self.missing, 0, self.values)


class MaskedFeatures:
    """The missing-value operations of a family whose features are independent given the
    component (a mixin without fields).

    The family provides ``masked_features(values, missing, reference)`` (P', b) of rows with
    NaN where ``missing``, ``masked_coefficients(params, reference)`` ``(A, b)``,
    ``masked_finalize(counts, sums, reference)`` and ``expected_values(params)`` (K, D), the
    mean of each feature in each component; optionally ``masked_base_log_measure(values,
    missing)``, ``impute_values(params, resp, block)`` and ``masked_block`` (features, mask
    and empty rows of a block in one pass).
    """

    #: The kernel gives every row of a chunk with NaN to the masked features (complete rows
    #: are masked rows with nothing missing).
    missing_all_rows = True

    def missing_reference(self, X: np.ndarray, observed: np.ndarray | None) -> Any:
        observed = ~np.isnan(X) if observed is None else observed
        return self.reference(np.where(observed, X, masked_reference(X, observed)))

    def missing_blocks(
        self,
        X: np.ndarray,
        observed: np.ndarray | None,
        reference: Any,
        step: int,
        slab_rows: int = 0,
    ) -> Iterator[MaskedBlock]:
        """Blocks of ``step`` rows (``observed`` None: found from the NaN in ``X``); their
        work arrays are reused from block to block (freed memory can go back to the system
        at once, and every new array would then cost page faults). ``slab_rows`` is for
        the conditional families (:func:`conditional_blocks`)."""
        work: dict = {}
        for start in range(0, X.shape[0], step):
            stop = min(start + step, X.shape[0])
            values = X[start:stop]
            given = None if observed is None else ~observed[start:stop]
            features, missing, empty = self.masked_block(values, given, reference, work)
            # a family without a base measure may leave the mask to be found when needed
            base = None if missing is None else self.masked_base_log_measure(values, missing)
            yield MaskedBlock(np.arange(start, stop), features, base, empty, values, missing, work)

    def masked_block(
        self, values: np.ndarray, missing: np.ndarray | None, reference: Any, work: dict
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The masked features of a block's rows, which entries are missing (found from the
        NaN when ``missing`` is None; a family without a base measure may return None, to
        be found when needed) and which rows have none observed."""
        missing = np.isnan(values) if missing is None else missing
        # a reduction over D along long rows: 3× faster than over each row's few
        empty = np.ascontiguousarray(missing.T).all(axis=0)
        return self.masked_features(values, missing, reference), missing, empty

    def missing_check(self, block: MaskedBlock) -> str | None:
        """Why the observed entries of a block are not valid data, or None."""
        return self.check_block(block.filled)

    def masked_base_log_measure(self, values: np.ndarray, missing: np.ndarray) -> Any:
        return self.base_log_measure(np.where(missing, 0, values))

    def missing_width(self, n_features: int, n_expanded: int) -> int:
        """Masked features per row (P'), to size blocks."""
        return n_expanded + n_features

    def missing_coefficients(self, params: Any, reference: Any) -> Any:
        A, b = self.masked_coefficients(params, reference)
        return A, (b if b.any() else None)  # None: nothing to add to every block

    def missing_log_prob(self, block: MaskedBlock, coefficients: Any) -> tuple[np.ndarray, None]:
        A, b = coefficients
        log_prob = work_array(block.work, "log_prob", (A.shape[0], block.features.shape[1]))
        np.matmul(A, block.features, out=log_prob)
        if b is not None:
            log_prob += b[:, None]
        if block.base is not None:
            log_prob += block.base
        return log_prob, None

    def missing_sums(
        self, block: MaskedBlock, coefficients: Any, carry: None, resp: np.ndarray
    ) -> np.ndarray:
        return add_statistics(None, resp, block.features)

    def missing_estep(
        self,
        block: Any,
        coefficients: Any,
        bias: np.ndarray,
        weights: np.ndarray | None,
        counts: np.ndarray,
    ) -> tuple[float, Any] | None:
        """A block's log-likelihood and summed statistics in one pass (``counts`` gets the
        responsibilities' sums), where the family has one for this block; else None, and
        the kernel takes ``missing_log_prob`` and ``missing_sums`` in turn."""
        return None

    def missing_finalize(self, counts: np.ndarray, sums: np.ndarray, reference: Any) -> Any:
        return self.masked_finalize(counts, sums, reference)

    def missing_impute(
        self, block: MaskedBlock, coefficients: Any, carry: None, resp: np.ndarray, params: Any
    ) -> np.ndarray:
        values = self.impute_values(params, resp, block)
        out = np.asarray(block.filled, dtype=np.float64).copy()
        out[block.missing] = values[block.missing]
        return out

    def impute_values(self, params: Any, resp: np.ndarray, block: MaskedBlock) -> np.ndarray:
        """``Σ_k r_k E[x | k]`` for every entry of the block's rows (b, D)."""
        return resp.T @ self.expected_values(params)


# -- full and tied Gaussians: the conditional distribution of the missing entries ------------


class PatternColumns(dict):
    """``{s: (U_s, s)}``, the missing columns of a slab's patterns with ``s`` missing entries,
    each found when first asked for (from ``first_rows[s]``, a row of each pattern): the
    compiled kernels find those of rare patterns themselves, row by row."""

    def __init__(self, missing: np.ndarray, first_rows: dict[int, np.ndarray]) -> None:
        super().__init__()
        self._missing, self._first_rows = missing, first_rows

    def __missing__(self, s: int) -> np.ndarray:
        rows = self._first_rows[s]
        columns = self[s] = np.nonzero(self._missing[rows])[1].reshape(len(rows), s)
        return columns

    def items(self) -> Iterator[tuple[int, np.ndarray]]:  # type: ignore[override]
        return ((s, self[s]) for s in self._first_rows)


class Slab(NamedTuple):
    """The missingness patterns of a run of sorted rows (several blocks): their conditional
    algebra is computed once per model for all of them, in one batch per number ``s`` of
    missing entries (small batches would spend their time in NumPy's per-call overhead).

    ``columns[s]`` (U_s, s) are the missing columns of each pattern; ``cache`` holds, per
    model, ``{s: (W, log|P_mm|)}`` with ``W`` (K', U_s, s, s), and the
    :class:`PatternTerms` of the frequent patterns by ``(s, index)``.
    """

    columns: PatternColumns
    cache: dict


class PatternGroup(NamedTuple):
    """Rows ``start:stop`` of a block, which all miss ``s`` entries, sorted by pattern.

    ``pattern`` (n,) is each row's pattern (an index into ``slab.columns[s]``); the rows form
    runs of one pattern, starting at ``starts`` (relative to ``start``), of patterns ``runs``;
    ``grouped`` are the runs long enough to be solved in the space of their observed
    entries, with GEMMs of their own.
    """

    start: int
    stop: int
    s: int
    pattern: np.ndarray
    starts: np.ndarray
    runs: np.ndarray
    grouped: np.ndarray


class ConditionalBlock(NamedTuple):
    """Rows with missing entries of a full or tied Gaussian, sorted by missingness pattern.

    ``rows`` index the rows given to :func:`conditional_blocks`; ``centred`` (b, D) is
    ``x − c`` with missing entries 0; ``empty`` marks rows with nothing observed, ``missing``
    (b, D) the missing entries, ``groups`` the rows of each number of missing entries,
    ``slab`` the patterns they refer to and ``work`` the work arrays shared by the blocks of
    one call (with the compiled kernels ``centred`` and ``missing`` are slices of every row
    with a gap, sorted and centred at once, which are among them: a block, and what the
    kernels leave of it, is valid until the call's blocks are all drawn).
    """

    rows: np.ndarray
    centred: np.ndarray
    groups: tuple
    empty: np.ndarray
    missing: np.ndarray
    slab: Slab
    work: dict
    filled: None = None


#: A slab holds at most this many rows, and patterns of at most this many entries in all
#: (Σ s² over its patterns; times K components and 8 bytes, the memory of their ``W``).
SLAB_ROWS = 1 << 16
SLAB_ENTRIES = 1 << 18


def pattern_order(missing: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by their number of missing entries, then by pattern.

    Returns the order, the number of missing entries of each row and its pattern id (equal ids
    for equal patterns).
    """
    d = missing.shape[1]
    if d <= 56:  # one integer per row, the count in its most significant byte: one sort
        kernels = compiled()
        if kernels is not None:  # the same keys and order, by a radix sort over their bytes
            keys = kernels.pattern_keys(missing)
            order = kernels.stable_argsort(keys, np.array([*range(0, d, 8), 56], np.uint64))
        else:
            padded = np.zeros((len(missing), 8), np.uint8)
            padded[:, : -(-d // 8)] = np.packbits(missing, axis=1)
            padded[:, 7] = missing.sum(axis=1, dtype=np.uint8)
            keys = padded.view("<u8").ravel()
            order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        pattern = np.empty(len(keys), np.intp)
        pattern[order] = np.cumsum(np.r_[False, ordered[1:] != ordered[:-1]])
        return order, (keys >> np.uint64(56)).astype(np.intp), pattern
    packed = np.ascontiguousarray(np.packbits(missing, axis=1))
    width = packed.shape[1]
    if width <= 8:  # one integer per pattern: sorting integers is fastest
        padded = np.zeros((packed.shape[0], 8), np.uint8)
        padded[:, :width] = packed
        keys = padded.view(np.uint64).ravel()
    else:
        keys = packed.view(np.dtype((np.void, width))).ravel()
    _, first, pattern = np.unique(keys, return_index=True, return_inverse=True)
    pattern = pattern.ravel()
    # counted per pattern, not per row; then one sort of the rows by (count, pattern)
    counts = missing[first].sum(axis=1)
    rank = np.empty(len(first), np.intp)
    rank[np.lexsort((np.arange(len(first)), counts))] = np.arange(len(first))
    return np.argsort(rank[pattern], kind="stable"), counts[pattern], pattern


def _block_bounds(begin: int, end: int, step: int, runs: np.ndarray) -> Iterator[tuple]:
    """Blocks ``[start, stop)`` of about ``step`` sorted rows from ``begin`` to ``end``, each
    ending at the start of a run of one pattern when one lies within half a step of where
    it would end: a run cut by a block leaves pieces too short to be solved as a pattern."""
    start = begin
    while start < end:
        stop = start + step
        if stop < end:
            lo, hi = np.searchsorted(runs, [start + step // 2, start + step + step // 2])
            if hi > lo:  # the run start nearest to the plain end
                near = runs[lo:hi]
                stop = int(near[np.argmin(np.abs(near - stop))])
        stop = min(stop, end)
        yield start, stop
        start = stop


def _starts(values: np.ndarray) -> np.ndarray:
    """Where each run of equal ``values`` starts (``np.diff`` with its ``prepend`` costs
    ~10 µs a call, a few calls a block)."""
    new = np.empty(len(values), bool)
    new[:1] = True
    np.not_equal(values[1:], values[:-1], out=new[1:])
    return np.flatnonzero(new)


def _sizes(starts: np.ndarray, end: int) -> np.ndarray:
    """The lengths of runs starting at ``starts`` and ending where the next starts (the
    last at ``end``)."""
    sizes = np.empty(len(starts), np.intp)
    np.subtract(starts[1:], starts[:-1], out=sizes[:-1])
    sizes[-1:] = end - starts[-1:]
    return sizes


def conditional_blocks(
    X: np.ndarray,
    observed: np.ndarray | None,
    reference: np.ndarray,
    step: int,
    slab_rows: int = 0,
) -> Iterator[ConditionalBlock]:
    """The rows of ``X`` with a missing entry in blocks of about ``step`` rows, sorted by their
    number of missing entries and then by pattern, grouped in slabs (complete rows are left
    out: the complete-data kernel takes them).

    A slab whose patterns are all frequent (every run at least ``GROUP_MIN_ROWS`` rows:
    profiles cut at depths) or all rare (random gaps) is one block when it has at most
    ``slab_rows`` rows, for a caller whose memory does not grow with the block (the
    E-step's compiled path: with blocks of ``step`` rows, the Python of each block was a
    tenth of a chunk's time with nested gaps).
    """
    missing = np.isnan(X) if observed is None else ~observed
    order, n_missing, pattern = pattern_order(missing)
    d = X.shape[1]
    kernels = compiled()
    counts, patterns = n_missing[order], pattern[order]
    new = np.empty(len(patterns), bool)  # first row of a run of one pattern
    new[:1] = True
    np.not_equal(patterns[1:], patterns[:-1], out=new[1:])
    cost = np.cumsum(np.where(new & (counts < d), counts.astype(np.int64) ** 2, 0))
    begin = int(np.searchsorted(counts, 1))  # the complete rows sort first
    work: dict = {}
    if kernels is not None:  # every row with a gap, centred, in sorted order at once
        position = np.full(len(X), -1, np.intp)
        gapped = begin
        position[order[gapped:]] = np.arange(len(order) - gapped)
        every = work_array(work, "centred", (len(order) - gapped, d))
        every_missing = work_array(work, "block_missing", every.shape, np.bool_)
        kernels.scatter_centred(X, missing, position, reference, every, every_missing)
    while begin < len(order):
        spent = cost[begin - 1] if begin else 0
        end = int(np.searchsorted(cost, spent + SLAB_ENTRIES, side="right"))
        end = min(len(order), begin + SLAB_ROWS, max(end, begin + step))
        starts = new[begin:end].copy()
        starts[0] = True  # a run cut by the slab's start
        runs = begin + np.flatnonzero(starts)  # first sorted row of each run
        run_counts = counts[runs]
        index = np.empty(len(runs), np.intp)  # of each run's pattern among those of its s
        first_rows = {}
        for s in np.unique(run_counts):
            chosen = np.flatnonzero(run_counts == s)
            index[chosen] = np.arange(len(chosen))
            if s < d:
                first_rows[int(s)] = order[runs[chosen]]
        run_sizes = _sizes(runs, end)
        run_of_row = np.repeat(np.arange(len(runs)), run_sizes)
        slab = Slab(PatternColumns(missing, first_rows), {})
        long = run_sizes >= GROUP_MIN_ROWS
        whole = end - begin <= slab_rows and (long.all() or not long.any())
        for start, stop in [(begin, end)] if whole else _block_bounds(begin, end, step, runs):
            rows = order[start:stop]
            if kernels is None:
                block_missing = missing[rows]
                centred = X[rows] - reference
                zero_where(centred, block_missing)
            else:
                centred = every[start - gapped : stop - gapped]
                block_missing = every_missing[start - gapped : stop - gapped]
            block_counts = counts[start:stop]
            block_runs = run_of_row[start - begin : stop - begin]
            groups = []
            edges = [*_starts(block_counts).tolist(), stop - start]
            for a, b in itertools.pairwise(edges):
                s = int(block_counts[a])
                if s == d:  # nothing observed: handled as empty rows
                    continue
                group_runs = block_runs[a:b]
                starts = _starts(group_runs)
                sizes = _sizes(starts, b - a)
                run_patterns = index[group_runs[starts]]
                grouped = np.flatnonzero(sizes >= GROUP_MIN_ROWS)
                groups.append(
                    PatternGroup(a, b, s, index[group_runs], starts, run_patterns, grouped)
                )
            yield ConditionalBlock(
                rows, centred, tuple(groups), block_counts == d, block_missing, slab, work
            )
        begin = end


#: Stacks of at most this many matrices are inverted by LAPACK (their patterns are shared by
#: many rows: profiles cut at a depth), longer ones vectorised along the stack.
FEW_MATRICES = 64


def spd_inverse(matrices: np.ndarray, batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and log-determinants of a stack of small SPD matrices (..., s, s).

    A Cholesky factorisation, a triangular inversion and ``L⁻ᵀL⁻¹``, each vectorised along
    batches of the stack (one NumPy operation per column and step, over every matrix of the
    batch, stored matrix-entry-major so that each operation runs along contiguous rows):
    for the many small matrices of missingness patterns this is faster than LAPACK called
    once per matrix. ``batch`` matrices at a time (default: about 2 MiB per work array).
    """
    shape = matrices.shape[:-2]
    s = matrices.shape[-1]
    if np.prod(shape) <= FEW_MATRICES:  # too few to vectorise along: LAPACK, one by one
        L = np.linalg.cholesky(matrices)
        T = np.linalg.inv(L)
        log_det = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)
        return np.swapaxes(T, -1, -2) @ T, log_det
    A = np.ascontiguousarray(np.moveaxis(matrices.reshape(-1, s, s), 0, -1))  # (s, s, N)
    n = A.shape[-1]
    batch = batch or max(256, (1 << 18) // (s * s))
    inverse, log_det = np.empty_like(A), np.empty(n)
    for a in range(0, n, batch):
        inverse[..., a : a + batch], log_det[a : a + batch] = _spd_inverse(A[..., a : a + batch])
    inverse = np.moveaxis(inverse, -1, 0).reshape(matrices.shape)
    return inverse, log_det.reshape(shape)


def _spd_inverse(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`spd_inverse` of matrices stored (s, s, N)."""
    s, n = A.shape[0], A.shape[-1]
    L = np.zeros((s, s, n))
    for j in range(s):
        column = A[j:, j].copy()
        for p in range(j):
            column -= L[j:, p] * L[j, p]
        diagonal = np.sqrt(column[0])
        L[j, j] = diagonal
        L[j + 1 :, j] = column[1:] / diagonal
    diagonals = np.diagonal(L).T  # (s, N)
    log_det = 2.0 * np.log(diagonals).sum(axis=0)
    T = np.zeros((s, s, n))  # L⁻¹, lower triangular
    for i in range(s):
        T[i, i] = 1.0 / diagonals[i]
        for p in range(i):
            T[i, : p + 1] -= L[i, p] * T[p, : p + 1]
        T[i, :i] *= T[i, i]
    W = np.empty((s, s, n))  # L⁻ᵀ L⁻¹, symmetric
    for j in range(s):
        column = T[j, : j + 1] * T[j, j]
        for p in range(j + 1, s):
            column += T[p, : j + 1] * T[p, j]
        W[: j + 1, j] = column
        W[j, :j] = column[:j]
    return W, log_det


class ConditionalCoefficients(NamedTuple):
    """What the conditional kernel needs of one full or tied Gaussian model."""

    log_norm: np.ndarray  # (K,): log|L| − D/2 log 2π
    precisions: np.ndarray  # (K, D, D), or (1, D, D) when tied
    stacked: np.ndarray  # (D, K'·D): the precisions side by side, for one GEMM
    shift: np.ndarray  # (K, D): P μ' with μ' = μ − c
    means: np.ndarray  # (K, D): μ' (centred means)
    offset: np.ndarray  # (K,): μ'ᵀPμ'
    # the compiled kernels' layout, components last (a tied precision repeated K times)
    precisions_last: np.ndarray  # (D, D, K)
    shift_last: np.ndarray  # (D, K): P μ'
    stacked_all: np.ndarray  # (D, K·D): ``stacked`` with a tied precision repeated K times
    # the model's precision factors as given: what the patterns' cached algebra belongs to
    key: np.ndarray


def conditional_coefficients(chol: np.ndarray, means: np.ndarray) -> ConditionalCoefficients:
    """From precision Cholesky factors ((K, D, D), or (D, D) tied) and centred means (K, D)."""
    key = chol
    chol = chol if chol.ndim == 3 else chol[None]
    k, d = means.shape
    log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    precisions = chol @ chol.transpose(0, 2, 1)
    stacked = np.ascontiguousarray(precisions.transpose(1, 0, 2).reshape(d, -1))
    shift = np.einsum("kij,kj->ki", np.broadcast_to(precisions, (k, d, d)), means)
    log_norm = np.broadcast_to(log_det - 0.5 * d * LOG_2PI, (k,)).copy()
    return ConditionalCoefficients(
        log_norm,
        precisions,
        stacked,
        shift,
        means,
        np.einsum("kd,kd->k", shift, means),
        np.ascontiguousarray(np.broadcast_to(precisions.transpose(1, 2, 0), (d, d, k))),
        np.ascontiguousarray(shift.T),
        stacked if len(precisions) == k else np.tile(stacked, (1, k)),
        key,
    )


def _slab_tables(slab: Slab, coefficients: Any, every: bool) -> tuple[dict, dict]:
    """``{s: (W, log|P_mm|)}`` for every pattern of a slab under one model (if ``every``;
    else empty), and the observed-space terms of its frequent patterns as they are needed
    (both cached)."""
    cached = slab.cache.get(id(coefficients))
    if cached is not None and cached[0] is coefficients:
        return cached[1], cached[2]
    precisions = coefficients.precisions
    table = {
        s: spd_inverse(precisions[:, columns[:, :, None], columns[:, None, :]])
        for s, columns in (slab.columns.items() if every else ())
    }
    slab.cache[id(coefficients)] = (coefficients, table, {})
    return table, slab.cache[id(coefficients)][2]


class PatternTerms(NamedTuple):
    """One missingness pattern under one model, in the space of its observed entries.

    ``x_o`` is Gaussian with precision ``Q = P_oo − P_om W P_mo`` (the Schur complement,
    ``W = (P_mm)⁻¹``): its log-density is ``A·[x'_o, x'_i x'_j (i ≤ j)] + b``, one GEMM over
    the rows of the pattern. ``E[x'_m | x_o] = offset + regression x'_o`` (regression
    ``−W P_mo``), with covariance ``W``.
    """

    observed: np.ndarray  # (o,) columns
    missing: np.ndarray  # (s,) columns
    A: np.ndarray  # (K, o + o(o+1)/2)
    b: np.ndarray  # (K,)
    offset: np.ndarray  # (K, s)
    regression: np.ndarray  # (K, s, o)
    covariance: np.ndarray  # (K, s, s): W
    upper: tuple  # the pairs i ≤ j of observed entries


class PatternShape(NamedTuple):
    """The part of :class:`PatternTerms` that does not depend on the means (nor on the
    chunk's reference point): the same for every chunk a model sees."""

    observed: np.ndarray  # (o,)
    regression: np.ndarray  # (K', s, o)
    Q: np.ndarray  # (K', o, o)
    quadratic: np.ndarray  # (K', o(o+1)/2)
    W: np.ndarray  # (K', s, s)
    log_det: np.ndarray  # (K',): log|P_mm|


def _pattern_shape(precisions: np.ndarray, missing: np.ndarray) -> PatternShape:
    """:class:`PatternShape` of the pattern ``missing`` under precisions (K', D, D)."""
    d = precisions.shape[-1]
    kept = np.ones(d, bool)
    kept[missing] = False
    observed = np.flatnonzero(kept)
    W, log_det = spd_inverse(precisions[:, missing[:, None], missing[None, :]])
    cross = precisions[:, missing[:, None], observed[None, :]]  # P_mo (K', s, o)
    regression = -(W @ cross)
    Q = precisions[:, observed[:, None], observed[None, :]] + cross.transpose(0, 2, 1) @ regression
    upper = _upper(len(observed))
    quadratic = Q[:, upper[0], upper[1]] * np.where(upper[0] == upper[1], -0.5, -1.0)
    return PatternShape(observed, regression, Q, quadratic, W, log_det)


#: Patterns' :class:`PatternShape` kept for the models seen last (a model's chunks share
#: them: profiles cut at depths repeat the same few patterns in every chunk).
_SHAPES: dict[int, tuple[np.ndarray, dict]] = {}
_SHAPES_MODELS = 8
_SHAPES_LOCK = threading.Lock()


def _cached_shape(coefficients: ConditionalCoefficients, missing: np.ndarray) -> PatternShape:
    """:func:`_pattern_shape`, computed once per model (its precision factors, which the
    cache holds so that their ``id`` cannot be reused) and pattern."""
    key = coefficients.key
    with _SHAPES_LOCK:
        entry = _SHAPES.get(id(key))
        if entry is None or entry[0] is not key:
            if len(_SHAPES) >= _SHAPES_MODELS:
                del _SHAPES[next(iter(_SHAPES))]
            entry = _SHAPES[id(key)] = (key, {})
    shapes = entry[1]
    pattern = missing.tobytes()
    shape = shapes.get(pattern)
    if shape is None:
        shape = shapes[pattern] = _pattern_shape(coefficients.precisions, missing)
    return shape


def _pattern_terms(
    coefficients: ConditionalCoefficients, missing: np.ndarray, shape: PatternShape
) -> PatternTerms:
    """:class:`PatternTerms` of the pattern ``missing`` from its :class:`PatternShape`."""
    means = coefficients.means
    k = means.shape[0]
    observed = shape.observed
    s, o = len(missing), len(observed)
    regression, Q, quadratic, W, log_det = shape[1:]
    if len(Q) != k:  # tied: one precision for every component
        Q = np.broadcast_to(Q, (k, o, o))
        regression = np.broadcast_to(regression, (k, s, o))
        quadratic = np.broadcast_to(quadratic, (k, quadratic.shape[1]))
        W = np.broadcast_to(W, (k, s, s))
        log_det = np.broadcast_to(log_det, (k,))
    mean_o = means[:, observed]
    linear = np.matmul(Q, mean_o[:, :, None])[:, :, 0]
    # ½ log|Q| = log|L| − ½ log|P_mm|: the complete normaliser, marginalised
    b = coefficients.log_norm + 0.5 * (s * LOG_2PI - log_det) - 0.5 * (linear * mean_o).sum(axis=1)
    offset = means[:, missing] - np.matmul(regression, mean_o[:, :, None])[:, :, 0]
    return PatternTerms(
        observed,
        missing,
        np.concatenate([linear, quadratic], axis=1),
        b,
        offset,
        regression,
        W,
        _upper(o),
    )


def _known_terms(
    known: dict, slab: Slab, coefficients: ConditionalCoefficients, s: int, u: int
) -> PatternTerms:
    """The :class:`PatternTerms` of pattern ``u`` of those missing ``s`` entries in a slab,
    computed once per model and slab (``known``, from :func:`_slab_tables`)."""
    terms = known.get((s, u))
    if terms is None:
        columns = slab.columns[s][u]
        terms = _pattern_terms(coefficients, columns, _cached_shape(coefficients, columns))
        known[(s, u)] = terms
    return terms


def frequent_terms(chol: np.ndarray, means: np.ndarray, missing: np.ndarray) -> tuple[list, list]:
    """For each pattern of ``missing`` (U, D), the coefficients ``(A, b)`` of its observed
    entries' log-density and its :class:`PatternTerms` (None for a pattern with nothing
    observed), for :mod:`streamem.families._frequent`; ``means`` centred."""
    coefficients = conditional_coefficients(chol, means)
    k = len(means)
    pairs, terms = [], []
    for pattern in missing:
        if pattern.all():
            pairs.append((np.zeros((k, 0)), np.zeros(k)))
            terms.append(None)
            continue
        columns = np.flatnonzero(pattern)
        pattern_terms = _pattern_terms(coefficients, columns, _cached_shape(coefficients, columns))
        pairs.append((pattern_terms.A, pattern_terms.b))
        terms.append(pattern_terms)
    return pairs, terms


def frequent_sums(counts: np.ndarray, sums: list, terms: list, d: int) -> np.ndarray:
    """The complete-data sums ``[Σ r x', Σ r x'_i x'_j]`` (K, P) from each pattern's
    responsibilities' sums ``counts`` (U, K) and observed entries' moments ``sums``."""
    k = counts.shape[1]
    first, second = np.zeros((k, d)), np.zeros((k, d, d))
    kernels = compiled()
    for S0, S, t in zip(counts, sums, terms, strict=True):
        if t is None:
            continue
        _compiled_moments(kernels, t, np.ascontiguousarray(S), S0, first, second)
    return _complete_sums(first, second)


def _complete_sums(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The complete-data sums ``[Σ r x', Σ r x'_i x'_j (i ≤ j)]`` (K, P) from the first
    (K, D) and second (K, D, D) moments."""
    iu0, iu1 = _upper(first.shape[1])
    return np.concatenate([first, second[:, iu0, iu1]], axis=1)


def _compiled_moments(
    kernels: Any,
    terms: PatternTerms,
    S: np.ndarray,
    S0: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
) -> None:
    """``pattern_moments``: one pattern's observed moments ``S`` and ``S0`` as complete
    moments, added to ``first`` and ``second`` (the algebra of
    :func:`_add_pattern_moments`)."""
    kernels.pattern_moments(
        S,
        S0,
        terms.regression,
        terms.offset,
        terms.covariance,
        terms.observed,
        terms.missing,
        first,
        second,
    )


@functools.cache
def _upper(o: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(o)``, read-only and kept (every pattern with o observed entries)."""
    upper = np.triu_indices(o)
    for index in upper:
        index.flags.writeable = False
    return upper


def _observed_features(x: np.ndarray, rows: slice, observed: np.ndarray, upper: tuple):
    """``[x_o, x_i x_j (i ≤ j)]`` feature-major (P_o, n) from the columns ``observed`` of the
    rows ``rows`` of ``x``."""
    o, n = len(observed), rows.stop - rows.start
    F = np.empty((o + len(upper[0]), n))
    kernels = compiled()
    if kernels is not None:  # the same products (and the same order), compiled
        kernels.observed_features(x, rows.start, rows.stop, observed, F)
        return F
    F[:o] = np.take(x[rows], observed, axis=1).T
    start = o
    for i in range(o):  # row i of the upper triangle (np.triu_indices order): x_i x_{i:}
        np.multiply(F[i], F[i:o], out=F[start : start + o - i])
        start += o - i
    return F


class GroupCarry(NamedTuple):
    """What :func:`conditional_log_prob` leaves of one :class:`PatternGroup` for the
    statistics and imputation: the frequent patterns' runs ``(rows, terms, features)``,
    and for the other rows (``single``, relative to the group's start) ``v = W g_m``
    (n, K, s) and the slab's ``W`` (K', U, s, s) — both None when the compiled kernels
    solve those rows."""

    runs: list
    single: np.ndarray
    v: np.ndarray | None
    W: np.ndarray | None


class ConditionalCarry(NamedTuple):
    """What :func:`conditional_log_prob` leaves of a block: one :class:`GroupCarry` per
    group and, when the compiled kernels solve the rows of rare patterns, those rows
    (positions in the block), ``E[x' | x_o, k]`` for each (K, n', D), and their patterns'
    ``W`` (:func:`streamem.families._compiled.conditional_rows`)."""

    groups: list
    rows: np.ndarray | None = None
    filled: np.ndarray | None = None
    patterns: tuple | None = None


def _solve_rows(
    group: PatternGroup,
    rows: np.ndarray,
    products: np.ndarray,
    shift: np.ndarray,
    columns: np.ndarray,
    W: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``v = W g_m`` (n', K, s) and ``g_mᵀ v`` (K, n') for rows ``rows`` of a group (relative
    to its start), with ``g = P x̃ − P μ'`` from ``products`` (n, K', D) = ``P x̃`` and
    ``shift`` (K, D) = ``P μ'``; ``columns`` and ``W`` (K', U, s, s) are those of the slab's
    patterns with ``s`` missing entries."""
    k, d = shift.shape
    n = len(rows)
    kp = products.shape[1]
    index = columns[group.pattern[rows]]  # (n', s)
    # gathers through flat indices: one pass, no broadcast index arrays
    at = (group.start + rows)[:, None, None] * (kp * d) + (np.arange(kp) * d)[None, :, None]
    g = np.take(products, at + index[:, None, :])  # (n', K', s)
    if kp != k:  # tied: one precision
        g = np.broadcast_to(g, (n, k, group.s))
    g = g - np.take(shift, (np.arange(k) * d)[None, :, None] + index[:, None, :])
    Wr = W[:, group.pattern[rows]]  # (K', n', s, s)
    Wr = np.broadcast_to(Wr, (k, *Wr.shape[1:]))
    v = np.einsum("knst,nkt->nks", Wr, g)
    return v, np.einsum("nks,nks->kn", g, v)


def conditional_log_prob(
    block: ConditionalBlock, coefficients: ConditionalCoefficients
) -> tuple[np.ndarray, ConditionalCarry]:
    """``log p_k(x_o)`` (K, b) of a block's rows, and what :func:`conditional_sums` needs.

    Rows of a frequent pattern: the observed entries' own Gaussian (:class:`PatternTerms`),
    one GEMM per run of the pattern. Other rows: with ``z = x̃ − μ'`` (missing entries of
    ``x̃`` set to 0) and ``g = P z``, the complete-data log-density at ``x̃`` is
    ``log|L| − D/2 log 2π − ½ zᵀPz``, and marginalising the missing entries adds
    ``½ g_mᵀ W g_m + ½ s log 2π − ½ log|P_mm|`` (by the compiled kernels when numba is
    there, else in NumPy).
    """
    log_norm, _, stacked, shift = coefficients[:4]
    x = block.centred
    n, d = x.shape
    k = len(shift)
    kernels = compiled()
    table, known = _slab_tables(block.slab, coefficients, every=kernels is None)
    # every row is written below: a frequent pattern's run, a rare row or an empty one
    log_prob = work_array(block.work, "log_prob", (k, n))
    if kernels is None and any(len(group.grouped) < len(group.runs) for group in block.groups):
        products = (x @ stacked).reshape(n, -1, d)  # (n, K', D): P x̃
        # zᵀPz = x̃ᵀPx̃ − 2 x̃ᵀPμ' + μ'ᵀPμ'
        quadratic = np.einsum("nd,nkd->kn", x, products)
        if quadratic.shape[0] != k:  # tied: one precision
            quadratic = np.broadcast_to(quadratic, (k, n))
        quadratic = quadratic - 2.0 * (shift @ x.T) + coefficients.offset[:, None]
        log_prob = log_norm[:, None] - 0.5 * quadratic
    carry, singles, bound = [], [], 0
    for group in block.groups:
        sizes = _sizes(group.starts, group.stop - group.start)
        runs = []
        for run in group.grouped:  # many rows share this pattern
            a = group.start + group.starts[run]
            rows = slice(a, a + sizes[run])
            terms = _known_terms(known, block.slab, coefficients, group.s, int(group.runs[run]))
            F = _observed_features(x, rows, terms.observed, terms.upper)
            part = log_prob[:, rows]
            np.matmul(terms.A, F, out=part)
            part += terms.b[:, None]
            runs.append((rows, terms, F))
        single = np.ones(len(group.runs), bool)
        single[group.grouped] = False
        single = np.flatnonzero(np.repeat(single, sizes))
        v = W = None
        if len(single) and kernels is not None:
            singles.append(group.start + single)
            bound += group.s * group.s * len(single)  # Σ s²: the entries of their W per K
        elif len(single):
            W, log_det = table[group.s]
            columns = block.slab.columns[group.s]
            v, correction = _solve_rows(group, single, products, shift, columns, W)
            log_det_rows = np.broadcast_to(log_det, (k, log_det.shape[1]))[
                :, group.pattern[single]
            ]
            log_prob[:, group.start + single] += 0.5 * (
                correction + group.s * LOG_2PI - log_det_rows
            )
        carry.append(GroupCarry(runs, single, v, W))
    result = ConditionalCarry(carry)
    if singles:
        rows = np.concatenate(singles)
        # every row of the block (random gaps; the rows are increasing): no gathers
        whole = len(rows) == n
        xs, missing = (x, block.missing) if whole else (x[rows], block.missing[rows])
        last = coefficients.precisions_last
        work = block.work
        ps = np.matmul(
            xs, last.reshape(d, -1), out=work_array(work, "products", (len(rows), d * k))
        )
        terms, filled, *patterns = kernels.conditional_rows(
            xs,
            missing,
            ps.reshape(len(rows), d, k),  # P x̃, (n', D, K)
            coefficients.shift_last,
            last,
            log_norm,
            coefficients.offset,
            log_prob if whole else work_array(work, "terms", (k, len(rows))),
            work_array(work, "filled", (k, len(rows), d)),
            work_array(work, "covariances", (k * bound,)),  # the patterns' W
            work_array(work, "scratch", (kernels.conditional_scratch(d, k),)),
        )
        if not whole:
            log_prob[:, rows] = terms
        result = ConditionalCarry(carry, rows, filled, (missing, *patterns))
    if block.empty.any():
        log_prob[:, block.empty] = 0.0
    return log_prob, result


def conditional_estep(
    block: ConditionalBlock,
    coefficients: ConditionalCoefficients,
    bias: np.ndarray,
    weights: np.ndarray | None,
    counts: np.ndarray,
) -> tuple[float, np.ndarray] | None:
    """A block's log-likelihood and statistics in one compiled pass, where every row with
    an observed entry has a rare pattern (random gaps), or every one a frequent pattern
    (:func:`_frequent_estep`); else None.

    The results of :func:`conditional_log_prob`, the responsibilities and
    :func:`conditional_sums` in turn (to rounding), without the filled-in rows (K, n, D)
    written out: the kernel sums their moments batch by batch. ``bias`` (K,) are the
    log-weights, ``weights`` the rows' (or None); ``counts`` (K,) gets the
    responsibilities' sums.
    """
    kernels = compiled()
    if kernels is None:
        return None
    if all(len(group.grouped) == len(group.runs) for group in block.groups):
        return _frequent_estep(kernels, block, coefficients, bias, weights, counts)
    if any(len(group.grouped) for group in block.groups):
        return None
    # rows with nothing observed sort last and add nothing: the kernel takes the others
    n = len(block.empty) - int(np.count_nonzero(block.empty))
    x = np.ascontiguousarray(block.centred[:n])  # the kernel reads its rows as one array
    d = x.shape[1]
    k = len(coefficients.shift)
    first, second = np.zeros((k, d)), np.zeros((k, d, d))
    log_likelihood = kernels.conditional_estep(
        x,
        block.missing[:n],
        coefficients.shift,
        coefficients.stacked_all,
        coefficients.precisions_last,
        coefficients.log_norm,
        coefficients.offset,
        bias,
        NO_ROWS if weights is None else weights[:n],
        FLUSH_BELOW,
        counts,
        first,
        second,
        work_array(block.work, "estep", (kernels.estep_scratch(d, k),)),
    )
    return log_likelihood, _complete_sums(first, second)


def _frequent_estep(
    kernels: Any,
    block: ConditionalBlock,
    coefficients: ConditionalCoefficients,
    bias: np.ndarray,
    weights: np.ndarray | None,
    counts: np.ndarray,
) -> tuple[float, np.ndarray]:
    """:func:`conditional_estep` of a block whose rows all have frequent patterns (profiles
    cut at depths), or nothing observed: each run of a pattern is the complete-data E-step
    of its observed entries' Gaussian (:class:`PatternTerms`), one GIL-free call of the
    chunk kernel, whose moments become complete statistics (``pattern_moments``)."""
    x = block.centred
    d = x.shape[1]
    k = len(coefficients.shift)
    _, known = _slab_tables(block.slab, coefficients, every=False)
    first, second = np.zeros((k, d)), np.zeros((k, d, d))
    counts[:] = 0.0
    log_likelihood = 0.0
    for group in block.groups:
        sizes = _sizes(group.starts, group.stop - group.start)
        for run in group.grouped:
            a = group.start + int(group.starts[run])
            b = a + int(sizes[run])
            terms = _known_terms(known, block.slab, coefficients, group.s, int(group.runs[run]))
            S, S0 = np.zeros(terms.A.shape), np.zeros(k)
            part, bad, _ = compiled_chunk_estep(
                x[a:b],
                coefficients.shift[0],  # unused: the rows are centred
                0,
                [terms.A],
                [terms.b + bias],
                None if weights is None else weights[a:b],
                [S0],
                [S],
                terms.observed,
            )
            if bad >= 0:  # infinite values: the caller finds and names the row
                return math.nan, np.zeros((k, d + d * (d + 1) // 2))
            log_likelihood += part[0]
            counts += S0
            _compiled_moments(kernels, terms, S, S0, first, second)
    return log_likelihood, _complete_sums(first, second)


def _filled_single_rows(
    block: ConditionalBlock, carry: list, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of rare patterns (their positions in the block) and ``E[x' | x_o, k]`` for
    each of them and each component, (K, n', D), from NumPy's solves."""
    parts = [group.start + c.single for group, c in zip(block.groups, carry, strict=True)]
    rows = np.concatenate(parts) if parts else np.zeros(0, np.intp)
    d = block.centred.shape[1]
    if not len(rows):  # every row of a frequent pattern
        return rows, np.zeros((k, 0, d))
    filled = np.repeat(block.centred[rows][None], k, axis=0)
    offset = 0
    for group, c in zip(block.groups, carry, strict=True):
        n = len(c.single)
        if n:  # x̂_m = −W g_m
            index = block.slab.columns[group.s][group.pattern[c.single]]  # (n, s)
            at = (np.arange(k) * len(rows) * d)[:, None, None] + ((offset + np.arange(n)) * d)[
                None, :, None
            ]
            np.put(filled, at + index[None], -c.v.transpose(1, 0, 2))
        offset += n
    return rows, filled


def _add_pattern_moments(
    first: np.ndarray, second: np.ndarray, terms: PatternTerms, F: np.ndarray, r: np.ndarray
) -> None:
    """Add ``Σ r E[x' | x_o]`` and ``Σ r E[x'x'ᵀ | x_o]`` of one run of a pattern to
    ``first`` (K, D) and ``second`` (K, D, D), from the observed entries' moments."""
    o = len(terms.observed)
    S = add_statistics(np.zeros((len(r), len(F))), r, F)  # (K, P_o)
    S0 = r.sum(axis=1)
    kernels = compiled()
    if kernels is not None:  # the same algebra, one compiled call
        _compiled_moments(kernels, terms, S, S0, first, second)
        return
    S1 = S[:, :o]
    S2 = np.empty((len(S), o, o))
    S2[:, terms.upper[0], terms.upper[1]] = S[:, o:]
    S2[:, terms.upper[1], terms.upper[0]] = S[:, o:]
    B, a = terms.regression, terms.offset
    BS1 = np.einsum("kso,ko->ks", B, S1)
    BS2 = B @ S2
    observed, missing = terms.observed, terms.missing
    first[:, observed] += S1
    first[:, missing] += a * S0[:, None] + BS1
    cross = a[:, :, None] * S1[:, None, :] + BS2  # (K, s, o)
    second[:, observed[:, None], observed[None, :]] += S2
    second[:, missing[:, None], observed[None, :]] += cross
    second[:, observed[:, None], missing[None, :]] += cross.transpose(0, 2, 1)
    outer = a[:, :, None] * BS1[:, None, :]
    second[:, missing[:, None], missing[None, :]] += (
        S0[:, None, None] * (a[:, :, None] * a[:, None, :] + terms.covariance)
        + outer
        + outer.transpose(0, 2, 1)
        + BS2 @ B.transpose(0, 2, 1)
    )


def conditional_sums(
    block: ConditionalBlock,
    coefficients: ConditionalCoefficients,
    carry: ConditionalCarry,
    resp: np.ndarray,
) -> np.ndarray:
    """``Σ r E[F(x) | x_o, k]`` (K, P) for the complete-data features ``[x', x'_i x'_j]``:
    the moments of the filled-in rows plus the conditional covariances ``W``."""
    k = resp.shape[0]
    d = block.centred.shape[1]
    first = np.zeros((k, d))
    second = np.zeros((k, d, d))
    if carry.rows is not None:  # the compiled kernels' solves
        rows, filled = carry.rows, carry.filled
        r = resp if len(rows) == resp.shape[1] else np.ascontiguousarray(resp[:, rows])
        compiled().add_covariances(carry.patterns[0], r, *carry.patterns[1:], second)
    else:
        rows, filled = _filled_single_rows(block, carry.groups, k)
        r = resp[:, rows]
    if len(rows):
        first += np.matmul(r[:, None, :], filled)[:, 0]  # a sum over the rows, by BLAS
        weighted = np.multiply(
            r[:, :, None], filled, out=work_array(block.work, "weighted", filled.shape)
        )
        second += np.matmul(filled.transpose(0, 2, 1), weighted)
    flat = np.zeros(k * d * d)
    offsets = (np.arange(k) * d * d)[:, None, None, None]
    for group, c in zip(block.groups, carry.groups, strict=True):
        for run_rows, terms, F in c.runs:
            _add_pattern_moments(first, second, terms, F, resp[:, run_rows])
        if not len(c.single) or c.W is None:
            continue
        # Σ_rows r W: responsibilities summed per pattern (rows are sorted by pattern)
        single_runs = np.setdiff1d(np.arange(len(group.runs)), group.grouped)
        R = np.add.reduceat(resp[:, group.start : group.stop], group.starts, axis=1)
        R = R[:, single_runs]  # (K, U')
        columns = block.slab.columns[group.s][group.runs[single_runs]]
        positions = columns[:, :, None] * d + columns[:, None, :]  # (U', s, s)
        values = R[:, :, None, None] * c.W[:, group.runs[single_runs]]  # (K, U', s, s)
        flat += np.bincount(
            (positions[None] + offsets).ravel(), values.ravel(), minlength=k * d * d
        )
    second += flat.reshape(k, d, d)
    return _complete_sums(first, second)


def conditional_impute(
    block: ConditionalBlock,
    coefficients: ConditionalCoefficients,
    carry: ConditionalCarry,
    resp: np.ndarray,
    reference: np.ndarray,
) -> np.ndarray:
    """The block's rows with missing entries replaced by ``Σ_k r_k E[x_m | x_o, k]``."""
    k = resp.shape[0]
    out = block.centred.copy()
    if carry.rows is not None:
        out[carry.rows] = np.einsum("kn,knd->nd", resp[:, carry.rows], carry.filled)
    else:
        rows, filled = _filled_single_rows(block, carry.groups, k)
        if len(rows):
            out[rows] = np.einsum("kn,knd->nd", resp[:, rows], filled)
    for c in carry.groups:
        for run_rows, terms, F in c.runs:
            o = len(terms.observed)
            estimates = terms.offset[:, :, None] + terms.regression @ F[:o]  # (K, s, n)
            out[run_rows][:, terms.missing] = np.einsum("kn,ksn->ns", resp[:, run_rows], estimates)
    if block.empty.any():  # nothing observed: E[x | k] = μ_k
        out[block.empty] = resp[:, block.empty].T @ coefficients.means
    return out + reference
