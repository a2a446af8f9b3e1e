"""Model files: what saving may and may not replace."""

from __future__ import annotations

import numpy as np
import pytest

import streamem
from streamem import GaussianMixture
from streamem.io import to_zarr

from .conftest import make_blobs


@pytest.fixture
def fitted():
    return GaussianMixture(2, random_state=0, max_iter=5).fit(make_blobs(200, 2, 2))


def test_save_refuses_to_replace_a_directory(fitted, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "precious.txt").write_text("user data")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fitted.save(results)
    assert (results / "precious.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_save_refuses_an_empty_directory_too(fitted, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IsADirectoryError):
        fitted.save(tmp_path / "empty")
    assert (tmp_path / "empty").is_dir()


def test_save_into_a_directory_by_file_name(fitted, tmp_path):
    fitted.save(tmp_path / "model.streamem")
    np.testing.assert_array_equal(streamem.load(tmp_path / "model.streamem").means_, fitted.means_)


def test_to_zarr_refuses_to_replace_a_file(tmp_path):
    target = tmp_path / "labels.zarr"
    target.write_text("not a store")
    with pytest.raises(NotADirectoryError):
        to_zarr(np.arange(4), target, overwrite=True)
    assert target.read_text() == "not a store"
