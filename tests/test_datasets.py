"""Synthetic stores: deterministic, recoverable, never overwritten, checksummed."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from streamem import GaussianMixture, make_discrete_mixture
from streamem.datasets import load_truth, make_mixture

from .conftest import D, K, N


def test_make_mixture_is_deterministic_and_recoverable(store, array, reference, tmp_path):
    truth = load_truth(store)
    assert truth.means.shape == (K, D)
    again = make_mixture(tmp_path / "again.zarr", N, D, K, "full", chunk_rows=700, seed=4)
    np.testing.assert_array_equal(zarr.open(f"{again.path}/data")[:], array)
    order = np.argsort(reference.means_[:, 0])
    truth_order = np.argsort(truth.means[:, 0])
    np.testing.assert_allclose(reference.means_[order], truth.means[truth_order], atol=0.1)
    np.testing.assert_allclose(reference.weights_[order], truth.weights[truth_order], atol=0.02)
    labels = zarr.open(f"{store}/labels")[:]
    assert labels.shape == (N,) and set(np.unique(labels)) == set(range(K))


def test_make_mixture_does_not_overwrite(store):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_mixture(store, 10, 2, 2)


def corrupt_one_chunk(path):
    """Overwrite the middle of one data chunk with other finite bytes, keeping its size."""
    chunk = path / "data" / "c" / "2" / "0"
    raw = bytearray(chunk.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 8] = np.float64(1.5).tobytes()
    chunk.write_bytes(bytes(raw))


def test_a_chunk_overwritten_with_finite_garbage_is_reported(tmp_path):
    path = tmp_path / "m.zarr"
    make_mixture(path, 2000, 2, 2, chunk_rows=500, dtype="float64", seed=1)
    corrupt_one_chunk(path)
    with pytest.raises(OSError, match=r"rows 1000–1499 of .*checksum"):
        GaussianMixture(2, random_state=0).fit(f"{path}/data")


def test_discrete_stores_are_checksummed_too(tmp_path):
    path = tmp_path / "b.zarr"
    make_discrete_mixture(path, 1000, 4, 2, "bernoulli", chunk_rows=250, seed=0)
    codecs = [type(c).__name__ for c in zarr.open_array(f"{path}/data").metadata.codecs]
    assert "Crc32cCodec" in codecs


def test_predictions_written_by_to_zarr_are_checksummed(tmp_path):
    from streamem import to_zarr

    written = to_zarr(np.linspace(0, 1, 100), tmp_path / "scores.zarr")
    codecs = [type(c).__name__ for c in zarr.open_array(written).metadata.codecs]
    assert "Crc32cCodec" in codecs
