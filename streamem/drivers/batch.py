"""Batch EM: E-step over all chunks, merge, M-step — until the log-likelihood settles.

Several models (the restarts of ``n_init``, or models of different sizes) advance together:
each iteration is one pass over the data that evaluates every model still running.

Variational families (Bayesian mixtures) run the same loop as variational Bayes: the E-step
uses expected natural parameters, the M-step is the conjugate posterior update, and the lower
bound is the ELBO after the update (Bishop 2006, §10.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..engines import Engine
from ..estep import EStepResult
from ..families._base import Mixture, is_variational
from .common import (
    FitResult,
    Outcome,
    Reporter,
    Settings,
    elbo_penalty,
    expected_complete_log_likelihood,
    m_step,
)


class BatchProgress(NamedTuple):
    """Everything batch EM needs to continue after ``n_iter`` iterations (a checkpoint)."""

    models: tuple
    histories: tuple
    previous: tuple
    n_iters: tuple
    converged: tuple
    n_iter: int
    stats: tuple = ()
    weight: float = 0.0


def start_progress(
    models: Sequence[Mixture], lower_bounds: float | Sequence[float] = -math.inf
) -> BatchProgress:
    """The progress of a batch fit that has not run any iteration yet.

    ``lower_bounds`` are what each model's first change is measured against (warm starts).
    """
    r = len(models)
    previous = (lower_bounds,) * r if np.isscalar(lower_bounds) else tuple(lower_bounds)
    return BatchProgress(tuple(models), ((),) * r, previous, (0,) * r, (False,) * r, 0)


def variational_bound(before: Mixture, after: Mixture, result: EStepResult, index: int) -> float:
    """The ELBO per unit of row weight after a variational M-step, as scikit-learn's
    ``BayesianGaussianMixture`` records it (but with every constant).

    The entropy of the responsibilities is the E-step's log-likelihood minus the expected
    complete-data log-likelihood under the parameters it used (both from statistics).
    """
    stats = result.stats[index]
    entropy = result.log_likelihood[index] - expected_complete_log_likelihood(before, stats)
    complete = expected_complete_log_likelihood(after, stats)
    return float((entropy + complete - elbo_penalty(after)) / result.weight)


def fit_em(
    engine: Engine,
    start: Sequence[Mixture] | BatchProgress,
    settings: Settings,
    reporter: Reporter,
) -> Outcome:
    """Run batch EM on every model, sharing one pass over the data per iteration.

    Parameters
    ----------
    engine : Engine
        Provides ``estep(models) -> EStepResult`` (one pass over the data).
    start : sequence of Mixture, or BatchProgress
        Initial models, or the progress of an interrupted (or warm-started) fit.
    settings : Settings
        ``tol``, ``max_iter`` (0 returns the initial models), ``learn_weights``,
        ``reseed_rows``.
    reporter : Reporter
        Told about repairs, every model's iterations, and the progress after each pass.

    Returns
    -------
    Outcome
        One :class:`FitResult` per model, in order.
    """
    at = start if isinstance(start, BatchProgress) else start_progress(start)
    models, previous = list(at.models), list(at.previous)
    n_iters, converged = list(at.n_iters), list(at.converged)
    histories = [list(h) for h in at.histories]
    stats, weight = list(at.stats or (None,) * len(models)), at.weight
    reporter.resumed(at.n_iter)
    for n_iter in range(at.n_iter + 1, settings.max_iter + 1):
        active = [i for i in range(len(models)) if not converged[i]]
        if not active:
            break
        result = engine.estep(tuple(models[i] for i in active))
        weight = result.weight
        for j, i in enumerate(active):
            stats[i] = result.stats[j]
            bound = float(result.log_likelihood[j] / result.weight)
            before = models[i]
            models[i], notes = m_step(
                models[i],
                result.stats[j],
                result.n_rows,
                result.weight,
                learn_weights=settings.learn_weights,
                reseed_rows=settings.reseed_rows,
            )
            reporter.repairs(notes)
            if is_variational(before.family):
                bound = variational_bound(before, models[i], result, j)
            change, previous[i] = bound - previous[i], bound
            histories[i].append(bound)
            n_iters[i] = n_iter
            converged[i] = abs(change) < settings.tol
            reporter.iteration(i, n_iter, bound, change, models[i])
        label = "ELBO" if is_variational(models[0].family) else "log-likelihood"
        reporter.advanced(histories[int(np.argmax(previous))], label)
        reporter.checkpoint(
            BatchProgress(
                tuple(models),
                tuple(map(tuple, histories)),
                tuple(previous),
                tuple(n_iters),
                tuple(converged),
                n_iter,
                tuple(stats),
                weight,
            )
        )
    results = [
        FitResult(*fields, weight)
        for fields in zip(models, histories, n_iters, converged, stats, strict=True)
    ]
    reporter.finished(results)
    return Outcome(results)
