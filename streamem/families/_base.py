"""The contract every component family fulfils, and the mixture value built on it.

Every family in streamem is an exponential family written in *expanded features*: the
log-density of component ``k`` at a row ``x`` is

    log p_k(x) = A[k] · F(x) + b[k] + h(x)

where ``F(x)`` is a row of sufficient-statistic features (``[x, x²]`` for a diagonal Gaussian,
``[x, x_i x_j]`` for a full one, ``x`` itself for a Bernoulli), ``A`` and ``b`` are the natural
parameters and log-normalisers of the ``K`` components, and ``h(x)`` is the base measure, which
does not depend on the component. The E-step of a block of rows is then one GEMM ``F @ A``, a
log-sum-exp, and one more GEMM ``respᵀ @ F`` for the expected sufficient statistics. One kernel
(:mod:`streamem.estep`) serves every family; a family only says how to build ``F``, ``A``,
``b``, ``h`` and how to turn the summed statistics into parameters.

Blocks are laid out feature-major: ``F`` is (P, B) for B rows and log-probabilities are
(K, B), so that the reductions over components (max, sum) run along long contiguous rows
rather than along a short axis of K values, which NumPy does several times slower.

A family may centre the features on a *reference* point computed per chunk (Gaussians use the
column means of evenly spaced rows of the chunk), which keeps the expanded products free of
cancellation for data far from the origin; statistics are converted back to a reference-free
form at the end of each chunk (``finalize``), so chunks with different references merge
exactly.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, NamedTuple, Protocol

import numpy as np

from .._kernels import FLUSH_BELOW, NO_COLUMNS, NO_ROWS, compiled

FLOATS = (np.float32, np.float64)

# Bytes of per-row work arrays (features, log-probabilities, responsibilities) in a block:
# about a core's L2 cache, so the features stay in cache between the two GEMMs that read
# them, yet blocks are large enough that NumPy's per-call overhead (and the GIL it holds)
# stays small. Measured with scripts/bench_inmemory.py on 2 cores.
BLOCK_BYTES = 2 << 20
MIN_BLOCK_ROWS = 64
MAX_BLOCK_ROWS = 16384
# The compiled chunk kernel's blocks hold at most this many bytes of features, which then
# stay in a core's L2 (1 MiB here) between the two GEMMs that read them, with BLAS's packed
# copy of them beside: GEMMs with K = 8 ran at this machine's peak (~54 GFLOP/s a core) on
# features in L2 and at 24–45 beyond, for 32 to 2144 features; in the kernel, twice this
# (features alone up to L2's size) was as fast at K = 8 and 1.2–1.4× slower at K = 16
# (D = 32, 64). Without the GIL to take back between calls, small blocks cost little.
CACHED_FEATURE_BYTES = 7 << 16
MIN_CACHED_ROWS = 32

# Added to component counts before dividing, as scikit-learn does, so that an empty component
# divides by a tiny number instead of zero.
COUNT_EPS = 10 * np.finfo(np.float64).eps


class Family(Protocol):
    """What the E-step kernel, the engines and the drivers need from a component family.

    Implementations are small frozen dataclasses holding configuration only (for example the
    covariance type and ``reg_covar``); parameters and statistics are passed in and out as
    NamedTuples of NumPy arrays, so every method is a pure function and pickles to workers.
    """

    #: Families whose ``feature_key`` is equal build identical features from the same block,
    #: so the kernel builds them once when several models share a pass over the data.
    feature_key: Hashable

    def reference(self, X: np.ndarray) -> np.ndarray | None:
        """A point to centre the features of one chunk on (or None)."""

    def features(
        self, X: np.ndarray, reference: np.ndarray | None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Expanded features of a block of B rows: float64, shape (P, B).

        Written into ``out`` when given (the kernel reuses one buffer for all the blocks of a
        chunk: allocating per block costs page faults where memory is returned to the system
        eagerly, as in ``dask.distributed`` workers), else into a new C-contiguous array.
        """

    def coefficients(
        self, params: Any, reference: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Natural parameters ``A`` (K, P) and log-normalisers ``b`` (K,) for ``features``."""

    def base_log_measure(self, X: np.ndarray) -> np.ndarray | None:
        """``h(x)`` for each row of a block (B,), or None when it is zero."""

    def finalize(self, counts: np.ndarray, sums: np.ndarray, reference: Any) -> Any:
        """Turn summed ``counts`` (K,) and ``resp Fᵀ`` (K, P) into reference-free statistics."""

    def merge(self, a: Any, b: Any) -> Any:
        """Statistics of the union of the rows behind ``a`` and ``b`` (associative)."""

    def subtract(self, total: Any, part: Any) -> Any:
        """Statistics of the rows behind ``total`` without those behind ``part``."""

    def scale(self, stats: Any, factor: float) -> Any:
        """Statistics with every row weight multiplied by ``factor``."""

    def m_step(self, stats: Any) -> tuple[Any, list[str]]:
        """Maximum-likelihood parameters from statistics, and warnings about repairs made."""

    def expected_log_prob(self, stats: Any, params: Any) -> np.ndarray:
        """``Σ r log p_k(x)`` minus the base measure, per component (K,), from statistics.

        Linear in the statistics; incremental EM tracks its free energy with it.
        """

    def check_block(self, X: np.ndarray) -> str | None:
        """Why a block of validated numeric rows is not valid data for this family, or None."""

    def n_parameters(self, params: Any) -> int:
        """Number of free parameters of the components (mixture weights excluded)."""

    def sample(self, params: Any, counts: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """``counts[k]`` random rows from each component ``k``, stacked in component order."""

    def reseed(self, params: Any, component: int, row: np.ndarray, stats: Any) -> Any:
        """Parameters with one collapsed ``component`` restarted at a data ``row``."""

    # Optional: ``min_count(n_features) -> float``, the responsibility mass a component needs
    # before its M-step is well defined (stepwise EM's burn-in; default 1).
    #
    # Optional, together, for *variational* families (variational Bayes has the shape of EM:
    # ``coefficients`` give the expected log-densities under the posterior, ``m_step`` is the
    # conjugate update; see families/bayesian_gaussian.py):
    # ``mixture_weights(params) -> ndarray``, the weights a model gets after an M-step (instead
    # of the normalised counts), and ``elbo_penalty(params) -> float``, what the ELBO subtracts
    # from ``E_q[log p(X, Z | θ)] + H(q(Z))`` (``KL(q(θ) ‖ p(θ))``). The drivers then report
    # the ELBO as the lower bound, and do not re-seed empty components (their posterior is
    # the prior; emptying is how variational Bayes drops components).


class Mixture(NamedTuple):
    """A mixture model as a value: a family, its mixture weights and its component parameters."""

    family: Family
    weights: np.ndarray
    params: Any

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]


def block_rows(n_expanded_features: int, n_components: int = 0, n_features: int = 0) -> int:
    """Rows per block so that a block's float64 work arrays take about ``BLOCK_BYTES``."""
    per_row = n_expanded_features + 3 * n_components + n_features
    rows = BLOCK_BYTES // (8 * max(per_row, 1))
    return int(np.clip(rows, MIN_BLOCK_ROWS, MAX_BLOCK_ROWS))


def cached_block_rows(n_expanded_features: int) -> int:
    """Rows per block of the compiled chunk kernel: features of at most
    ``CACHED_FEATURE_BYTES``, and a whole odd number of cache lines per feature row, so that
    the rows do not share a few of the caches' sets (rows 4 KiB apart: 3584 rows of a
    diagonal Gaussian's features made its E-step 1.5× slower)."""
    rows = max(MIN_CACHED_ROWS, CACHED_FEATURE_BYTES // (8 * max(n_expanded_features, 1)))
    return rows - rows % 16 - 8


def compiled_chunk_estep(
    X: np.ndarray,
    reference: np.ndarray,
    code: int,
    coefficients: list[np.ndarray],
    biases: list[np.ndarray],
    sample_weight: np.ndarray | None,
    counts: list[np.ndarray],
    sums: list[np.ndarray],
    columns: np.ndarray = NO_COLUMNS,
) -> tuple[np.ndarray, int, int]:
    """Rows ``X`` of a Gaussian in one call of the compiled chunk kernel
    (``_compiled.gaussian_chunk_estep``: ``code`` and ``columns`` choose the features) for
    models of coefficients ``A`` (K, P) and biases (K,): their statistics added to
    ``counts`` and ``sums``. Returns the models' log-likelihoods, the first row of the first
    block whose log-likelihood is not finite (−1: none) and the rows per block."""
    step = min(max(len(X), 1), cached_block_rows(coefficients[0].shape[1]))
    log_likelihood, bad = compiled().gaussian_chunk_estep(
        X,
        reference,
        code,
        tuple(np.ascontiguousarray(A, dtype=np.float64) for A in coefficients),
        tuple(np.ascontiguousarray(b, dtype=np.float64) for b in biases),
        NO_ROWS if sample_weight is None else np.ascontiguousarray(sample_weight),
        step,
        FLUSH_BELOW,
        tuple(counts),
        tuple(sums),
        columns,
    )
    return log_likelihood, bad, step


#: The statistics GEMM ``resp · Fᵀ`` of a block, (K × n)·(n × P), with few components ran at
#: half its speed or less once the features passed about a core's L2 cache (OpenBLAS, measured
#: here: K = 8, P = 152, n = 1352: 1.7× slower than in 32-feature slices; K ≥ 16 gains little),
#: so such products are taken this many features at a time.
SLICE_FEATURES = 32
SLICE_BYTES = 1 << 20
SLICE_MAX_COMPONENTS = 8


def add_statistics(sums: np.ndarray | None, resp: np.ndarray, F: np.ndarray) -> np.ndarray:
    """``sums += resp · Fᵀ`` for responsibilities (K, n) and feature-major features (P, n),
    in slices of features when that is faster; returns ``sums`` (with ``sums`` None, the
    product itself). Through ``np.dot``, which releases the GIL at any size (``np.matmul``
    holds it for products under 500 entries)."""
    k, p = len(resp), len(F)
    sliced = k <= SLICE_MAX_COMPONENTS and p > SLICE_FEATURES and 8 * F.size > SLICE_BYTES
    if sums is None:
        if not sliced:
            return np.dot(resp, F.T)
        sums = np.zeros((k, p))
    if sliced:
        for a in range(0, p, SLICE_FEATURES):
            sums[:, a : a + SLICE_FEATURES] += np.dot(resp, F[a : a + SLICE_FEATURES].T)
    else:
        sums += np.dot(resp, F.T)
    return sums


def work_array(
    work: dict, name: str, shape: tuple[int, ...], dtype: type = np.float64
) -> np.ndarray:
    """A contiguous array of ``shape`` and ``dtype`` (float64) in the reused buffer
    ``work[name]`` (grown when too small; the contents are not kept)."""
    size = math.prod(shape)
    buffer = work.get(name)
    if buffer is None or buffer.size < size:
        buffer = work[name] = np.empty(size, dtype)
    return buffer[:size].reshape(shape)


def log_weights(weights: np.ndarray) -> np.ndarray:
    """Logarithm of mixture weights; a zero weight gives -inf without a warning."""
    with np.errstate(divide="ignore"):
        return np.log(weights)


def stats_from_responsibilities(
    family: Family, X: np.ndarray, responsibilities: np.ndarray
) -> Any:
    """Statistics of ``X`` for given (already weighted) responsibilities, shape (N, K)."""
    reference = family.reference(X)
    responsibilities = np.asarray(responsibilities, dtype=np.float64)
    sums = responsibilities[:0].T @ family.features(X[:0], reference).T  # zeros (K, P)
    step = block_rows(X.shape[1] ** 2, responsibilities.shape[1], X.shape[1])
    for start in range(0, X.shape[0], step):
        block = slice(start, start + step)
        sums = sums + responsibilities[block].T @ family.features(X[block], reference).T
    return family.finalize(responsibilities.sum(axis=0), sums, reference)


def merge_weights(counts: np.ndarray) -> np.ndarray:
    """The mixture weights the M-step gives for component ``counts``."""
    weights = counts + COUNT_EPS
    return weights / weights.sum()


def is_variational(family: Family) -> bool:
    """Whether ``family`` is variational (see the optional hooks of :class:`Family`)."""
    return hasattr(family, "elbo_penalty")


def updated_weights(family: Family, stats: Any, params: Any) -> np.ndarray:
    """The mixture weights an M-step gives: the family's own for variational families (from
    the posterior in ``params``), else the normalised counts of ``stats``."""
    own = getattr(family, "mixture_weights", None)
    return merge_weights(stats.counts) if own is None else own(params)


# -- helpers the families share ----------------------------------------------------------------


def finite_mean(X: np.ndarray, axis: int | None = None, step: int = 1) -> np.ndarray:
    """Float64 mean of ``X[::step]`` over ``axis``, from its rows without NaN or infinity
    (else 0).

    A chunk's reference point: the kernel reports the non-finite rows in their own block, so
    the reference is taken from the others. ``X`` must have at least one row.
    """
    kernels = compiled()
    rows = X[::step]
    with np.errstate(invalid="ignore", over="ignore"):
        if axis == 0 and kernels is not None and X.ndim == 2 and X.dtype in FLOATS:
            mean = np.empty(X.shape[1])
            kernels.sampled_means(X, step, mean)  # rows' mean, without NumPy's strided pass
        else:
            mean = rows.mean(axis=axis, dtype=np.float64)
    if not np.all(np.isfinite(mean)):
        finite = np.isfinite(rows).all(axis=1)
        mean = (
            rows[finite].mean(axis=axis, dtype=np.float64) if finite.any() else np.zeros_like(mean)
        )
        mean = np.nan_to_num(mean, nan=0.0, posinf=0.0, neginf=0.0)
    return mean


def pooled_others(values: np.ndarray, component: int, counts: np.ndarray) -> np.ndarray:
    """The ``values`` (K, ...) of all components but one, averaged with weights ``counts``.

    What a collapsed component is restarted from: spread enough to take responsibility for
    some rows again.
    """
    others = np.arange(len(values)) != component
    weights = counts[others] + COUNT_EPS
    return np.tensordot(weights / weights.sum(), values[others], axes=1)
