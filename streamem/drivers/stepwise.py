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
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..engines import Engine
from ..estep import EStepResult, chunk_estep, non_finite_error
from ..families._base import Mixture, is_variational
from .common import FitResult, Outcome, Reporter, Schedule, Settings, elbo_penalty, m_step

__all__ = ["Options", "Schedule", "StepwiseState", "fit_online", "fold", "initial_state"]


class Options(NamedTuple):
    """How a chunk of stepwise updates is run (constant over a fit; travels to workers)."""

    schedule: Schedule = Schedule()
    batch_size: int | None = None
    learn_weights: bool = True
    average: bool | int = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Options:
        return cls(
            settings.schedule, settings.batch_size, settings.learn_weights, settings.average
        )


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
    weight_seen : float
        Row weight the running statistics stand for.
    counting : bool
        Whether the statistics count every row seen alike (a fitted model's): then each
        batch's default step is its share of all rows, ``w / (weight_seen + w)``.
    """

    models: tuple
    stats: tuple
    seen: tuple
    burned_in: tuple
    averages: tuple
    n_averaged: tuple
    n_steps: int
    rows_seen: float = 0.0
    weight_seen: float = 0.0
    counting: bool = False


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
    step = schedule.step_size(t, result.weight, state.weight_seen, state.counting)
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
            state.weight_seen + result.weight,
            state.counting,
        ),
        notes,
    )


def state_from_fit(model: Mixture, stats: Any, weight: float, n_steps: int = 0) -> StepwiseState:
    """The stepwise state of a fitted model: its statistics (totals over row ``weight``,
    whose M-step gave ``model``), counting every row alike, so that updates weigh each new
    batch by its share of all the rows seen."""
    family = model.family
    scaled = family.scale(stats, 1.0 / max(weight, np.finfo(float).tiny))
    return StepwiseState(
        (model,),
        (scaled,),
        (np.asarray(stats.counts, dtype=float),),
        (True,),
        (None,),
        (0,),
        n_steps,
        float(weight),
        float(weight),
        True,
    )


def parameter_change(before: Mixture, after: Mixture) -> float:
    """The largest change of any parameter between two models, relative to the scale of
    that parameter (its largest absolute value before), weights included."""
    change = 0.0
    pairs = zip((before.weights, *before.params), (after.weights, *after.params), strict=True)
    for old, new in pairs:
        old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
        scale = max(float(np.abs(old).max(initial=0.0)), np.finfo(float).tiny)
        change = max(change, float(np.abs(new - old).max(initial=0.0)) / scale)
    return change


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
            raise non_finite_error(
                X, row_offset, state.models[0].family
            ) from None  # rows in the chunk's own order
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
    engine: Engine,
    start: Sequence[Mixture] | StepwiseState | OnlineProgress,
    settings: Settings,
    reporter: Reporter,
) -> Outcome:
    """Stepwise EM over passes through the engine's chunks, in a new random order each pass.

    Each chunk's mini-batch updates run as one task where the chunk is (its rows shuffled
    too, from ``settings.rng``). A pass's lower bound is the mean log-likelihood of its
    mini-batches, each under the parameters before its update; fitting stops when it changes
    by less than ``tol`` between passes, or after ``max_iter`` passes. ``start`` is a list
    of new models, the running state of a fitted model to continue, or the saved
    :class:`OnlineProgress` of an interrupted fit; the reporter's checkpoint is called after
    every chunk. For variational families (stochastic variational inference, Hoffman et al.
    2013) a pass's bound also subtracts ``KL(q(θ) ‖ p(θ))`` per row: the ELBO's estimate.

    Returns
    -------
    Outcome
        One :class:`FitResult` per model and the final :class:`StepwiseState`.
    """
    if isinstance(start, OnlineProgress):
        at = start
    else:
        state = start if isinstance(start, StepwiseState) else initial_state(tuple(start))
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
    options, rng = Options.from_settings(settings), settings.rng
    histories = [list(h) for h in at.histories]
    reporter.resumed(at.n_pass - (at.position < len(at.order)) if at.n_pass else 0)
    while not at.converged:
        if at.position >= len(at.order):  # start the next pass
            if at.n_pass >= settings.max_iter:
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
        reporter.repairs(outcome.notes)
        at = at._replace(
            state=outcome.state,
            position=at.position + 1,
            total=at.total + outcome.log_likelihood,
            weight=at.weight + outcome.weight,
        )
        if at.position == len(at.order):  # the pass is complete
            bound = at.total / at.weight
            models = reported_models(at.state, learn_weights=options.learn_weights)
            if any(is_variational(m.family) for m in models):  # SVI: the ELBO's estimate
                bound = bound - np.array([elbo_penalty(m) for m in models]) / at.weight
            for i, history in enumerate(histories):
                history.append(float(bound[i]))
                reporter.iteration(i, at.n_pass, history[-1], bound[i] - at.previous[i], models[i])
            label = "ELBO" if is_variational(models[0].family) else "log-likelihood"
            reporter.advanced(histories[int(np.argmax(bound))], label)
            converged = all(at.state.burned_in) and np.all(
                np.abs(bound - at.previous) < settings.tol
            )
            at = at._replace(
                previous=bound,
                histories=tuple(map(tuple, histories)),
                converged=bool(converged),
            )
        reporter.checkpoint(at)
    models = reported_models(at.state, learn_weights=options.learn_weights)
    results = []
    for i, (model, history) in enumerate(zip(models, histories, strict=True)):
        # the statistics behind the reported model, as totals over one pass's rows
        stats = at.state.averages[i] if at.state.averages[i] is not None else at.state.stats[i]
        if stats is not None and at.weight > 0:
            stats = model.family.scale(stats, at.weight)
        results.append(FitResult(model, list(history), at.n_pass, at.converged, stats, at.weight))
    reporter.finished(results)
    return Outcome(results, at.state)


def fold(engine: Engine, state: StepwiseState, options: Options) -> ChunkOutcome:
    """Stepwise updates over every chunk of the engine, in order (one ``partial_fit``).

    Returns the final state with the batch's total log-likelihood (each mini-batch under the
    parameters before its update), its row weight, and the repairs made.
    """
    total, weight, notes = np.zeros(len(state.models)), 0.0, []
    for j in range(engine.n_chunks):
        outcome = engine.apply_chunk(j, stepwise_chunk, state, options, None)
        state = outcome.state
        total += outcome.log_likelihood
        weight += outcome.weight
        notes += outcome.notes
    return ChunkOutcome(state, total, weight, notes)
