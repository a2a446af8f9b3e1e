"""Bad input gets one clear error that says what, where and how to fix it."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from streamem import BernoulliMixture, GaussianMixture


@pytest.mark.parametrize("chunk_size", ["-5MiB", "abc", "0MiB", 0, -3])
def test_chunk_size_is_validated(chunk_size):
    X = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises(ValueError, match="chunk_size must be a number of rows|chunk_size must"):
        GaussianMixture(2, chunk_size=chunk_size).fit(X)


def test_full_covariances_of_very_wide_data_are_refused_up_front():
    X = np.zeros((10, 10_000), dtype=np.float32)
    with pytest.raises(ValueError, match=r"covariance_type='full' on 10000 features.*'diag'"):
        GaussianMixture(2).fit(X)
    with pytest.raises(ValueError, match="covariance_type='tied'"):
        GaussianMixture(2, covariance_type="tied").fit(X)


def test_values_too_large_to_square_are_named_with_their_row():
    X = np.random.default_rng(0).normal(size=(500, 2))
    X[123] = 1e300
    with pytest.raises(ValueError, match=r"values as large as 1e\+300 \(row 123\).*rescale"):
        GaussianMixture(2, random_state=0).fit(X)


def test_nan_in_a_dask_sample_weight_names_the_row():
    X = da.from_array(np.random.default_rng(0).normal(size=(1000, 2)), chunks=250)
    weights = np.ones(1000)
    weights[777] = np.nan
    with pytest.raises(ValueError, match=r"sample_weight .* found nan at row 777"):
        GaussianMixture(2).fit(X, sample_weight=da.from_array(weights, chunks=250))


def test_truncated_npy_file_names_the_file(tmp_path):
    path = tmp_path / "rows.npy"
    np.save(path, np.random.default_rng(0).normal(size=(1000, 3)))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"rows\.npy' cannot be read .*truncated"):
        GaussianMixture(2).fit(str(path))


def test_bad_discrete_values_name_the_row():
    X = np.zeros((40_000, 3))
    X[20_001, 1] = 2.0
    with pytest.raises(ValueError, match=r"row 20001\b"):
        BernoulliMixture(2, random_state=0).fit(X)
