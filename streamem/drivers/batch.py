"""Batch EM: E-step over all chunks, merge, M-step — until the log-likelihood settles.

Several models (the restarts of ``n_init``, or models of different sizes) advance together:
each iteration is one pass over the data that evaluates every model still running.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..estep import EStepResult, chunk_log_prob_resp
from ..families._base import Mixture, merge_weights

logger = logging.getLogger(__name__)

# A component is collapsed when its responsibilities sum to less than this many (average)
# rows: its M-step would rest on rounding error.
COLLAPSED_ROWS = 1e-6


class DegenerateComponentWarning(UserWarning):
    """A component was repaired: re-seeded after collapsing, or its covariance regularised."""


class Iteration(NamedTuple):
    """What a callback receives after each M-step.

    ``init`` is the index of the model (restart), ``n_iter`` counts from 1, ``lower_bound`` is
    the mean log-likelihood of the parameters *before* this M-step (as in scikit-learn), and
    ``change`` its change from the previous iteration.
    """

    init: int
    n_iter: int
    lower_bound: float
    change: float
    model: Mixture


class FitResult(NamedTuple):
    """The outcome of fitting one model."""

    model: Mixture
    lower_bounds: list[float]
    n_iter: int
    converged: bool

    @property
    def lower_bound(self) -> float:
        return self.lower_bounds[-1] if self.lower_bounds else -math.inf


def m_step(
    model: Mixture,
    stats: Any,
    n_rows: int,
    total_weight: float,
    *,
    learn_weights: bool = True,
    reseed_rows: np.ndarray | Callable[[], np.ndarray] | None = None,
) -> tuple[Mixture, list[str]]:
    """New parameters from merged statistics, repairing degenerate components.

    A component whose statistics carry almost no weight is re-seeded at the row of
    ``reseed_rows`` that the model explains worst, with the pooled spread of the others.

    Returns
    -------
    model : Mixture
    notes : list of str
        A message for each repair.
    """
    family = model.family
    params, notes = family.m_step(stats)
    weights = merge_weights(stats.counts) if learn_weights else model.weights
    threshold = COLLAPSED_ROWS * total_weight / max(n_rows, 1)
    collapsed = np.flatnonzero(stats.counts < threshold)
    if collapsed.size and reseed_rows is not None and len(collapsed) < model.n_components:
        if callable(reseed_rows):
            reseed_rows = reseed_rows()
        scores = chunk_log_prob_resp(reseed_rows, Mixture(family, weights, params))[0]
        order = np.argsort(scores, kind="stable")
        weights = weights.copy()
        for component, row in zip(collapsed, order, strict=False):
            params = family.reseed(params, int(component), reseed_rows[row], stats)
            if learn_weights:
                weights[component] = 1.0 / model.n_components
            notes.append(
                f"component {component} collapsed (its responsibilities sum to "
                f"{stats.counts[component]:.3g}); re-seeded at the worst-explained sample row"
            )
        weights = weights / weights.sum()
    return Mixture(family, weights, params), notes


class BatchProgress(NamedTuple):
    """Everything batch EM needs to continue after ``n_iter`` iterations (a checkpoint)."""

    models: tuple
    histories: tuple
    previous: tuple
    n_iters: tuple
    converged: tuple
    n_iter: int


def start_progress(models: Sequence[Mixture], lower_bound: float = -math.inf) -> BatchProgress:
    """The progress of a batch fit that has not run any iteration yet."""
    r = len(models)
    return BatchProgress(tuple(models), ((),) * r, (lower_bound,) * r, (0,) * r, (False,) * r, 0)


def fit_em(
    engine: Any,
    models: Sequence[Mixture] | BatchProgress,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    learn_weights: bool = True,
    lower_bound: float = -math.inf,
    reseed_rows: np.ndarray | Callable[[], np.ndarray] | None = None,
    callback: Callable[[Iteration], Any] | None = None,
    progress: Any = None,
    save: Callable[[BatchProgress], Any] | None = None,
) -> list[FitResult]:
    """Run batch EM on every model, sharing one pass over the data per iteration.

    Parameters
    ----------
    engine : NumpyEngine or DaskEngine
        Provides ``estep(models) -> EStepResult`` (one pass over the data).
    models : sequence of Mixture, or BatchProgress
        Initial models, or the saved progress of an interrupted fit to continue.
    tol : float
        Convergence threshold on the change of the mean log-likelihood.
    max_iter : int
        Maximum number of iterations (passes); 0 returns the initial models.
    learn_weights : bool
        Whether the M-step updates the mixture weights.
    lower_bound : float
        The mean log-likelihood to measure the first change against (warm starts).
    reseed_rows : ndarray, callable returning one, or None
        Rows to re-seed collapsed components at (typically the initialisation sample, drawn
        only when first needed).
    callback : callable or None
        Called with an :class:`Iteration` after every M-step of every model.
    progress : object or None
        Anything with ``update(n)`` and ``set_postfix_str(s)`` (a tqdm bar).
    save : callable or None
        Called with the :class:`BatchProgress` after every iteration (checkpoints).

    Returns
    -------
    list of FitResult
        One per model, in order.
    """
    state = models if isinstance(models, BatchProgress) else start_progress(models, lower_bound)
    models = list(state.models)
    histories = [list(h) for h in state.histories]
    previous = list(state.previous)
    n_iters = list(state.n_iters)
    converged = list(state.converged)
    active = [i for i in range(len(models)) if not converged[i]]
    if progress is not None and state.n_iter:
        progress.update(state.n_iter)

    for n_iter in range(state.n_iter + 1, max_iter + 1):
        if not active:
            break
        result: EStepResult = engine.estep(tuple(models[i] for i in active))
        for j, i in enumerate(active):
            mean_log_likelihood = float(result.log_likelihood[j] / result.weight)
            models[i], notes = m_step(
                models[i],
                result.stats[j],
                result.n_rows,
                result.weight,
                learn_weights=learn_weights,
                reseed_rows=reseed_rows,
            )
            for note in notes:
                warnings.warn(note, DegenerateComponentWarning, stacklevel=2)
            change = mean_log_likelihood - previous[i]
            previous[i] = mean_log_likelihood
            histories[i].append(mean_log_likelihood)
            n_iters[i] = n_iter
            logger.debug(
                "init %d iteration %d: mean log-likelihood %.10g, change %.3g",
                i,
                n_iter,
                mean_log_likelihood,
                change,
            )
            if callback is not None:
                callback(Iteration(i, n_iter, mean_log_likelihood, change, models[i]))
            if abs(change) < tol:
                converged[i] = True
        if progress is not None:
            best = int(np.argmax(previous))
            progress.update(1)
            progress.set_postfix_str(describe("log-likelihood", histories[best]))
        active = [i for i in active if not converged[i]]
        if save is not None:
            save(
                BatchProgress(
                    tuple(models),
                    tuple(tuple(h) for h in histories),
                    tuple(previous),
                    tuple(n_iters),
                    tuple(converged),
                    n_iter,
                )
            )

    for i in range(len(models)):
        logger.info(
            "init %d: %s after %d iterations, mean log-likelihood %.10g",
            i,
            "converged" if converged[i] else "not converged",
            n_iters[i],
            previous[i],
        )
    return [
        FitResult(model, list(history), n, done)
        for model, history, n, done in zip(models, histories, n_iters, converged, strict=True)
    ]


def describe(label: str, history: Sequence[float]) -> str:
    """'label value (change ±x)' for the last value of a lower-bound history."""
    text = f"{label} {history[-1]:.6g}"
    return text + (f" (change {history[-1] - history[-2]:+.2g})" if len(history) > 1 else "")


def best_result(results: Sequence[FitResult]) -> FitResult:
    """The result with the highest final lower bound (the first one on ties), as sklearn."""
    best = results[0]
    for result in results[1:]:
        if result.lower_bound > best.lower_bound:
            best = result
    return best
