"""How chunks are mapped and reduced: in memory, on Dask, or over a stream."""

from .dask_ import DaskEngine
from .numpy_ import NumpyEngine

__all__ = ["DaskEngine", "NumpyEngine"]
