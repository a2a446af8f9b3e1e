"""The fitting algorithms; they know engines and families, nothing about estimators.

Every driver has the signature ``driver(engine, start, settings, reporter) -> Outcome``
(see :mod:`streamem.drivers.common`); :data:`DRIVERS` names them for the estimators'
``algorithm`` parameter.
"""

from .batch import fit_em
from .common import (
    DegenerateComponentWarning,
    FitResult,
    Iteration,
    Outcome,
    Reporter,
    Schedule,
    Settings,
    best_result,
)
from .incremental import fit_incremental
from .stepwise import fit_online

DRIVERS = {"batch": fit_em, "online": fit_online, "incremental": fit_incremental}

__all__ = [
    "DRIVERS",
    "DegenerateComponentWarning",
    "FitResult",
    "Iteration",
    "Outcome",
    "Reporter",
    "Schedule",
    "Settings",
    "best_result",
    "fit_em",
    "fit_incremental",
    "fit_online",
]
