"""Write files and directories under a temporary name, then rename them into place.

A reader never sees a half-written store or model file: either the old one or the new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

# What marks a directory as a Zarr store (v3, or v2 group / array).
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_settled(path: Path, quiet: float = 0.6, limit: float = 60.0) -> None:
    """Remove ``path``, again if parallel writers still running recreate it.

    When one task of a parallel write fails, Dask raises at once while the other threads
    finish the chunk they are writing; wait until nothing reappears for ``quiet`` seconds.
    """
    deadline = time.monotonic() + limit
    absent_since = None
    while time.monotonic() < deadline:
        if path.exists():
            _remove(path)
            absent_since = None
        elif absent_since is None:
            absent_since = time.monotonic()
        elif time.monotonic() - absent_since >= quiet:
            return
        time.sleep(0.05)


def _temporary_leaf(name: str, kind: str) -> str:
    """``.NAME.KIND-HOST-PID-RANDOM``: whose the temporary is, to tell stale ones."""
    return f".{name}.{kind}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _temporary_name(target: Path, kind: str) -> Path:
    return target.with_name(_temporary_leaf(target.name, kind))


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _host() -> str:
    """This host's name as temporaries carry it (no dashes: they separate the fields)."""
    return socket.gethostname().replace("-", "_") or "host"


def _abandoned(suffix: str, host: str) -> bool:
    """Whether a temporary named ``…-HOST-PID-RANDOM`` (``suffix``: from HOST on) was left by
    a process of this host that has ended."""
    owner, _, rest = suffix.partition("-")
    pid = rest.partition("-")[0]
    return owner == host and pid.isdigit() and not _is_alive(int(pid))


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove what interrupted writes to ``target`` left behind; return what was removed.

    A temporary is stale when the process that made it, on this host, has ended (a killed
    job). Temporaries of running processes, and of other hosts, are left alone.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    host = _host()
    removed = []
    for kind in ("tmp", "old"):
        for candidate in target.parent.glob(f".{target.name}.{kind}-*"):
            if _abandoned(candidate.name[len(target.name) + len(kind) + 3 :], host):
                _remove(candidate)
                removed.append(candidate)
    if removed:
        warnings.warn(
            f"removed {len(removed)} temporary file(s) left next to {str(target)!r} by an "
            f"interrupted write: {', '.join(p.name for p in removed)}",
            stacklevel=3,
        )
    return removed


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, overwrite: bool = False, directory: bool = False
) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write to; rename it to ``path`` on success.

    On an exception the temporary file or directory is removed and ``path`` is untouched.
    ``directory`` says what is written: a file never replaces a directory, nor a directory a
    file, and a directory replaces only a Zarr store, whatever ``overwrite`` says.
    Temporaries that killed writes to ``path`` left behind are removed first, with a warning.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    IsADirectoryError, NotADirectoryError
        If ``path`` is a directory and a file is written, or the other way round.
    """
    target = Path(path)
    if target.is_dir() and not directory:
        raise IsADirectoryError(
            f"{str(target)!r} is a directory; streamem writes a file there only in place of a "
            "file. Give a file name, for example "
            f"{str(target / 'model.streamem')!r}."
        )
    if target.exists() and not target.is_dir() and directory:
        raise NotADirectoryError(
            f"{str(target)!r} is a file; streamem writes a store there only in place of a "
            "store. Give another path."
        )
    if target.exists() and not overwrite:
        raise FileExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it.")
    if target.is_dir() and not any((target / name).exists() for name in ZARR_MARKERS):
        raise IsADirectoryError(
            f"{str(target)!r} is a directory but not a Zarr store; streamem replaces only "
            "stores. Give another path."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    temporary = _temporary_name(target, "tmp")
    try:
        yield temporary
    except BaseException:
        _remove_settled(temporary)
        raise
    if target.exists():
        # rename the old one aside first, so the new one appears in a single rename
        old = _temporary_name(target, "old")
        os.replace(target, old)
        os.replace(temporary, target)
        _remove(old)
    else:
        os.replace(temporary, target)


@contextlib.contextmanager
def remote_atomic_path(
    url: str, *, overwrite: bool = False, storage_options: dict | None = None
) -> Iterator[str]:
    """Yield a temporary URL next to the Zarr store ``url`` on an object store; on success
    copy it into place — chunks first, array metadata next, the root metadata last, so the
    store opens only when complete — and remove it.

    Object stores have no rename. Replacing a store (``overwrite``) removes the old one just
    before the copy; only a Zarr store is ever replaced. Temporaries that killed writes from
    this host left behind are removed first, as on a local disk.
    """
    import fsspec

    protocol = url.split("://", 1)[0]
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/")
    parent, _, leaf = root.rpartition("/")
    if fs.exists(root):
        if not any(fs.exists(f"{root}/{marker}") for marker in ZARR_MARKERS):
            raise IsADirectoryError(
                f"{url!r} holds objects but not a Zarr store; streamem replaces only stores. "
                "Give another path."
            )
        if not overwrite:
            raise FileExistsError(f"{url!r} exists; pass overwrite=True to replace it.")
    host = _host()
    stale = []
    for candidate in fs.glob(f"{parent}/.{leaf}.tmp-*"):
        if _abandoned(candidate.rpartition("/")[2][len(leaf) + 6 :], host):
            fs.rm(candidate, recursive=True)
            stale.append(candidate)
    if stale:
        warnings.warn(
            f"removed {len(stale)} temporary prefix(es) left next to {url!r} by an "
            f"interrupted write: {', '.join(stale)}",
            stacklevel=3,
        )
    temporary = f"{parent}/{_temporary_leaf(leaf, 'tmp')}"
    try:
        yield f"{protocol}://{temporary}"
        keys = sorted(fs.find(temporary))
        metadata = {"zarr.json", ".zarray", ".zgroup", ".zattrs"}

        def order(key: str) -> tuple[int, str]:
            relative = key[len(temporary) + 1 :]
            if relative.rpartition("/")[2] not in metadata:
                return 0, relative  # chunks
            return (2 if "/" not in relative else 1), relative  # root metadata last

        if overwrite and fs.exists(root):
            fs.rm(root, recursive=True)
        for key in sorted(keys, key=order):
            fs.copy(key, f"{root}/{key[len(temporary) + 1 :]}")
    finally:
        if fs.exists(temporary):
            fs.rm(temporary, recursive=True)


def put_object(
    url: str, data: bytes, *, overwrite: bool = False, storage_options: dict | None = None
) -> None:
    """Write one file to an object store (``s3://``, ``gs://``, … through fsspec) in a single
    upload: object stores make an object visible whole or not at all, so no temporary is
    needed. A prefix holding objects (a "directory") is never replaced.

    Raises
    ------
    FileExistsError
        If ``url`` exists and ``overwrite`` is false.
    IsADirectoryError
        If objects live under ``url/``.
    """
    import fsspec

    fs, key = fsspec.core.url_to_fs(url, **(storage_options or {}))
    key = key.rstrip("/")
    fs.invalidate_cache(key)
    if fs.isdir(key):
        raise IsADirectoryError(
            f"{url!r} holds objects below it; streamem writes a file there only in place of a "
            f"file. Give a file name, for example {url.rstrip('/') + '/model.streamem'!r}."
        )
    if fs.exists(key) and not overwrite:
        raise FileExistsError(f"{url!r} exists; pass overwrite=True to replace it.")
    fs.pipe_file(key, data)
