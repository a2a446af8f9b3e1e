"""What the three drivers share: their vocabulary, the M-step with its repairs, and reporting.

Every driver is called the same way, ``driver(engine, start, settings, reporter) -> Outcome``:
``start`` is a list of initial models or the driver's own saved progress (a checkpoint),
``settings`` the algorithm's knobs, and ``reporter`` where it says what happens (warnings, the
log, the user's callback, a progress bar, checkpoints).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from ..estep import chunk_log_prob_resp
from ..families._base import Mixture, is_variational, log_weights, updated_weights

logger = logging.getLogger("streamem.drivers")

# A component is collapsed when its responsibilities sum to less than this many (average)
# rows: its M-step would rest on rounding error.
COLLAPSED_ROWS = 1e-6


class DegenerateComponentWarning(UserWarning):
    """A component was repaired: re-seeded after collapsing, or its covariance regularised."""


class Iteration(NamedTuple):
    """What a callback receives after each M-step (batch) or pass (online, incremental).

    ``init`` is the index of the model (restart), ``n_iter`` counts from 1, ``lower_bound`` is
    the mean log-likelihood of the parameters *before* this M-step (as in scikit-learn; for
    variational families the ELBO per unit of row weight *after* it, as scikit-learn's
    ``BayesianGaussianMixture``), and ``change`` its change from the previous iteration.
    """

    init: int
    n_iter: int
    lower_bound: float
    change: float
    model: Mixture


class FitResult(NamedTuple):
    """The outcome of fitting one model.

    ``stats`` are the merged statistics the final M-step was taken from (its parameters
    are their M-step) and ``weight`` the total row weight they stand for: what a later
    update continues from (None when no iteration ran).
    """

    model: Mixture
    lower_bounds: list[float]
    n_iter: int
    converged: bool
    stats: Any = None
    weight: float = 0.0

    @property
    def lower_bound(self) -> float:
        return self.lower_bounds[-1] if self.lower_bounds else -math.inf


class Outcome(NamedTuple):
    """What a driver returns: one result per model, and an online fit's running state."""

    results: list[FitResult]
    state: Any = None


class Schedule(NamedTuple):
    """Stepwise step sizes, by precedence: a constant ``rate``; a ``half_life`` (old data
    weigh half after that many rows, or updates, arrive); for statistics that count every
    row (a fitted model's), the batch's share of all rows, ``η = w / (seen + w)``; else
    ``η_t = (t + offset)^(−decay)``."""

    decay: float = 0.6
    offset: float = 2.0
    rate: float | None = None
    half_life: float | None = None
    half_life_unit: str = "rows"

    def step_size(
        self, t: int, weight: float = 1.0, seen: float = 0.0, counting: bool = False
    ) -> float:
        """The step of update ``t`` (from 1) of a batch of row ``weight``, after ``seen``."""
        if self.rate is not None:
            return self.rate
        if self.half_life is not None:
            span = weight if self.half_life_unit == "rows" else 1.0
            return float(1.0 - 0.5 ** (span / self.half_life))
        if counting:
            return float(weight / (seen + weight)) if seen + weight > 0 else 1.0
        return float((t + self.offset) ** -self.decay)


@dataclass(frozen=True)
class Settings:
    """The knobs of a fit; each driver reads the ones that concern it.

    Attributes
    ----------
    tol : float
        Convergence threshold on the change of the (per-row) lower bound.
    max_iter : int
        Maximum number of iterations (batch) or passes (online, incremental).
    learn_weights : bool
        Whether the M-step updates the mixture weights.
    reseed_rows : ndarray, callable returning one, or None
        Rows to re-seed collapsed components at (the initialisation sample, drawn only when
        first needed).
    rng : RandomState or None
        Chunk (and row) visiting orders of online and incremental fits.
    store : str or None
        A Zarr store for incremental EM's per-chunk statistics (None: memory).
    schedule, batch_size, average
        Stepwise EM's step sizes, rows per update (None: the whole chunk) and averaging.
    """

    tol: float = 1e-3
    max_iter: int = 100
    learn_weights: bool = True
    reseed_rows: np.ndarray | Callable[[], np.ndarray] | None = None
    rng: np.random.RandomState | None = None
    store: str | None = None
    schedule: Schedule = field(default_factory=Schedule)
    batch_size: int | None = None
    average: bool | int = False


class Progress(Protocol):
    """A progress bar as drivers use it (a tqdm bar fits)."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...

    def set_description_str(self, desc: str | None = None, refresh: bool = True) -> Any: ...

    def reset(self, total: float | None = None) -> Any: ...


class Reporter:
    """Where a driver reports: warnings, the log, the user's callback, a bar, checkpoints.

    Parameters
    ----------
    callback : callable or None
        Called with an :class:`Iteration` for every model after every iteration (or pass).
    progress : Progress or None
        Advanced once per iteration (or pass), showing the best model's lower bound.
    save : callable or None
        Called with the driver's progress value after every iteration, pass or chunk.
    """

    def __init__(
        self,
        callback: Callable[[Iteration], Any] | None = None,
        progress: Progress | None = None,
        save: Callable[[Any], Any] | None = None,
    ) -> None:
        self.callback, self.progress, self.save = callback, progress, save

    def repairs(self, notes: Sequence[str]) -> None:
        for note in notes:
            warnings.warn(note, DegenerateComponentWarning, stacklevel=4)

    def iteration(self, init: int, n_iter: int, bound: float, change: float, model: Mixture):
        logger.debug(
            "init %d iteration %d: lower bound %.10g, change %.3g", init, n_iter, bound, change
        )
        if self.callback is not None:
            self.callback(Iteration(init, n_iter, bound, change, model))

    def advanced(self, history: Sequence[float], label: str = "log-likelihood") -> None:
        """One more iteration (or pass); ``history`` is the best model's lower bounds."""
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix_str(describe(label, history))

    def initialising(self, text: str) -> None:
        """The initialisation is under way (before the first iteration): say what it does."""
        if self.progress is not None:
            self.progress.set_postfix_str(f"initialising: {text}")

    def initialised(self, seconds: float) -> None:
        """The initialisation took ``seconds``: the bar's description keeps that, and its
        clock restarts, so that its rate and time count the iterations alone."""
        if self.progress is not None:
            desc = getattr(self.progress, "desc", "") or ""
            self.progress.set_description_str(f"{desc} (initialised in {seconds:.2g} s)")
            self.progress.set_postfix_str("", refresh=False)
            self.progress.reset()

    def resumed(self, n_done: int) -> None:
        if self.progress is not None and n_done:
            self.progress.update(n_done)

    def checkpoint(self, progress: Any) -> None:
        if self.save is not None:
            self.save(progress)

    def finished(self, results: Sequence[FitResult]) -> None:
        for i, result in enumerate(results):
            logger.info(
                "init %d: %s after %d iterations, lower bound %.10g",
                i,
                "converged" if result.converged else "not converged",
                result.n_iter,
                result.lower_bound,
            )


def expected_complete_log_likelihood(model: Mixture, stats: Any) -> float:
    """``E_q[log p(x, z | θ)]`` without the base measure, from statistics alone."""
    with np.errstate(invalid="ignore"):
        weights_term = np.nansum(stats.counts * log_weights(model.weights))
    return float(weights_term + model.family.expected_log_prob(stats, model.params).sum())


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
    weights = updated_weights(family, stats, params) if learn_weights else model.weights
    threshold = COLLAPSED_ROWS * total_weight / max(n_rows, 1)
    collapsed = np.flatnonzero(stats.counts < threshold)
    reseeding = reseed_rows is not None and not is_variational(family)
    if collapsed.size and reseeding and len(collapsed) < model.n_components:
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


def elbo_penalty(model: Mixture) -> float:
    """What a variational model's ELBO subtracts from ``E_q[log p(X, Z | θ)] + H(q(Z))``
    (``KL(q(θ) ‖ p(θ))``, see :func:`~streamem.families._base.is_variational`); 0 for the
    other families, whose lower bound is the log-likelihood."""
    if not is_variational(model.family):
        return 0.0
    return float(model.family.elbo_penalty(model.params))


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
