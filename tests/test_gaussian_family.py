"""The Gaussian family: densities, statistics algebra and the M-step, against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as scipy_stats
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky_from_precisions

from streamem.estep import component_log_prob
from streamem.families._base import stats_from_responsibilities
from streamem.families.gaussian import (
    COVARIANCE_TYPES,
    Gaussian,
    GaussianParams,
    precision_cholesky,
    precision_cholesky_from_precisions,
)


def random_params(covariance_type: str, k: int, d: int, seed: int = 0, offset: float = 0.0):
    rng = np.random.RandomState(seed)
    means = rng.normal(size=(k, d)) * 3 + offset
    if covariance_type == "full":
        a = rng.normal(size=(k, d, d))
        covariances = a @ a.transpose(0, 2, 1) + np.eye(d)
    elif covariance_type == "tied":
        a = rng.normal(size=(d, d))
        covariances = a @ a.T + np.eye(d)
    elif covariance_type == "diag":
        covariances = rng.uniform(0.5, 2, size=(k, d))
    else:
        covariances = rng.uniform(0.5, 2, size=k)
    covariances, chol, notes = precision_cholesky(covariances, covariance_type)
    assert notes == []
    return GaussianParams(means, covariances, chol)


def dense_covariance(params: GaussianParams, covariance_type: str, k: int) -> np.ndarray:
    d = params.means.shape[1]
    c = params.covariances
    return {
        "full": lambda: c[k],
        "tied": lambda: c,
        "diag": lambda: np.diag(c[k]),
        "spherical": lambda: np.eye(d) * c[k],
    }[covariance_type]()


def assert_close(actual, desired, rtol, scale=None):
    """Agreement relative to the scale of ``desired`` (so near-zero entries don't dominate)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    if scale is None:
        scale = np.max(np.abs(desired)) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=0, atol=rtol * max(scale, 1e-300))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_prob_equals_scipy(covariance_type):
    k, d = 3, 4
    params = random_params(covariance_type, k, d)
    X = np.random.RandomState(1).normal(size=(50, d)) * 3
    family = Gaussian(covariance_type)
    ours = component_log_prob(family, params, X)
    for j in range(k):
        expected = scipy_stats.multivariate_normal(
            params.means[j], dense_covariance(params, covariance_type, j)
        ).logpdf(X)
        np.testing.assert_allclose(ours[:, j], expected, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_prob_far_from_origin(covariance_type):
    """Centring on the chunk keeps data offset by 1e6 as accurate as data at the origin."""
    k, d = 3, 4
    params = random_params(covariance_type, k, d)
    shifted = params._replace(means=params.means + 1e6)
    X = np.random.RandomState(2).normal(size=(40, d)) * 3
    family = Gaussian(covariance_type)
    near = component_log_prob(family, params, X)
    far = component_log_prob(family, shifted, X + 1e6)
    np.testing.assert_allclose(far, near, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_hot_m_step_is_per_cluster_mle(covariance_type):
    rng = np.random.RandomState(3)
    k, d, n = 3, 3, 90
    X = rng.normal(size=(n, d)) * [1, 2, 3] + 1e3
    labels = np.arange(n) % k
    resp = np.eye(k)[labels]
    reg = 1e-6
    family = Gaussian(covariance_type, reg)
    params, notes = family.m_step(stats_from_responsibilities(family, X, resp))
    assert notes == []
    groups = [X[labels == j] for j in range(k)]
    means = np.array([g.mean(axis=0) for g in groups])
    assert_close(params.means, means, 1e-13)
    covs = np.array([np.cov(g.T, bias=True) for g in groups])
    expected = {
        "full": covs + reg * np.eye(d),
        "tied": sum(len(g) * c for g, c in zip(groups, covs, strict=True)) / n + reg * np.eye(d),
        "diag": np.array([g.var(axis=0) for g in groups]) + reg,
        "spherical": np.array([g.var(axis=0).mean() for g in groups]) + reg,
    }[covariance_type]
    assert_close(params.covariances, expected, 1e-11)


# -- the algebra of statistics -----------------------------------------------------------------


def stats_of(family, X, resp):
    return stats_from_responsibilities(family, X, resp)


def assert_stats_close(a, b, X, rtol=1e-9, scale_of=None):
    """Each field agrees relative to its own scale (or ``scale_of``'s field's).

    Fields near zero (the scatter of nearly constant data) are compared on a floor of 1e-6
    times their natural scale from the data (1, max|x|, n·max|x|²).
    """
    big = max(np.abs(X).max(), 1.0)
    floors = (1.0, big, len(X) * big**2)
    scale_of = b if scale_of is None else scale_of
    for x, y, ref, floor in zip(a, b, scale_of, floors, strict=True):
        assert_close(x, y, rtol, max(np.max(np.abs(ref)), 1e-6 * floor))


finite_rows = arrays(
    np.float64,
    st.tuples(st.integers(2, 30), st.just(3)),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)


def split_data(X, seed):
    rng = np.random.RandomState(seed)
    resp = rng.dirichlet(np.ones(2), size=len(X))
    cut = rng.randint(1, len(X))
    return resp, cut


@settings(max_examples=60, deadline=None)
@given(X=finite_rows, seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(COVARIANCE_TYPES))
def test_merge_of_parts_is_stats_of_union(X, seed, kind):
    family = Gaussian(kind)
    resp, cut = split_data(X, seed)
    whole = stats_of(family, X, resp)
    a = stats_of(family, X[:cut], resp[:cut])
    b = stats_of(family, X[cut:], resp[cut:])
    assert_stats_close(family.merge(a, b), whole, X)
    assert_stats_close(family.merge(b, a), whole, X)  # commutative
    assert_stats_close(family.subtract(whole, b), a, X, rtol=1e-7, scale_of=whole)


@settings(max_examples=60, deadline=None)
@given(X=finite_rows, seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(COVARIANCE_TYPES))
def test_merge_is_associative(X, seed, kind):
    family = Gaussian(kind)
    rng = np.random.RandomState(seed)
    resp = rng.dirichlet(np.ones(2), size=len(X))
    i, j = np.sort(rng.choice(np.arange(1, len(X)), size=2, replace=len(X) < 3))
    parts = [stats_of(family, X[s], resp[s]) for s in (slice(0, i), slice(i, j), slice(j, None))]
    left = family.merge(family.merge(parts[0], parts[1]), parts[2])
    right = family.merge(parts[0], family.merge(parts[1], parts[2]))
    assert_stats_close(left, right, X)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_scale_equals_weighted_rows(kind):
    rng = np.random.RandomState(4)
    X = rng.normal(size=(20, 3))
    resp = rng.dirichlet(np.ones(2), size=20)
    family = Gaussian(kind)
    assert_stats_close(
        family.scale(stats_of(family, X, resp), 2.5), stats_of(family, X, resp * 2.5), X, 1e-12
    )


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_merge_far_from_origin_has_no_cancellation(kind):
    """Chunks of data at 1e6 merge to the scatter of data at 0, to 1e-9."""
    rng = np.random.RandomState(5)
    X = rng.normal(size=(1000, 3))
    resp = rng.dirichlet(np.ones(2), size=1000)
    family = Gaussian(kind)
    parts = [stats_of(family, X[s] + 1e6, resp[s]) for s in np.array_split(np.arange(1000), 7)]
    merged = parts[0]
    for part in parts[1:]:
        merged = family.merge(merged, part)
    reference = stats_of(family, X, resp)
    assert_close(merged.scatter, reference.scatter, 1e-9)
    assert_close(merged.means - 1e6, reference.means, 1e-8)


def test_precision_cholesky_repairs_and_names_component():
    covariances = np.array([np.eye(2), [[1.0, 1.0], [1.0, 1.0]]])  # the second is singular
    fixed, chol, notes = precision_cholesky(covariances, "full")
    assert len(notes) == 1 and "component 1" in notes[0]
    assert np.all(np.linalg.eigvalsh(fixed[1]) > 0)
    np.testing.assert_allclose(chol[1] @ chol[1].T @ fixed[1], np.eye(2), atol=1e-6)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_precisions_init_matches_sklearn(kind):
    params = random_params(kind, 3, 4)
    chol = params.precisions_cholesky
    precisions = {
        "full": lambda: chol @ chol.transpose(0, 2, 1),
        "tied": lambda: chol @ chol.T,
    }.get(kind, lambda: chol**2)()
    covariances, ours = precision_cholesky_from_precisions(precisions, kind)
    np.testing.assert_allclose(
        ours, _compute_precision_cholesky_from_precisions(precisions, kind, xp=np), rtol=1e-12
    )
    assert_close(covariances, params.covariances, 1e-10)
