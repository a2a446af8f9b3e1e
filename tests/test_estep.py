"""The chunk kernel against a direct dense computation, weights, shared passes and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy.special import logsumexp

from streamem.estep import (
    chunk_estep,
    chunk_log_prob_resp,
    component_log_prob,
    merge_results,
    normalize_log_prob,
)
from streamem.families._base import Mixture, stats_from_responsibilities
from streamem.families.gaussian import (
    COVARIANCE_TYPES,
    Gaussian,
    GaussianParams,
    precision_cholesky,
)

from .conftest import assert_close
from .families.test_gaussian import random_params


def model(kind: str, k: int = 3, d: int = 4, seed: int = 0) -> Mixture:
    weights = np.random.RandomState(seed).dirichlet(np.ones(k))
    return Mixture(Gaussian(kind), weights, random_params(kind, k, d, seed))


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_chunk_estep_equals_dense_computation(kind):
    m = model(kind)
    X = np.random.RandomState(1).normal(size=(1000, 4)) * 3
    weighted = component_log_prob(m.family, m.params, X) + np.log(m.weights)
    norm = logsumexp(weighted, axis=1)
    resp = np.exp(weighted - norm[:, None])
    expected = stats_from_responsibilities(m.family, X, resp)

    result = chunk_estep(X, None, (m,))
    np.testing.assert_allclose(result.log_likelihood[0], norm.sum(), rtol=1e-12)
    assert result.weight == 1000 and result.n_rows == 1000
    for ours, theirs in zip(result.stats[0], expected, strict=True):
        assert_close(ours, theirs, 1e-12)


def test_integer_sample_weights_equal_repeated_rows():
    m = model("full")
    rng = np.random.RandomState(2)
    X = rng.normal(size=(300, 4))
    counts = rng.randint(0, 4, size=300)
    weighted = chunk_estep(X, counts.astype(float), (m,))
    repeated = chunk_estep(np.repeat(X, counts, axis=0), None, (m,))
    np.testing.assert_allclose(weighted.log_likelihood, repeated.log_likelihood, rtol=1e-12)
    assert weighted.weight == counts.sum()
    for ours, theirs in zip(weighted.stats[0], repeated.stats[0], strict=True):
        assert_close(ours, theirs, 1e-11)


def test_models_sharing_a_pass_equal_separate_passes():
    models = (model("full", seed=0), model("diag", k=5, seed=1), model("tied", seed=2))
    X = np.random.RandomState(3).normal(size=(2000, 4))
    shared = chunk_estep(X, None, models)
    for i, m in enumerate(models):
        alone = chunk_estep(X, None, (m,))
        assert shared.log_likelihood[i] == alone.log_likelihood[0]
        for ours, theirs in zip(shared.stats[i], alone.stats[0], strict=True):
            np.testing.assert_array_equal(ours, theirs)


def test_merge_results_adds_up():
    m = model("spherical")
    X = np.random.RandomState(4).normal(size=(500, 4))
    parts = [chunk_estep(X[s], None, (m,), s.start) for s in (slice(0, 100), slice(100, 500))]
    merged = merge_results((m.family,), *parts)
    whole = chunk_estep(X, None, (m,))
    np.testing.assert_allclose(merged.log_likelihood, whole.log_likelihood, rtol=1e-13)
    assert merged.n_rows == 500
    for ours, theirs in zip(merged.stats[0], whole.stats[0], strict=True):
        assert_close(ours, theirs, 1e-12)


def test_normalize_equals_logsumexp_and_flushes_tiny():
    rng = np.random.RandomState(5)
    log_prob = rng.normal(size=(50, 6)) * 300
    expected_norm = logsumexp(log_prob, axis=1)
    expected_resp = np.exp(log_prob - expected_norm[:, None])
    norm, resp = normalize_log_prob(log_prob.T.copy())  # components along the first axis
    np.testing.assert_allclose(norm, expected_norm, rtol=1e-14)
    flushed = np.where(expected_resp < 1e-300, 0, expected_resp)
    np.testing.assert_allclose(resp.T, flushed, atol=1e-15)
    assert np.all((resp == 0) | (resp >= 1e-300))  # no subnormal numbers


def test_nan_names_the_row_range():
    m = model("diag")
    X = np.zeros((5000, 4))
    X[4321, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity.*rows \d+–\d+.*row 10321"):
        chunk_estep(X, None, (m,), row_offset=6000)
    with pytest.raises(ValueError, match=r"first at row 10321"):
        chunk_log_prob_resp(X, m, 6000)


def test_infinity_is_reported():
    m = model("full")
    X = np.zeros((10, 4))
    X[7, 0] = np.inf
    with pytest.raises(ValueError, match="first at row 7"):
        chunk_estep(X, None, (m,))


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_bad_sample_weight_names_the_row(bad):
    m = model("full")
    w = np.ones(20)
    w[13] = bad
    with pytest.raises(ValueError, match="sample_weight.*row 113"):
        chunk_estep(np.zeros((20, 4)), w, (m,), row_offset=100)


def test_float32_and_integer_chunks():
    m = model("full")
    X = np.random.RandomState(6).randint(-3, 4, size=(100, 4))
    as_float = chunk_estep(X.astype(np.float64), None, (m,))
    for dtype in (np.int32, np.float32):
        other = chunk_estep(X.astype(dtype), None, (m,))
        np.testing.assert_allclose(other.log_likelihood, as_float.log_likelihood, rtol=1e-12)


def test_empty_chunk():
    m = model("tied")
    result = chunk_estep(np.zeros((0, 4)), None, (m,))
    assert result.n_rows == 0 and result.weight == 0
    whole = chunk_estep(np.ones((3, 4)), None, (m,))
    merged = merge_results((m.family,), result, whole)
    for ours, theirs in zip(merged.stats[0], whole.stats[0], strict=True):
        np.testing.assert_array_equal(ours, theirs)


# -- the compiled kernels (numba) against the NumPy reference ---------------------------------

FAMILIES = [
    *(f"gaussian-{kind}" for kind in COVARIANCE_TYPES),
    "bayesian-gaussian",
    "grouped-gaussian",
    "bernoulli",
    "poisson",
    "multinomial",
]


def fitted_model(name: str, rng: np.random.Generator, n: int = 2500) -> tuple[Mixture, np.ndarray]:
    """A model of each family (two EM iterations from a k-means start) and rows to E-step."""
    import streamem

    if name.startswith("gaussian-"):
        X = rng.normal(size=(n, 5)) * 3 + 100.0
        est = streamem.GaussianMixture(4, covariance_type=name[9:], max_iter=2)
    elif name == "bayesian-gaussian":
        X = rng.normal(size=(n, 5)) * 3
        est = streamem.BayesianGaussianMixture(n_components=4, max_iter=2)
    elif name == "grouped-gaussian":
        X = rng.normal(size=(n, 6))
        est = streamem.GroupedGaussianMixture(3, max_iter=2)
    elif name == "bernoulli":
        X = (rng.random((n, 7)) < 0.3).astype(np.float64)
        est = streamem.BernoulliMixture(4, max_iter=2)
    elif name == "poisson":
        X = rng.poisson(3.0, size=(n, 4)).astype(np.float64)
        est = streamem.PoissonMixture(3, max_iter=2)
    else:
        X = rng.poisson(5.0, size=(n, 6)).astype(np.float64)
        est = streamem.MultinomialMixture(3, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged in two iterations
        est.set_params(random_state=0).fit(X)
    return est._get_model(), X


def both_kernels(monkeypatch, *args) -> dict:
    """``chunk_estep(*args)`` with the compiled kernels and with the NumPy reference."""
    from streamem import _kernels
    from streamem.families import _compiled

    assert _compiled.AVAILABLE, "numba is a dependency: the compiled kernels must import"
    found = {}
    for name in ("numba", "numpy"):
        monkeypatch.setattr(_kernels, "KERNELS", name)
        found[name] = chunk_estep(*args)
    return found


def assert_kernels_agree(found: dict, rtol: float = 1e-12) -> None:
    a, b = found["numba"], found["numpy"]
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=rtol)
    assert (a.weight, a.n_rows) == (b.weight, b.n_rows)
    for x, y in zip(a.stats, b.stats, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol * np.abs(v).max())


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_block_equals_the_numpy_reference(name, weighted, monkeypatch):
    """The compiled features, log-sum-exp and responsibilities give the NumPy path's
    statistics and log-likelihood (to rounding: only the order of some sums differs)."""
    rng = np.random.default_rng(11)
    m, X = fitted_model(name, rng)
    w = rng.random(len(X)) * 3 if weighted else None
    assert_kernels_agree(both_kernels(monkeypatch, X, w, (m,), 0))


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_compiled_gaussian_features(kind, dtype, monkeypatch):
    """Products and squares are the same operations as NumPy's (bit for bit); ``|x'|²`` is
    a sum in another order."""
    from streamem import _kernels

    rng = np.random.default_rng(3)
    X = (rng.normal(size=(300, 6)) * 50).astype(dtype)
    family = Gaussian(kind)
    reference = family.reference(X)
    monkeypatch.setattr(_kernels, "KERNELS", "numpy")
    expected = family.features(X, reference)
    monkeypatch.setattr(_kernels, "KERNELS", "numba")
    out = np.full((len(expected), 2 * len(X)), np.nan)[:, ::2]  # strided, as a buffer's view
    found = family.features(X, reference, out=out)
    assert found is out
    if kind == "spherical":
        np.testing.assert_allclose(found, expected, rtol=1e-14)
    else:
        assert np.array_equal(found, expected)


@settings(max_examples=40, deadline=None)
@given(
    kind=hst.sampled_from(COVARIANCE_TYPES),
    k=hst.integers(1, 6),
    d=hst.integers(1, 12),
    n=hst.integers(1, 3000),
    scale=hst.sampled_from([1e-7, 1.0, 1e7]),
    weighted=hst.booleans(),
    seed=hst.integers(0, 2**16),
)
def test_compiled_kernels_agree_at_any_scale(kind, k, d, n, scale, weighted, seed):
    """Any shape, with data far from the origin and at extreme scales (responsibilities that
    underflow, flushed tiny ones), weighted or not."""
    from streamem import _kernels

    rng = np.random.default_rng(seed)
    params = random_params(kind, k, d, seed)
    covariances, chol, _ = precision_cholesky(params.covariances * scale**2, kind)
    params = GaussianParams(params.means * scale, covariances, chol)
    m = Mixture(Gaussian(kind), rng.dirichlet(np.ones(k)), params)
    X = (rng.normal(size=(n, d)) * 2 + 5) * scale
    w = rng.random(n) if weighted else None
    found = {}
    try:
        for name in ("numba", "numpy"):
            _kernels.KERNELS = name
            found[name] = chunk_estep(X, w, (m,), 0)
    finally:
        _kernels.KERNELS = None
    assert_kernels_agree(found, rtol=1e-10)


def test_compiled_kernels_raise_the_same_errors(monkeypatch):
    from streamem import _kernels

    m = model("full")
    X = np.random.RandomState(1).normal(size=(3000, 4))
    X[2100, 1] = np.inf
    messages = set()
    for name in ("numba", "numpy"):
        monkeypatch.setattr(_kernels, "KERNELS", name)
        with pytest.raises(ValueError, match="row 2100") as error:
            chunk_estep(X, None, (m,), 0)
        messages.add(str(error.value))
    assert len(messages) == 1


# -- the chunk of a Gaussian in one compiled call ----------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    values=hst.lists(
        hst.one_of(
            hst.floats(-745.0, 0.0),
            hst.floats(-1e-300, 0.0),
            hst.sampled_from([0.0, -0.0, -708.0, -708.4, -np.inf, np.nan]),
        ),
        min_size=1,
        max_size=300,
    )
)
def test_compiled_exponential_is_within_one_unit_in_the_last_place(values):
    """The vectorised exponential of log-probabilities less their peak: within 1 ULP of
    NumPy's, 0 below the underflow threshold (−708, where NumPy's would be subnormal), NaN
    kept."""
    from streamem.families import _compiled

    x = np.array(values)
    found = x.copy()
    _compiled.exp_in_place(found, np.empty(len(x) + 3))
    expected = np.exp(x)
    expected[x < _compiled.UNDERFLOW] = 0.0
    assert np.array_equal(np.isnan(found), np.isnan(x))
    ok = ~np.isnan(x)
    gap = np.abs(found[ok].view(np.int64) - expected[ok].view(np.int64))
    assert gap.max(initial=0) <= 1


def test_compiled_exponential_over_its_whole_range():
    from streamem.families import _compiled

    x = -np.linspace(0, 708, 2_000_001)
    found = x.copy()
    _compiled.exp_in_place(found, np.empty_like(x))
    gap = np.abs(found.view(np.int64) - np.exp(x).view(np.int64))
    assert gap.max() <= 1 and gap.mean() < 0.2


def both_paths(X, w, models, monkeypatch) -> dict:
    """``chunk_estep`` with a Gaussian's chunk in one compiled call and block by block."""
    from streamem import estep
    from streamem.families import _compiled

    calls = []
    kernel = _compiled.gaussian_chunk_estep
    with monkeypatch.context() as patch:
        patch.setattr(_compiled, "gaussian_chunk_estep", lambda *a: calls.append(1) or kernel(*a))
        found = {"numba": chunk_estep(X, w, models, 0)}
    assert calls == [1]  # one call for every model
    with monkeypatch.context() as patch:
        patch.setattr(estep, "_compiled_features", lambda family, X: None)
        found["numpy"] = chunk_estep(X, w, models, 0)  # the block loop (compiled steps)
    return found


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_chunk_equals_the_block_loop(kind, dtype, weighted, monkeypatch):
    """Every covariance type, several models of different K in one pass, the last block
    shorter, float32 rows, weights: the one-call kernel gives the block loop's numbers (to
    rounding: its statistics GEMM sums in another order)."""
    rng = np.random.default_rng(5)
    X = (rng.normal(size=(5003, 6)) * 4 + 30).astype(dtype)
    w = rng.random(len(X)) * 2 if weighted else None
    models = tuple(
        Mixture(Gaussian(kind), rng.dirichlet(np.ones(k)), random_params(kind, k, 6, k))
        for k in (1, 4, 9)
    )
    found = both_paths(X, w, models, monkeypatch)
    assert_kernels_agree(found, rtol=1e-12)
    for i, m in enumerate(models):  # a model's numbers do not depend on its companions
        alone = chunk_estep(X, w, (m,), 0)
        assert alone.log_likelihood[0] == found["numba"].log_likelihood[i]
        for a, b in zip(alone.stats[0], found["numba"].stats[i], strict=True):
            assert np.array_equal(a, b)


def test_compiled_chunk_of_a_variational_gaussian(monkeypatch):
    rng = np.random.default_rng(2)
    m, X = fitted_model("bayesian-gaussian", rng)
    assert_kernels_agree(both_paths(X, None, (m,), monkeypatch))


def test_compiled_chunk_gives_the_same_bits_on_any_thread():
    """Calls running side by side on two threads give the bits of a call alone. (An empty
    array of row weights named in a vectorised loop made its overlap check fail now and
    then, and the loop's scalar version summed the log-likelihood in another order.)"""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    m = model("full", k=3, d=3, seed=4)
    chunks = np.array_split(np.random.RandomState(6).normal(size=(3000, 3)), 12)
    alone = [chunk_estep(c, None, (m,), 0) for c in chunks]
    with threadpool_limits(1), ThreadPoolExecutor(2) as pool:
        for _ in range(20):
            side_by_side = list(pool.map(lambda c: chunk_estep(c, None, (m,), 0), chunks))
            for a, b in zip(alone, side_by_side, strict=True):
                assert a.log_likelihood[0] == b.log_likelihood[0]
                for u, v in zip(a.stats[0], b.stats[0], strict=True):
                    assert np.array_equal(u, v)


def test_compiled_chunk_blocks_stay_in_a_cores_cache():
    """Features of at most ``CACHED_FEATURE_BYTES`` a block, and an odd number of cache
    lines a feature row (rows a multiple of 4 KiB apart share a few of the caches' sets)."""
    from streamem.families._base import CACHED_FEATURE_BYTES, cached_block_rows

    for p in range(1, 5000, 7):
        rows = cached_block_rows(p)
        assert rows >= 24 and (rows * 8 // 64) % 2 == 1 and rows % 8 == 0
        assert rows * 8 * p <= max(CACHED_FEATURE_BYTES, 40 * 8 * p)
