"""Write files and directories under a temporary name, then rename them into place.

A reader never sees a half-written store or model file: either the old one or the new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, overwrite: bool = False, directory: bool = False
) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write to; rename it to ``path`` on success.

    On an exception the temporary file or directory is removed and ``path`` is untouched.
    ``directory`` says what is written: a file never replaces a directory, nor a directory a
    file, whatever ``overwrite`` says.

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
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        yield temporary
    except BaseException:
        _remove_settled(temporary)
        raise
    if target.exists():
        # rename the old one aside first, so the new one appears in a single rename
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
        os.replace(target, old)
        os.replace(temporary, target)
        _remove(old)
    else:
        os.replace(temporary, target)
