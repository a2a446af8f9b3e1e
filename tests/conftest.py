"""Shared fixtures: small mixtures with known parameters, and a real local Dask cluster."""

from __future__ import annotations

import numpy as np
import pytest
from dask.callbacks import Callback

# the shape of the module-scoped synthetic store below
N, D, K = 6000, 3, 3


def assert_close(actual, desired, rtol, scale=None):
    """Agreement relative to the scale of ``desired`` (so near-zero entries don't dominate)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    if scale is None:
        scale = np.max(np.abs(desired)) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=0, atol=rtol * max(scale, 1e-300))


def make_blobs(n: int = 600, d: int = 3, k: int = 3, seed: int = 0, offset: float = 0.0):
    """Rows from ``k`` well-separated Gaussian clusters of unequal sizes and spreads."""
    rng = np.random.RandomState(seed)
    sizes = rng.multinomial(n, np.arange(1, k + 1) / (k * (k + 1) / 2))
    centres = rng.uniform(-6, 6, size=(k, d))
    parts = []
    for j, size in enumerate(sizes):
        a = rng.normal(size=(d, d)) * 0.4 + np.eye(d) * (0.5 + 0.3 * j)
        parts.append(rng.normal(size=(size, d)) @ a + centres[j])
    X = np.vstack(parts)[rng.permutation(n)]
    return X + offset


@pytest.fixture
def blobs():
    return make_blobs()


@pytest.fixture(scope="session")
def cluster_client():
    """A ``distributed.Client`` on a LocalCluster of 2 worker processes (one thread each)."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="2GiB",
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


class CountComputes(Callback):
    """Counts Dask computations (passes over the data) on local schedulers."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def _start(self, dsk) -> None:
        self.count += 1


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A synthetic float32 Zarr store of N rows in chunks of 700 (path of the group)."""
    from streamem.datasets import make_mixture

    path = tmp_path_factory.mktemp("stores") / "mixture.zarr"
    make_mixture(path, N, D, K, "full", dtype="float32", chunk_rows=700, seed=4)
    return str(path)


@pytest.fixture(scope="module")
def array(store):
    import zarr

    return zarr.open(f"{store}/data", mode="r")[:]


@pytest.fixture(scope="module")
def reference(array):
    from streamem import GaussianMixture

    return GaussianMixture(K, random_state=0).fit(array)
