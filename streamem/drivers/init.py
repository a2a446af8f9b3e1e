"""Initial models from a uniform random sample of rows, the way scikit-learn initialises.

scikit-learn computes initial responsibilities on all rows (k-means labels, random, or rows
picked by k-means++ or at random) and takes one M-step. streamem does the same on a sample of
``init_size`` rows drawn uniformly without replacement, so the data are never loaded whole;
when the sample would be all rows, it is all rows in order, and the same ``random_state``
gives scikit-learn's initialisation exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.utils.random import sample_without_replacement

from ..engines import Engine, NumpyEngine
from ..families._base import Family, Mixture, block_rows, updated_weights
from ..families._missing import masked_reference, missing_policy, nan_hint

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

# Larger values overflow when squared (and summed over features) in float64.
TOO_LARGE = 1e150
# Bytes of the sample checked at a time.
SCAN_BYTES = 2**21


def sample_indices(n_rows: int, size: int, rng: np.random.RandomState) -> np.ndarray | None:
    """Sorted indices of a uniform sample of ``size`` rows, or None for all rows."""
    if size >= n_rows:
        return None
    return np.sort(sample_without_replacement(n_rows, size, random_state=rng))


def initial_statistics(
    family: Family,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    n_components: int,
    init_params: str,
    rng: np.random.RandomState,
) -> Any:
    """Statistics of ``X`` under the initial responsibilities scikit-learn draws.

    The responsibilities are never an (n_rows, K) array: one-hot starts are label vectors
    (k-means) or K rows (``'random_from_data'``, ``'k-means++'``), and ``'random'`` draws its
    uniform numbers block by block from the same stream; the statistics are the same numbers
    as from the dense array (same blocks, same order of sums).
    """
    n = X.shape[0]
    if init_params == "kmeans":
        labels = (
            KMeans(n_clusters=n_components, n_init=1, random_state=rng)
            .fit(X, sample_weight=sample_weight)
            .labels_
        )

        def one_hot(rows: slice) -> np.ndarray:
            block = np.zeros((len(labels[rows]), n_components))
            block[np.arange(len(block)), labels[rows]] = 1
            return block

        return _blocked_statistics(family, X, sample_weight, n_components, one_hot)
    if init_params == "random":

        def uniform(rows: slice) -> np.ndarray:
            block = rng.uniform(size=(min(rows.stop, n) - rows.start, n_components))
            block /= block.sum(axis=1)[:, np.newaxis]
            return block

        return _blocked_statistics(family, X, sample_weight, n_components, uniform)
    if init_params == "random_from_data":
        indices = rng.choice(n, size=n_components, replace=False)
    elif init_params == "k-means++":
        _, indices = kmeans_plusplus(
            X, n_components, random_state=rng, sample_weight=sample_weight
        )
    else:  # pragma: no cover - validated by the estimators
        raise ValueError(f"unknown init_params {init_params!r}")
    # component k is row indices[k] alone: every other product in the sums is an exact zero
    resp = np.eye(n_components)
    if sample_weight is not None:
        resp = resp * sample_weight[indices][:, None]
    reference = family.reference(X)
    sums = resp.T @ family.features(X[indices], reference).T
    return family.finalize(resp.sum(axis=0), sums, reference)


def _blocked_statistics(
    family: Family,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    n_components: int,
    responsibilities: Callable[[slice], np.ndarray],
) -> Any:
    """:func:`stats_from_responsibilities` with the responsibilities made per block: the
    same blocks, and the counts summed row after row as NumPy sums an (N, K) array."""
    reference = family.reference(X)
    step = block_rows(X.shape[1] ** 2, n_components, X.shape[1])
    sums = np.zeros((n_components, 0)) @ family.features(X[:0], reference).T
    counts = np.zeros(n_components)
    for start in range(0, X.shape[0], step):
        rows = slice(start, start + step)
        resp = responsibilities(rows)
        if sample_weight is not None:
            resp *= sample_weight[rows, None]
        sums = sums + resp.T @ family.features(X[rows], reference).T
        if n_components > 1:
            counts = np.add.reduce(np.concatenate([counts[None], resp]), axis=0)
    if n_components == 1:  # every responsibility is one; NumPy sums one column pairwise
        counts = np.array([float(X.shape[0]) if sample_weight is None else sample_weight.sum()])
    return family.finalize(counts, sums, reference)


def model_from_statistics(family: Family, stats: Any) -> Mixture:
    """One M-step from the statistics of the initial responsibilities."""
    params, _ = family.m_step(stats)
    return Mixture(family, updated_weights(family, stats, params), params)


def _row_blocks(X: np.ndarray) -> list[slice]:
    """Slices of about ``SCAN_BYTES`` of float64 rows: checks of the sample allocate no
    temporary of its size."""
    step = max(1, SCAN_BYTES // (8 * max(X.shape[1], 1)))
    return [slice(start, start + step) for start in range(0, X.shape[0], step)]


def _scan_magnitudes(X: np.ndarray) -> tuple[np.ndarray, float, int]:
    """The rows of ``X`` holding an infinity, the largest magnitude (NaN ignored) and the
    first row where it is, one block at a time."""
    infinite, largest, where = [np.empty(0, dtype=np.intp)], 0.0, 0
    blocks = _row_blocks(X)
    buffer = np.empty((blocks[0].stop if blocks else 0, X.shape[1]), dtype=X.dtype)
    for rows in blocks:
        magnitudes = np.abs(X[rows], out=buffer[: len(X[rows])])
        infinite.append(rows.start + np.flatnonzero(np.isinf(magnitudes).any(axis=1)))
        magnitudes[np.isnan(magnitudes)] = 0.0
        if magnitudes.size and magnitudes.max() > largest:
            where = rows.start + int(np.argmax(magnitudes.max(axis=1)))
            largest = float(magnitudes.max())
    return np.concatenate(infinite), largest, where


class InitSample:
    """A uniform sample of ``size`` rows of an engine's data, drawn when first needed.

    The same sample serves the initialisation of every model of a fit and the re-seeding of
    collapsed components; a checkpoint saves it (:attr:`drawn`) and :meth:`restore` puts it
    back, so a resumed fit never draws again.
    """

    def __init__(self, engine: Engine, size: int, rng: np.random.RandomState) -> None:
        self.engine, self.size, self.rng = engine, size, rng
        self._rows: tuple[np.ndarray, np.ndarray | None] | None = None
        self._indices: np.ndarray | None = None  # rows of the data sampled (None: all)

    def __call__(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The sampled rows and their weights (None: unweighted)."""
        if self._rows is None:
            indices = sample_indices(self.engine.n_rows, self.size, self.rng)
            if indices is None and isinstance(self.engine, NumpyEngine):
                rows = (self.engine.X, self.engine.sample_weight)
            else:
                if indices is None:
                    indices = np.arange(self.engine.n_rows)
                rows = self.engine.sample(indices)
            weights = rows[1]
            if weights is not None:
                bad = ~np.isfinite(weights) | (weights < 0)
                if bad.any():
                    first = int(np.argmax(bad))
                    where = first if indices is None else int(indices[first])
                    raise ValueError(
                        f"sample_weight must be finite and non-negative; found "
                        f"{float(weights[first])!r} at row {where} (and {int(bad.sum()) - 1} more "
                        "among the rows sampled to initialise from). Fix or drop those weights."
                    )
            if rows[0].dtype.kind == "f":
                # NaN may be a missing value: initial_models decides, knowing the family
                infinite, largest, row = _scan_magnitudes(rows[0])
                if len(infinite):
                    where = infinite if indices is None else indices[infinite]
                    raise ValueError(
                        f"Input contains infinity: row {where[0]} (and "
                        f"{len(infinite) - 1} more among the rows sampled to initialise from). "
                        "Remove or replace those values before fitting (only NaN can be a "
                        "missing value)."
                    )
                if largest > TOO_LARGE:
                    where = row if indices is None else int(indices[row])
                    raise ValueError(
                        f"values as large as {largest:.3g} (row {where}) cannot be squared in "
                        "float64, which EM needs; rescale the features (for example to unit "
                        "variance) before fitting."
                    )
            self._rows, self._indices = rows, indices
        return self._rows

    def usable(self, family: Family, n_components: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The sample as ``family``'s ``missing`` policy lets it initialise: without NaN
        (refused: ``'error'``), its complete rows (``'drop'``), or with each missing entry
        replaced by its column's mean over the sample, rounded if the family needs integers
        (``'marginalize'``: the k-means start and the first M-step only; EM then
        marginalises the real gaps)."""
        X, w = self()
        if X.dtype.kind != "f":
            return X, w
        if not any(np.isnan(X[rows]).any() for rows in _row_blocks(X)):
            return X, w
        missing = np.isnan(X)
        incomplete = missing.any(axis=1)
        policy = missing_policy(family)
        if policy == "error":
            bad = np.flatnonzero(incomplete)
            where = bad if self._indices is None else self._indices[bad]
            raise ValueError(
                f"Input contains NaN or infinity: row {where[0]} (and {len(bad) - 1} more "
                "among the rows sampled to initialise from). Remove or impute those rows "
                f"before fitting. {nan_hint(family=family)}"
            )
        if policy == "drop":
            keep = ~incomplete
            if keep.sum() < n_components:
                raise ValueError(
                    f"missing='drop' leaves {int(keep.sum())} complete row(s) among the "
                    f"{len(X)} sampled to initialise {n_components} components from; increase "
                    "init_size, or use missing='marginalize'."
                )
            return X[keep], None if w is None else w[keep]
        filled = np.where(missing, masked_reference(X, ~missing), X)
        if family.check_block(filled) is not None:
            filled = np.where(missing, np.rint(filled), X)
        return filled, w

    @property
    def drawn(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The sample if it has been drawn (for checkpoints), else None."""
        if self._rows is None:
            return None
        rows, weights = self._rows
        return np.asarray(rows), None if weights is None else np.asarray(weights)

    def restore(self, drawn: Any) -> None:
        """Use a sample saved in a checkpoint instead of drawing one."""
        if drawn is not None:
            rows, weights = drawn
            self._rows = (rows, weights)

    def rows(self) -> np.ndarray:
        """The sampled rows as float64 (to re-seed collapsed components at)."""
        return np.asarray(self()[0], dtype=np.float64)


def initial_models(
    family: Family,
    sample: InitSample,
    rng: np.random.RandomState,
    *,
    n_components: int,
    n_init: int,
    init_params: str,
    user_init: Callable[[Mixture | None], Mixture],
    needs_data: bool = True,
) -> list[Mixture]:
    """``n_init`` initial models: responsibilities drawn on the sample, one M-step, then the
    user's initial parameters put in place by ``user_init`` (all of them when
    ``needs_data`` is false, and the sample is never drawn)."""
    models = []
    for _ in range(n_init):
        model = None
        if needs_data:
            X, w = sample.usable(family, n_components)
            stats = initial_statistics(family, X, w, n_components, init_params, rng)
            model = model_from_statistics(family, stats)
        models.append(user_init(model))
    return models
