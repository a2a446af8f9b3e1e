"""The Gaussian family: densities, statistics and the M-step, against known answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky_from_precisions

from streamem.estep import component_log_prob
from streamem.families._base import stats_from_responsibilities
from streamem.families.gaussian import (
    COVARIANCE_TYPES,
    REFERENCE_ROWS,
    Gaussian,
    GaussianParams,
    precision_cholesky,
    precision_cholesky_from_precisions,
)

from ..conftest import assert_close


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


# -- statistics (their merge algebra, for every family, is in test_merge_algebra.py) -----------


def stats_of(family, X, resp):
    return stats_from_responsibilities(family, X, resp)


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


def test_reference_skips_non_finite_rows_without_warnings():
    """The kernel reports non-finite rows itself; the chunk's centre comes from the others."""
    family = Gaussian()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(family.reference(np.array([[np.inf, 1.0]])), [0.0, 0.0])
        X = np.array([[np.nan, 1.0], [2.0, 3.0], [4.0, 5.0]])
        np.testing.assert_array_equal(family.reference(X), [3.0, 4.0])
        np.testing.assert_array_equal(family.reference(np.zeros((0, 2))), [0.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 5, 4096, 4097, 65_536, 200_003])
def test_compiled_reference_is_numpys_mean_bit_for_bit(n, dtype, monkeypatch):
    """The chunk's centre summed by the compiled pass over its sampled rows is NumPy's mean
    of the same rows, to the last bit (so no number of a fit changes with the kernels)."""
    from streamem import _kernels

    rng = np.random.default_rng(n)
    X = (rng.standard_normal((n, 7)) * 1e3 + rng.uniform(-1e6, 1e6, 7)).astype(dtype)
    family = Gaussian()
    centres = {}
    for kernels in ("numba", "numpy"):
        monkeypatch.setattr(_kernels, "KERNELS", kernels)
        centres[kernels] = family.reference(X)
    step = -(-n // REFERENCE_ROWS)
    assert centres["numba"].dtype == np.float64
    assert np.array_equal(centres["numba"], centres["numpy"])
    assert np.array_equal(centres["numba"], X[::step].mean(axis=0, dtype=np.float64))


@pytest.mark.parametrize("kind", ["full", "tied", "diag", "spherical"])
def test_statistics_do_not_depend_on_the_chunk_centre(kind):
    """A large chunk is centred on the mean of evenly spaced rows; the statistics equal those
    computed directly about the exact means, also for data far from the origin."""
    rng = np.random.default_rng(3)
    n = 3 * REFERENCE_ROWS + 17
    X = rng.standard_normal((n, 3)) * [1.0, 2.0, 3.0] + [1e6, -2e6, 5.0]
    family = Gaussian(kind)
    np.testing.assert_array_equal(family.reference(X), X[::4].mean(axis=0))
    resp = rng.dirichlet(np.ones(2), n)
    stats = stats_from_responsibilities(family, X, resp)
    counts = resp.sum(axis=0)
    centre = X.mean(axis=0)
    offsets = resp.T @ (X - centre) / counts[:, None]  # exact means, about the centre
    np.testing.assert_allclose(stats.counts, counts, rtol=1e-12)
    np.testing.assert_allclose(stats.means, centre + offsets, rtol=1e-15)
    scatter = np.array(
        [(resp[:, k, None] * (X - centre - o)).T @ (X - centre - o) for k, o in enumerate(offsets)]
    )
    expected = {
        "full": scatter,
        "tied": scatter.sum(axis=0),
        "diag": np.diagonal(scatter, axis1=1, axis2=2),
        "spherical": np.trace(scatter, axis1=1, axis2=2),
    }[kind]
    np.testing.assert_allclose(stats.scatter, expected, rtol=1e-9)


def test_unknown_covariance_type_is_named():
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        Gaussian("banana").feature_key  # noqa: B018
    with pytest.raises(ValueError, match="got 'banana'"):
        precision_cholesky(np.eye(2), "banana")


@pytest.mark.parametrize("repair", [None, 0, 5])
def test_precision_factors_are_scipys_bit_for_bit(repair):
    """The precision Cholesky factors (LAPACK called directly) are those of
    ``scipy.linalg.cholesky`` and ``solve_triangular``, bit for bit; a matrix that is not
    positive definite (first, or among others) is repaired with a note, the others kept."""
    from scipy import linalg

    from streamem.families.gaussian import _factor_matrices

    rng = np.random.default_rng(3)
    factors = rng.normal(size=(7, 6, 6))
    matrices = factors @ factors.transpose(0, 2, 1) + 0.1 * np.eye(6)
    if repair is not None:
        v = rng.normal(size=6)
        matrices[repair] = np.outer(v, v)  # rank one
    expected = matrices.copy()
    chol, notes = _factor_matrices(matrices, 1.0, "component {k}")
    for k, covariance in enumerate(expected):
        if k == repair:  # repaired in place: its diagonal raised
            assert (np.diagonal(matrices[k]) > np.diagonal(covariance)).all()
            covariance = matrices[k]
        assert np.array_equal(matrices[k], covariance)
        factor = linalg.cholesky(covariance, lower=True)
        reference = linalg.solve_triangular(factor, np.eye(6), lower=True).T
        assert np.array_equal(chol[k], reference)
    assert len(notes) == (repair is not None)
    if repair is not None:
        assert f"component {repair}: covariance was not positive definite" in notes[0]
