"""Missing values at the family and kernel level: every family's marginal log-density of rows
with gaps against a brute-force reference on the observed entries (``scipy.stats``), the
expected statistics of full and tied Gaussians against a direct per-row computation, the
one-hot M-step against the single-Gaussian missing-data EM fixed point, the merge algebra of
masked statistics, and NaN-free chunks through the untouched complete-data kernel."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy.special import logsumexp

from streamem import _kernels
from streamem.estep import chunk_estep, chunk_impute, component_log_prob
from streamem.families._base import Mixture
from streamem.families._missing import (
    MaskedCountStats,
    MaskedGaussianStats,
    conditional_blocks,
    spd_inverse,
)
from streamem.families.bernoulli import Bernoulli, BernoulliParams
from streamem.families.binomial import Binomial, BinomialParams
from streamem.families.gaussian import COVARIANCE_TYPES, Gaussian, GaussianParams
from streamem.families.grouped_gaussian import GroupedGaussian, GroupedGaussianParams
from streamem.families.multinomial import Multinomial, MultinomialParams
from streamem.families.poisson import Poisson, PoissonParams

K, D = 3, 4


def with_gaps(X: np.ndarray, rng: np.random.Generator, rate: float = 0.3) -> np.ndarray:
    """``X`` as float with a share ``rate`` of NaN, one row all NaN and one complete."""
    X = np.array(X, dtype=np.float64)
    X[rng.random(X.shape) < rate] = np.nan
    X[1] = np.nan
    X[2] = np.abs(np.nan_to_num(X[2]))
    return X


def gaussian_params(covariance_type: str, rng: np.random.Generator) -> GaussianParams:
    means = rng.normal(size=(K, D)) * 3 + 10.0
    full = np.array([(a := rng.normal(size=(D, D))) @ a.T + np.eye(D) for _ in range(K)])
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": np.array([np.diag(c) for c in full]),
        "spherical": np.array([np.diag(c).mean() for c in full]),
    }[covariance_type]
    family = Gaussian(covariance_type, 0.0)
    params, _ = family.m_step(family.promote(_stats_for(covariance_type, means, covariances)))
    return params


def _stats_for(covariance_type, means, covariances):
    """Statistics whose M-step gives ``means`` and ``covariances`` (unit counts)."""
    from streamem.families.gaussian import GaussianStats

    counts = np.ones(K)
    scatter = covariances if covariance_type != "tied" else covariances * K
    return GaussianStats(counts, means, scatter)


def dense_covariance(covariance_type: str, params: GaussianParams, k: int) -> np.ndarray:
    c = params.covariances
    return {
        "full": lambda: c[k],
        "tied": lambda: c,
        "diag": lambda: np.diag(c[k]),
        "spherical": lambda: np.eye(D) * c[k],
    }[covariance_type]()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_marginal_log_density_equals_scipy(covariance_type):
    rng = np.random.default_rng(0)
    params = gaussian_params(covariance_type, rng)
    X = with_gaps(rng.normal(size=(300, D)) * 3 + 10.0, rng)
    family = Gaussian(covariance_type, 0.0, "marginalize")
    log_prob = component_log_prob(family, params, X)
    for i, row in enumerate(X):
        seen = ~np.isnan(row)
        for k in range(K):
            covariance = dense_covariance(covariance_type, params, k)
            expected = (
                st.multivariate_normal(params.means[k][seen], covariance[np.ix_(seen, seen)])
                .logpdf(row[seen])
                .sum()
                if seen.any()
                else 0.0
            )
            assert log_prob[i, k] == pytest.approx(expected, abs=1e-10)


def count_cases(rng: np.random.Generator):
    """(family, params, rows, per-entry scipy log-pmf) for each count family."""
    n = 300
    p = rng.uniform(0.1, 0.9, size=(K, D))
    rates = rng.uniform(0.5, 8.0, size=(K, D))
    categorical = rng.dirichlet(np.ones(3), size=(K, D))
    trials = rng.integers(1, 9, size=n)
    yield (
        Bernoulli(missing="marginalize"),
        BernoulliParams(p),
        rng.integers(0, 2, size=(n, D)),
        lambda k, d, x, row: st.bernoulli(p[k, d]).logpmf(x),
    )
    yield (
        Poisson(missing="marginalize"),
        PoissonParams(rates),
        rng.poisson(3.0, size=(n, D)),
        lambda k, d, x, row: st.poisson(rates[k, d]).logpmf(x),
    )
    yield (
        Binomial(5, missing="marginalize"),
        BinomialParams(p),
        rng.integers(0, 6, size=(n, D)),
        lambda k, d, x, row: st.binom(5, p[k, d]).logpmf(x),
    )
    successes = rng.binomial(trials[:, None], 0.4, size=(n, D))
    yield (
        Binomial(trials_column=0, missing="marginalize"),
        BinomialParams(p),
        np.column_stack([trials, successes]),
        lambda k, d, x, row: 0.0 if d == 0 else st.binom(row[0], p[k, d - 1]).logpmf(x),
    )
    yield (
        Multinomial(n_categories=3, missing="marginalize"),
        MultinomialParams(categorical),
        rng.integers(0, 3, size=(n, D)),
        lambda k, d, x, row: np.log(categorical[k, d, int(x)]),
    )
    means, variances = rng.normal(size=K) * 2, rng.uniform(0.5, 2.0, size=K)
    yield (
        GroupedGaussian(missing="marginalize"),
        GroupedGaussianParams(means, variances),
        rng.normal(size=(n, D)),
        lambda k, d, x, row: st.norm(means[k], np.sqrt(variances[k])).logpdf(x),
    )


@pytest.mark.parametrize("case", range(6))
def test_count_and_grouped_marginal_log_density_equals_scipy(case):
    rng = np.random.default_rng(1)
    family, params, X, logpmf = list(count_cases(rng))[case]
    X = with_gaps(X, rng)
    if getattr(family, "trials_column", None) is not None:
        X[:, 0] = np.nan_to_num(X[:, 0], nan=4.0)  # the number of trials is never missing
        X[:, 1:] = np.minimum(X[:, 1:], X[:, :1])
    log_prob = component_log_prob(family, params, X)
    for i, row in enumerate(X):
        for k in range(K):
            expected = sum(
                logpmf(k, d, row[d], row) for d in range(X.shape[1]) if not np.isnan(row[d])
            )
            assert log_prob[i, k] == pytest.approx(expected, abs=1e-10)


def direct_expected_statistics(X, params, covariance_type, weights):
    """Responsibilities and ``Σ r x̂``, ``Σ r (x̂x̂ᵀ + C)`` row by row, straight from the
    conditional Gaussian formulas (rows with nothing observed left out)."""
    resp = np.zeros((len(X), K))
    first, second = np.zeros((K, D)), np.zeros((K, D, D))
    for i, row in enumerate(X):
        o = ~np.isnan(row)
        if not o.any():
            continue
        m = ~o
        log_prob = np.log(weights).copy()
        filled, conditional = [], []
        for k in range(K):
            S, mu = dense_covariance(covariance_type, params, k), params.means[k]
            log_prob[k] += st.multivariate_normal(mu[o], S[np.ix_(o, o)]).logpdf(row[o])
            B = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
            x = row.copy()
            x[m] = mu[m] + B @ (row[o] - mu[o])
            C = np.zeros((D, D))
            C[np.ix_(m, m)] = S[np.ix_(m, m)] - B @ S[np.ix_(o, m)]
            filled.append(x)
            conditional.append(C)
        resp[i] = np.exp(log_prob - logsumexp(log_prob))
        for k in range(K):
            first[k] += resp[i, k] * filled[k]
            second[k] += resp[i, k] * (np.outer(filled[k], filled[k]) + conditional[k])
    return resp, first, second


@pytest.fixture(params=["numba", "numpy"])
def kernels(request, monkeypatch):
    """Each test of the conditional kernel runs with the compiled kernels and with the NumPy
    reference."""
    from streamem.families import _compiled

    if request.param == "numba" and not _compiled.AVAILABLE:
        pytest.fail("numba is a dependency: the compiled kernels must be importable")
    monkeypatch.setattr(_kernels, "KERNELS", request.param)
    return request.param


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_full_and_tied_statistics_use_the_conditional_covariance(covariance_type, kernels):
    rng = np.random.default_rng(2)
    params = gaussian_params(covariance_type, rng)
    weights = np.array([0.2, 0.3, 0.5])
    X = with_gaps(rng.normal(size=(400, D)) * 3 + 10.0, rng)
    model = Mixture(Gaussian(covariance_type, 0.0, "marginalize"), weights, params)
    stats = chunk_estep(X, None, (model,)).stats[0]
    resp, first, second = direct_expected_statistics(X, params, covariance_type, weights)
    counts = resp.sum(axis=0)
    means = first / counts[:, None]
    scatter = second - counts[:, None, None] * means[:, :, None] * means[:, None, :]
    np.testing.assert_allclose(stats.counts, counts, rtol=1e-11)
    np.testing.assert_allclose(stats.means, means, rtol=1e-11)
    expected = scatter if covariance_type == "full" else scatter.sum(axis=0)
    np.testing.assert_allclose(stats.scatter, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("per_row", [False, True])
def test_frequent_patterns_take_the_observed_space_and_agree_row_by_row(
    covariance_type, per_row, kernels, monkeypatch
):
    """Profiles cut at a depth (each pattern shared by many rows, solved in the space of its
    observed entries), and the same rows solved one by one: both equal the direct
    per-row computation, for the statistics, the log-likelihood and the imputed values."""
    from streamem.families import _missing

    if per_row:
        monkeypatch.setattr(_missing, "GROUP_MIN_ROWS", 10**9)
    rng = np.random.default_rng(12)
    params = gaussian_params(covariance_type, rng)
    weights = np.array([0.2, 0.3, 0.5])
    X = rng.normal(size=(1500, D)) * 3 + 10.0
    depth = rng.integers(0, D + 1, size=len(X))
    X[np.arange(D)[None, :] >= depth[:, None]] = np.nan  # 0 … D entries observed
    X[::11, 0] = np.nan  # and some rows missing the first entry too
    X[5:300:3] = X[5]  # a long run of one pattern, also across blocks
    blocks = list(conditional_blocks(X[np.isnan(X).any(axis=1)], None, np.zeros(D), 256))
    grouped = sum(len(group.grouped) for block in blocks for group in block.groups)
    assert (grouped == 0) == per_row
    model = Mixture(Gaussian(covariance_type, 0.0, "marginalize"), weights, params)
    result = chunk_estep(X, None, (model,))
    stats = result.stats[0]
    resp, first, second = direct_expected_statistics(X, params, covariance_type, weights)
    counts = resp.sum(axis=0)
    means = first / counts[:, None]
    scatter = second - counts[:, None, None] * means[:, :, None] * means[:, None, :]
    np.testing.assert_allclose(stats.counts, counts, rtol=1e-11)
    np.testing.assert_allclose(stats.means, means, rtol=1e-11)
    expected = scatter if covariance_type == "full" else scatter.sum(axis=0)
    np.testing.assert_allclose(stats.scatter, expected, rtol=1e-9, atol=1e-9)
    log_prob = component_log_prob(model.family, params, X)
    for i in range(0, len(X), 7):
        seen = ~np.isnan(X[i])
        for k in range(K):
            covariance = dense_covariance(covariance_type, params, k)
            reference = 0.0
            if seen.any():
                reference = st.multivariate_normal(
                    params.means[k][seen], covariance[np.ix_(seen, seen)]
                ).logpdf(X[i][seen])
            assert log_prob[i, k] == pytest.approx(reference, abs=1e-10)
    total = sum(
        logsumexp(np.log(weights) + log_prob[i]) for i in range(len(X)) if ~np.isnan(X[i]).all()
    )
    assert result.log_likelihood[0] == pytest.approx(total, rel=1e-12)
    imputed = chunk_impute(X, model)
    for i in range(0, len(X), 5):
        o = ~np.isnan(X[i])
        if not o.any():
            np.testing.assert_allclose(imputed[i], weights @ params.means, rtol=1e-12)
            continue
        expected_row = np.zeros(D)
        for k in range(K):
            S, mu = dense_covariance(covariance_type, params, k), params.means[k]
            x = X[i].copy()
            x[~o] = mu[~o] + S[np.ix_(~o, o)] @ np.linalg.solve(S[np.ix_(o, o)], X[i][o] - mu[o])
            expected_row += resp[i, k] * x
        np.testing.assert_allclose(imputed[i], expected_row, rtol=1e-10)
        assert np.array_equal(imputed[i][o], X[i][o])


def single_gaussian_missing_em(X, n_iter=500):
    """The textbook EM for one Gaussian with missing entries (Little & Rubin, ch. 11),
    written directly: fill each row with its conditional mean, add the conditional
    covariance to the scatter."""
    mu = np.nanmean(X, axis=0)
    S = np.diag(np.nanvar(X, axis=0))
    for _ in range(n_iter):
        total, scatter = np.zeros(D), np.zeros((D, D))
        for row in X:
            o = ~np.isnan(row)
            m = ~o
            x, C = row.copy(), np.zeros((D, D))
            if m.any():
                B = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
                x[m] = mu[m] + B @ (row[o] - mu[o])
                C[np.ix_(m, m)] = S[np.ix_(m, m)] - B @ S[np.ix_(o, m)]
            total += x
            scatter += np.outer(x, x) + C
        new_mu = total / len(X)
        new_S = scatter / len(X) - np.outer(new_mu, new_mu)
        done = np.allclose(new_mu, mu, rtol=0, atol=1e-14) and np.allclose(
            new_S, S, rtol=0, atol=1e-14
        )
        mu, S = new_mu, new_S
        if done:
            break
    return mu, S


def test_one_hot_m_step_is_the_single_gaussian_missing_data_em_fixed_point():
    rng = np.random.default_rng(3)
    X = rng.multivariate_normal(np.arange(D) * 2.0, np.eye(D) + 0.6, size=120)
    X[rng.random(X.shape) < 0.25] = np.nan
    X = X[~np.isnan(X).all(axis=1)]
    mu, S = single_gaussian_missing_em(X)
    family = Gaussian("full", 0.0, "marginalize")
    chol = np.linalg.cholesky(np.linalg.inv(S))[None]
    model = Mixture(family, np.ones(1), GaussianParams(mu[None], S[None], chol))
    params, _ = family.m_step(chunk_estep(X, None, (model,)).stats[0])
    # a fixed point: one more M-step from it stays there
    np.testing.assert_allclose(params.means[0], mu, rtol=0, atol=1e-10)
    np.testing.assert_allclose(params.covariances[0], S, rtol=0, atol=1e-10)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_independent_features_m_step_is_per_feature_mle(covariance_type):
    rng = np.random.default_rng(4)
    X = with_gaps(rng.normal(size=(500, D)) * [1, 2, 3, 4] + 5, rng)
    family = Gaussian(covariance_type, 0.0, "marginalize")
    params = gaussian_params(covariance_type, rng)
    model = Mixture(family, np.ones(1), params._replace(means=params.means[:1]))
    model = model._replace(
        params=GaussianParams(
            params.means[:1], params.covariances[:1], params.precisions_cholesky[:1]
        )
    )
    stats = chunk_estep(X, None, (model,)).stats[0]
    assert isinstance(stats, MaskedGaussianStats)
    new, _ = family.m_step(stats)
    np.testing.assert_allclose(new.means[0], np.nanmean(X, axis=0), rtol=1e-12)
    variances = np.nanvar(X, axis=0)
    if covariance_type == "spherical":
        centred = X - np.nanmean(X, axis=0)
        variances = np.nansum(centred**2) / np.sum(~np.isnan(X))
    np.testing.assert_allclose(new.covariances[0], variances, rtol=1e-10)


def test_bernoulli_m_step_divides_by_observed_counts():
    rng = np.random.default_rng(5)
    X = with_gaps(rng.integers(0, 2, size=(400, D)), rng)
    family = Bernoulli(missing="marginalize")
    model = Mixture(family, np.ones(1), BernoulliParams(np.full((1, D), 0.5)))
    stats = chunk_estep(X, None, (model,)).stats[0]
    assert isinstance(stats, MaskedCountStats)
    params, _ = family.m_step(stats)
    np.testing.assert_allclose(params.probabilities[0], np.nanmean(X, axis=0), rtol=1e-12)


def masked_stats_cases():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(240, D)) * 2 + 3
    yield Gaussian("diag", 1e-6, "marginalize"), gaussian_params("diag", rng), X
    yield Gaussian("spherical", 1e-6, "marginalize"), gaussian_params("spherical", rng), X
    yield Gaussian("full", 1e-6, "marginalize"), gaussian_params("full", rng), X
    yield (
        Poisson(missing="marginalize"),
        PoissonParams(rng.uniform(1, 5, (K, D))),
        rng.poisson(3, (240, D)),
    )
    yield (
        Binomial(6, missing="marginalize"),
        BinomialParams(rng.uniform(0.2, 0.8, (K, D))),
        rng.integers(0, 7, (240, D)),
    )


@pytest.mark.parametrize("case", range(5))
@settings(max_examples=15, deadline=None)
@given(cut=hst.tuples(hst.integers(1, 220), hst.integers(40, 200)), seed=hst.integers(0, 99))
def test_masked_statistics_merge_subtract_scale(case, cut, seed):
    """merge(stats(A), stats(B)) == stats(A ∪ B) with gaps, also when one part has none
    (plain and masked statistics mix); subtract undoes merge; scale(2) == merge(s, s)."""
    family, params, X = list(masked_stats_cases())[case]
    rng = np.random.default_rng(seed)
    X = with_gaps(X, rng, rate=0.2)
    a, b = sorted(cut)
    X[:a] = np.nan_to_num(X[:a], nan=1.0)  # the first part without gaps
    model = Mixture(family, np.full(K, 1 / K), params)

    def stats(rows):
        return chunk_estep(X[rows], None, (model,)).stats[0]

    whole = stats(slice(None))
    left, right = stats(slice(0, b)), stats(slice(b, None))
    merged = family.merge(left, right)
    swapped = family.merge(right, left)
    for field, expected in zip(merged, whole, strict=True):
        np.testing.assert_allclose(field, expected, rtol=1e-9, atol=1e-9)
    for field, expected in zip(swapped, whole, strict=True):
        np.testing.assert_allclose(field, expected, rtol=1e-9, atol=1e-9)
    back = family.subtract(whole, right)
    for name, field, expected in zip(left._fields, back, left, strict=True):
        if name == "means":  # ill-defined where a component has next to no weight: sums
            weights = getattr(left, "observed", left.counts[:, None])
            field, expected = field * weights, expected * weights
        scale = np.abs(expected).max()
        np.testing.assert_allclose(field, expected, rtol=0, atol=1e-7 * scale)
    for field, expected in zip(family.scale(whole, 2.0), family.merge(whole, whole), strict=True):
        np.testing.assert_allclose(field, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_chunks_without_nan_take_the_complete_data_kernel_bit_for_bit(covariance_type):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(2000, D))
    params = gaussian_params(covariance_type, rng)
    weights = np.full(K, 1 / K)
    refusing = Mixture(Gaussian(covariance_type, 1e-6), weights, params)
    accepting = Mixture(Gaussian(covariance_type, 1e-6, "marginalize"), weights, params)
    a = chunk_estep(X, None, (refusing,))
    b = chunk_estep(X, None, (accepting,))
    assert np.array_equal(a.log_likelihood, b.log_likelihood)
    plain = Gaussian(covariance_type).m_step(a.stats[0])[0]
    promoted = accepting.family.m_step(b.stats[0])[0]
    for x, y in zip(plain, promoted, strict=True):
        assert np.array_equal(x, y)


def test_spd_inverse_matches_lapack():
    rng = np.random.default_rng(8)
    for s, n in ((1, 70), (2, 70), (5, 70), (9, 70), (3, 2), (12, 5)):  # n ≤ 21: LAPACK
        A = rng.normal(size=(3, n, s, s))
        A = A @ A.transpose(0, 1, 3, 2) + s * np.eye(s)
        W, log_det = spd_inverse(A, batch=32)
        np.testing.assert_allclose(W, np.linalg.inv(A), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(log_det, np.linalg.slogdet(A)[1], rtol=1e-11, atol=1e-12)


def test_pattern_blocks_cover_every_row_once_grouped_by_pattern():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(3000, 6))
    depth = rng.integers(1, 7, size=3000)  # nested patterns: many rows share each
    X[np.arange(6)[None, :] >= depth[:, None]] = np.nan
    X[::7, 0] = np.nan  # and some rows with the first entry missing too
    rows = [b for block in conditional_blocks(X, None, np.zeros(6), 256) for b in block.rows]
    gapped = np.flatnonzero(np.isnan(X).any(axis=1))
    assert 0 < len(gapped) < 3000  # complete rows are left to the complete-data kernel
    assert sorted(rows) == list(gapped)
    for block in conditional_blocks(X, None, np.zeros(6), 256):
        for group in block.groups:
            columns = block.slab.columns[group.s][group.pattern]
            for row, missing in zip(block.rows[group.start : group.stop], columns, strict=True):
                assert list(np.flatnonzero(np.isnan(X[row]))) == list(missing)


@settings(max_examples=60, deadline=None)
@given(
    runs=hst.lists(hst.integers(1, 900), min_size=1, max_size=40),
    step=hst.integers(64, 600),
)
def test_blocks_end_where_a_pattern_starts(runs, step):
    """Blocks tile the sorted rows; each ends at a run start whenever one lies within half
    a step of its plain end, so runs are cut only when longer than half a step."""
    from streamem.families._missing import _block_bounds

    starts = np.cumsum([0, *runs[:-1]])
    end = int(np.sum(runs))
    bounds = list(_block_bounds(0, end, step, starts))
    assert bounds[0][0] == 0 and bounds[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    for start, stop in bounds[:-1]:
        assert step // 2 <= stop - start <= step + step // 2
        window = starts[(starts >= start + step // 2) & (starts < start + step + step // 2)]
        assert (stop in set(starts)) == bool(len(window))


@settings(max_examples=40, deadline=None)
@given(
    seed=hst.integers(0, 2**32 - 1),
    d=hst.sampled_from([1, 5, 8, 9, 16, 56, 57, 64, 65, 130]),
    rate=hst.sampled_from([0.05, 0.5, 0.95]),
)
def test_pattern_order_sorts_by_count_then_pattern(seed, d, rate):
    """Every width (one integer key per row up to 56 columns, per pattern up to 64, bytes
    beyond): the rows sorted by their number of missing entries, each pattern's rows
    together, equal ids exactly for equal patterns."""
    from streamem.families._missing import pattern_order

    rng = np.random.default_rng(seed)
    base = rng.random((7, d)) < rate  # few patterns, so that they repeat
    missing = base[rng.integers(0, 7, 300)]
    missing[::5] = rng.random((60, d)) < rate  # and some of their own
    results = {}
    for name in ("numba", "numpy"):  # the compiled keys and radix sort up to 56 columns
        saved, _kernels.KERNELS = _kernels.KERNELS, name
        try:
            results[name] = pattern_order(missing)
        finally:
            _kernels.KERNELS = saved
    for a, b in zip(results["numba"], results["numpy"], strict=True):
        assert np.array_equal(a, b)
    order, counts, pattern = results["numba"]
    assert sorted(order) == list(range(300))
    assert np.array_equal(counts, missing.sum(axis=1))
    assert np.all(np.diff(counts[order]) >= 0)
    ids = pattern[order]
    seen = set()
    for run in np.split(ids, np.flatnonzero(np.diff(ids)) + 1):
        assert run[0] not in seen  # each pattern's rows are together
        seen.add(run[0])
    first = {}
    for row, label in enumerate(pattern):
        key = missing[row].tobytes()
        assert first.setdefault(label, key) == key  # one id, one pattern
    assert len(first) == len({m.tobytes() for m in missing})  # one pattern, one id


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("scale", [1.0, 1e-7, 1e7])
@settings(max_examples=15, deadline=None)
@given(seed=hst.integers(0, 2**32 - 1), rate=hst.sampled_from([0.05, 0.3, 0.7]))
def test_compiled_kernels_equal_the_numpy_reference(covariance_type, scale, seed, rate):
    """Random gaps in 40 dimensions (patterns never repeat; at scales where a product of
    the factors' diagonals would leave the float range): the compiled kernels give the
    NumPy reference's log-likelihood, statistics and imputed values to 1e-12."""
    from streamem.families import _compiled

    assert _compiled.AVAILABLE
    d, k = 40, 4
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * scale
    factors = rng.normal(size=(k, d, d)) / np.sqrt(d) + 2 * np.eye(d)
    covariances = factors @ factors.transpose(0, 2, 1) * scale**2
    if covariance_type == "tied":
        covariances = covariances[0]
    family = Gaussian(covariance_type, 0.0, "marginalize")
    from streamem.families.gaussian import GaussianStats

    scatter = covariances if covariance_type == "full" else covariances * k
    params, _ = family.m_step(family.promote(GaussianStats(np.ones(k), means, scatter)))
    model = Mixture(family, np.full(k, 1 / k), params)
    labels = rng.integers(0, k, 300)
    X = means[labels] + scale * rng.normal(size=(300, d)) * 2
    X[rng.random(X.shape) < rate] = np.nan
    X[0] = np.nan
    results, imputed = {}, {}
    for name in ("numba", "numpy"):
        _kernels.KERNELS = name
        try:
            results[name] = chunk_estep(X, None, (model,))
            imputed[name] = chunk_impute(X, model)
        finally:
            _kernels.KERNELS = None
    a, b = results["numba"], results["numpy"]
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-12)
    for x, y in zip(a.stats[0], b.stats[0], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12 * np.abs(y).max())
    expected = imputed["numpy"]
    np.testing.assert_allclose(imputed["numba"], expected, rtol=1e-11, atol=1e-12 * scale)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("weighted", [False, True])
def test_one_pass_e_step_of_rare_patterns_equals_the_steps_in_turn(
    covariance_type, weighted, monkeypatch
):
    """Blocks whose rows all have rare patterns (random gaps, nothing empty) take one
    compiled pass, responsibilities and ``Σ r W`` inside: the same log-likelihood and
    statistics as the compiled steps taken in turn and as the NumPy reference."""
    from streamem.families import _compiled

    d, k = 12, 4
    rng = np.random.default_rng(7)
    means = rng.normal(size=(k, d)) * 3
    factors = rng.normal(size=(k, d, d)) / np.sqrt(d) + np.eye(d)
    covariances = factors @ factors.transpose(0, 2, 1)
    family = Gaussian(covariance_type, 0.0, "marginalize")
    from streamem.families.gaussian import GaussianStats

    if covariance_type == "tied":
        covariances = covariances.sum(axis=0)
    params, _ = family.m_step(family.promote(GaussianStats(np.ones(k), means, covariances)))
    model = Mixture(family, np.array([0.1, 0.2, 0.3, 0.4]), params)
    X = means[rng.integers(0, k, 3000)] + rng.normal(size=(3000, d)) * 2
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 0] = np.where(np.isnan(X).all(axis=1), 1.0, X[:, 0])  # no empty row
    w = rng.random(len(X)) * 2 if weighted else None
    calls = []
    fused = _compiled.conditional_estep
    monkeypatch.setattr(_compiled, "conditional_estep", lambda *a: calls.append(1) or fused(*a))
    one_pass = chunk_estep(X, w, (model,))
    assert calls  # the one-pass kernel ran
    monkeypatch.setattr(Gaussian, "missing_estep", lambda *a: None)
    in_turn = chunk_estep(X, w, (model,))
    monkeypatch.setattr(_kernels, "KERNELS", "numpy")
    reference = chunk_estep(X, w, (model,))
    for other in (in_turn, reference):
        np.testing.assert_allclose(one_pass.log_likelihood, other.log_likelihood, rtol=1e-12)
        for x, y in zip(one_pass.stats[0], other.stats[0], strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12 * np.abs(y).max())


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_masked_features_are_numpys_bit_for_bit(covariance_type, dtype, monkeypatch):
    """Diagonal and spherical Gaussians: the compiled pass that builds the masked features
    gives the NumPy path's features, mask and empty rows exactly, and with the compiled
    responsibilities the same statistics, log-likelihood and imputed values (to rounding)."""

    rng = np.random.default_rng(5)
    params = gaussian_params(covariance_type, rng)
    family = Gaussian(covariance_type, 0.0, "marginalize")
    model = Mixture(family, np.full(K, 1 / K), params)
    X = with_gaps(rng.normal(size=(3000, D)) * 3 + 10.0, rng).astype(dtype)
    X[7] = np.nan
    reference = family.missing_reference(X, None)
    out = {}
    for name in ("numba", "numpy"):
        monkeypatch.setattr(_kernels, "KERNELS", name)
        result = chunk_estep(X, None, (model,))
        (block,) = family.missing_blocks(X, None, reference, len(X))
        blocks = (block.features, block.missing, block.empty)
        out[name] = (result.log_likelihood, result.stats[0], chunk_impute(X, model), blocks)
    for a, b in zip(out["numba"][3], out["numpy"][3], strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(out["numba"][3][1], np.isnan(X))
    assert out["numba"][3][2][7]  # a row with nothing observed
    np.testing.assert_allclose(out["numba"][0], out["numpy"][0], rtol=1e-13)
    for a, b in zip(out["numba"][1], out["numpy"][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13 * np.abs(b).max())
    np.testing.assert_allclose(out["numba"][2], out["numpy"][2], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_impute_is_the_conditional_mean(covariance_type):
    rng = np.random.default_rng(10)
    params = gaussian_params(covariance_type, rng)
    weights = np.array([0.5, 0.3, 0.2])
    X = with_gaps(rng.normal(size=(60, D)) * 3 + 10, rng)
    model = Mixture(Gaussian(covariance_type, 0.0, "marginalize"), weights, params)
    imputed = chunk_impute(X, model)
    resp, _, _ = direct_expected_statistics(X, params, covariance_type, weights)
    for i, row in enumerate(X):
        o = ~np.isnan(row)
        if not o.any():
            np.testing.assert_allclose(imputed[i], weights @ params.means, rtol=1e-12)
            continue
        expected = np.zeros(D)
        for k in range(K):
            S, mu = dense_covariance(covariance_type, params, k), params.means[k]
            x = row.copy()
            x[~o] = mu[~o] + S[np.ix_(~o, o)] @ np.linalg.solve(S[np.ix_(o, o)], row[o] - mu[o])
            expected += resp[i, k] * x
        np.testing.assert_allclose(imputed[i], expected, rtol=1e-10)
        assert np.array_equal(imputed[i][o], row[o])


def test_multinomial_counts_refuse_to_marginalise():
    X = np.array([[3.0, np.nan, 2.0], [1.0, 1.0, 1.0]])
    model = Mixture(
        Multinomial(missing="marginalize"), np.ones(1), MultinomialParams(np.full((1, 3), 1 / 3))
    )
    with pytest.raises(ValueError, match="row's total unknown"):
        chunk_estep(X, None, (model,))


def test_binomial_trials_column_must_be_observed():
    X = np.array([[5.0, 2.0], [np.nan, 1.0], [4.0, np.nan]])
    model = Mixture(
        Binomial(trials_column=0, missing="marginalize"),
        np.ones(1),
        BinomialParams(np.full((1, 1), 0.5)),
    )
    with pytest.raises(ValueError, match=r"trials column \(column 0\).*row 1"):
        chunk_estep(X, None, (model,), 0)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gaps", ["random", "nested"])
def test_compiled_chunk_with_gaps_equals_the_block_loop(
    covariance_type, weighted, dtype, gaps, monkeypatch
):
    """A diagonal or spherical Gaussian's chunk with NaN in one compiled call (masked
    features, rows with nothing observed weighing nothing, infinite values refused with the
    row) gives the block loop's numbers, for two models of different K sharing the pass."""
    from streamem import estep

    from .test_gaussian import random_params

    rng = np.random.default_rng(8)
    d = 7
    X = (rng.normal(size=(4001, d)) * 3 + 10).astype(dtype)
    if gaps == "random":
        X[rng.random(X.shape) < 0.3] = np.nan
    else:
        X[np.arange(d)[None, :] >= rng.integers(0, d + 1, len(X))[:, None]] = np.nan
    X[[5, 3000]] = np.nan  # nothing observed
    w = rng.random(len(X)) * 2 if weighted else None
    family = Gaussian(covariance_type, 1e-6, "marginalize")
    models = tuple(
        Mixture(family, rng.dirichlet(np.ones(k)), random_params(covariance_type, k, d, k))
        for k in (2, 5)
    )
    from streamem.families import _compiled

    calls = []
    kernel = _compiled.gaussian_chunk_estep
    with monkeypatch.context() as patch:
        patch.setattr(
            _compiled, "gaussian_chunk_estep", lambda *a: calls.append(a[2]) or kernel(*a)
        )
        fused = chunk_estep(X, w, models, 0)
    assert calls == [-1]  # the masked features, one call for both models
    with monkeypatch.context() as patch:
        patch.setattr(estep, "_masked_compiled", lambda family, X: False)
        loop = chunk_estep(X, w, models, 0)
    np.testing.assert_allclose(fused.log_likelihood, loop.log_likelihood, rtol=1e-12)
    for a, b in zip(fused.stats, loop.stats, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * np.abs(y).max())
    X[2500, 1] = np.inf
    messages = set()
    for compiled_chunk in (True, False):
        with monkeypatch.context() as patch:
            if not compiled_chunk:
                patch.setattr(estep, "_masked_compiled", lambda family, X: False)
            with pytest.raises(ValueError, match="infinity.*first at row 2507") as error:
                chunk_estep(X, w, models, 7)
            messages.add(str(error.value))
    assert len(messages) == 1


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("weighted", [False, True])
def test_frequent_patterns_in_one_call_per_run_equal_the_numpy_reference(
    covariance_type, weighted, monkeypatch
):
    """Profiles cut at a few depths (every run of a pattern frequent, rows with nothing
    observed among them): each run's E-step in one call of the chunk kernel over its
    observed entries gives the NumPy reference's log-likelihood and statistics."""
    from streamem.families import _missing

    from .test_gaussian import random_params

    rng = np.random.default_rng(12)
    d, k = 6, 3
    X = rng.normal(size=(3000, d)) * 2 + rng.integers(0, 3, 3000)[:, None] * 3
    depth = rng.choice([0, 2, 4, 6], size=len(X))  # observed entries; 0: none
    X[np.arange(d)[None, :] >= depth[:, None]] = np.nan
    w = rng.random(len(X)) * 2 if weighted else None
    family = Gaussian(covariance_type, 1e-6, "marginalize")
    model = Mixture(family, rng.dirichlet(np.ones(k)), random_params(covariance_type, k, d, 3))
    from streamem.families import _frequent

    calls = []
    frequent = _missing._frequent_estep
    monkeypatch.setattr(_missing, "_frequent_estep", lambda *a: calls.append(1) or frequent(*a))
    monkeypatch.setattr(_frequent, "PATTERN_LIMIT", 0)  # the general path's runs
    results = {}
    for name in ("numba", "numpy"):
        monkeypatch.setattr(_kernels, "KERNELS", name)
        results[name] = chunk_estep(X, w, (model,), 0)
    assert calls  # the compiled kernels took the runs in one call each
    a, b = results["numba"], results["numpy"]
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-12)
    for x, y in zip(a.stats[0], b.stats[0], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12 * np.abs(y).max())


def _one_pass_and_reference(X, model, monkeypatch):
    """The E-step of a chunk through the compiled one-pass kernel of rare patterns (it must
    run) and through the NumPy reference."""
    from streamem.families import _compiled

    calls = []
    fused = _compiled.conditional_estep
    monkeypatch.setattr(_compiled, "conditional_estep", lambda *a: calls.append(1) or fused(*a))
    one_pass = chunk_estep(X, None, (model,), 0)
    assert calls
    monkeypatch.setattr(_kernels, "KERNELS", "numpy")
    return one_pass, chunk_estep(X, None, (model,), 0)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("rows", [64, 128, 63, 65])
def test_rare_patterns_in_batches_whose_ends_meet_a_new_count(covariance_type, rows, monkeypatch):
    """The one-pass kernel takes rows missing as many entries in batches of
    ``ESTEP_ROWS``: where a batch ends exactly where the rows start to miss another number
    of entries (groups of 64 and 128 rows), and a row's before or after, the log-likelihood
    and statistics are the NumPy reference's."""
    from streamem.families import _compiled

    from .test_gaussian import random_params

    assert _compiled.ESTEP_ROWS == 64
    rng = np.random.default_rng(3)
    d, k = 7, 3
    groups = []
    for s in (1, 2, 3, 4):  # `rows` rows missing s entries each, in random places
        missing = np.argsort(rng.random((rows, d)), axis=1) < s
        groups.append(missing)
    missing = np.concatenate(groups)
    X = rng.normal(size=missing.shape) * 2 + rng.integers(0, 3, len(missing))[:, None] * 3
    X[missing] = np.nan
    model = Mixture(
        Gaussian(covariance_type, 1e-6, "marginalize"),
        rng.dirichlet(np.ones(k)),
        random_params(covariance_type, k, d, 3),
    )
    one_pass, reference = _one_pass_and_reference(X, model, monkeypatch)
    np.testing.assert_allclose(one_pass.log_likelihood, reference.log_likelihood, rtol=1e-12)
    for x, y in zip(one_pass.stats[0], reference.stats[0], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12 * np.abs(y).max())


def test_rare_patterns_leave_out_only_lanes_below_their_batchs_rounding(monkeypatch):
    """The one-pass kernel fills in a row's missing entries and adds its moments only for
    the components whose responsibility is not negligible next to its batch's sum for
    that component: a component far from every row (responsibilities of 1e-49 and less,
    all of them) keeps its statistics, to rounding, and so do overlapping components
    (responsibilities of every size); an absolute cut-off would zero the first, a coarse
    one the second."""

    rng = np.random.default_rng(8)
    d, n = 12, 3000
    centres = np.array([[0.0] * d, [2.0] * d, [9.0] * d])
    X = rng.normal(size=(n, d)) + centres[rng.integers(0, 3, n)]
    X[rng.random(X.shape) < 0.3] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 1.0
    means = np.vstack([centres, np.full(d, 20.0)])
    covariances = np.stack([np.eye(d) + 0.2 * np.ones((d, d))] * 4)
    model = Mixture(
        Gaussian("full", 1e-6, "marginalize"),
        np.array([0.3, 0.3, 0.3, 0.1]),
        GaussianParams(means, covariances, np.linalg.cholesky(np.linalg.inv(covariances))),
    )
    one_pass, reference = _one_pass_and_reference(X, model, monkeypatch)
    np.testing.assert_allclose(one_pass.log_likelihood, reference.log_likelihood, rtol=1e-12)
    counts = reference.stats[0][0]
    assert 0 < counts[3] < 1e-40 and counts[:3].min() > 500
    for x, y in zip(one_pass.stats[0], reference.stats[0], strict=True):
        for c in range(4):  # each component to its own scale
            np.testing.assert_allclose(x[c], y[c], rtol=1e-10, atol=1e-12 * np.abs(y[c]).max())


def test_a_slab_of_frequent_or_of_rare_patterns_is_one_block_in_the_e_step(monkeypatch):
    """Profiles cut at depths: the E-step's compiled path takes a slab whose patterns are
    all frequent as one block (other callers, and slabs of frequent and rare patterns,
    blocks of ``step`` rows), with the numbers of the blocks of ``step`` rows; random gaps
    with rows that have nothing observed: one block, the kernel's one pass over the rows
    with something observed, the NumPy reference's numbers."""
    from streamem.families import _compiled, _frequent, _missing

    from .test_gaussian import random_params

    rng = np.random.default_rng(4)
    d, k = 6, 3
    X = rng.normal(size=(5000, d)) * 2 + rng.integers(0, 3, 5000)[:, None] * 3
    depth = rng.choice([1, 3, 5, 6], size=len(X))
    X[np.arange(d)[None, :] >= depth[:, None]] = np.nan
    reference = np.nanmean(X, axis=0)
    blocks = list(_missing.conditional_blocks(X, None, reference, 500, slab_rows=len(X)))
    assert len(blocks) == 1 and len(blocks[0].rows) == np.isnan(X).any(axis=1).sum()
    assert len(list(_missing.conditional_blocks(X, None, reference, 500))) > 1
    X[0, :2] = np.nan  # a pattern of one row: blocks of `step` rows again
    assert len(list(_missing.conditional_blocks(X, None, reference, 500, len(X)))) > 1
    X[0, :2] = 1.0
    gaps = rng.normal(size=(600, d))  # random gaps, a few rows with nothing observed
    gaps[rng.random(gaps.shape) < 0.4] = np.nan
    gaps[3:, 0] = np.where(np.isnan(gaps[3:]).all(axis=1), 0.5, gaps[3:, 0])
    gaps[:3] = np.nan
    blocks = list(_missing.conditional_blocks(gaps, None, np.zeros(d), 500, len(gaps)))
    assert len(blocks) == 1 and blocks[0].empty.sum() == 3
    model = Mixture(
        Gaussian("full", 1e-6, "marginalize"),
        rng.dirichlet(np.ones(k)),
        random_params("full", k, d, 3),
    )
    seen = []
    original = _missing.conditional_blocks

    def spy(*args, **kwargs):
        for block in original(*args, **kwargs):
            seen.append(len(block.rows))
            yield block

    monkeypatch.setattr(_missing, "conditional_blocks", spy)
    monkeypatch.setattr(_frequent, "PATTERN_LIMIT", 0)  # the general path's slabs
    whole = chunk_estep(X, None, (model,), 0)
    assert len(seen) == 1
    monkeypatch.setattr(
        _missing, "conditional_blocks", lambda X, o, r, step, slab_rows=0: spy(X, o, r, 500)
    )
    in_steps = chunk_estep(X, None, (model,), 0)
    assert len(seen) > 2
    np.testing.assert_allclose(whole.log_likelihood, in_steps.log_likelihood, rtol=1e-12)
    for x, y in zip(whole.stats[0], in_steps.stats[0], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12 * np.abs(y).max())
    # random gaps with empty rows: one block, in one pass, the NumPy reference's numbers
    monkeypatch.setattr(_missing, "conditional_blocks", original)
    fused = _compiled.conditional_estep
    calls = []
    monkeypatch.setattr(_compiled, "conditional_estep", lambda *a: calls.append(1) or fused(*a))
    w = rng.random(len(gaps))
    one_pass = chunk_estep(gaps, w, (model,), 0)
    assert len(calls) == 1
    monkeypatch.setattr(_kernels, "KERNELS", "numpy")
    reference = chunk_estep(gaps, w, (model,), 0)
    np.testing.assert_allclose(one_pass.log_likelihood, reference.log_likelihood, rtol=1e-12)
    for x, y in zip(one_pass.stats[0], reference.stats[0], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-12 * np.abs(y).max())


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_an_infinite_value_in_a_frequent_pattern_names_its_row(kernels, monkeypatch):
    from .test_gaussian import random_params

    rng = np.random.default_rng(13)
    d = 5
    X = rng.normal(size=(2000, d))
    X[np.arange(d)[None, :] >= rng.choice([2, 4], size=len(X))[:, None]] = np.nan
    X[1234, 0] = -np.inf
    family = Gaussian("full", 1e-6, "marginalize")
    model = Mixture(family, np.full(2, 0.5), random_params("full", 2, d, 1))
    monkeypatch.setattr(_kernels, "KERNELS", kernels)
    with pytest.raises(ValueError, match="infinity.*1 such row.*first at row 1244"):
        chunk_estep(X, None, (model,), 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_mask_and_complete_rows_are_numpys(dtype):
    """The compiled pass that finds the observed entries and the complete rows gives
    NumPy's ``~isnan`` and its reduction along the rows (infinite values are observed)."""
    from streamem.families import _compiled

    rng = np.random.default_rng(8)
    X = rng.normal(size=(500, 7)).astype(dtype)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[3, 2], X[4, 5] = np.inf, -np.inf
    observed, complete = np.empty(X.shape, bool), np.empty(len(X), bool)
    _compiled.observed_rows(X, observed, complete)
    np.testing.assert_array_equal(observed, ~np.isnan(X))
    np.testing.assert_array_equal(complete, ~np.isnan(X).any(axis=1))
