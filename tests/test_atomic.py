"""Writes never destroy what streamem did not create, and clean up after killed writes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import zarr

from streamem import GaussianMixture, make_mixture, to_zarr
from streamem._atomic import atomic_path, remove_stale_temporaries

from .conftest import make_blobs


@pytest.fixture(scope="module")
def fitted():
    return GaussianMixture(2, random_state=0, max_iter=5).fit(make_blobs(200, 2, 2))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def stale_name(target, kind="tmp", pid=None):
    host = socket.gethostname().replace("-", "_")
    return target.parent / f".{target.name}.{kind}-{host}-{pid or dead_pid()}-0123abcd"


def test_save_refuses_an_existing_file_unless_asked(fitted, tmp_path):
    path = tmp_path / "model.streamem"
    path.write_bytes(b"someone else's file")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        fitted.save(path)
    assert path.read_bytes() == b"someone else's file"
    fitted.save(path, overwrite=True)
    assert path.read_bytes()[:2] == b"PK"


def test_to_zarr_replaces_only_a_zarr_store(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    with pytest.raises(IsADirectoryError, match="not a Zarr store"):
        to_zarr(np.arange(4), folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep"
    store = tmp_path / "labels.zarr"
    to_zarr(np.arange(4), store)
    to_zarr(np.arange(5), store, overwrite=True)
    assert zarr.open_array(f"{store}/labels")[:].tolist() == list(range(5))


def test_generate_refuses_to_replace_a_plain_directory(tmp_path):
    (tmp_path / "d.zarr").mkdir()
    (tmp_path / "d.zarr" / "x").write_text("keep")
    with pytest.raises(IsADirectoryError, match="not a Zarr store"):
        make_mixture(tmp_path / "d.zarr", 10, 2, 2, overwrite=True)
    assert (tmp_path / "d.zarr" / "x").read_text() == "keep"


def test_temporaries_of_killed_writes_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "labels.zarr"
    stale = stale_name(target)
    stale.mkdir()
    (stale / "zarr.json").write_text("{}")
    old = stale_name(target, "old")
    old.mkdir()
    alive = stale_name(target, pid=os.getpid())  # a write still running: left alone
    alive.mkdir()
    other = target.parent / ".labels.zarr.tmp-otherhost-1-0123abcd"  # another host's
    other.mkdir()
    with pytest.warns(UserWarning, match="removed 2 temporary file.* interrupted write"):
        to_zarr(np.arange(3), target)
    assert not stale.exists() and not old.exists()
    assert alive.exists() and other.exists() and target.exists()


def test_a_killed_to_zarr_leaves_nothing_readable_and_is_cleaned_up(tmp_path):
    target = tmp_path / "out.zarr"
    script = (
        "import os, signal, numpy as np, dask.array as da\n"
        "from streamem import to_zarr\n"
        "def kill(block):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return block\n"
        "x = da.arange(100, chunks=10).map_blocks(kill, dtype=int, meta=np.empty(0, int))\n"
        f"to_zarr(x, {str(target)!r})\n"
    )
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert process.returncode == -9
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # left behind
    with pytest.warns(UserWarning, match="interrupted write"):
        assert remove_stale_temporaries(target)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(path, overwrite=True) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("killed")
    assert path.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["f.bin"]


def test_an_incremental_store_never_replaces_other_data(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    X = make_blobs(600, 2, 2)
    model = GaussianMixture(2, algorithm="incremental", incremental_store=str(folder), max_iter=3)
    with pytest.raises(FileExistsError, match="not a store of streamem's chunk statistics"):
        model.fit(X)
    assert (folder / "notes.txt").read_text() == "keep"
    store = tmp_path / "stats.zarr"
    for _ in range(2):  # its own store is replaced by the next fit
        GaussianMixture(
            2, algorithm="incremental", incremental_store=str(store), random_state=0, max_iter=3
        ).fit(X)
