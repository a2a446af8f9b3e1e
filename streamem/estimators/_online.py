"""Online updates: ``partial_fit`` (stepwise EM on one more batch) and ``fit_stream``."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any, Self

import numpy as np
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from ..drivers import Iteration, Reporter, stepwise
from ..drivers.init import InitSample
from ..families._base import Mixture
from ..fitting import starting_models
from ..sources import labelled

# Updates kept in ``update_history_``.
MAX_HISTORY = 1000


class OnlineMixin:
    """``partial_fit`` and ``fit_stream`` of the streamem estimators."""

    def _keep_stepwise_state(self, state: stepwise.StepwiseState) -> None:
        self.stepwise_state_ = state
        self.n_steps_ = state.n_steps

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> Self:
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
            if hasattr(self, "weights_"):
                warnings.warn(
                    f"this {type(self).__name__} carries no statistics of the data it was "
                    "fitted to (it was saved by streamem 0.1, or fitted with max_iter=0), so "
                    "the update starts a new model from this batch; fit it again with this "
                    "streamem to update it in place.",
                    UserWarning,
                    stacklevel=3,
                )
        rows = self._rows(X, reset=first, min_rows=1)
        with labelled(rows.label):
            engine = self._engine(rows.data, sample_weight, whole=True)
            self._prepare(engine, first, partial=True)
            if first:
                rng = check_random_state(self.random_state)
                plan = replace(self._plan(engine.n_features, do_init=True), n_init=1)
                models = starting_models(
                    plan, engine, InitSample(engine, self.init_size, rng), rng
                )
                state = stepwise.initial_state(tuple(models))
            else:
                state = self.stepwise_state_
            outcome = stepwise.fold(
                engine, state, stepwise.Options.from_settings(self._settings())
            )
        Reporter().repairs(outcome.notes)  # only now: a rejected batch changes nothing
        before = None if first else self._get_model()
        self._keep_stepwise_state(outcome.state)
        models = stepwise.reported_models(outcome.state, learn_weights=self.learn_weights)
        self._set_model(models[0])
        total, weight = float(outcome.log_likelihood[0]), outcome.weight
        self.converged_ = False
        self.n_iter_ = outcome.state.n_steps
        self.lower_bound_ = total / weight
        self.lower_bounds_ = [*getattr(self, "lower_bounds_", [])[-999:], self.lower_bound_]
        if before is not None:
            self._record_update(before, models[0], rows.data.shape[0], total / weight)
        return total, weight

    def _record_update(self, before: Mixture, after: Mixture, n_rows: int, score: float) -> None:
        """Append to ``update_history_`` (the last ``MAX_HISTORY`` updates are kept)."""
        entry = {
            "n_rows": np.array([n_rows]),
            "log_likelihood": np.array([score]),
            "change": np.array([stepwise.parameter_change(before, after)]),
            "weights": after.weights[None, :].copy(),
        }
        history = getattr(self, "update_history_", None)
        if history is not None:
            entry = {k: np.concatenate([history[k], v])[-MAX_HISTORY:] for k, v in entry.items()}
        self.update_history_ = entry

    def fit_stream(self, blocks: Any, sample_weights: Any = None) -> Self:
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
        if not self.warm_start:  # a new model: forget every fitted attribute
            for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("_")]:
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
