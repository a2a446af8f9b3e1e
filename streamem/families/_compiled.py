"""Compiled kernels (numba): the element-wise passes of a block, and the rows of a full or
tied Gaussian whose missingness pattern is rare.

A block of the chunk kernel (:mod:`streamem.estep`) is two GEMMs, which release the GIL, and
element-wise passes (the expanded features, the log-sum-exp and the responsibilities); as
NumPy calls those are some thirty short calls per block, each taking the interpreter lock
back, so that two threads E-stepping side by side ran barely faster than one. Here they are
four calls that release the GIL (``np.exp``, SIMD in NumPy, stays NumPy's).

With random gaps nearly every row has its own set of missing entries, so its conditional
algebra (a Cholesky factorisation of ``P_mm`` per component, the inverse ``W`` and two
triangular solves) is shared by few rows; in NumPy it costs dozens of calls per block that each
do little. These kernels (numba) factorise the patterns of a block in batches of equal size,
the matrices side by side along the innermost axis, solve each row for all K components at
once, and release the GIL so that the engine's threads run them side by side. The E-step
of a block whose rows all have rare patterns (random gaps) is one kernel
(``conditional_estep``): each row factorised in batches of rows, the components of every
row side by side, the responsibilities and the moments of the filled-in rows (for the
components whose responsibility is not negligible) summed in the same pass.
:mod:`streamem.families._missing` keeps the NumPy implementation, the reference the tests
compare these kernels against, and uses it when numba is not importable or
``STREAMEM_KERNELS=numpy`` is set.

Notation as in :mod:`streamem.families._missing`: ``x̃`` (n, D) the centred rows with missing
entries 0, ``P`` the precisions, ``μ'`` the centred means, ``g = (P x̃ − P μ')_m`` and
``W = (P_mm)⁻¹``.
"""

from __future__ import annotations

import math
import os

import numpy as np

LOG_2PI = math.log(2 * math.pi)
#: Below this a log-probability's exponential is not a normal float64 (e⁻⁷⁰⁸ ≈ 3.3e-308).
UNDERFLOW = -708.0

try:
    if os.environ.get("STREAMEM_KERNELS", "").lower() == "numpy":
        raise ImportError("STREAMEM_KERNELS=numpy")
    from numba import njit
except ImportError:  # the NumPy reference path is used
    AVAILABLE = False
else:
    AVAILABLE = True
    # reassociation and contraction (vectorised sums, fused multiply-adds), nothing that
    # assumes finite values
    FAST = {"reassoc", "contract", "arcp"}
    # IEEE results (inf, NaN) where Python would raise: the callers check the log-likelihood

    @njit(cache=True, nogil=True, fastmath=FAST)
    def _runs(missing):  # pragma: no cover - compiled
        """The first row of each run of equal patterns, with one past the last, (U + 1,),
        and each run's number of missing entries (U,)."""
        n, d = missing.shape
        starts = np.empty(n + 1, np.int64)
        counts = np.empty(n, np.int64)
        u = 0
        for row in range(n):
            new = row == 0
            if not new:
                for j in range(d):
                    if missing[row, j] != missing[row - 1, j]:
                        new = True
                        break
            if new:
                starts[u] = row
                t = 0
                for j in range(d):
                    t += missing[row, j]
                counts[u] = t
                u += 1
        starts[u] = n
        return starts[: u + 1].copy(), counts[:u].copy()

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def pattern_moments(S, S0, B, a, W, observed, missing, first, second):  # pragma: no cover
        """Add ``Σ r E[x' | x_o]`` (to ``first`` (K, D)) and ``Σ r E[x'x'ᵀ | x_o]`` (to
        ``second`` (K, D, D)) of the rows of one pattern, from their observed entries'
        moments ``S`` (K, o + o(o+1)/2: ``Σ r x_o`` and ``Σ r x_i x_j``, i ≤ j row by row)
        and ``S0`` (K,) = ``Σ r``, with ``E[x'_m | x_o] = a + B x_o`` (B (K, s, o), a (K, s))
        and ``Cov = W`` (K, s, s): the algebra of ``_missing._add_pattern_moments``."""
        k = S.shape[0]
        o, s = observed.shape[0], missing.shape[0]
        S2 = np.empty((o, o))
        BS1 = np.empty(s)
        BS2 = np.empty((s, o))
        for c in range(k):
            p = o
            for i in range(o):
                for j in range(i, o):
                    S2[i, j] = S[c, p]
                    S2[j, i] = S[c, p]
                    p += 1
            for u in range(s):
                total = 0.0
                for i in range(o):
                    total += B[c, u, i] * S[c, i]
                BS1[u] = total
                for j in range(o):
                    total = 0.0
                    for i in range(o):
                        total += B[c, u, i] * S2[i, j]
                    BS2[u, j] = total
            for i in range(o):
                first[c, observed[i]] += S[c, i]
                for j in range(o):
                    second[c, observed[i], observed[j]] += S2[i, j]
            for u in range(s):
                first[c, missing[u]] += a[c, u] * S0[c] + BS1[u]
                for j in range(o):
                    cross = a[c, u] * S[c, j] + BS2[u, j]
                    second[c, missing[u], observed[j]] += cross
                    second[c, observed[j], missing[u]] += cross
                for v in range(s):
                    total = 0.0
                    for i in range(o):
                        total += BS2[u, i] * B[c, v, i]
                    second[c, missing[u], missing[v]] += (
                        S0[c] * (a[c, u] * a[c, v] + W[c, u, v])
                        + a[c, u] * BS1[v]
                        + BS1[u] * a[c, v]
                        + total
                    )

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def observed_features(x, start, stop, observed, F):  # pragma: no cover - compiled
        """``[x_o, x_i x_j (i ≤ j)]`` feature-major into ``F`` (P_o, n) for rows
        ``start:stop`` of ``x`` and its columns ``observed``: the products of
        ``gaussian_features`` without gathering the columns first."""
        o = observed.shape[0]
        for j in range(stop - start):
            for i in range(o):
                F[i, j] = x[start + j, observed[i]]
        _upper_products(F, o, stop - start)

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def _upper_products(F, d, n):  # pragma: no cover - compiled
        """Rows ``d:`` of ``F`` (feature-major) set to the products of its first ``d`` rows,
        ``F[a] F[b]`` for a ≤ b, the upper triangle row by row (``np.triu_indices`` order)."""
        p = d
        for a in range(d):
            for b in range(a, d):
                for j in range(n):
                    F[p, j] = F[a, j] * F[b, j]
                p += 1

    @njit(cache=True, nogil=True)
    def observed_rows(X, observed, complete):  # pragma: no cover - compiled
        """``observed = ~np.isnan(X)`` and ``complete = observed.all(axis=1)`` in one pass
        (NumPy: three, one of them a transposed copy, 3.0 against 1.3 ms for 250k rows of
        16 features)."""
        n, d = X.shape
        for i in range(n):
            whole = True
            for j in range(d):
                seen = X[i, j] == X[i, j]
                observed[i, j] = seen
                whole &= seen
            complete[i] = whole

    @njit(cache=True, nogil=True)
    def scatter_centred(X, missing, position, reference, centred, ordered):  # pragma: no cover
        """Each row of ``X`` with a ``position`` ≥ 0, minus ``reference`` and 0 where
        ``missing``, into that row of ``centred`` (float64), and its row of ``missing`` into
        ``ordered``: the rows in sorted order, read in their own. Gathering them in
        sorted order read the chunk at random; this reads it in turn and writes one stream
        per pattern (rows cut at depths: 5.4 against 11.9 ms for 250k rows of 16 features;
        random gaps: 12.3 against 13.3)."""
        n, d = X.shape
        for row in range(n):
            p = position[row]
            if p < 0:
                continue
            for j in range(d):
                gap = missing[row, j]
                ordered[p, j] = gap
                centred[p, j] = 0.0 if gap else X[row, j] - reference[j]

    @njit(cache=True, nogil=True)
    def pattern_keys(missing):  # pragma: no cover - compiled
        """One unsigned 64-bit key per row of ``missing`` (n, D ≤ 56): the bytes of
        ``np.packbits(missing, axis=1)`` read little-endian, and the row's number of missing
        entries in the most significant byte."""
        n, d = missing.shape
        keys = np.empty(n, np.uint64)
        for i in range(n):
            key = np.uint64(0)
            count = np.uint64(0)
            for j in range(d):
                if missing[i, j]:
                    key |= np.uint64(1) << np.uint64(8 * (j // 8) + 7 - j % 8)
                    count += np.uint64(1)
            keys[i] = key | (count << np.uint64(56))
        return keys

    @njit(cache=True, nogil=True)
    def stable_argsort(keys, shifts):  # pragma: no cover - compiled
        """``np.argsort(keys, kind="stable")`` of unsigned 64-bit ``keys`` whose bits outside
        the bytes at ``shifts`` (bit offsets, least significant first) are equal: a
        least-significant-digit radix sort, one counting pass per byte (skipped when every
        key has the same byte there)."""
        n = keys.shape[0]
        order = np.arange(n)
        spare = np.empty(n, np.int64)
        counts = np.empty(256, np.int64)
        for shift in shifts:
            counts[:] = 0
            for i in range(n):
                counts[(keys[i] >> shift) & 255] += 1
            if counts.max() == n:
                continue
            total = 0
            for b in range(256):
                total, counts[b] = total + counts[b], total
            for i in range(n):
                row = order[i]
                b = (keys[row] >> shift) & 255
                spare[counts[b]] = row
                counts[b] += 1
            order, spare = spare, order
        return order

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def gaussian_features(X, reference, F, second):  # pragma: no cover - compiled
        """A Gaussian's expanded features of rows ``X`` (n, D), feature-major, into ``F``:
        ``x' = x − reference`` (D rows), then for ``second`` = 0 the products ``x'_i x'_j``
        (i ≤ j, the upper triangle row by row), 1 the squares, 2 ``|x'|²``. The same
        operations as the NumPy features (the same numbers but for the order of ``|x'|²``'s
        sum)."""
        n, d = X.shape
        for j in range(n):
            for i in range(d):
                F[i, j] = X[j, i] - reference[i]
        if second == 0:
            _upper_products(F, d, n)
        elif second == 1:
            for a in range(d):
                for j in range(n):
                    F[d + a, j] = F[a, j] * F[a, j]
        else:
            for j in range(n):
                F[d, j] = 0.0
            for a in range(d):
                for j in range(n):
                    F[d, j] += F[a, j] * F[a, j]

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def shift_by_peak(log_prob, bias, peak):  # pragma: no cover - compiled
        """``log_prob`` (K, n) plus ``bias`` (K,), minus its column maxima ``peak`` (n,), in
        place; a column without a finite maximum keeps its values (its peak is set to 0)."""
        k, n = log_prob.shape
        for j in range(n):
            peak[j] = -np.inf
        for c in range(k):
            for j in range(n):
                value = log_prob[c, j] + bias[c]
                log_prob[c, j] = value
                peak[j] = max(peak[j], value)
        for j in range(n):
            if not np.isfinite(peak[j]):
                peak[j] = 0.0
        for c in range(k):
            for j in range(n):
                value = log_prob[c, j] - peak[j]
                # exp of this is subnormal or 0: -inf gives 0 at once (subnormal operands cost
                # ~100 cycles each in what follows) and the same results, such a term being
                # flushed from the responsibilities and below the rounding of their sum ≥ 1
                log_prob[c, j] = -np.inf if value < UNDERFLOW else value  # NaN stays NaN

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def responsibilities(p, peak, h, w, norm, counts, flush):  # pragma: no cover - compiled
        """From ``p = exp(log p − peak)`` (K, n), in place, the responsibilities (below
        ``flush`` set to 0, then times the row weights ``w`` unless ``w`` is empty); into
        ``norm`` (n,) each row's log-likelihood ``log Σ_k p + peak`` (plus ``h`` unless
        empty), into ``counts`` (K,) the responsibilities' sums; returns ``Σ w · norm``.

        An empty ``h`` or ``w`` is not named in the loops that do without it: the vectorised
        loops check at run time that the arrays they read and write do not overlap, and an
        empty array may point anywhere, so that a check failing now and then would send a
        loop to its scalar version, whose sums are added in another order (results that
        differ in the last bits from call to call)."""
        k, n = p.shape
        for j in range(n):
            norm[j] = 0.0
        for c in range(k):
            for j in range(n):
                norm[j] += p[c, j]
        weighted = w.shape[0] > 0
        for c in range(k):
            total = 0.0
            if weighted:
                for j in range(n):
                    r = p[c, j] / norm[j]
                    r = (0.0 if r < flush else r) * w[j]  # NaN stays NaN
                    p[c, j] = r
                    total += r
            else:
                for j in range(n):
                    r = p[c, j] / norm[j]
                    r = 0.0 if r < flush else r
                    p[c, j] = r
                    total += r
            counts[c] = total
        for j in range(n):
            norm[j] = math.log(norm[j]) + peak[j]
        if h.shape[0] > 0:
            for j in range(n):
                norm[j] += h[j]
        log_likelihood = 0.0
        if weighted:
            for j in range(n):
                log_likelihood += norm[j] * w[j]
        else:
            for j in range(n):
                log_likelihood += norm[j]
        return log_likelihood

    #: Patterns factorised together: their matrices side by side along the innermost axis
    #: (several thousand entries, so that each step is one long vectorised loop).
    BATCH_RUNS = 64

    @njit(cache=True, nogil=True, fastmath=FAST, inline="always")
    def _rescale(product, log_det, m):  # pragma: no cover - compiled
        """Move the running products of pivots ``product[:m]`` that near the float range's
        ends into ``log_det`` (one vectorised count, the scalar pass only when one does)."""
        far = 0
        for i in range(m):
            far += (product[i] > 1e150) + (product[i] < 1e-150)
        if far:
            for i in range(m):
                if product[i] > 1e150 or product[i] < 1e-150:
                    log_det[i] += math.log(product[i])
                    product[i] = 1.0

    @njit(cache=True, nogil=True, fastmath=FAST)
    def _factor_batch(A, s, m, inverse, log_det):  # pragma: no cover - compiled
        """Cholesky factors of the SPD matrices ``A[:s, :s, :m]`` (lower triangles, in place),
        the reciprocals of their diagonals ``inverse`` (s, m) and ``log|A|`` (m,), the log
        of a running product rescaled before it could leave the float range."""
        product = np.ones(m)
        log_det[:m] = 0.0
        for b in range(s):
            for q in range(b):
                for i in range(m):
                    A[b, b, i] -= A[b, q, i] * A[b, q, i]
            for i in range(m):
                product[i] *= A[b, b, i]
                A[b, b, i] = math.sqrt(A[b, b, i])
                inverse[b, i] = 1.0 / A[b, b, i]
            _rescale(product, log_det, m)
            for a in range(b + 1, s):
                for q in range(b):
                    for i in range(m):
                        A[a, b, i] -= A[a, q, i] * A[b, q, i]
                for i in range(m):
                    A[a, b, i] *= inverse[b, i]
        for i in range(m):
            log_det[i] += math.log(product[i])

    @njit(cache=True, nogil=True, fastmath=FAST)
    def _covariance_batch(L, inverse, s, m, T, W):  # pragma: no cover - compiled
        """``W = L⁻ᵀL⁻¹`` (its upper triangle) of factors ``L[:s, :s, :m]``, through
        ``T = L⁻¹``."""
        for a in range(s):
            for i in range(m):
                T[a, a, i] = inverse[a, i]
            for b in range(a):
                for i in range(m):
                    T[a, b, i] = 0.0
                for q in range(b, a):
                    for i in range(m):
                        T[a, b, i] -= L[a, q, i] * T[q, b, i]
                for i in range(m):
                    T[a, b, i] *= inverse[a, i]
        for a in range(s):
            for b in range(a, s):
                for i in range(m):
                    W[a, b, i] = 0.0
                for q in range(b, s):
                    for i in range(m):
                        W[a, b, i] += T[q, a, i] * T[q, b, i]

    @njit(cache=True, nogil=True, fastmath=FAST)
    def _ldl_batch(A, s, m, inverse, log_det, row):  # pragma: no cover - compiled
        """LDLᵀ factors of the SPD matrices ``A[:s, :s, :m]``: ``L`` (unit lower, its strict
        lower triangle in place), the reciprocals of ``D`` into ``inverse`` (s, m) and
        ``log|A|`` (m,); ``row`` (s, m) is work. One division a column and no square root
        (a Cholesky factorisation's square roots and divisions were a third of its time)."""
        product = np.ones(m)
        log_det[:m] = 0.0
        for b in range(s):
            for q in range(b):  # row b of L; A[b, q] holds L[b, q] D[q] until here
                for i in range(m):
                    row[q, i] = A[b, q, i] * inverse[q, i]
            for q in range(b):
                for i in range(m):
                    A[b, b, i] -= A[b, q, i] * row[q, i]
            for i in range(m):
                product[i] *= A[b, b, i]
                inverse[b, i] = 1.0 / A[b, b, i]
            _rescale(product, log_det, m)
            for a in range(b + 1, s):
                for q in range(b):
                    for i in range(m):
                        A[a, b, i] -= A[a, q, i] * row[q, i]
            for q in range(b):
                for i in range(m):
                    A[b, q, i] = row[q, i]
        for i in range(m):
            log_det[i] += math.log(product[i])

    @njit(cache=True, nogil=True, fastmath=FAST)
    def _ldl_covariance_batch(L, inverse, s, m, T, W):  # pragma: no cover - compiled
        """``W = L⁻ᵀD⁻¹L⁻¹`` (its upper triangle) of LDLᵀ factors ``L[:s, :s, :m]``
        (unit lower) and ``1/D`` (``inverse``), through ``T = L⁻¹``."""
        for a in range(s):
            for b in range(a):
                for i in range(m):
                    T[a, b, i] = -L[a, b, i]
                for q in range(b + 1, a):
                    for i in range(m):
                        T[a, b, i] -= L[a, q, i] * T[q, b, i]
        for a in range(s):
            for b in range(a, s):
                for i in range(m):
                    W[a, b, i] = inverse[b, i] * (T[b, a, i] if b > a else 1.0)
                for q in range(b + 1, s):
                    for i in range(m):
                        W[a, b, i] += T[q, a, i] * T[q, b, i] * inverse[q, i]

    def conditional_scratch(d: int, k: int) -> int:
        """Entries of ``conditional_rows``' ``scratch`` for D features and K components."""
        return (3 * d * d + d + 1) * BATCH_RUNS * k

    @njit(cache=True, nogil=True)
    def _pattern_work(missing, scratch, k):  # pragma: no cover - compiled
        """The runs of equal patterns of rows sorted by pattern (:func:`_runs`: their starts
        and numbers of missing entries) and the work arrays of their factorisations: ``A``,
        ``T``, ``W`` (s, s, width), ``1/diag`` (s, width) and ``log|·|`` (width,) in the first
        entries of ``scratch``, no larger than the call needs (a few runs, or small
        patterns, are common), ``index`` (the missing columns of a batch's runs) and ``y``
        (a row's solves)."""
        starts, counts = _runs(missing)
        runs = len(counts)
        size = max(counts.max(), 1) if runs else 1
        width = min(BATCH_RUNS, runs) * k
        cube = size * size * width
        A = scratch[:cube].reshape((size, size, width))
        T = scratch[cube : 2 * cube].reshape((size, size, width))
        W = scratch[2 * cube : 3 * cube].reshape((size, size, width))
        inverse = scratch[3 * cube : 3 * cube + size * width].reshape((size, width))
        log_det = scratch[3 * cube + size * width : 3 * cube + (size + 1) * width]
        index = np.empty((BATCH_RUNS, missing.shape[1]), np.int64)
        y = np.empty((size, k))
        return starts, counts, A, T, W, inverse, log_det, index, y

    @njit(cache=True, nogil=True, fastmath=FAST)
    def _factor_runs(
        missing, precisions, starts, counts, first, k, index, A, T, W, inverse, log_det
    ):  # pragma: no cover - compiled
        """Factorise ``P_mm`` (for all K) of the runs from ``first`` on that miss as many
        entries, at most ``BATCH_RUNS`` of them, and invert it (``W``); their missing
        columns into ``index``. Returns one past the last run factorised."""
        d = missing.shape[1]
        s = counts[first]
        last = first + 1
        while last < len(counts) and last - first < BATCH_RUNS and counts[last] == s:
            last += 1
        for g in range(last - first):
            t = 0
            for j in range(d):
                if missing[starts[first + g], j]:
                    index[g, t] = j
                    t += 1
            for a in range(s):
                for b in range(a + 1):
                    for c in range(k):
                        A[a, b, g * k + c] = precisions[index[g, a], index[g, b], c]
        m = (last - first) * k
        _factor_batch(A, s, m, inverse, log_det)
        _covariance_batch(A, inverse, s, m, T, W)
        return last

    @njit(cache=True, nogil=True, fastmath=FAST, inline="always")
    def _solve_row(
        x,
        row,
        products,
        shift,
        log_norm,
        offset,
        index,
        s,
        L,
        inverse,
        log_det,
        base,
        y,
        quad,
        filled,
    ):  # pragma: no cover - compiled
        """``log p_k(x_o)`` of one row into ``quad`` (K,) and ``E[x' | x_o, k]`` into
        ``filled[:, row]``, with the factors ``L`` of its pattern's ``P_mm`` (components
        ``base:base + K`` of the batch) and its missing columns ``index``."""
        d = x.shape[1]
        k = len(quad)
        for c in range(k):
            quad[c] = 0.0
        for a in range(s):  # y = L⁻¹ g
            ia = index[a]
            for c in range(k):
                y[a, c] = products[row, ia, c] - shift[ia, c]
            for q in range(a):
                for c in range(k):
                    y[a, c] -= L[a, q, base + c] * y[q, c]
            for c in range(k):
                y[a, c] *= inverse[a, base + c]
                quad[c] += y[a, c] * y[a, c]
        for c in range(k):
            quad[c] += s * LOG_2PI - log_det[base + c] - offset[c]
        for j in range(d):  # − x̃ᵀPx̃ + 2 x̃ᵀPμ'
            xj = x[row, j]
            for c in range(k):
                quad[c] -= xj * (products[row, j, c] - 2.0 * shift[j, c])
        for c in range(k):
            quad[c] = log_norm[c] + 0.5 * quad[c]
            for j in range(d):
                filled[c, row, j] = x[row, j]
        for a in range(s - 1, -1, -1):  # v = L⁻ᵀ y in place; x̂_m = −v
            for q in range(a + 1, s):
                for c in range(k):
                    y[a, c] -= L[q, a, base + c] * y[q, c]
            for c in range(k):
                y[a, c] *= inverse[a, base + c]
                filled[c, row, index[a]] = -y[a, c]

    @njit(cache=True, nogil=True, fastmath=FAST)
    def conditional_rows(
        x, missing, products, shift, precisions, log_norm, offset, terms, filled, space, scratch
    ):  # pragma: no cover
        """The conditional algebra of rows sorted by missingness pattern.

        ``products`` (n, D, K) is ``P x̃``, ``shift`` (D, K) ``P μ'`` and ``precisions``
        (D, D, K) the precisions, each component last; ``log_norm`` (K,) is
        ``log|L| − D/2 log 2π`` and ``offset`` (K,) ``μ'ᵀPμ'``. The patterns' ``P_mm`` are
        factorised in batches of runs missing as many entries (for all K at once); each
        row's solves then run along the K components. Returns

        * ``log_prob`` (K, n): ``log p_k(x_o)``, the complete-data log-density at the
          zero-filled row, ``log_norm − ½ (x̃ᵀPx̃ − 2 x̃ᵀPμ' + μ'ᵀPμ')``, plus what
          marginalising the missing entries adds, ``½ (gᵀWg + s log 2π − log|P_mm|)``;
        * ``filled`` (K, n, D): ``E[x' | x_o, k]``, the row with ``x̂_m = −W g_m``;
        * ``starts`` (U + 1,): the first row of each run of one pattern (and n);
        * ``offsets`` (U + 1,) and ``covariances``: ``W`` of run ``u`` (s, s, K) flattened
          at ``covariances[offsets[u]:offsets[u + 1]]`` (its upper triangle only).

        ``terms``, ``filled`` and ``space`` (at least Σ s² K entries over the rows) are
        where the results are written, ``scratch`` (``conditional_scratch(D, K)`` entries)
        holds the factorisations: work arrays the caller reuses (fresh arrays of a few MiB
        per block cost page faults where freed memory goes back to the system at once, as
        dask.distributed's workers have it).
        """
        k = shift.shape[1]
        starts, counts, A, T, W, inverse, log_det, index, y = _pattern_work(missing, scratch, k)
        runs = len(counts)
        offsets = np.zeros(runs + 1, np.int64)
        for u in range(runs):
            offsets[u + 1] = offsets[u] + counts[u] * counts[u] * k
        covariances = space[: offsets[runs]]
        quad = np.empty(k)
        first = 0
        while first < runs:
            s = counts[first]
            last = _factor_runs(
                missing, precisions, starts, counts, first, k, index, A, T, W, inverse, log_det
            )
            for g in range(last - first):
                u = first + g
                at = offsets[u]
                for a in range(s):
                    for b in range(a, s):
                        for c in range(k):
                            covariances[at + (a * s + b) * k + c] = W[a, b, g * k + c]
                for row in range(starts[u], starts[u + 1]):
                    _solve_row(
                        x,
                        row,
                        products,
                        shift,
                        log_norm,
                        offset,
                        index[g],
                        s,
                        A,
                        inverse,
                        log_det,
                        g * k,
                        y,
                        quad,
                        filled,
                    )
                    for c in range(k):
                        terms[c, row] = quad[c]
            first = last
        return terms, filled, starts, offsets, covariances

    @njit(cache=True, nogil=True, inline="always")
    def _missed(missing, row):  # pragma: no cover - compiled
        """The number of missing entries of a row."""
        s = 0
        for j in range(missing.shape[1]):
            s += np.int64(missing[row, j])
        return s

    #: Rows solved together in the E-step of rare patterns, their K components side by side
    #: in every step (R·K lanes; 32 and 128 rows were as fast).
    ESTEP_ROWS = 64
    #: A (row, component) whose weighted responsibility is below this fraction of its
    #: batch's sum for the component adds nothing the moments' rounding would keep.
    NEGLIGIBLE = 1e-30
    #: Filled-in rows of a component whose moments are summed together.
    HELD_ROWS = 256

    def estep_scratch(d: int, k: int) -> int:
        """Entries of ``conditional_estep``'s ``scratch`` for D features and K components."""
        return (3 * d * d + 5 * d + 5) * ESTEP_ROWS * k + 2 * d * HELD_ROWS * k

    @njit(cache=True, nogil=True, fastmath=FAST)
    def _add_moments(held, weighed, n, first, second, square):  # pragma: no cover - compiled
        """Add ``Σ r x̂`` to ``first`` (D,) and ``Σ r x̂x̂ᵀ`` to the upper triangle of
        ``second`` (D, D) of ``n`` filled-in rows ``held[:n]`` (·, D), ``weighed`` the
        same times their ``r``; ``square`` is a work array of D² entries."""
        d = held.shape[1]
        if n == 0:
            return
        product = square.reshape((d, d))
        np.dot(weighed[:n].T, held[:n], product)
        for e in range(n):
            for i in range(d):
                first[i] += weighed[e, i]
        for i in range(d):
            for j in range(i, d):
                second[i, j] += product[i, j]

    @njit(cache=True, nogil=True, fastmath=FAST)
    def _add_covariances(second, W, s, index, rows, r, lo, hi):  # pragma: no cover - compiled
        """Add ``r W`` of lanes ``lo:hi`` (their ``W`` (s, s, ·), upper triangles) to
        ``second`` (D, D) at their rows' missing columns ``index`` (·, R)."""
        for e in range(lo, hi):  # unsigned indices: no test for negative ones
            t = rows[e]
            for p in range(s):
                ip = np.uint64(index[p, t])
                for q in range(p, s):
                    second[ip, np.uint64(index[q, t])] += r[e] * W[p, q, e]

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def conditional_estep(
        x,
        missing,
        shift,
        stacked,
        precisions,
        log_norm,
        offset,
        bias,
        w,
        flush,
        counts,
        first,
        second,
        scratch,
    ):  # pragma: no cover
        """The E-step of rows sorted by their number of missing entries, each with at least
        one observed (a block whose rows all have rare patterns: random gaps): returns their
        log-likelihood ``Σ w log p(x_o)``; the responsibilities' sums go into ``counts``
        (K,), ``Σ r x̂`` into ``first`` (K, D) and ``Σ r (x̂ x̂ᵀ + W)`` into the upper
        triangle of ``second`` (K, D, D), both added to.

        ``shift`` (K, D) is ``P μ'``, ``stacked`` (D, K·D) the precisions side by side
        and ``precisions`` (D, D, K) the same, components last; ``bias`` (K,) the
        log-weights, ``w`` the row weights (or empty), ``flush`` the responsibility below
        which it is 0; ``scratch`` holds ``estep_scratch(D, K)`` entries.

        Rows missing as many entries are taken ``ESTEP_ROWS`` at a time, each with its own
        factorisation, and every step runs along long vectorised loops: ``P x̃`` of the
        batch by one GEMM (its rows the batch's, so that a row's ``g`` is read from one
        cache line); ``P_mm`` and ``g`` gathered, the LDLᵀ factorisations and the
        forward solves (what the log-densities need) along the R·K (row, component) lanes;
        the responsibilities by the chunk kernel's steps (``shift_by_peak``,
        ``exp_in_place``, ``responsibilities``) along the rows of each component. The rest
        — the filled-in rows ``x̂ = E[x' | x_o, k]``, ``W`` and the moments — only for the
        lanes that weigh: a weighted responsibility below ``NEGLIGIBLE`` times its batch's
        sum for that component would add to the moments less than 1e-30 of what the
        batch adds, far below their rounding (a component far from a row has a
        responsibility of 1e-50 or less, most of the K − 1 others of every row in
        separated mixtures). The lanes that weigh are copied together, component by
        component, for the back solves and ``W``; their filled-in rows are held by
        component, and each component's moments are one GEMM per ``HELD_ROWS`` rows.
        """
        n, d = x.shape
        k = shift.shape[0]
        weights = w.shape[0] > 0
        lanes = ESTEP_ROWS * k
        cube = d * d * lanes
        area = d * lanes
        at = 3 * cube
        inverse_all = scratch[at : at + area]
        y_all = scratch[at + area : at + 2 * area]
        products_all = scratch[at + 2 * area : at + 3 * area]
        kept_inverse = scratch[at + 3 * area : at + 4 * area]
        kept_y = scratch[at + 4 * area : at + 5 * area]
        at += 5 * area
        log_det = scratch[at : at + lanes]
        lp = scratch[at + lanes : at + 2 * lanes]  # lanes (row, component)
        lc = scratch[at + 2 * lanes : at + 3 * lanes]  # lanes (component, row)
        spare = scratch[at + 3 * lanes : at + 4 * lanes]
        kept_r = scratch[at + 4 * lanes : at + 5 * lanes]
        kept_row = np.empty(lanes, np.int64)
        kept_from = np.empty(lanes, np.uint64)  # unsigned: indices without a sign test
        kept_start = np.empty(k + 1, np.int64)
        at += 5 * lanes
        held = scratch[at : at + k * d * HELD_ROWS].reshape((k, HELD_ROWS, d))
        weighed = scratch[at + k * d * HELD_ROWS : at + 2 * k * d * HELD_ROWS].reshape(
            (k, HELD_ROWS, d)
        )
        held_rows = np.zeros(k, np.int64)
        rows = x.reshape(n * d)
        index_all = np.empty(d * ESTEP_ROWS, np.int64)
        square = np.empty(d * d)
        peak = np.empty(ESTEP_ROWS)
        norm = np.empty(ESTEP_ROWS)
        found = np.empty(k)
        no_rows = np.empty(0)
        for c in range(k):
            counts[c] = 0.0
        log_likelihood = 0.0
        a0 = 0
        while a0 < n:
            s = _missed(missing, a0)
            b0 = a0 + 1
            while b0 < n and b0 - a0 < ESTEP_ROWS and _missed(missing, b0) == s:
                b0 += 1
            nr = b0 - a0
            m = nr * k
            size = s * s * m
            A = scratch[:size].reshape((s, s, m))
            inverse = inverse_all[: s * m].reshape((s, m))
            y = y_all[: s * m].reshape((s, m))
            index = index_all[: d * nr].reshape((d, nr))  # its first s rows: missing columns
            for t in range(nr):
                q = 0
                for j in range(d):
                    index[min(q, d - 1), t] = j
                    q += np.int64(missing[a0 + t, j])
            products = products_all[: nr * k * d].reshape((nr, k * d))
            # row t, column c·D + j: (P_c x̃)_j
            np.dot(rows[a0 * d : b0 * d].reshape((nr, d)), stacked, products)
            # the complete-data log-density at x̃, less its constants: −x̃ᵀPx̃ + 2x̃ᵀPμ'
            for t in range(nr):
                for c in range(k):
                    acc = 0.0
                    for j in range(d):
                        acc += x[a0 + t, j] * (products[t, c * d + j] - 2.0 * shift[c, j])
                    lp[t * k + c] = -acc
            for t in range(nr):  # P_mm, and g = (P x̃ − P μ')_m
                for p in range(s):
                    ip = index[p, t]
                    for q in range(p + 1):
                        iq = np.uint64(index[q, t])
                        for c in range(k):
                            A[p, q, t * k + c] = precisions[np.uint64(ip), iq, c]
                    for c in range(k):
                        y[p, t * k + c] = products[t, c * d + ip] - shift[c, ip]
            _ldl_batch(A, s, m, inverse, log_det, kept_y[: s * m].reshape((s, m)))
            for p in range(s):  # y = L⁻¹ g: gᵀWg = yᵀD⁻¹y
                for q in range(p):
                    for i in range(m):
                        y[p, i] -= A[p, q, i] * y[q, i]
                for i in range(m):
                    lp[i] += y[p, i] * y[p, i] * inverse[p, i]
            for t in range(nr):
                for c in range(k):
                    i = t * k + c
                    lc[c * nr + t] = log_norm[c] + 0.5 * (
                        lp[i] + s * LOG_2PI - log_det[i] - offset[c]
                    )
            L = lc[:m].reshape((k, nr))
            shift_by_peak(L, bias, peak[:nr])
            exp_in_place(lc[:m], spare)
            log_likelihood += responsibilities(
                L, peak[:nr], no_rows, w[a0:b0] if weights else no_rows, norm[:nr], found, flush
            )
            # the lanes that weigh, component by component
            kept = 0
            for c in range(k):
                kept_start[c] = kept
                least = NEGLIGIBLE * found[c]
                for t in range(nr):
                    r = lc[c * nr + t]
                    if r > least:
                        kept_r[kept] = r
                        kept_row[kept] = t
                        kept_from[kept] = np.uint64(t * k + c)
                        kept += 1
                counts[c] += found[c]
            kept_start[k] = kept
            # their factors, next to each other (the gathered P_mm's place is free after)
            Lk = scratch[2 * cube : 2 * cube + s * s * kept].reshape((s, s, kept))
            T = scratch[cube : cube + s * s * kept].reshape((s, s, kept))
            W = scratch[: s * s * kept].reshape((s, s, kept))
            inv = kept_inverse[: s * kept].reshape((s, kept))
            v = kept_y[: s * kept].reshape((s, kept))
            for p in range(s):
                for q in range(p):
                    for i in range(kept):
                        Lk[p, q, i] = A[p, q, kept_from[i]]
                for i in range(kept):
                    inv[p, i] = inverse[p, kept_from[i]]
                    v[p, i] = y[p, kept_from[i]]
            for p in range(s - 1, -1, -1):  # v = L⁻ᵀD⁻¹y = W g: x̂_m = −v
                for i in range(kept):
                    v[p, i] *= inv[p, i]
                for q in range(p + 1, s):
                    for i in range(kept):
                        v[p, i] -= Lk[q, p, i] * v[q, i]
            _ldl_covariance_batch(Lk, inv, s, kept, T, W)
            # x̂ of each lane into its component's rows, whose moments are summed once
            # there are HELD_ROWS of them (sums along a batch's few rows of a component
            # would be short loops); Σ r W into the missing entries' places
            for c in range(k):
                lo = kept_start[c]
                hi = kept_start[c + 1]
                h = held_rows[c]
                if h + hi - lo > HELD_ROWS:
                    _add_moments(held[c], weighed[c], h, first[c], second[c], square)
                    h = 0
                for e in range(lo, hi):
                    t = kept_row[e]
                    row = held[c, h + e - lo]
                    for j in range(d):
                        row[j] = x[a0 + t, j]
                    for p in range(s):
                        row[np.uint64(index[p, t])] = -v[p, e]
                    r = kept_r[e]
                    into = weighed[c, h + e - lo]
                    for j in range(d):
                        into[j] = r * row[j]
                held_rows[c] = h + hi - lo
                _add_covariances(second[c], W, s, index, kept_row, kept_r, lo, hi)
            a0 = b0
        for c in range(k):
            _add_moments(held[c], weighed[c], held_rows[c], first[c], second[c], square)
        return log_likelihood

    @njit(cache=True, nogil=True, fastmath=FAST)
    def add_covariances(missing, resp, starts, offsets, covariances, second):  # pragma: no cover
        """Add ``Σ r W`` of every run of one pattern to the upper triangle of the (m, m)
        blocks of ``second`` (K, D, D)."""
        k, d = resp.shape[0], missing.shape[1]
        index = np.empty(d, np.int64)
        shared = np.empty(k)
        for u in range(len(starts) - 1):
            s = 0
            for j in range(d):
                if missing[starts[u], j]:
                    index[s] = j
                    s += 1
            for c in range(k):
                shared[c] = 0.0
                for row in range(starts[u], starts[u + 1]):
                    shared[c] += resp[c, row]
            at = offsets[u]
            for a in range(s):
                for b in range(a, s):
                    for c in range(k):
                        second[c, index[a], index[b]] += (
                            shared[c] * covariances[at + (a * s + b) * k + c]
                        )

    @njit(cache=True, nogil=True)
    def sampled_means(X, step, means):  # pragma: no cover - compiled
        """The column means of every ``step``-th row of ``X`` into ``means`` (D,), float64,
        summed row after row and divided by the count (NumPy's ``mean`` over axis 0, the
        same numbers). NumPy took 0.7 ms for 4096 such rows of a chunk not in the cache;
        this 0.14 ms (0.22 ms given the strided view ``X[::step]`` itself)."""
        n, d = X.shape
        means[:] = 0.0
        count = 0
        for i in range(0, n, step):
            for j in range(d):
                means[j] += X[i, j]
            count += 1
        for j in range(d):
            means[j] /= count

    @njit(cache=True, nogil=True)
    def observed_means(X, means):  # pragma: no cover - compiled
        """Each column's mean over its entries that are not NaN into ``means`` (D,), 0 for a
        column with none (a reduction down the columns of a few thousand rows costs NumPy
        ~70 µs a call)."""
        n, d = X.shape
        counts = np.zeros(d)
        means[:] = 0.0
        for i in range(n):
            for j in range(d):
                v = X[i, j]
                if v == v:
                    means[j] += v
                    counts[j] += 1.0
        for j in range(d):
            means[j] = means[j] / counts[j] if counts[j] > 0 else 0.0

    @njit(cache=True, nogil=True)
    def gaussian_masked_block(values, reference, features):  # pragma: no cover - compiled
        """A diagonal or spherical Gaussian's masked features ``[m ⊙ x', m ⊙ x'², m]``
        into ``features`` (3D, n) for rows with NaN (``x' = x − reference``); returns the
        rows with none observed (n,). The centred rows transposed, then each feature's row
        along the block, counting each row's observed entries (the same operations as
        ``Gaussian.masked_features``, so the same numbers)."""
        n, d = values.shape
        for i in range(n):
            for j in range(d):
                features[j, i] = values[i, j] - reference[j]
        seen = np.zeros(n)
        for j in range(d):
            x, square, mask = features[j], features[d + j], features[2 * d + j]
            for i in range(n):  # selects, not branches: random gaps would mispredict
                v = x[i]
                ok = v == v  # False for NaN
                w = v if ok else 0.0
                x[i] = w
                square[i] = w * w
                m = 1.0 if ok else 0.0
                mask[i] = m
                seen[i] += m
        # (a test of every entry in the transposing pass kept it from vectorising: 15.5
        # against 14.1 µs for 1176 rows of 16 features)
        return seen == 0.0

    # -- the exponential, vectorised ----------------------------------------------------------
    # exp(v) = 2ᵏ exp(r), k = round(v / log 2), r = v − k log 2 (Cody & Waite: log 2 in two
    # parts, so that r is exact), exp(r) by its Taylor polynomial of degree 13 (|r| ≤ ½ log 2:
    # truncation below 5e-18 relative), 2ᵏ added to the exponent's bits. Within one unit in
    # the last place of NumPy's (which numba's ``np.exp``, a libm call per value, is not
    # faster than 4×); only contractions allowed, so that the rounding by ``_SHIFTER`` stays.
    _INV_LN2 = 1.4426950408889634
    _LN2_HI = 6.93147180369123816490e-01
    _LN2_LO = 1.90821492927058770002e-10
    _SHIFTER = 6755399441055744.0  # 1.5 · 2⁵²: adding it rounds to an integer in the low bits
    _SHIFTER_BITS = np.int64(0x4338000000000000)
    _TAYLOR = tuple(1.0 / math.factorial(i) for i in range(14))

    @njit(cache=True, nogil=True, fastmath={"contract"})
    def _exp_reduced(x, shifted):  # pragma: no cover - compiled
        """``x`` (≤ 0, −inf or NaN) to ``exp(r)`` in place and ``v / log 2 + _SHIFTER`` into
        ``shifted``; below ``UNDERFLOW`` 0 (with k = 0), NaN kept."""
        c = _TAYLOR
        for i in range(x.shape[0]):
            v = x[i]
            under = v < UNDERFLOW  # also −inf
            shifted_v = v * _INV_LN2 + _SHIFTER
            k = shifted_v - _SHIFTER
            r = (v - k * _LN2_HI) - k * _LN2_LO
            p = c[13]
            for j in range(12, -1, -1):  # Horner
                p = p * r + c[j]
            x[i] = 0.0 if under else p
            shifted[i] = shifted_v if (v == v and not under) else _SHIFTER

    @njit(cache=True, nogil=True)
    def _exp_scaled(bits, shifted_bits):  # pragma: no cover - compiled
        """Multiply by 2ᵏ: k added to the exponent field (k from the low bits of the shifted
        value; integers only, so that the loop vectorises)."""
        for i in range(bits.shape[0]):
            bits[i] += (shifted_bits[i] - _SHIFTER_BITS) << 52

    @njit(cache=True, nogil=True)
    def exp_in_place(x, scratch):  # pragma: no cover - compiled
        """``np.exp(x, out=x)`` for a contiguous ``x`` (n,) of values ≤ 0, −inf or NaN (a
        log-probability less its row's peak), within one unit in the last place; those below
        ``UNDERFLOW`` give 0. ``scratch`` is float64 work space of at least n values."""
        n = x.shape[0]
        _exp_reduced(x, scratch[:n])
        _exp_scaled(x.view(np.int64), scratch[:n].view(np.int64))

    # -- the chunk kernel of a Gaussian, in one call -----------------------------------------

    @njit(cache=True, nogil=True)
    def block_scratch(k, p, n):  # pragma: no cover - compiled
        """Float64 work space of :func:`_block_estep` for K components, P features and
        blocks of at most n rows."""
        return 3 * k * n + p * k + 2 * n + k

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def _block_estep(A, F, bias, w, flush, counts, sums, work):  # pragma: no cover - compiled
        """One block's E-step under one model: its log-probabilities ``A · F`` (a GEMM, A
        (K, P), F (P, n) feature-major) plus ``bias`` (K,), the responsibilities (times the
        row weights ``w`` unless empty), their sums added to ``counts`` (K,) and ``r Fᵀ``
        to ``sums`` (K, P), computed as ``F rᵀ`` through a contiguous ``rᵀ``. Returns the
        block's log-likelihood; where it is not finite, ``counts`` and ``sums`` are left
        as they were. ``work``: :func:`block_scratch` values at least."""
        k, p = A.shape
        n = F.shape[1]
        kn = k * n
        log_prob = work[:kn]
        scratch = work[kn : 2 * kn]
        transposed = work[2 * kn : 3 * kn]
        product = work[3 * kn : 3 * kn + p * k]
        rest = 3 * kn + p * k
        peak, norm, found = (
            work[rest : rest + n],
            work[rest + n : rest + 2 * n],
            work[rest + 2 * n : rest + 2 * n + k],
        )
        L = log_prob.reshape((k, n))
        np.dot(A, F, L)
        shift_by_peak(L, bias, peak)
        exp_in_place(log_prob, scratch)
        part = responsibilities(L, peak, work[:0], w, norm, found, flush)
        if not np.isfinite(part):
            return part
        for c in range(k):
            counts[c] += found[c]
        R = transposed.reshape((n, k))
        for j in range(n):
            for c in range(k):
                R[j, c] = L[c, j]
        S = product.reshape((p, k))
        np.dot(F, R, S)
        for c in range(k):
            for a in range(p):
                sums[c, a] += S[a, c]
        return part

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def gaussian_chunk_estep(
        X, reference, second, coefficients, biases, w, step, flush, counts, sums, columns
    ):  # pragma: no cover - compiled
        """:func:`streamem.estep.chunk_estep` of a Gaussian's rows ``X`` (n, D) in one call
        without the GIL: per block of ``step`` rows the features (``gaussian_features`` with
        ``second``; −1: the masked features of a diagonal or spherical Gaussian's rows with
        NaN, ``gaussian_masked_block``, rows with nothing observed weighing 0; unless
        ``columns`` is empty, ``observed_features`` of those columns of rows already
        centred: the rows of one missingness pattern, ``reference`` unused), then for each
        model ``m`` its log-probabilities ``coefficients[m] · F`` (a GEMM) plus
        ``biases[m]``, the responsibilities (times the row weights ``w`` unless empty) and
        their sums into ``counts[m]`` (K,), and ``r Fᵀ`` into ``sums[m]`` (K, P), computed as
        ``F rᵀ`` through a contiguous ``rᵀ``. Returns each model's log-likelihood and the
        first row of the first block whose log-likelihood is not finite (−1: none; the
        statistics are then incomplete)."""
        n = X.shape[0]
        models = len(coefficients)
        p = coefficients[0].shape[1]
        k_max = 1
        for m in range(models):
            k_max = max(k_max, coefficients[m].shape[0])
        features = np.empty(p * step)
        work = np.empty(block_scratch(k_max, p, step))
        no_rows = np.empty(0)
        block_w = np.empty(step if second < 0 else 0)
        log_likelihood = np.zeros(models)
        weighted = w.shape[0] > 0
        for start in range(0, n, step):
            stop = min(start + step, n)
            width = stop - start
            F = features[: p * width].reshape((p, width))
            rows_w = w[start:stop] if weighted else no_rows
            if columns.shape[0] > 0:
                observed_features(X, start, stop, columns, F)
            elif second >= 0:
                gaussian_features(X[start:stop], reference, F, second)
            else:
                empty = gaussian_masked_block(X[start:stop], reference, F)
                if empty.any():
                    rows_w = block_w[:width]
                    for j in range(width):
                        rows_w[j] = 0.0 if empty[j] else (w[start + j] if weighted else 1.0)
            for m in range(models):
                part = _block_estep(
                    coefficients[m], F, biases[m], rows_w, flush, counts[m], sums[m], work
                )
                if not np.isfinite(part):
                    return log_likelihood, start
                log_likelihood[m] += part
        return log_likelihood, -1

    # -- chunks whose rows share a few missingness patterns ----------------------------------

    @njit(cache=True, nogil=True)
    def pattern_ids(X, limit):  # pragma: no cover - compiled
        """Each row's missingness pattern (where ``X`` (n, D ≤ 64) is NaN) as an id, the
        patterns numbered in order of first appearance: the ids (n,), the patterns' keys
        (U,: bit j set where column j is missing) and their rows (U,). With more than
        ``limit`` patterns, empty arrays (the chunk is not read to its end)."""
        n, d = X.shape
        bits = 1
        while (1 << bits) < 4 * limit:
            bits += 1
        size = 1 << bits
        mask = np.uint64(size - 1)
        slot_key = np.zeros(size, np.uint64)
        slot_id = np.full(size, -1, np.int64)
        keys = np.empty(limit, np.uint64)
        rows = np.zeros(limit, np.int64)
        ids = np.empty(n, np.int64)
        u = 0
        for i in range(n):
            key = np.uint64(0)
            for j in range(d):
                v = X[i, j]
                key |= np.uint64(v != v) << np.uint64(j)
            # Fibonacci hashing: the high bits of the product spread nested and sparse keys
            h = ((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits)) & mask
            while True:
                s = slot_id[h]
                if s < 0:
                    if u == limit:
                        return ids[:0], keys[:0], rows[:0]
                    slot_id[h] = u
                    slot_key[h] = key
                    keys[u] = key
                    s = u
                    u += 1
                    break
                if slot_key[h] == key:
                    break
                h = (h + np.uint64(1)) & mask
            ids[i] = s
            rows[s] += 1
        return ids, keys[:u].copy(), rows[:u].copy()

    @njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy")
    def pattern_chunk_estep(
        X,
        ids,
        reference,
        columns,
        widths,
        coefficients,
        offsets,
        biases,
        w,
        step,
        caps,
        flush,
        counts,
        sums,
    ):  # pragma: no cover - compiled
        """The E-step of rows ``X`` (n, D) whose missingness patterns ``ids`` (n,) are few,
        in one call without the GIL: each pattern ``u``'s rows are the complete-data E-step
        of its observed entries ``columns[u, :widths[u]]`` (rows with none observed add
        nothing), with coefficients ``coefficients[offsets[u]:offsets[u + 1]]`` (K, P_u)
        over the features ``[x'_o, x'_i x'_j (i ≤ j)]`` of ``x' = x − reference``, and
        biases ``biases[u]`` (K,). Per block of ``step``
        rows in the chunk's order, the rows are put in buckets by pattern (a counting
        sort of their indices) and each bucket taken ``caps[u]`` rows at a time, its
        features gathered from ``X`` (so they stay in a core's cache): one GEMM for the
        log-probabilities, the responsibilities (times the row weights ``w`` unless empty)
        summed into ``counts[u]`` (K,), and one GEMM for ``r Fᵀ``, added to ``sums``
        (laid out as ``coefficients``). Returns the log-likelihood and the first row of
        the first block whose log-likelihood is not finite (−1: none)."""
        n = X.shape[0]
        patterns = widths.shape[0]
        k = biases.shape[1]
        p_max = 1
        cap_max = 1
        feature_max = 1
        for u in range(patterns):
            p = (offsets[u + 1] - offsets[u]) // k
            cap = min(caps[u], step)
            p_max = max(p_max, p)
            cap_max = max(cap_max, cap)
            feature_max = max(feature_max, p * cap)
        features = np.empty(feature_max)
        work = np.empty(block_scratch(k, p_max, cap_max))
        rows_w = np.empty(cap_max)
        no_rows = np.empty(0)
        filled = np.empty(patterns, np.int64)
        begin = np.empty(patterns + 1, np.int64)
        lanes = np.empty(step, np.int64)
        weighted = w.shape[0] > 0
        log_likelihood = 0.0
        for start in range(0, n, step):
            stop = min(start + step, n)
            filled[:] = 0
            for i in range(start, stop):
                filled[ids[i]] += 1
            begin[0] = 0
            for u in range(patterns):
                begin[u + 1] = begin[u] + (filled[u] if widths[u] > 0 else 0)
                filled[u] = begin[u]
            for i in range(start, stop):
                u = ids[i]
                if widths[u] > 0:
                    lanes[filled[u]] = i
                    filled[u] += 1
            for u in range(patterns):
                o = widths[u]
                p = (offsets[u + 1] - offsets[u]) // k
                A = coefficients[offsets[u] : offsets[u + 1]].reshape((k, p))
                into = sums[offsets[u] : offsets[u + 1]].reshape((k, p))
                cap = min(caps[u], step)
                for at in range(begin[u], begin[u + 1], cap):
                    m = min(cap, begin[u + 1] - at)
                    F = features[: p * m].reshape((p, m))
                    for j in range(m):
                        row = lanes[at + j]
                        for a in range(o):
                            c = columns[u, a]
                            F[a, j] = X[row, c] - reference[c]
                    _upper_products(F, o, m)
                    if weighted:
                        for j in range(m):
                            rows_w[j] = w[lanes[at + j]]
                    block_w = rows_w[:m] if weighted else no_rows
                    part = _block_estep(A, F, biases[u], block_w, flush, counts[u], into, work)
                    if not np.isfinite(part):
                        return log_likelihood, start
                    log_likelihood += part
        return log_likelihood, -1
