"""Initial models from a uniform random sample of rows, the way scikit-learn initialises.

scikit-learn computes initial responsibilities on all rows (k-means labels, random, or rows
picked by k-means++ or at random) and takes one M-step. streamem does the same on a sample of
``init_size`` rows drawn uniformly without replacement, so the data are never loaded whole;
when the sample would be all rows, it is all rows in order, and the same ``random_state``
gives scikit-learn's initialisation exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.utils.random import sample_without_replacement

from ..families._base import Mixture, merge_weights, stats_from_responsibilities

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def sample_indices(n_rows: int, size: int, rng: np.random.RandomState) -> np.ndarray | None:
    """Sorted indices of a uniform sample of ``size`` rows, or None for all rows."""
    if size >= n_rows:
        return None
    return np.sort(sample_without_replacement(n_rows, size, random_state=rng))


def initial_responsibilities(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    n_components: int,
    init_params: str,
    rng: np.random.RandomState,
) -> np.ndarray:
    """Responsibilities (n_rows, K) to take the first M-step from, as scikit-learn draws them."""
    n = X.shape[0]
    if init_params == "kmeans":
        resp = np.zeros((n, n_components))
        labels = (
            KMeans(n_clusters=n_components, n_init=1, random_state=rng)
            .fit(X, sample_weight=sample_weight)
            .labels_
        )
        resp[np.arange(n), labels] = 1
    elif init_params == "random":
        resp = rng.uniform(size=(n, n_components))
        resp /= resp.sum(axis=1)[:, np.newaxis]
    elif init_params == "random_from_data":
        resp = np.zeros((n, n_components))
        indices = rng.choice(n, size=n_components, replace=False)
        resp[indices, np.arange(n_components)] = 1
    elif init_params == "k-means++":
        resp = np.zeros((n, n_components))
        _, indices = kmeans_plusplus(
            X, n_components, random_state=rng, sample_weight=sample_weight
        )
        resp[indices, np.arange(n_components)] = 1
    else:  # pragma: no cover - validated by the estimators
        raise ValueError(f"unknown init_params {init_params!r}")
    return resp


def model_from_responsibilities(
    family: Any, X: np.ndarray, sample_weight: np.ndarray | None, resp: np.ndarray
) -> Mixture:
    """One M-step from given responsibilities; weights are normalised to sum to one."""
    if sample_weight is not None:
        resp = resp * sample_weight[:, None]
    stats = stats_from_responsibilities(family, X, resp)
    params, _ = family.m_step(stats)
    return Mixture(family, merge_weights(stats.counts), params)
