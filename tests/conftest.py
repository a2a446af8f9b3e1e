"""Shared fixtures: small mixtures with known parameters, and a real local Dask cluster."""

from __future__ import annotations

import numpy as np
import pytest


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
