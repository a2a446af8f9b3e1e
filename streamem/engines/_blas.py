"""Keep BLAS to one thread while chunk tasks run in parallel threads.

Dask's threads (or the NumPy engine's) already occupy the cores; BLAS threads on top of them
oversubscribe, and a GEMM that takes milliseconds can take a second. The limit is process-wide,
so it is set once around a whole pass, not inside each task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit the BLAS libraries loaded in this process to one thread inside the block."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
