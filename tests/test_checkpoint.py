"""Checkpoints: continued only by the fit and the data they belong to."""

from __future__ import annotations

import numpy as np
import pytest

from streamem import GaussianMixture
from streamem.checkpoint import Checkpoint, fingerprint
from streamem.engines import NumpyEngine

from .conftest import make_blobs

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def interrupted(X, path, **options):
    def stop(iteration):
        if iteration.n_iter == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        GaussianMixture(
            3, random_state=0, tol=0, max_iter=6, checkpoint=str(path), callback=stop, **options
        ).fit(X)
    assert path.exists()


def test_other_data_of_the_same_shape_is_refused(tmp_path):
    path = tmp_path / "fit.ckpt"
    first, other = make_blobs(900, 3, 3, seed=0), make_blobs(900, 3, 3, seed=1)
    interrupted(first, path)
    with pytest.raises(ValueError, match=r"belongs to another fit: the data \(their first"):
        GaussianMixture(3, random_state=0, tol=0, max_iter=6, checkpoint=str(path)).fit(other)
    assert path.exists()  # refused, not removed


def test_the_same_data_continues_to_the_uninterrupted_model(tmp_path):
    X = make_blobs(900, 3, 3)
    path = tmp_path / "fit.ckpt"
    interrupted(X, path)
    resumed = GaussianMixture(3, random_state=0, tol=0, max_iter=6, checkpoint=str(path)).fit(X)
    whole = GaussianMixture(3, random_state=0, tol=0, max_iter=6).fit(X)
    np.testing.assert_array_equal(resumed.means_, whole.means_)
    assert resumed.lower_bounds_ == whole.lower_bounds_
    assert not path.exists()


def test_dtype_and_weights_are_part_of_the_identity(tmp_path):
    X = make_blobs(900, 3, 3)
    estimator = GaussianMixture(3)
    base = fingerprint(estimator, NumpyEngine(X, chunk_rows=300))
    assert fingerprint(estimator, NumpyEngine(X, chunk_rows=300)) == base
    as32 = fingerprint(estimator, NumpyEngine(X.astype(np.float32), chunk_rows=300))
    assert as32["dtype"] == "float32" and as32["digest"] != base["digest"]
    weighted = fingerprint(estimator, NumpyEngine(X, np.full(900, 2.0), chunk_rows=300))
    assert weighted["digest"] != base["digest"]
    moved = fingerprint(estimator, NumpyEngine(X.copy(), chunk_rows=300), "elsewhere")
    assert moved["digest"] == base["digest"] and moved["source"] == "elsewhere"


def test_a_changed_middle_row_is_not_seen_but_a_changed_end_row_is(tmp_path):
    X = make_blobs(900, 3, 3)
    estimator = GaussianMixture(3)
    base = fingerprint(estimator, NumpyEngine(X))
    for row, same in ((450, True), (0, False), (899, False)):
        changed = X.copy()
        changed[row, 1] += 1.0
        assert (fingerprint(estimator, NumpyEngine(changed))["digest"] == base["digest"]) == same


def test_differences_are_named(tmp_path):
    path = tmp_path / "c.ckpt"
    estimator = GaussianMixture(3)
    engine = NumpyEngine(make_blobs(900, 3, 3))
    Checkpoint(path, fingerprint(estimator, engine, "store a")).save(
        "batch", None, np.random.RandomState(0), None
    )
    other = NumpyEngine(make_blobs(600, 3, 3), chunk_rows=600)
    with pytest.raises(ValueError) as info:
        Checkpoint(path, fingerprint(estimator, other, "store b")).load()
    message = str(info.value)
    assert "n_rows (saved 900, now 600)" in message
    assert "saved from store a, now store b" in message
    assert "delete this file to start over" in message


def test_a_tampered_checkpoint_is_a_model_file_error(tmp_path):
    from streamem import ModelFileError
    from streamem.io import read_archive, write_archive

    X = make_blobs(900, 3, 3)
    path = tmp_path / "fit.ckpt"
    interrupted(X, path)
    kind, content = read_archive(path)
    for damage in ({"progress": [1, 2]}, {"rng": ["MT19937", 5]}, {"sample": None, "x": 1}):
        write_archive(path, kind, {**content, **damage}, overwrite=True)
        with pytest.raises(ModelFileError, match="checkpoint"):
            GaussianMixture(3, random_state=0, tol=0, max_iter=6, checkpoint=str(path)).fit(X)


def test_an_incremental_checkpoint_without_a_visiting_order_still_resumes(tmp_path):
    """Checkpoints written before the visiting order was kept (no ``order`` field) load, and
    the resumed fit draws an order and runs to the end."""
    import json
    import zipfile

    from streamem.drivers.incremental import IncrementalProgress
    from streamem.io import MANIFEST, read_archive

    X = make_blobs(900, 3, 3, seed=0)
    path = tmp_path / "fit.ckpt"
    options = dict(algorithm="incremental", chunk_size=150)
    interrupted(X, path, **options)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(MANIFEST))
    fields = manifest["content"]["__dict__"]["progress"]["fields"]
    assert "order" in fields
    order = fields.pop("order")  # as an older version wrote it: no field, no array
    with zipfile.ZipFile(path) as archive:
        arrays = {
            name: archive.read(name)
            for name in archive.namelist()
            if name not in (MANIFEST, order["__array__"])
        }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        for name, data in arrays.items():
            archive.writestr(name, data)
    assert read_archive(path)[1]["progress"].order is None
    assert isinstance(read_archive(path)[1]["progress"], IncrementalProgress)
    gm = GaussianMixture(3, random_state=0, tol=0, max_iter=6, checkpoint=str(path), **options)
    gm.fit(X)
    assert gm.n_iter_ == 6
