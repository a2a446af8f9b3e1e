"""Zarr stores in an object store: a real S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import zarr

from streamem import GaussianMixture, open_rows, to_zarr
from streamem.cli import main
from streamem.sources import open_zarr

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")


@pytest.fixture(scope="module")
def s3():
    """The server's storage options (credentials and endpoint), and a bucket."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": f"http://{host}:{port}"},
    }
    s3fs.S3FileSystem(**options).mkdir("bucket")
    yield options
    server.stop()


@pytest.fixture(scope="module")
def remote(s3):
    """A float64 store of 3 000 rows in chunks of 500, in the bucket; the rows."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(1500, 2)), rng.normal(size=(1500, 2)) + 5])[
        rng.permutation(3000)
    ]
    group = zarr.open_group("s3://bucket/rows.zarr", mode="w", storage_options=s3)
    group.create_array("data", data=X, chunks=(500, 2))
    return "s3://bucket/rows.zarr", X


def fs(s3):
    return s3fs.S3FileSystem(**s3, skip_instance_cache=True)


def test_fit_from_s3_equals_the_local_fit(s3, remote):
    url, X = remote
    local = GaussianMixture(2, random_state=0).fit(X)
    from_store = GaussianMixture(2, random_state=0, chunk_size=500).fit(open_zarr(url, s3))
    np.testing.assert_allclose(from_store.means_, local.means_, rtol=1e-10)
    rows = open_rows(url, storage_options=s3, chunk_size=500)
    assert rows.data.numblocks == (6, 1) and "rows.zarr" in rows.label


def test_predictions_written_to_s3_read_back(s3, remote):
    url, X = remote
    model = GaussianMixture(2, random_state=0).fit(X)
    written = to_zarr(
        model.predict(open_zarr(url, s3)), "s3://bucket/labels.zarr", storage_options=s3
    )
    assert written == "s3://bucket/labels.zarr/labels"
    labels = zarr.open_array(written, mode="r", storage_options=s3)
    np.testing.assert_array_equal(labels[:], model.predict(X))
    assert "Crc32cCodec" in [type(c).__name__ for c in labels.metadata.codecs]
    assert not fs(s3).glob("bucket/.labels.zarr.tmp-*")  # the temporary prefix is gone
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_zarr(model.predict(X), "s3://bucket/labels.zarr", storage_options=s3)
    to_zarr(model.predict(X[:10]), "s3://bucket/labels.zarr", storage_options=s3, overwrite=True)
    assert zarr.open_array(written, mode="r", storage_options=s3).shape == (10,)


def test_a_failed_write_leaves_nothing(s3, remote):
    _, X = remote
    model = GaussianMixture(2, random_state=0).fit(X)
    bad = X.copy()
    bad[1234] = np.nan
    import dask.array as da

    with pytest.raises(ValueError, match="row 1234"):
        to_zarr(
            model.predict(da.from_array(bad, chunks=500)),
            "s3://bucket/bad.zarr",
            storage_options=s3,
        )
    assert not fs(s3).glob("bucket/bad.zarr*") and not fs(s3).glob("bucket/.bad.zarr*")


def test_a_killed_write_leaves_nothing_readable_and_is_cleaned_up(s3):
    script = (
        "import os, signal, sys, json, numpy as np, dask.array as da\n"
        "from streamem import to_zarr\n"
        "def kill(block, block_info=None):\n"
        "    if block_info[0]['chunk-location'][0] == 3:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return block\n"
        "x = da.arange(100, chunks=10).map_blocks(kill, dtype=int, meta=np.empty(0, int))\n"
        "to_zarr(x, 's3://bucket/killed.zarr', storage_options=json.loads(sys.argv[1]))\n"
    )
    import json

    process = subprocess.run(
        [sys.executable, "-c", script, json.dumps(s3)], capture_output=True, timeout=120
    )
    assert process.returncode == -9, process.stderr
    assert not fs(s3).exists("bucket/killed.zarr")
    assert fs(s3).glob("bucket/.killed.zarr.tmp-*")  # left behind
    with pytest.warns(UserWarning, match="interrupted write"):
        to_zarr(np.arange(5), "s3://bucket/killed.zarr", storage_options=s3)
    assert not fs(s3).glob("bucket/.killed.zarr.tmp-*")
    assert zarr.open_array("s3://bucket/killed.zarr/labels", storage_options=s3)[:].tolist() == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_a_missing_chunk_is_named(s3, remote):
    _, X = remote
    group = zarr.open_group("s3://bucket/holes.zarr", mode="w", storage_options=s3)
    group.create_array("data", data=X, chunks=(500, 2))
    fs(s3).rm("bucket/holes.zarr/data/c/2/0")
    with pytest.raises(ValueError, match=r"1 of 6 chunks are missing \(rows 1000–1499\)"):
        GaussianMixture(2).fit(open_zarr("s3://bucket/holes.zarr", s3))


def test_objects_that_are_not_a_store_are_never_replaced(s3):
    fs(s3).pipe("bucket/notes.zarr/readme.txt", b"keep")
    with pytest.raises(IsADirectoryError, match="not a Zarr store"):
        to_zarr(np.arange(3), "s3://bucket/notes.zarr", storage_options=s3, overwrite=True)
    assert fs(s3).cat("bucket/notes.zarr/readme.txt") == b"keep"


def test_cluster_workers_read_the_store(s3, remote, cluster_client):
    url, _ = remote
    local = GaussianMixture(2, random_state=0, chunk_size=500).fit(open_zarr(url, s3))
    with cluster_client.as_current():
        on_cluster = GaussianMixture(2, random_state=0, chunk_size=500).fit(open_zarr(url, s3))
    np.testing.assert_allclose(on_cluster.means_, local.means_, rtol=1e-10)


def test_the_command_line_reads_and_writes_s3(s3, remote, tmp_path, capsys):
    import json

    url, _ = remote
    options = json.dumps(s3)
    model = str(tmp_path / "m.streamem")
    assert main(["fit", url, "-k", "2", "-o", model, "--storage-options", options, "--quiet"]) == 0
    out = "s3://bucket/cli-labels.zarr"
    code = main(["predict", model, url, "--out", out, "--storage-options", options, "--quiet"])
    assert code == 0
    labels = zarr.open_array(f"{out}/labels", storage_options=s3)[:]
    assert labels.shape == (3000,) and set(np.unique(labels)) == {0, 1}


def test_models_are_saved_to_and_loaded_from_s3(s3, remote):
    from streamem import load

    _, X = remote
    model = GaussianMixture(2, random_state=0).fit(X)
    target = "s3://bucket/models/m.streamem"
    model.save(target, storage_options=s3)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(target, storage_options=s3)
    back = load(target, storage_options=s3)
    np.testing.assert_array_equal(back.means_, model.means_)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    with pytest.raises(IsADirectoryError, match="holds objects below it"):
        model.save("s3://bucket/models", storage_options=s3, overwrite=True)
    with pytest.raises(FileNotFoundError, match="No such model file"):
        load("s3://bucket/models/absent.streamem", storage_options=s3)
    fs(s3).pipe_file("bucket/models/damaged.streamem", b"PK\x03\x04 not a zip")
    from streamem.io import ModelFileError

    with pytest.raises(ModelFileError, match="damaged.streamem"):
        load("s3://bucket/models/damaged.streamem", storage_options=s3)


def test_a_checkpoint_in_s3_continues_to_the_uninterrupted_model(s3, remote, monkeypatch):
    import fsspec

    monkeypatch.setitem(fsspec.config.conf, "s3", s3)  # what the estimator's URL opens with
    _, X = remote
    checkpoint = "s3://bucket/fits/fit.ckpt"

    def stop(iteration):
        if iteration.n_iter == 2:
            raise KeyboardInterrupt

    options = {"random_state": 0, "tol": 0, "max_iter": 5, "checkpoint": checkpoint}
    with pytest.raises(KeyboardInterrupt):
        GaussianMixture(2, callback=stop, **options).fit(X)
    assert fs(s3).isfile("bucket/fits/fit.ckpt")
    resumed = GaussianMixture(2, **options).fit(X)
    whole = GaussianMixture(2, random_state=0, tol=0, max_iter=5).fit(X)
    np.testing.assert_array_equal(resumed.means_, whole.means_)
    assert resumed.lower_bounds_ == whole.lower_bounds_
    assert not fs(s3).exists("bucket/fits/fit.ckpt")  # removed when the fit completes


def test_the_command_line_keeps_models_and_checkpoints_in_s3(s3, remote, capsys):
    import json

    import fsspec

    url, X = remote
    options = ["--storage-options", json.dumps(s3), "--quiet"]
    model = "s3://bucket/cli/m.streamem"
    common = ["-k", "2", "--random-state", "0", "--max-iter", "4", "--tol", "0"]
    fit = ["fit", url, *common, "-o", model, "--checkpoint", "s3://bucket/cli/fit.ckpt"]
    assert main([*fit, *options]) == 0
    assert "s3" not in fsspec.config.conf  # the options were the defaults only for the fit
    assert not fs(s3).exists("bucket/cli/fit.ckpt")
    from streamem import load

    fitted = load(model, storage_options=s3)
    expected = GaussianMixture(2, random_state=0, max_iter=4, tol=0).fit(X)
    np.testing.assert_allclose(fitted.means_, expected.means_, rtol=1e-10)
    assert main([*fit, *options]) == 2  # the model exists: refused without --overwrite
    capsys.readouterr()
    assert main(["info", model, "--json", "--storage-options", json.dumps(s3)]) == 0
    assert json.loads(capsys.readouterr().out)["n_components"] == 2
    assert main(["update", model, url, *options]) == 0
    assert load(model, storage_options=s3).n_steps_ == fitted.n_steps_ + 1
