"""What every streamem estimator shares: fitting, prediction, scoring and sampling.

A concrete estimator says only which family it fits, how its user-given initial parameters
are checked and applied, and how a fitted model maps to its ``_``-suffixed attributes. The
fit itself is :func:`streamem.fitting.fit_plans`; :func:`fit_estimators` runs it for one
estimator (``fit``) or several sharing every pass (``select_n_components``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._validation import check_chunk_size, check_float, check_int, check_option
from ..checkpoint import Checkpoint, fingerprint
from ..drivers import Outcome, Schedule, Settings, best_result, stepwise
from ..drivers.init import INIT_PARAMS
from ..engines import Engine, make_engine
from ..families._base import Family, Mixture
from ..families._missing import MISSING_POLICIES
from ..fitting import Plan, fit_plans
from ..sources import Rows, labelled, open_rows, validate_rows
from ._online import OnlineMixin
from ._predict import PredictMixin

ALGORITHMS = ("batch", "online", "incremental")
HALF_LIFE_UNITS = ("rows", "updates")
ONLINE_BATCH_SIZE = 10_000  # most rows per stepwise update when fitting a source online


class MixtureEstimator(OnlineMixin, PredictMixin, DensityMixin, BaseEstimator):
    """Base class of the streamem estimators (not for direct use)."""

    # -- what subclasses provide ---------------------------------------------------------------

    def _family(self) -> Family:
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
        check_chunk_size(self.chunk_size, owner)
        if not self.learn_weights and self.weights_init is None:
            raise ValueError(
                f"{owner}: learn_weights=False keeps the weights fixed, so weights_init must "
                "give them."
            )
        check_option("algorithm", self.algorithm, ALGORITHMS, owner)
        if not isinstance(self.average, bool | np.bool_) and self.average != "auto":
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
        if self.half_life is not None:
            check_float("half_life", self.half_life, owner, low=0.0, low_open=True)
        check_option("half_life_unit", self.half_life_unit, HALF_LIFE_UNITS, owner)
        check_option("missing", getattr(self, "missing", "error"), MISSING_POLICIES, owner)

    def _rows(self, X: Any, *, reset: bool, min_rows: int = 1) -> Rows:
        rows = open_rows(
            X, sample_dim=self.sample_dim, variables=self.variables, chunk_size=self.chunk_size
        )
        with labelled(rows.label):
            rows = validate_rows(rows, self, reset=reset, min_rows=min_rows)
        self._check_width(rows.data.shape[1])
        return rows

    def _check_width(self, n_features: int) -> None:
        """Refuse, up front, data too wide for this model's E-step to fit in memory."""

    def _prepare(self, engine: Engine, do_init: bool, partial: bool = False) -> None:
        """Learn what the estimator needs from the data before its fit is planned (the
        data-dependent priors of Bayesian mixtures); ``partial`` for a ``partial_fit``."""

    def _engine(self, X: Any, sample_weight: Any, whole: bool = False) -> Engine:
        return make_engine(
            X,
            sample_weight,
            chunk_size=self.chunk_size,
            split_every=self.split_every,
            persist=self.persist,
            progress=self.verbose >= 2,
            whole=whole,
        )

    # -- fitting -------------------------------------------------------------------------------

    def _plan(self, n_features: int, do_init: bool) -> Plan:
        """What this estimator asks of a fit on data with ``n_features`` columns."""
        self._check_initial_parameters(n_features)
        continuing = not do_init and hasattr(self, "stepwise_state_")
        return Plan(
            self._family(),
            self.n_components,
            self.n_init,
            self.init_params,
            lambda model: self._apply_initial_parameters(model, n_features),
            self._needs_responsibilities(),
            None if do_init else self._get_model(),
            -math.inf if do_init else self.lower_bound_,
            self.stepwise_state_ if continuing else None,
        )

    def _settings(self, batch_size: int | None = None) -> Settings:
        online = self.algorithm != "batch"
        average = False if self.average == "auto" else self.average  # see fit_estimators
        return Settings(
            tol=self.tol,
            max_iter=(self.max_passes or self.max_iter) if online else self.max_iter,
            learn_weights=bool(self.learn_weights),
            store=self.incremental_store,
            schedule=Schedule(
                float(self.learning_decay),
                float(self.learning_offset),
                self.learning_rate,
                self.half_life,
                self.half_life_unit,
            ),
            batch_size=self.batch_size or batch_size,
            average=average
            if isinstance(average, int) and not isinstance(average, bool)
            else bool(average),
        )

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
        fit_estimators([self], X, sample_weight)
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
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def _finish(self, outcome: Outcome) -> None:
        """Keep the best of the outcome's results as the fitted model, as scikit-learn does."""
        best = best_result(outcome.results)
        for name in ("stepwise_state_", "n_steps_", "update_history_"):
            if hasattr(self, name):
                delattr(self, name)
        if best.stats is not None and best.weight > 0:
            # the statistics of the data at the fitted parameters: what updates continue from
            n_steps = outcome.state.n_steps if outcome.state is not None else 0
            self._keep_stepwise_state(
                stepwise.state_from_fit(best.model, best.stats, best.weight, n_steps)
            )
        self._set_model(best.model)
        self.converged_ = best.converged
        self.n_iter_ = best.n_iter
        self.lower_bound_ = best.lower_bound
        self.lower_bounds_ = list(best.lower_bounds)
        if not self.converged_ and self.max_iter > 0:
            limit = "max_iter" if self.algorithm == "batch" else "max_passes"
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                f"parameters, or increase {limit}, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _progress(self, total: int | None = None) -> tqdm:
        return tqdm(
            total=total or self.max_iter,
            desc=f"{type(self).__name__} EM",
            unit="it",
            disable=not self.verbose,
            leave=True,  # the finished bar stays as a one-line summary
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = getattr(self, "missing", "error") != "error"
        return tags


def fit_estimators(
    estimators: Sequence[MixtureEstimator],
    X: Any,
    sample_weight: Any = None,
    *,
    algorithm: str | None = None,
) -> Engine:
    """Fit several estimators on the same data, sharing every pass over it.

    The first estimator's data options (``chunk_size``, ``sample_dim``...), algorithm
    settings, seed and checkpoint serve all of them; each keeps its own family, number of
    components and initialisation. ``fit`` is this function on one estimator (continuing
    from its fitted state with ``warm_start``); :func:`streamem.select_n_components` calls
    it on a sweep of ``n_components``.

    Parameters
    ----------
    estimators : sequence of MixtureEstimator
        The estimators to fit (in place).
    X : array-like, Dask array, Zarr store, xarray object, ...
        The data.
    sample_weight : array-like of shape (n_samples,), optional
        Row weights.
    algorithm : str, optional
        Overrides the first estimator's ``algorithm``.

    Returns
    -------
    Engine
        The engine over the data, for further passes (scores of the fitted models).
    """
    first = estimators[0]
    for estimator in estimators:
        estimator._check_parameters()
    warm = len(estimators) == 1 and first.warm_start and hasattr(first, "converged_")
    rows = first._rows(X, reset=not warm, min_rows=2)
    with labelled(rows.label):
        engine = first._engine(rows.data, sample_weight)
        plans = []
        for estimator in estimators:
            estimator.n_features_in_ = first.n_features_in_
            estimator._prepare(engine, not warm)
            plans.append(estimator._plan(engine.n_features, do_init=not warm))
        checkpoint = None
        if first.checkpoint is not None and len(estimators) == 1:
            checkpoint = Checkpoint(first.checkpoint, fingerprint(first, engine, rows.label))
        algorithm = algorithm or first.algorithm
        # online: at least ~200 stepwise updates per pass, of at most ONLINE_BATCH_SIZE rows
        settings = first._settings(min(ONLINE_BATCH_SIZE, max(500, engine.n_rows // 200)))
        if algorithm == "online" and first.average == "auto":
            # average the statistics from the middle of the first pass on (measured with
            # scripts/bench_online.py: within 1e-3 of batch EM in 2 passes, 3 without)
            settings = replace(settings, average=max(2, engine.n_rows // 2))
        with first._progress(settings.max_iter) as progress:
            outcomes = fit_plans(
                engine,
                plans,
                algorithm=algorithm,
                settings=settings,
                random_state=first.random_state,
                init_size=first.init_size,
                checkpoint=checkpoint,
                callback=first.callback,
                progress=progress,
            )
            progress.total = progress.n  # converged early: the bar ends full, not at n/max
            progress.refresh()
    for estimator, outcome in zip(estimators, outcomes, strict=True):
        estimator._finish(outcome)
    return engine


def mixture_of(estimator: MixtureEstimator) -> Mixture:
    """The fitted model of a streamem estimator as a value (family, weights, parameters)."""
    check_is_fitted(estimator)
    return estimator._get_model()
