"""What every streamem estimator shares: fitting, prediction, scoring and sampling.

A concrete estimator says only which family it fits, how its user-given initial parameters
are checked and applied, and how a fitted model maps to its ``_``-suffixed attributes.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._validation import check_float, check_int, check_option, check_sample_weight
from ..checkpoint import Checkpoint, fingerprint
from ..drivers import stepwise
from ..drivers.batch import DegenerateComponentWarning, FitResult, Iteration, best_result, fit_em
from ..drivers.incremental import fit_incremental
from ..drivers.init import (
    INIT_PARAMS,
    initial_responsibilities,
    model_from_responsibilities,
    sample_indices,
)
from ..engines import DaskEngine, NumpyEngine
from ..estep import chunk_predict, chunk_predict_proba, chunk_score_samples
from ..families._base import Mixture
from ..sources import Rows, chunk_rows, is_lazy, open_rows, validate_rows

ALGORITHMS = ("batch", "online", "incremental")
ONLINE_BATCH_SIZE = 10_000  # rows per stepwise update when fitting a whole source online


def _rows_task(
    block: np.ndarray, kernel: Any, model: Mixture, label: str, block_info=None
) -> np.ndarray:
    offset = block_info[0]["array-location"][0][0] if block_info else 0
    with _labelled(label):
        return kernel(block, model, offset)


@contextlib.contextmanager
def _labelled(label: str):
    """Prefix errors about the data with what the data are (store, array, variables)."""
    try:
        yield
    except (ValueError, OSError) as exc:
        if label == "the data" or label in str(exc):
            raise
        try:
            labelled = type(exc)(f"{label}: {exc}")
        except Exception:  # an exception type that takes other arguments: leave it as is
            raise exc from None
        raise labelled from exc


def _cluster_can_hold(X: da.Array) -> bool:
    """Whether a dask.distributed cluster is active and ``X`` takes < half its memory."""
    try:
        from distributed import get_client

        workers = get_client().scheduler_info()["workers"].values()
    except (ImportError, ValueError):
        return False
    memory = sum(w.get("memory_limit", 0) or 0 for w in workers)
    return bool(memory) and X.nbytes < memory / 2


class _InitSample:
    """A uniform sample of rows, drawn from the engine the first time it is needed."""

    def __init__(self, engine: Any, size: int, rng: np.random.RandomState) -> None:
        self.engine, self.size, self.rng = engine, size, rng
        self._rows: tuple[np.ndarray, np.ndarray | None] | None = None

    def __call__(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self._rows is None:
            indices = sample_indices(self.engine.n_rows, self.size, self.rng)
            if indices is None and isinstance(self.engine, NumpyEngine):
                rows = (self.engine.X, self.engine.sample_weight)
            else:
                if indices is None:
                    indices = np.arange(self.engine.n_rows)
                rows = self.engine.sample(indices)
            if rows[0].dtype.kind == "f":
                finite = np.isfinite(rows[0]).all(axis=1)
                if not finite.all():
                    bad = np.flatnonzero(~finite)
                    where = bad if indices is None else indices[bad]
                    raise ValueError(
                        f"Input contains NaN or infinity: row {where[0]} (and "
                        f"{len(bad) - 1} more among the rows sampled to initialise from). "
                        "Remove or impute those rows before fitting."
                    )
            self._rows = rows
        return self._rows

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
        return np.asarray(self()[0], dtype=np.float64)


class MixtureEstimator(DensityMixin, BaseEstimator):
    """Base class of the streamem estimators (not for direct use)."""

    # -- what subclasses provide ---------------------------------------------------------------

    def _family(self) -> Any:
        raise NotImplementedError

    def _check_initial_parameters(self, n_features: int) -> None:
        """Validate the user's ``*_init`` parameters for ``n_features`` features."""

    def _needs_responsibilities(self) -> bool:
        """Whether the user's ``*_init`` parameters leave anything to initialise from data."""
        return True

    def _apply_initial_parameters(self, model: Mixture | None, n_features: int) -> Mixture:
        """``model`` with the user's ``*_init`` parameters put in place."""
        raise NotImplementedError

    def _set_model(self, model: Mixture) -> None:
        raise NotImplementedError

    def _get_model(self) -> Mixture:
        raise NotImplementedError

    # -- checks --------------------------------------------------------------------------------

    def _check_parameters(self) -> None:
        owner = type(self).__name__
        check_int("n_components", self.n_components, 1, owner)
        check_float("tol", self.tol, owner, low=0.0)
        check_int("max_iter", self.max_iter, 0, owner)
        check_int("n_init", self.n_init, 1, owner)
        check_option("init_params", self.init_params, INIT_PARAMS, owner)
        check_int("init_size", self.init_size, 1, owner)
        check_int("verbose", int(self.verbose), 0, owner)
        check_int("split_every", self.split_every, 2, owner)
        if self.chunk_size is not None and not isinstance(self.chunk_size, str):
            check_int("chunk_size", self.chunk_size, 1, owner)
        if not self.learn_weights and self.weights_init is None:
            raise ValueError(
                f"{owner}: learn_weights=False keeps the weights fixed, so weights_init must "
                "give them."
            )
        check_option("algorithm", self.algorithm, ALGORITHMS, owner)
        if not isinstance(self.average, bool | np.bool_):
            check_int("average", self.average, 0, owner)
        if self.persist not in (True, False, "auto"):
            raise ValueError(
                f"{owner}: persist must be True, False or 'auto'; got {self.persist!r}."
            )
        if self.max_passes is not None:
            check_int("max_passes", self.max_passes, 1, owner)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1, owner)
        check_float("learning_decay", self.learning_decay, owner, low=0.5, high=1.0, low_open=True)
        check_float("learning_offset", self.learning_offset, owner, low=0.0)
        if self.learning_rate is not None:
            check_float(
                "learning_rate", self.learning_rate, owner, low=0.0, high=1.0, low_open=True
            )

    def _rows(self, X: Any, *, reset: bool, min_rows: int = 1) -> Rows:
        rows = open_rows(
            X, sample_dim=self.sample_dim, variables=self.variables, chunk_size=self.chunk_size
        )
        with _labelled(rows.label):
            return validate_rows(rows, self, reset=reset, min_rows=min_rows)

    def _engine(self, X: np.ndarray | da.Array, sample_weight: Any, whole: bool = False) -> Any:
        """The engine for ``X``; ``whole``: in-memory data as one chunk (one online update)."""
        rows = chunk_rows(self.chunk_size, X.shape[1], X.dtype.itemsize)
        if whole and not is_lazy(X):
            rows = max(X.shape[0], 1)
        if is_lazy(X):  # already chunked by open_rows
            if self.persist is True or (self.persist == "auto" and _cluster_can_hold(X)):
                X = X.persist()
            if sample_weight is not None and not is_lazy(sample_weight):
                sample_weight = check_sample_weight(sample_weight, X.shape[0])
            elif sample_weight is not None and sample_weight.shape != (X.shape[0],):
                raise ValueError(
                    f"sample_weight must have shape ({X.shape[0]},) to match the rows of X, "
                    f"got {sample_weight.shape}."
                )
            return DaskEngine(
                X, sample_weight, split_every=self.split_every, progress=self.verbose >= 2
            )
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X.shape[0])
        return NumpyEngine(
            X,
            sample_weight,
            chunk_rows=rows,
            split_every=self.split_every,
            progress=self.verbose >= 2,
        )

    # -- fitting -------------------------------------------------------------------------------

    def _initial_model(
        self, family: Any, sample: _InitSample, rng: np.random.RandomState, n_features: int
    ) -> Mixture:
        model = None
        if self._needs_responsibilities():
            X, w = sample()
            resp = initial_responsibilities(X, w, self.n_components, self.init_params, rng)
            model = model_from_responsibilities(family, X, w, resp)
        return self._apply_initial_parameters(model, n_features)

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MixtureEstimator:
        """Estimate the model parameters with the EM algorithm.

        The model is fitted ``n_init`` times (all restarts advance together, one pass over the
        data per iteration) and the parameters with the largest final log-likelihood are kept.
        Each restart stops when the mean log-likelihood changes by less than ``tol``, or after
        ``max_iter`` iterations.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The data. Dask arrays are fitted chunk by chunk without being loaded.
        y : Ignored
            Not used, present for API consistency by convention.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each row (a row of weight 2 counts as two copies).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit the model to ``X`` and return the most probable component of each row.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The data.
        y : Ignored
            Not used, present for API consistency by convention.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each row.

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,)
            Component labels (lazy for Dask input).
        """
        return self._fit(X, sample_weight).predict(X)

    def _fit(self, X: Any, sample_weight: Any) -> MixtureEstimator:
        self._check_parameters()
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        rows = self._rows(X, reset=do_init, min_rows=2)
        with _labelled(rows.label):
            return self._fit_rows(rows.data, sample_weight, do_init)

    def _fit_rows(self, X: np.ndarray | da.Array, sample_weight: Any, do_init: bool):
        engine = self._engine(X, sample_weight)
        rng = check_random_state(self.random_state)
        sample = _InitSample(engine, self.init_size, rng)
        checkpoint = None
        saved = None
        if self.checkpoint is not None:
            checkpoint = Checkpoint(self.checkpoint, fingerprint(self, engine))
            saved = checkpoint.load()
        if saved is not None:
            rng.set_state(tuple(saved["rng"]))
            sample.restore(saved["sample"])
            start, lower_bound = saved["progress"], -math.inf
        else:
            start, lower_bound = self._start(engine, sample, rng, do_init)

        def save(progress: Any) -> None:
            checkpoint.save(self.algorithm, progress, rng, sample.drawn)

        passes = self.max_passes or self.max_iter
        common = dict(
            tol=self.tol,
            callback=self.callback,
            reseed_rows=sample.rows,
            save=save if checkpoint is not None else None,
        )
        with self._progress(passes) as progress:
            if self.algorithm == "batch":
                results = fit_em(
                    engine,
                    start,
                    max_iter=self.max_iter,
                    learn_weights=self.learn_weights,
                    lower_bound=lower_bound,
                    progress=progress,
                    **common,
                )
            elif self.algorithm == "incremental":
                results = fit_incremental(
                    engine,
                    start,
                    max_passes=passes,
                    learn_weights=self.learn_weights,
                    progress=progress,
                    rng=rng,
                    store=self.incremental_store,
                    **common,
                )
            else:
                if isinstance(start, list):  # new models (not a saved progress)
                    start = (
                        self.stepwise_state_
                        if not do_init and hasattr(self, "stepwise_state_")
                        else stepwise.initial_state(tuple(start))
                    )
                del common["reseed_rows"]  # stepwise EM re-seeds from the current mini-batch
                results, state = stepwise.fit_online(
                    engine,
                    start,
                    self._stepwise_options(default_batch=ONLINE_BATCH_SIZE),
                    rng=rng,
                    max_passes=passes,
                    progress=progress,
                    **common,
                )
                self._keep_stepwise_state(state)
        self._finish(results)
        if checkpoint is not None:
            checkpoint.remove()
        return self

    # -- online updates ------------------------------------------------------------------------

    def _stepwise_options(self, default_batch: int | None = None) -> stepwise.Options:
        return stepwise.Options(
            stepwise.Schedule(
                float(self.learning_decay), float(self.learning_offset), self.learning_rate
            ),
            self.batch_size or default_batch,
            bool(self.learn_weights),
            self.average
            if isinstance(self.average, int | np.integer) and not isinstance(self.average, bool)
            else bool(self.average),
        )

    def _keep_stepwise_state(self, state: stepwise.StepwiseState) -> None:
        self.stepwise_state_ = state
        self.n_steps_ = state.n_steps

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MixtureEstimator:
        """Update the model with one more batch of rows by stepwise (online) EM.

        Stepwise EM interpolates sufficient statistics rather than parameters:
        ``s ← (1 − η_t) s + η_t s̄(batch)``, with ``s̄`` the batch's expected statistics per
        unit of row weight, then takes an M-step; ``η_t = (t + learning_offset)^(−
        learning_decay)``, or ``learning_rate`` for every step (forgetting, for drifting
        streams). No M-step is taken until every component has enough responsibility mass
        to define its parameters (burn-in). With ``average=True`` the fitted attributes are
        those of the running mean of the statistics after burn-in.

        The first call initialises the model from its batch (``init_params`` on up to
        ``init_size`` of its rows, ``n_init`` is not used). In-memory batches make one update
        (or one per ``batch_size`` rows); lazy sources (Dask, Zarr, xarray) one per chunk,
        computed where the chunk is. A batch that is rejected (wrong number of features,
        empty, NaN, ...) leaves the model unchanged. ``save`` keeps the running state, so a
        loaded model continues exactly where it stopped.

        References: O. Cappé and E. Moulines (2009), "On-line expectation–maximization
        algorithm for latent data models", JRSS B 71(3); P. Liang and D. Klein (2009),
        "Online EM for unsupervised models", NAACL.

        Parameters
        ----------
        X : array-like, Dask array, Zarr store, xarray object, ...
            A batch of rows.
        y : Ignored
            Not used, present for API consistency by convention.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each row.

        Returns
        -------
        self : object
            The updated estimator.
        """
        self._update(X, sample_weight)
        return self

    def _update(self, X: Any, sample_weight: Any) -> tuple[float, float]:
        """``partial_fit``; returns the batch's total log-likelihood and weight."""
        first = not hasattr(self, "stepwise_state_")
        if first:
            self._check_parameters()
        rows = self._rows(X, reset=first, min_rows=1)
        with _labelled(rows.label):
            engine = self._engine(rows.data, sample_weight, whole=True)
            if first:
                rng = check_random_state(self.random_state)
                sample = _InitSample(engine, self.init_size, rng)
                (model,), _ = self._start(engine, sample, rng, do_init=True, n_models=1)
                state = stepwise.initial_state((model,))
            else:
                state = self.stepwise_state_
            options = self._stepwise_options()
            total, weight, notes = 0.0, 0.0, []
            for j in range(engine.n_chunks):
                outcome = engine.apply_chunk(j, stepwise.stepwise_chunk, state, options, None)
                state = outcome.state
                total += float(outcome.log_likelihood[0])
                weight += outcome.weight
                notes += outcome.notes
        for note in notes:  # only now: a rejected batch changes nothing, warns nothing
            warnings.warn(note, DegenerateComponentWarning, stacklevel=2)
        self._keep_stepwise_state(state)
        self._set_model(stepwise.reported_models(state, learn_weights=self.learn_weights)[0])
        self.converged_ = False
        self.n_iter_ = state.n_steps
        self.lower_bound_ = total / weight
        self.lower_bounds_ = [*getattr(self, "lower_bounds_", [])[-999:], self.lower_bound_]
        return total, weight

    def fit_stream(self, blocks: Any, sample_weights: Any = None) -> MixtureEstimator:
        """Fit by stepwise EM over a stream of blocks of rows (``partial_fit`` on each).

        Parameters
        ----------
        blocks : iterable, or callable returning an iterable
            Blocks of rows in any form ``partial_fit`` accepts (arrays, Zarr paths, xarray
            objects...), for example a generator reading files. A list, tuple or callable can
            be iterated again: up to ``max_passes`` passes (default ``max_iter``) are made,
            stopping when a pass's mean log-likelihood changes by less than ``tol``. A
            one-shot iterator gives one pass.
        sample_weights : iterable, optional
            Row weights for each block, in the same order.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_parameters()
        if not self.warm_start:
            for name in ("stepwise_state_", "n_steps_"):
                if hasattr(self, name):
                    delattr(self, name)
        repeatable = callable(blocks) or isinstance(blocks, list | tuple)
        passes = (self.max_passes or self.max_iter) if repeatable else 1
        history: list[float] = []
        previous = -math.inf
        self.converged_ = False
        for n_pass in range(1, passes + 1):
            source = blocks() if callable(blocks) else blocks
            weights = iter(sample_weights) if sample_weights is not None else None
            total = weight = 0.0
            for block in tqdm(
                source, desc=f"pass {n_pass}", unit="block", disable=not self.verbose, leave=False
            ):
                block_total, block_weight = self._update(
                    block, None if weights is None else next(weights)
                )
                total += block_total
                weight += block_weight
            bound = total / weight if weight else -math.inf
            history.append(bound)
            if self.callback is not None:
                self.callback(Iteration(0, n_pass, bound, bound - previous, self._get_model()))
            if abs(bound - previous) < self.tol:
                self.converged_ = True
                break
            previous = bound
        self.n_iter_ = len(history)
        self.lower_bounds_ = history
        self.lower_bound_ = history[-1] if history else -math.inf
        return self

    def _progress(self, total: int | None = None) -> tqdm:
        return tqdm(
            total=total or self.max_iter,
            desc=f"{type(self).__name__} EM",
            unit="it",
            disable=not self.verbose,
            leave=False,
        )

    def _start(
        self,
        engine: Any,
        sample: _InitSample,
        rng: np.random.RandomState,
        do_init: bool,
        n_models: int | None = None,
    ) -> tuple[list[Mixture], float]:
        """The initial models of a fit (``n_init`` of them) and the lower bound to beat."""
        if engine.n_rows < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {engine.n_rows}"
            )
        self._check_initial_parameters(engine.n_features)
        family = self._family()
        if not do_init:
            previous = self._get_model()
            return [Mixture(family, previous.weights, previous.params)], self.lower_bound_
        models = [
            self._initial_model(family, sample, rng, engine.n_features) for _ in range(self.n_init)
        ]
        return models, -math.inf

    def _finish(self, results: list[FitResult]) -> MixtureEstimator:
        """Keep the best of ``results`` as the fitted model, as scikit-learn does."""
        best = best_result(results)
        self._set_model(best.model)
        self.converged_ = best.converged
        self.n_iter_ = best.n_iter
        self.lower_bound_ = best.lower_bound if best.lower_bounds else -math.inf
        self.lower_bounds_ = list(best.lower_bounds)
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=4,
            )
        return self

    # -- prediction ----------------------------------------------------------------------------

    def _map_rows(self, X: Any, kernel: Any, n_columns: int | None, dtype: Any, name: str) -> Any:
        check_is_fitted(self)
        rows = self._rows(X, reset=False)
        model = self._get_model()
        data = rows.data
        columns = None if n_columns is None else "component"
        if not rows.lazy:
            with _labelled(rows.label):
                return rows.wrap(kernel(data, model, 0), name, columns)
        shared = dask.delayed(model, traverse=False, pure=True)
        if n_columns is None:
            result = data.map_blocks(
                _rows_task,
                kernel,
                shared,
                rows.label,
                drop_axis=1,
                dtype=dtype,
                meta=np.empty(0, dtype),
            )
            return rows.wrap(result, name)
        result = data.map_blocks(
            _rows_task,
            kernel,
            shared,
            rows.label,
            chunks=(data.chunks[0], (n_columns,)),
            dtype=dtype,
            meta=np.empty((0, 0), dtype),
        )
        return rows.wrap(result, name, columns)

    def predict(self, X: Any) -> Any:
        """The most probable component of each row.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,)
            Component labels (lazy for Dask input).
        """
        return self._map_rows(X, chunk_predict, None, np.int64, "labels")

    def predict_proba(self, X: Any) -> Any:
        """Posterior probability of each component for each row.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        resp : ndarray or dask.array.Array of shape (n_samples, n_components)
            Responsibilities (lazy for Dask input).
        """
        return self._map_rows(
            X, chunk_predict_proba, self.n_components, np.float64, "responsibilities"
        )

    def score_samples(self, X: Any) -> Any:
        """Log-likelihood of each row under the mixture.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        log_prob : ndarray or dask.array.Array of shape (n_samples,)
            ``log p(x)`` of each row (lazy for Dask input).
        """
        return self._map_rows(X, chunk_score_samples, None, np.float64, "log_likelihood")

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the rows of ``X`` (computed, also for Dask input).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        log_likelihood : float
        """
        return self._total_log_likelihood(X)[0]

    def _total_log_likelihood(self, X: Any) -> tuple[float, int]:
        """Mean log-likelihood of the rows of ``X`` and their number, opening ``X`` once."""
        scores = self.score_samples(X)
        scores = getattr(scores, "data", scores)  # xarray → its array
        mean = scores.mean().compute() if is_lazy(scores) else np.mean(scores)
        return float(mean), scores.shape[0]

    def _n_parameters(self) -> int:
        model = self._get_model()
        return model.family.n_parameters(model.params) + model.n_components - 1

    def bic(self, X: Any) -> float:
        """Bayesian information criterion of the model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        bic : float
        """
        score, n = self._total_log_likelihood(X)
        return -2 * score * n + self._n_parameters() * np.log(n)

    def aic(self, X: Any) -> float:
        """Akaike information criterion of the model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        aic : float
        """
        score, n = self._total_log_likelihood(X)
        return -2 * score * n + 2 * self._n_parameters()

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw random rows from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            The rows, grouped by component.
        y : ndarray of shape (n_samples,)
            The component each row was drawn from.
        """
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least "
                "one sample."
            )
        model = self._get_model()
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, model.weights)
        X = model.family.sample(model.params, counts, rng)
        y = np.repeat(np.arange(model.n_components), counts)
        return X, y

    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted model (and any running state) to a file, atomically, without pickle.

        Parameters
        ----------
        path : str or path-like
            The file to write; :func:`streamem.load` reads it back.
        """
        from ..io import save

        check_is_fitted(self)
        save(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
