"""A chunk whose rows share a few missingness patterns, in one compiled call per model
(:mod:`streamem.families._frequent`): the same log-likelihood and statistics as the general
missing-value path and the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from streamem import _kernels, estep
from streamem.estep import chunk_estep
from streamem.families import _compiled, _frequent
from streamem.families._base import Mixture
from streamem.families.gaussian import Gaussian

from .test_gaussian import random_params

pytestmark = pytest.mark.skipif(not _compiled.AVAILABLE, reason="numba is not importable")


def cut_at_depths(rng: np.random.Generator, n: int, d: int, depths, dtype=np.float64):
    """Rows of three clusters, each observed down to a depth drawn from ``depths`` (0:
    nothing observed; d: complete)."""
    X = rng.normal(size=(n, d)) * 1.5 + rng.integers(0, 3, n)[:, None] * 3.0
    depth = rng.choice(depths, size=n)
    X[np.arange(d)[None, :] >= depth[:, None]] = np.nan
    return X.astype(dtype)


def kernel_calls(monkeypatch) -> list:
    """A list that gets an entry at each call of the bucket kernel."""
    calls = []
    kernel = _compiled.pattern_chunk_estep
    monkeypatch.setattr(_compiled, "pattern_chunk_estep", lambda *a: calls.append(1) or kernel(*a))
    return calls


def models_sharing_a_pass(rng: np.random.Generator, covariance_type: str, d: int, ks) -> tuple:
    """Models of ``ks`` components sharing a pass."""
    family = Gaussian(covariance_type, 1e-6, "marginalize")
    return tuple(
        Mixture(family, rng.dirichlet(np.ones(k)), random_params(covariance_type, k, d, k))
        for k in ks
    )


def estep_ways(X, w, models, monkeypatch):
    """The E-step of ``X`` through this path (which must run), the general compiled path
    and the NumPy reference."""
    calls = kernel_calls(monkeypatch)
    few = chunk_estep(X, w, models, 0)
    assert calls
    calls.clear()
    with monkeypatch.context() as patch:
        patch.setattr(_frequent, "PATTERN_LIMIT", 0)
        general = chunk_estep(X, w, models, 0)
        patch.setattr(_kernels, "KERNELS", "numpy")
        reference = chunk_estep(X, w, models, 0)
    assert not calls
    return few, general, reference


def assert_same(a, b):
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-12)
    assert a.weight == b.weight and a.n_rows == b.n_rows
    for stats_a, stats_b in zip(a.stats, b.stats, strict=True):
        assert type(stats_a) is type(stats_b)
        for x, y in zip(stats_a, stats_b, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12 * np.abs(y).max())


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("step", "cap"), [(4096, None), (200, 37)])
def test_few_patterns_equal_the_general_path_and_the_numpy_reference(
    covariance_type, weighted, dtype, step, cap, monkeypatch
):
    """Profiles cut at four depths, complete rows and rows with nothing observed among
    them, two models sharing the pass (one with its own number of components): the
    log-likelihoods and statistics of the buckets of patterns — in blocks of ``step`` rows
    and, with ``cap``, buckets taken ``cap`` rows at a time — are the general path's and
    the NumPy reference's."""
    rng = np.random.default_rng(21)
    d = 6
    X = cut_at_depths(rng, 3000, d, [0, 2, 4, 5, 6], dtype)
    w = rng.random(len(X)) * 2 if weighted else None
    models = models_sharing_a_pass(rng, covariance_type, d, (3, 5))
    monkeypatch.setattr(_frequent, "PATTERN_STEP_ROWS", step)
    if cap is not None:
        monkeypatch.setattr(_frequent, "cached_block_rows", lambda p: cap)
    few, general, reference = estep_ways(X, w, models, monkeypatch)
    assert_same(few, general)
    assert_same(few, reference)


def test_rows_with_nothing_observed_add_nothing(monkeypatch):
    """Rows with nothing observed add nothing: the chunk without them gives the same
    statistics, its log-likelihood and its rows' weight aside."""
    rng = np.random.default_rng(22)
    d = 5
    X = cut_at_depths(rng, 2000, d, [0, 3, 5])
    family = Gaussian("full", 1e-6, "marginalize")
    model = Mixture(family, np.full(2, 0.5), random_params("full", 2, d, 4))
    few, _, _ = estep_ways(X, None, (model,), monkeypatch)
    kept = ~np.isnan(X).all(axis=1)
    without, _, _ = estep_ways(X[kept], None, (model,), monkeypatch)
    np.testing.assert_allclose(few.log_likelihood, without.log_likelihood, rtol=1e-12)
    for x, y in zip(few.stats[0], without.stats[0], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12 * np.abs(y).max())


def with_stray_gaps(rng: np.random.Generator, X: np.ndarray, rate: float) -> np.ndarray:
    """``X`` with a share ``rate`` of its entries missing at random besides."""
    X = X.copy()
    X[rng.random(X.shape) < rate] = np.nan
    return X


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("weighted", [False, True])
def test_frequent_patterns_with_stray_gaps_split_between_the_paths(
    covariance_type, weighted, monkeypatch
):
    """Profiles cut at depths with a few stray gaps besides (more patterns than the buckets
    take): the rows of patterns with ``FREQUENT_ROWS`` rows or more go to the buckets, the
    others to the general path, and the merged statistics are the general path's and the
    NumPy reference's."""
    rng = np.random.default_rng(26)
    d = 10
    X = with_stray_gaps(rng, cut_at_depths(rng, 4000, d, [0, 3, 6, 10]), 0.02)
    table = _frequent.pattern_table(X)
    assert len(table.taken) > _frequent.PATTERN_LIMIT and 0 < table.taken.sum() < 5
    rest = _frequent.rest(table)
    assert 0 < len(rest) < len(X) // 4
    w = rng.random(len(X)) * 2 if weighted else None
    models = models_sharing_a_pass(rng, covariance_type, d, (2, 4))
    general_rows = []
    general = estep._chunk_estep_missing

    def spy(X, *args, **kwargs):
        if not kwargs.get("few", True):
            general_rows.append(len(X))
        return general(X, *args, **kwargs)

    monkeypatch.setattr(estep, "_chunk_estep_missing", spy)
    few, general_path, reference = estep_ways(X, w, models, monkeypatch)
    assert general_rows[0] == len(rest)
    assert_same(few, general_path)
    assert_same(few, reference)


@pytest.mark.parametrize("row", [100, 2500])
def test_an_infinite_value_with_stray_gaps_names_its_row(row):
    """Whichever path its row takes (a frequent pattern's or a stray gap's), an infinite
    value is named at its row of the chunk."""
    rng = np.random.default_rng(27)
    d = 10
    X = with_stray_gaps(rng, cut_at_depths(rng, 4000, d, [3, 6, 10]), 0.02)
    X[row] = 1.0
    X[row, 4] = np.nan  # a stray gap's pattern at 2500, a frequent one at 100
    if row == 100:
        X[row, 3:] = np.nan
    table = _frequent.pattern_table(X)
    assert table.taken[table.ids[row]] == (row == 100)
    X[row, 0] = np.inf
    family = Gaussian("full", 1e-6, "marginalize")
    model = Mixture(family, np.full(2, 0.5), random_params("full", 2, d, 1))
    with pytest.raises(ValueError, match=f"infinity.*1 such row.*first at row {row + 50}"):
        chunk_estep(X, None, (model,), 50)


@pytest.mark.parametrize(
    ("rows", "d", "gaps", "taken"),
    [
        (3000, 6, [1, 3, 6], "all"),
        (3000, 6, list(range(7)), "all"),
        (40, 6, list(range(7)), "none"),  # fewer than PATTERN_MIN_ROWS rows a pattern
        (3000, 6, 0.3, "frequent"),  # 64 patterns: those of FREQUENT_ROWS rows or more
        (3000, 16, 0.3, "none"),  # random gaps: no pattern of FREQUENT_ROWS rows
        (9000, 16, 0.5, "none"),  # more than HASH_LIMIT patterns
    ],
)
def test_which_rows_take_the_few_patterns_path(rows, d, gaps, taken, monkeypatch):
    rng = np.random.default_rng(23)
    if isinstance(gaps, float):
        X = rng.normal(size=(rows, d))
        X[rng.random(X.shape) < gaps] = np.nan
    else:
        X = cut_at_depths(rng, rows, d, gaps)
    _, inverse, counts = np.unique(np.isnan(X), axis=0, return_inverse=True, return_counts=True)
    frequent = counts[inverse.ravel()] >= _frequent.FREQUENT_ROWS
    expected = {"all": rows, "none": 0, "frequent": int(frequent.sum())}[taken]
    assert 0 < expected < rows or taken != "frequent"
    table = _frequent.pattern_table(X)
    assert (0 if table is None else rows - len(_frequent.rest(table))) == expected
    calls = kernel_calls(monkeypatch)
    family = Gaussian("full", 1e-6, "marginalize")
    chunk_estep(X, None, (Mixture(family, np.full(2, 0.5), random_params("full", 2, d)),))
    assert bool(calls) == bool(expected)


def test_diagonal_gaussians_keep_their_masked_features(monkeypatch):
    """Diagonal and spherical Gaussians take their masked features (one GEMM in the chunk's
    order), not the buckets of patterns."""
    rng = np.random.default_rng(24)
    X = cut_at_depths(rng, 3000, 6, [2, 4, 6])
    monkeypatch.setattr(_compiled, "pattern_chunk_estep", None)
    for covariance_type in ("diag", "spherical"):
        family = Gaussian(covariance_type, 1e-6, "marginalize")
        params = random_params(covariance_type, 2, 6)
        chunk_estep(X, None, (Mixture(family, np.full(2, 0.5), params),))


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_an_infinite_value_among_few_patterns_names_its_row(kernels, monkeypatch):
    rng = np.random.default_rng(25)
    d = 5
    X = cut_at_depths(rng, 2000, d, [2, 4])
    X[1500, 1] = np.inf
    family = Gaussian("tied", 1e-6, "marginalize")
    model = Mixture(family, np.full(2, 0.5), random_params("tied", 2, d, 1))
    monkeypatch.setattr(_kernels, "KERNELS", kernels)
    with pytest.raises(ValueError, match="infinity.*1 such row.*first at row 1507"):
        chunk_estep(X, None, (model,), 7)


@settings(max_examples=60, deadline=None)
@given(
    seed=hst.integers(0, 2**32 - 1),
    d=hst.integers(1, 64),
    n_patterns=hst.integers(1, 12),
    rows=hst.integers(0, 300),
    limit=hst.integers(1, 16),
)
def test_pattern_ids_number_the_patterns_in_order_of_first_appearance(
    seed, d, n_patterns, rows, limit
):
    """Against ``np.unique``: the ids, the patterns' bits and their rows, or nothing once
    the patterns are more than ``limit``."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((n_patterns, d)) < rng.random()
    missing = patterns[rng.integers(0, n_patterns, rows)]
    X = np.where(missing, np.nan, rng.normal(size=missing.shape))
    ids, keys, counts = _compiled.pattern_ids(X, limit)
    _, first, inverse, found = np.unique(
        missing, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    if len(first) > limit:
        assert len(ids) == len(keys) == len(counts) == 0
        return
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    np.testing.assert_array_equal(ids, rank[inverse.ravel()])
    bits = (keys[:, None] >> np.arange(d, dtype=np.uint64)) & np.uint64(1)
    np.testing.assert_array_equal(bits.astype(bool), missing[np.sort(first)])
    np.testing.assert_array_equal(counts, found[np.argsort(first)])


@settings(max_examples=30, deadline=None)
@given(
    covariance_type=hst.sampled_from(["full", "tied"]),
    d=hst.integers(1, 9),
    k=hst.integers(1, 4),
    n_patterns=hst.integers(1, 6),
    rows=hst.integers(48, 600),
    weighted=hst.booleans(),
    seed=hst.integers(0, 2**16),
)
def test_any_few_patterns_equal_the_numpy_reference(
    covariance_type, d, k, n_patterns, rows, weighted, seed
):
    """Any dimension, number of components and of patterns (some with nothing observed,
    some complete), weighted or not: the NumPy reference's log-likelihood and statistics."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((n_patterns, d)) < rng.random()
    X = rng.normal(size=(rows, d)) * 2 + rng.integers(0, 3, rows)[:, None] * 2.5
    X[patterns[rng.integers(0, n_patterns, rows)]] = np.nan
    w = rng.random(rows) * 2 if weighted else None
    family = Gaussian(covariance_type, 1e-6, "marginalize")
    params = random_params(covariance_type, k, d, seed)
    model = Mixture(family, rng.dirichlet(np.ones(k)), params)
    saved = _kernels.KERNELS
    try:
        few = chunk_estep(X, w, (model,), 0)
        _kernels.KERNELS = "numpy"
        reference = chunk_estep(X, w, (model,), 0)
    finally:
        _kernels.KERNELS = saved
    if not np.isnan(X).any():  # no gaps: the complete-data kernel on both sides
        return
    assert _frequent.pattern_table(X) is not None
    assert_same(few, reference)
