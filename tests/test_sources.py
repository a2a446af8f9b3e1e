"""Every source gives the NumPy array's model; lazy outputs; Zarr output; clear errors."""

from __future__ import annotations

import os
import re
import shutil

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import streamem
from streamem import GaussianMixture, to_zarr

from .conftest import D, K, N, assert_close


def assert_same(a, b, rtol=1e-10):
    assert_close(a.weights_, b.weights_, rtol)
    assert_close(a.means_, b.means_, rtol)
    assert_close(a.covariances_, b.covariances_, rtol)
    assert a.n_iter_ == b.n_iter_


@pytest.mark.parametrize(
    "source",
    ["path", "group", "zarr_array", "dask", "npy", "dataarray", "dataset", "zarr_v2"],
)
def test_every_source_gives_the_numpy_model(source, store, array, reference, tmp_path):
    if source == "path":
        X = f"{store}/data"
    elif source == "group":
        X = store  # one 2-D array in the group: found without naming it
    elif source == "zarr_array":
        X = zarr.open(f"{store}/data", mode="r")
    elif source == "dask":
        X = da.from_array(array, chunks=(1234, D))
    elif source == "npy":
        X = str(tmp_path / "rows.npy")
        np.save(X, array)
    elif source == "dataarray":
        # samples on the *second* dimension, named
        X = xr.DataArray(array.T, dims=("band", "pixel"), coords={"pixel": np.arange(N) * 2})
    elif source == "dataset":
        X = xr.Dataset({f"v{i}": ("time", array[:, i]) for i in range(D)})
    else:
        X = str(tmp_path / "v2.zarr")
        z = zarr.create_array(
            X, shape=array.shape, chunks=(500, D), dtype=array.dtype, zarr_format=2
        )
        z[:] = array
    options = {"sample_dim": "pixel"} if source == "dataarray" else {}
    gm = GaussianMixture(K, random_state=0, chunk_size="20KiB", **options).fit(X)
    assert_same(gm, reference)


def test_float32_store_is_read_as_float32(store):
    rows = streamem.open_rows(store, chunk_size="16KiB")
    assert rows.data.dtype == np.float32
    assert rows.data.numblocks[1] == 1
    assert rows.data.chunks[0][0] % 700 == 0  # whole storage chunks per task


def test_xarray_outputs_keep_coordinates(array, reference):
    coords = {"time": np.arange(N) * 10, "station": ("time", np.arange(N) % 7)}
    X = xr.DataArray(array, dims=("time", "feature"), coords=coords)
    gm = GaussianMixture(K, random_state=0, sample_dim="time").fit(X)
    labels = gm.predict(X)
    assert isinstance(labels, xr.DataArray) and labels.name == "labels"
    assert isinstance(labels.data, da.Array)
    np.testing.assert_array_equal(labels["time"], coords["time"])
    np.testing.assert_array_equal(labels["station"], coords["station"][1])
    proba = gm.predict_proba(X)
    assert proba.dims == ("time", "component") and proba.shape == (N, K)
    np.testing.assert_array_equal(labels.values, reference.predict(array))
    scores = gm.score_samples(X.chunk({"time": 1000}))
    assert scores.chunks[0][0] > 0
    np.testing.assert_allclose(scores.values, reference.score_samples(array), rtol=1e-10)


def test_predictions_written_to_zarr(store, array, reference, tmp_path):
    lazy = reference.predict(store)
    assert isinstance(lazy, da.Array)
    out = to_zarr(lazy, tmp_path / "labels.zarr")
    np.testing.assert_array_equal(zarr.open(out, mode="r")[:], reference.predict(array))
    proba = to_zarr(reference.predict_proba(store), tmp_path / "proba.zarr")
    np.testing.assert_allclose(zarr.open(proba)[:], reference.predict_proba(array), rtol=1e-10)
    X = xr.DataArray(array, dims=("t", "f"), coords={"t": np.arange(N)})
    gm = GaussianMixture(K, random_state=0).fit(X)
    out = to_zarr(gm.predict(X), tmp_path / "xr.zarr")
    written = xr.open_zarr(out.rsplit("/", 1)[0], consolidated=False)
    np.testing.assert_array_equal(written["t"], np.arange(N))
    np.testing.assert_array_equal(written["labels"], reference.predict(array))
    with pytest.raises(FileExistsError):
        to_zarr(lazy, tmp_path / "labels.zarr")


def test_failed_prediction_write_leaves_nothing(store, array, reference, tmp_path):
    bad = array.copy()
    bad[4321, 0] = np.nan
    lazy = reference.predict(da.from_array(bad, chunks=1000))
    with pytest.raises(ValueError, match="rows 4000–4999, the first at row 4321"):
        to_zarr(lazy, tmp_path / "out.zarr")
    assert os.listdir(tmp_path) == []


# -- errors ------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such Zarr store"):
        GaussianMixture(2).fit(str(tmp_path / "nope.zarr"))


def test_not_a_zarr_store(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="is not a Zarr store"):
        GaussianMixture(2).fit(str(tmp_path / "plain"))


def test_wrong_number_of_dimensions(tmp_path):
    z = zarr.create_array(str(tmp_path / "cube.zarr"), shape=(10, 3, 2), dtype="f8")
    z[:] = 1
    with pytest.raises(ValueError, match=r"has 3 dimension\(s\).*expected 2"):
        GaussianMixture(2).fit(str(tmp_path / "cube.zarr"))


def test_group_with_several_arrays(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("a", shape=(10, 2), dtype="f8")
    group.create_array("b", shape=(10, 2), dtype="f8")
    with pytest.raises(ValueError, match=re.escape("name the one to use as")):
        GaussianMixture(2).fit(str(tmp_path / "g.zarr"))


def copy_store(store, tmp_path):
    path = tmp_path / "copy.zarr"
    shutil.copytree(store, path)
    return path


def test_missing_chunk_names_store_array_and_rows(store, tmp_path):
    path = copy_store(store, tmp_path)
    key = zarr.open(f"{path}/data").metadata.encode_chunk_key((3, 0))
    os.remove(path / "data" / key)
    with pytest.raises(
        ValueError, match=r"array 'data'.*copy\.zarr.*1 of 9 chunks are missing \(rows 2100–2799\)"
    ):
        GaussianMixture(2).fit(str(path))


def test_corrupt_chunk_names_store_array_and_rows(store, tmp_path):
    path = copy_store(store, tmp_path)
    key = zarr.open(f"{path}/data").metadata.encode_chunk_key((4, 0))
    (path / "data" / key).write_bytes(b"not a chunk")
    with pytest.raises(
        OSError, match=r"rows 2800–3499 of array 'data' in Zarr store .*copy\.zarr"
    ):
        GaussianMixture(2, chunk_size=700, init_size=10, random_state=0).fit(str(path))


def test_nan_in_a_chunk_names_store_array_and_rows(store, tmp_path):
    path = copy_store(store, tmp_path)
    data = zarr.open(f"{path}/data", mode="r+")
    data[5000, 1] = np.nan
    with pytest.raises(
        ValueError, match=r"array 'data' in Zarr store .*rows \d+–\d+, the first at row 5000"
    ):
        GaussianMixture(2, init_size=10, random_state=0).fit(str(path))
    fitted = GaussianMixture(2, random_state=0).fit(np.asarray(data[:4000]))
    with pytest.raises(ValueError, match=r"array 'data' in Zarr store .*first at row 5000"):
        fitted.predict(str(path)).compute()


def test_dataset_variable_errors(array):
    ds = xr.Dataset({"a": ("t", array[:, 0])})
    with pytest.raises(ValueError, match=r"no data variable\(s\) \['b'\]"):
        GaussianMixture(2, variables=["b"]).fit(ds)
    with pytest.raises(ValueError, match="no dimension 'time'"):
        GaussianMixture(2, sample_dim="time").fit(ds["a"])
