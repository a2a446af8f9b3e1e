"""One fit, from an engine to fitted models: initial sample, starting models, the chosen
driver, and checkpoints.

The estimators describe what they want fitted as :class:`Plan` values (a family, how many
components and restarts, how to initialise, what to continue from) and call
:func:`fit_plans`; several plans share every pass over the data (``select_n_components``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from .checkpoint import Checkpoint
from .drivers import DRIVERS, Outcome, Reporter, Settings
from .drivers.batch import BatchProgress, start_progress
from .drivers.common import Progress
from .drivers.incremental import IncrementalProgress
from .drivers.init import InitSample, initial_models
from .drivers.stepwise import OnlineProgress, StepwiseState
from .engines import Engine, single_threaded_blas
from .families._base import Family, Mixture
from .io import ModelFileError

# What each driver saves in a checkpoint.
PROGRESS = {"batch": BatchProgress, "online": OnlineProgress, "incremental": IncrementalProgress}


def _unchanged(model: Mixture | None) -> Mixture | None:
    return model


@dataclass(frozen=True)
class Plan:
    """What one estimator asks of a fit.

    Attributes
    ----------
    family : Family
        The component family.
    n_components, n_init, init_params
        Components, restarts, and how initial responsibilities are drawn on the sample.
    user_init : callable
        Puts the user's initial parameters (``weights_init``, ``means_init``...) into a model
        drawn from the data (or into None when ``needs_data`` is false).
    needs_data : bool
        Whether anything is left to initialise from the data.
    previous : Mixture or None
        A fitted model to continue from instead (warm start), with its ``lower_bound``.
    state : StepwiseState or None
        An online fit's running state to continue from (``algorithm='online'``).
    """

    family: Family
    n_components: int
    n_init: int = 1
    init_params: str = "kmeans"
    user_init: Callable[[Mixture | None], Mixture] = _unchanged
    needs_data: bool = True
    previous: Mixture | None = None
    lower_bound: float = -math.inf
    state: StepwiseState | None = None


def starting_models(
    plan: Plan, engine: Engine, sample: InitSample, rng: np.random.RandomState
) -> list[Mixture]:
    """The models a plan starts from: its previous model, or ``n_init`` new ones."""
    if engine.n_rows < plan.n_components:
        raise ValueError(
            "Expected n_samples >= n_components but got "
            f"n_components = {plan.n_components}, n_samples = {engine.n_rows}"
        )
    if plan.previous is not None:
        return [plan.previous]
    return initial_models(
        plan.family,
        sample,
        rng,
        n_components=plan.n_components,
        n_init=plan.n_init,
        init_params=plan.init_params,
        user_init=plan.user_init,
        needs_data=plan.needs_data,
    )


def _start(algorithm: str, plans: Sequence[Plan], models: list[list[Mixture]]) -> Any:
    """What the driver starts from."""
    flat = [model for group in models for model in group]
    if algorithm == "batch" and any(plan.previous is not None for plan in plans):
        bounds = [
            plan.lower_bound for plan, group in zip(plans, models, strict=True) for _ in group
        ]
        return start_progress(flat, bounds)
    if algorithm == "online" and len(plans) == 1 and plans[0].state is not None:
        return plans[0].state
    return flat


def fit_plans(
    engine: Engine,
    plans: Sequence[Plan],
    *,
    algorithm: str = "batch",
    settings: Settings | None = None,
    random_state: Any = None,
    init_size: int = 100_000,
    checkpoint: Checkpoint | None = None,
    callback: Callable[[Any], Any] | None = None,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Fit every plan on the engine's data with ``algorithm``, sharing the passes.

    Parameters
    ----------
    engine : Engine
        The data.
    plans : sequence of Plan
        What to fit.
    algorithm : {'batch', 'online', 'incremental'}
        The driver (:data:`streamem.drivers.DRIVERS`).
    settings : Settings, optional
        The driver's settings (``reseed_rows`` and ``rng`` are set here).
    random_state : int, RandomState or None
        Seed of the initial sample, the initialisations and the visiting orders.
    init_size : int
        Rows in the initial sample.
    checkpoint : Checkpoint or None
        Continue from it when it exists; written after every iteration, removed at the end.
    callback, progress
        Passed to the driver's :class:`~streamem.drivers.common.Reporter`.

    Returns
    -------
    list of Outcome
        One per plan: its models' results (restarts in order); an online fit's running
        state is in the first.
    """
    rng = check_random_state(random_state)
    sample = InitSample(engine, init_size, rng)
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        start = saved["progress"]
        try:
            if not isinstance(start, PROGRESS[algorithm]):
                raise TypeError(f"its progress is a {type(start).__name__}")
            rng.set_state(tuple(saved["rng"]))
            sample.restore(saved["sample"])
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            raise ModelFileError(
                f"the checkpoint {checkpoint.path!r} is damaged ({exc}); delete it to start over"
            ) from exc
        sizes = [1 if plan.previous is not None else plan.n_init for plan in plans]

    def save(progress: Any) -> None:
        checkpoint.save(algorithm, progress, rng, sample.drawn)

    reporter = Reporter(callback, progress, save if checkpoint is not None else None)
    if saved is None:
        began, models = time.perf_counter(), []
        rows = f"{min(init_size, engine.n_rows):,} sampled rows of {engine.n_chunks} chunks"
        for i, plan in enumerate(plans):
            if plan.previous is None:
                reporter.initialising(
                    f"{plan.n_components} components, model {i + 1}/{len(plans)}, {rows}"
                )
            models.append(starting_models(plan, engine, sample, rng))
        if any(plan.previous is None for plan in plans):
            reporter.initialised(time.perf_counter() - began)
        start = _start(algorithm, plans, models)
        sizes = [len(group) for group in models]
    settings = dataclasses.replace(settings or Settings(), reseed_rows=sample.rows, rng=rng)
    # the client's small linear algebra (M-steps) too: a woken BLAS thread pool costs
    # milliseconds per call, which incremental EM pays after every group of chunks
    with single_threaded_blas():
        outcome = DRIVERS[algorithm](engine, start, settings, reporter)
    if checkpoint is not None:
        checkpoint.remove()
    ends = np.cumsum(sizes)
    return [
        Outcome(outcome.results[end - size : end], outcome.state)
        for size, end in zip(sizes, ends, strict=True)
    ]
