"""Which kernels run: the compiled ones (numba) or the NumPy reference.

The compiled kernels (:mod:`streamem.families._compiled`) do the element-wise work of a block
in one call each and release the GIL, so that an engine's threads run side by side; the NumPy
implementations beside them are the reference the tests compare them against, and run where
numba cannot be imported or ``STREAMEM_KERNELS=numpy`` is set. numba is imported on first
use, so that importing streamem does not load it.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

#: Responsibilities below this are set to zero: subnormal numbers make the GEMMs slow.
FLUSH_BELOW = 1e-300
#: No row weights / base measure, for the compiled kernels.
NO_ROWS = np.empty(0)
#: No columns chosen: every column (compiled kernels' empty argument).
NO_COLUMNS = np.empty(0, np.int64)

#: ``"numba"``, ``"numpy"``, or None: numba if it can be imported (decided on first use).
KERNELS: str | None = None


_module: ModuleType | None = None


def compiled() -> ModuleType | None:
    """The compiled kernels' module, or None when the NumPy reference is to be used."""
    global KERNELS, _module
    if _module is None:  # once: an import statement costs microseconds on every block
        from .families import _compiled

        _module = _compiled
    if KERNELS is None:
        KERNELS = "numba" if _module.AVAILABLE else "numpy"
    return _module if KERNELS == "numba" else None
