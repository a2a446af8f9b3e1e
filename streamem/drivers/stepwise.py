"""Stepwise (online) EM: interpolate sufficient statistics, not parameters.

For each mini-batch ``b`` with E-step statistics ``s̄_b`` scaled to one unit of row weight,

    s ← (1 − η_t) s + η_t s̄_b,    θ ← M-step(s),    η_t = (t + t0)^(−κ)

with κ ∈ (0.5, 1] (Cappé & Moulines 2009; Liang & Klein 2009), or a constant η, which forgets
old data geometrically and follows a drifting stream. No M-step is taken until every component
has gathered enough responsibility mass for its statistics to define its parameters (burn-in).
With averaging, the reported model is the M-step of the running mean of ``s`` after burn-in
(Polyak–Ruppert averaging in the space of expected sufficient statistics).

Everything here is a pure function of small values, so a whole chunk's sequence of updates
runs as one task where the chunk lives, and the state (the models, the running statistics and
the step counter) is all there is to save and resume.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..estep import EStepResult, _non_finite_error, chunk_estep
from .batch import DegenerateComponentWarning, FitResult, Iteration, describe, m_step


class Schedule(NamedTuple):
    """The step sizes: ``η_t = (t + offset)^(−decay)``, or ``rate`` for every step if set."""

    decay: float = 0.6
    offset: float = 2.0
    rate: float | None = None

    def step_size(self, t: int) -> float:
        if self.rate is not None:
            return self.rate
        return float((t + self.offset) ** -self.decay)


class Options(NamedTuple):
    """How a chunk of stepwise updates is run (constant over a fit)."""

    schedule: Schedule = Schedule()
    batch_size: int | None = None
    learn_weights: bool = True
    average: bool | int = False


def averaging_starts(average: bool | int, rows_seen: float) -> bool:
    """Whether Polyak averaging is on after ``rows_seen`` rows: ``True`` from burn-in on, an
    integer ``n`` once ``n`` rows have been seen (as ``SGDClassifier(average=n)``)."""
    if isinstance(average, bool) or average in (0, 1):
        return bool(average)
    return rows_seen >= average


class StepwiseState(NamedTuple):
    """Everything stepwise EM carries from one mini-batch to the next (one entry per model).

    Attributes
    ----------
    models : tuple of Mixture
        Current models (the running iterates).
    stats : tuple
        Running statistics, scaled to one unit of row weight (None before the first batch).
    seen : tuple of ndarray
        Responsibility mass each component has gathered (burn-in bookkeeping).
    burned_in : tuple of bool
        Whether each model takes M-steps yet.
    averages : tuple
        Running means of ``stats`` since averaging started (None before, or without it).
    n_averaged : tuple of int
        Number of statistics in each average.
    n_steps : int
        Mini-batch updates so far.
    rows_seen : float
        Rows seen so far (when averaging starts after a number of rows).
    """

    models: tuple
    stats: tuple
    seen: tuple
    burned_in: tuple
    averages: tuple
    n_averaged: tuple
    n_steps: int
    rows_seen: float = 0.0


def initial_state(models: tuple) -> StepwiseState:
    """The state before any mini-batch has been seen."""
    r = len(models)
    return StepwiseState(
        tuple(models),
        (None,) * r,
        tuple(np.zeros(m.n_components) for m in models),
        (False,) * r,
        (None,) * r,
        (0,) * r,
        0,
    )


def _interpolate(family: Any, old: Any, new: Any, step: float) -> Any:
    if old is None or step >= 1.0:
        return new
    return family.merge(family.scale(old, 1.0 - step), family.scale(new, step))


def update(
    state: StepwiseState,
    result: EStepResult,
    schedule: Schedule,
    *,
    n_features: int,
    learn_weights: bool = True,
    average: bool | int = False,
    reseed_rows: np.ndarray | None = None,
) -> tuple[StepwiseState, list[str]]:
    """One stepwise-EM update of every model from the E-step of one mini-batch."""
    t = state.n_steps + 1
    step = schedule.step_size(t)
    rows_seen = state.rows_seen + result.n_rows
    averaging = averaging_starts(average, rows_seen)
    models, stats, seen, burned, averages, counts, notes = [], [], [], [], [], [], []
    for i, model in enumerate(state.models):
        family = model.family
        batch = family.scale(result.stats[i], 1.0 / max(result.weight, np.finfo(float).tiny))
        running = _interpolate(family, state.stats[i], batch, step)
        mass = state.seen[i] + result.stats[i].counts
        minimum = family.min_count(n_features) if hasattr(family, "min_count") else 1.0
        ready = state.burned_in[i] or bool(np.all(mass >= minimum))
        mean, n_averaged = state.averages[i], state.n_averaged[i]
        if ready:
            model, repairs = m_step(
                model,
                running,
                result.n_rows,
                1.0,
                learn_weights=learn_weights,
                reseed_rows=reseed_rows,
            )
            notes += repairs
            if averaging:
                n_averaged += 1
                mean = _interpolate(family, mean, running, 1.0 / n_averaged)
        models.append(model)
        stats.append(running)
        seen.append(mass)
        burned.append(ready)
        averages.append(mean)
        counts.append(n_averaged)
    return (
        StepwiseState(
            tuple(models),
            tuple(stats),
            tuple(seen),
            tuple(burned),
            tuple(averages),
            tuple(counts),
            t,
            rows_seen,
        ),
        notes,
    )


def reported_models(state: StepwiseState, *, learn_weights: bool = True) -> tuple:
    """The models to expose: the averaged ones where averaging has started, else the iterates."""
    out = []
    for model, mean in zip(state.models, state.averages, strict=True):
        if mean is not None:
            model, _ = m_step(model, mean, 1, 1.0, learn_weights=learn_weights)
        out.append(model)
    return tuple(out)


class ChunkOutcome(NamedTuple):
    """What a chunk of stepwise updates returns: the new state and the pass's bookkeeping."""

    state: StepwiseState
    log_likelihood: np.ndarray
    weight: float
    notes: list


def stepwise_chunk(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    state: StepwiseState,
    options: Options,
    seed: int | None,
    row_offset: int,
) -> ChunkOutcome:
    """Stepwise-EM updates over the mini-batches of one chunk (runs where the chunk is).

    The rows are visited in a random order drawn from ``seed`` (None: in order), in
    mini-batches of ``options.batch_size`` rows (None: the whole chunk). The log-likelihood
    returned is that of each mini-batch under the parameters before its update.
    """
    X = np.asarray(X)
    n = X.shape[0]
    order = None if seed is None else np.random.default_rng(seed).permutation(n)
    size = options.batch_size or max(n, 1)
    log_likelihood = np.zeros(len(state.models))
    weight = 0.0
    notes: list[str] = []
    for start in range(0, n, size):
        rows = (
            slice(start, start + size) if order is None else np.sort(order[start : start + size])
        )
        block = X[rows]
        w = None if sample_weight is None else np.asarray(sample_weight)[rows]
        try:
            result = chunk_estep(block, w, state.models, row_offset + start)
        except ValueError as exc:
            if order is None or not str(exc).startswith("Input contains NaN"):
                raise
            raise _non_finite_error(X, row_offset) from None  # rows in the chunk's own order
        state, repairs = update(
            state,
            result,
            options.schedule,
            n_features=X.shape[1],
            learn_weights=options.learn_weights,
            average=options.average,
            reseed_rows=block if repairs_possible(state) else None,
        )
        notes += repairs
        log_likelihood += result.log_likelihood
        weight += result.weight
    return ChunkOutcome(state, log_likelihood, weight, notes)


def repairs_possible(state: StepwiseState) -> bool:
    """Whether any model is past burn-in (only then can a collapsed component be re-seeded)."""
    return any(state.burned_in)


class OnlineProgress(NamedTuple):
    """Where an online fit stands, to continue it exactly (a checkpoint after any chunk)."""

    state: StepwiseState
    n_pass: int
    order: np.ndarray
    seeds: np.ndarray
    position: int
    total: np.ndarray
    weight: float
    histories: tuple
    previous: np.ndarray
    converged: bool = False


def fit_online(
    engine: Any,
    state: StepwiseState | OnlineProgress,
    options: Options,
    *,
    rng: np.random.RandomState,
    tol: float = 1e-3,
    max_passes: int = 10,
    callback: Callable[[Iteration], Any] | None = None,
    progress: Any = None,
    save: Callable[[OnlineProgress], Any] | None = None,
) -> tuple[list[FitResult], StepwiseState]:
    """Stepwise EM over passes through the engine's chunks, in a new random order each pass.

    Each chunk's mini-batch updates run as one task where the chunk is (its rows shuffled
    too). A pass's lower bound is the mean log-likelihood of its mini-batches, each under the
    parameters before its update; fitting stops when it changes by less than ``tol`` between
    passes, or after ``max_passes``. ``state`` may be the saved :class:`OnlineProgress` of an
    interrupted fit; ``save`` is called with the progress after every chunk.
    """
    if isinstance(state, OnlineProgress):
        at = state
    else:
        n_models = len(state.models)
        at = OnlineProgress(
            state,
            0,
            np.arange(0),
            np.arange(0),
            0,
            np.zeros(n_models),
            0.0,
            ((),) * n_models,
            np.full(n_models, -math.inf),
        )
    histories = [list(h) for h in at.histories]
    converged = at.converged
    if progress is not None and at.n_pass:
        progress.update(at.n_pass - (at.position < len(at.order)))
    while not converged:
        if at.position >= len(at.order):  # start the next pass
            if at.n_pass >= max_passes:
                break
            at = at._replace(
                n_pass=at.n_pass + 1,
                order=rng.permutation(engine.n_chunks),
                seeds=rng.randint(2**31 - 1, size=engine.n_chunks),
                position=0,
                total=np.zeros_like(at.total),
                weight=0.0,
            )
        j = int(at.order[at.position])
        outcome = engine.apply_chunk(j, stepwise_chunk, at.state, options, int(at.seeds[j]))
        for note in outcome.notes:
            warnings.warn(note, DegenerateComponentWarning, stacklevel=2)
        at = at._replace(
            state=outcome.state,
            position=at.position + 1,
            total=at.total + outcome.log_likelihood,
            weight=at.weight + outcome.weight,
        )
        if at.position == len(at.order):  # the pass is complete
            bound = at.total / at.weight
            models = reported_models(at.state, learn_weights=options.learn_weights)
            for i in range(len(histories)):
                histories[i].append(float(bound[i]))
                if callback is not None:
                    change = bound[i] - at.previous[i]
                    callback(Iteration(i, at.n_pass, float(bound[i]), change, models[i]))
            if progress is not None:
                progress.update(1)
                best = int(np.argmax(bound))
            progress.set_postfix_str(describe("log-likelihood", histories[best]))
            change = np.abs(bound - at.previous)
            at = at._replace(previous=bound, histories=tuple(tuple(h) for h in histories))
            converged = bool(all(at.state.burned_in) and np.all(change < tol))
            at = at._replace(converged=converged)
        if save is not None:
            save(at)
    models = reported_models(at.state, learn_weights=options.learn_weights)
    results = [
        FitResult(model, list(history), at.n_pass, converged)
        for model, history in zip(models, histories, strict=True)
    ]
    return results, at.state
