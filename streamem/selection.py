"""Choosing the number of components: a K-sweep that shares every pass over the data."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from ._validation import check_option
from .estimators import MixtureEstimator, fit_estimators, mixture_of

CRITERIA = ("bic", "aic")


@dataclass
class Selection:
    """The outcome of :func:`select_n_components`.

    Attributes
    ----------
    table : list of dict
        One row per candidate ``n_components``: ``n_components``, ``log_likelihood`` (total,
        under the final parameters), ``n_parameters``, ``bic``, ``aic``, ``converged``,
        ``n_iter``.
    criterion : str
        The criterion the best model minimises.
    best_estimator_ : MixtureEstimator
        The fitted estimator with the best criterion.
    estimators_ : list of MixtureEstimator
        Every fitted candidate, in the order of ``table``.
    """

    table: list[dict[str, Any]]
    criterion: str
    best_estimator_: MixtureEstimator
    estimators_: list[MixtureEstimator]

    def __str__(self) -> str:
        header = f"{'K':>4} {'log-likelihood':>16} {'params':>7} {'BIC':>14} {'AIC':>14}  iters"
        lines = [header]
        best = self.best_estimator_.n_components
        for row in self.table:
            mark = " *" if row["n_components"] == best else ""
            lines.append(
                f"{row['n_components']:>4} {row['log_likelihood']:>16.6g} "
                f"{row['n_parameters']:>7} {row['bic']:>14.8g} {row['aic']:>14.8g}  "
                f"{row['n_iter']:>5}{'' if row['converged'] else ' (not converged)'}{mark}"
            )
        return "\n".join(lines)


def select_n_components(
    estimator: MixtureEstimator,
    X: Any,
    n_components: Iterable[int] = range(1, 11),
    *,
    criterion: str = "bic",
    sample_weight: Any = None,
    n_init: int | None = None,
    random_state: Any = None,
) -> Selection:
    """Fit ``estimator`` for every number of components in one set of passes over ``X``.

    Every candidate (and each of its ``n_init`` restarts) is initialised from the same
    sample of rows and advanced in the same passes: each pass reads every chunk once for all
    candidates still running. One last pass evaluates the log-likelihood of each candidate's
    final parameters, from which BIC and AIC follow; the I/O cost of the sweep is that of the
    longest single fit plus one pass.

    Parameters
    ----------
    estimator : MixtureEstimator
        A configured, unfitted streamem estimator (its ``n_components`` is ignored).
    X : array-like, Dask array, Zarr store, xarray object, ...
        The data, in any form the estimator's ``fit`` accepts.
    n_components : iterable of int
        The candidate numbers of components.
    criterion : {'bic', 'aic'}
        The criterion to minimise.
    sample_weight : array-like, optional
        Row weights.
    n_init : int, optional
        Restarts per candidate (all share the passes): the estimator's ``n_init``, at least
        3, by default, so that one unlucky start does not decide the choice.
    random_state : int or RandomState, optional
        Seed of the sample and the starts: the estimator's ``random_state``, or 0 when it
        has none, so that the same call picks the same K.

    Returns
    -------
    Selection

    Warns
    -----
    UserWarning
        When the best number of components is the smallest or the largest candidate: the
        criterion may keep improving beyond the range.
    """
    check_option("criterion", criterion, CRITERIA, "select_n_components")
    seed = random_state if random_state is not None else estimator.random_state
    options = {
        "n_init": n_init if n_init is not None else max(int(estimator.n_init), 3),
        "random_state": 0 if seed is None else seed,
    }
    candidates = [
        clone(estimator).set_params(n_components=int(k), **options) for k in n_components
    ]
    if not candidates:
        raise ValueError("select_n_components: n_components is empty.")
    engine = fit_estimators(candidates, X, sample_weight, algorithm="batch")
    final = engine.estep(tuple(mixture_of(candidate) for candidate in candidates))

    n = final.n_rows  # the rows the fit used (missing='drop' leaves rows with NaN out)
    table = []
    for candidate, log_likelihood in zip(candidates, final.log_likelihood, strict=True):
        # scaled to the row count, as scikit-learn's bic() is (weights change the mean only)
        total = float(log_likelihood / final.weight * n)
        model = mixture_of(candidate)
        p = model.family.n_parameters(model.params) + model.n_components - 1
        table.append(
            {
                "n_components": candidate.n_components,
                "log_likelihood": total,
                "n_parameters": p,
                "bic": -2 * total + p * np.log(n),
                "aic": -2 * total + 2 * p,
                "converged": bool(candidate.converged_),
                "n_iter": candidate.n_iter_,
            }
        )
    best = int(np.argmin([row[criterion] for row in table]))
    sizes = [row["n_components"] for row in table]
    if len(sizes) > 1 and sizes[best] in (min(sizes), max(sizes)):
        warnings.warn(
            f"the best number of components by {criterion.upper()}, {sizes[best]}, is at the "
            f"edge of the range tried ({min(sizes)}–{max(sizes)}): try a wider range.",
            UserWarning,
            stacklevel=2,
        )
    return Selection(table, criterion, candidates[best], candidates)
