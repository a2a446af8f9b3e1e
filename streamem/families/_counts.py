"""What the count families share: statistics that are plain sums, and checks of counts.

The Bernoulli, binomial, multinomial and Poisson families have features that are the data
themselves (or a one-hot expansion of them), with no reference point: the statistics of some
rows are the responsibility sums ``counts`` (K,) and sums of features ``Σ r F(x)``, which merge
by addition, subtract by subtraction and scale by multiplication, exactly.
:class:`CountFamily` gives them those methods once, for any NamedTuple of such sums whose
first field is ``counts``; the functions below are the pieces the families build the rest
from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numpy as np
from scipy.special import gammaln

from . import _missing
from ._base import pooled_others
from ._missing import MaskedCountStats, MaskedFeatures

Stats = TypeVar("Stats", bound=tuple)


class CountStats(NamedTuple):
    """Weighted row counts (K,) and weighted sums of the features ``Σ r F(x)`` (K, P)."""

    counts: np.ndarray
    sums: np.ndarray


class CountFamily(MaskedFeatures):
    """The methods the count families share; each family's module has only what is its own.

    A mixin without fields (the families' dataclass fields, which model files store, are
    unchanged). A family adds ``feature_key``, ``coefficients``, ``check_block``, ``m_step``,
    ``regularize`` (parameters kept in their valid range) and ``sample``, and overrides the
    defaults below where its features, statistics or parameters differ from the plain case:
    features that are the data's columns, ``CountStats``, one parameter per component and
    feature.
    """

    # -- E-step ------------------------------------------------------------------------------

    def reference(self, X: np.ndarray) -> None:
        return None

    def features(
        self, X: np.ndarray, reference: None, out: np.ndarray | None = None
    ) -> np.ndarray:
        return as_features(X, out=out)

    def base_log_measure(self, X: np.ndarray) -> np.ndarray | None:
        return None

    # -- statistics --------------------------------------------------------------------------

    def finalize(self, counts: np.ndarray, sums: np.ndarray, reference: None) -> Any:
        return CountStats(counts, sums)

    def merge(self, a: Stats, b: Stats) -> Stats:
        """Statistics of the union of the rows behind ``a`` and ``b``: field-wise sums."""
        if type(a) is not type(b):  # with and without missing entries
            a, b = self.promote(a), self.promote(b)
        return type(a)(*(x + y for x, y in zip(a, b, strict=True)))

    def subtract(self, total: Stats, part: Stats) -> Stats:
        """Statistics of the rows behind ``total`` without those of ``part``.

        Counts are clipped at zero, so rounding cannot leave a component a negative weight.
        """
        if type(total) is not type(part):
            total, part = self.promote(total), self.promote(part)
        counts = np.maximum(total[0] - part[0], 0.0)
        rest = [x - y for x, y in zip(total[1:], part[1:], strict=True)]
        if _missing.is_masked(total):  # observed weights are clipped like the counts
            rest[-1] = np.maximum(rest[-1], 0.0)
        return type(total)(counts, *rest)

    def scale(self, stats: Stats, factor: float) -> Stats:
        """Statistics with every row weight multiplied by ``factor``."""
        return type(stats)(*(x * factor for x in stats))

    # -- M-step ------------------------------------------------------------------------------

    def expected_log_prob(self, stats: Any, params: Any) -> np.ndarray:
        """``Σ r (A·F(x) + b)`` per component (K,): the expected log-density without ``h(x)``."""
        A, b = self.coefficients(params, None)
        if isinstance(stats, MaskedCountStats):
            observed = stats.observed
            if not np.all(observed == observed[:, :1]):  # each feature's own normaliser
                constants = self.feature_constants(params)
                return np.einsum("kp,kp->k", A, stats.sums) + np.einsum(
                    "kd,kd->k", constants, observed
                )
            return np.einsum("kp,kp->k", A, stats.sums) + b * observed[:, 0]
        return np.einsum("kp,kp->k", A, stats.sums) + b * stats.counts

    # -- everything else ---------------------------------------------------------------------

    def n_parameters(self, params: Any) -> int:
        return params[0].size

    def reseed(self, params: Any, component: int, row: np.ndarray, stats: Any) -> Any:
        """Parameters with one component set between a data ``row`` and the others.

        See :func:`blend_toward_row`; ``row_parameters`` says what parameters fit the row.
        """
        row_values = self.row_parameters(row)
        values = blend_toward_row(params[0], component, row_values, stats.counts, self.regularize)
        return type(params)(values)

    def row_parameters(self, row: np.ndarray) -> np.ndarray:
        """The parameters (one component's) that fit a single data row best."""
        return row

    # -- missing values: masked features [m x, m] (see families/_missing.py) -----------------

    def feature_constants(self, params: Any) -> np.ndarray:
        """The log-normaliser ``b`` split over the features (K, D), for masked rows."""
        raise NotImplementedError

    def masked_features(
        self, values: np.ndarray, missing: np.ndarray, reference: None
    ) -> np.ndarray:
        d = values.shape[1]
        F = np.empty((2 * d, values.shape[0]))
        np.copyto(F[:d], values.T, casting="unsafe")
        np.copyto(F[:d], 0.0, where=missing.T)
        np.subtract(1.0, missing.T, out=F[d:])
        return F

    def masked_coefficients(self, params: Any, reference: None) -> tuple[np.ndarray, np.ndarray]:
        A, _ = self.coefficients(params, None)
        constants = self.feature_constants(params)
        return np.concatenate([A, constants], axis=1), np.zeros(len(A))

    def masked_finalize(self, counts: np.ndarray, sums: np.ndarray, reference: None) -> Any:
        d = sums.shape[1] // 2
        return MaskedCountStats(counts, sums[:, :d], sums[:, d:])

    def promote(self, stats: Any) -> Any:
        """Plain statistics as masked ones (every feature observed)."""
        if _missing.is_masked(stats):
            return stats
        counts, sums = stats
        return MaskedCountStats(counts, sums, np.repeat(counts[:, None], sums.shape[1], axis=1))


def denominators(stats: Any) -> np.ndarray:
    """What the M-step divides the sums by: the row counts (K, 1), or the observed weights of
    each feature (K, D) when rows had missing entries."""
    return stats.observed if isinstance(stats, MaskedCountStats) else stats.counts[:, None]


# -- parameters from sums --------------------------------------------------------------------


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, and 0 where the denominator is 0 (an empty component)."""
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape))
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


# -- features and densities ------------------------------------------------------------------


def as_features(
    X: np.ndarray, columns: np.ndarray | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """The (chosen) columns of a block as float64 features, feature-major (P, B)."""
    if columns is not None:
        X = X[:, columns]
    if out is None:
        return np.ascontiguousarray(X.T, dtype=np.float64)
    np.copyto(out, X.T, casting="unsafe")
    return out


def log_factorials(X: np.ndarray) -> np.ndarray:
    """``Σ_d log x_d!`` for each row of a block of counts, shape (B,)."""
    return gammaln(np.asarray(X, dtype=np.float64) + 1.0).sum(axis=1)


def clip_probabilities(probabilities: np.ndarray, floor: float) -> np.ndarray:
    """Probabilities kept in ``[floor, 1 − floor]`` so that both logarithms stay finite."""
    return np.clip(probabilities, floor, 1.0 - floor)


def logit_and_log_complement(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log p − log(1 − p)`` (K, D) and ``Σ_d log(1 − p_d)`` (K,)."""
    log_complement = np.log1p(-probabilities)
    return np.log(probabilities) - log_complement, log_complement.sum(axis=1)


# -- checks of the data ----------------------------------------------------------------------


def _found(X: np.ndarray, bad: np.ndarray) -> str:
    """'found <value> (column j)' for the first flagged value, with how many there are."""
    row, column = np.argwhere(bad)[0]
    n_bad = int(np.count_nonzero(bad))
    more = f"; {n_bad} such value(s) in these rows" if n_bad > 1 else ""
    return f"found {X[row, column].item()!r} (column {column}{more})"


def check_counts(X: np.ndarray, requirement: str, upper: Any = None) -> str | None:
    """Why a block is not non-negative integers (at most ``upper``), or None.

    Parameters
    ----------
    X : ndarray of shape (B, D)
        The block, any numeric dtype.
    requirement : str
        What the values must be, starting the message ("Poisson counts must be …").
    upper : float, ndarray of shape (B, 1), or None
        The largest valid value (per row when an array).

    Returns
    -------
    str or None
        The message, naming the first offending value and its column; the kernel appends the
        row range. Messages about non-finite and negative values start as scikit-learn's do.
    """
    if X.dtype.kind == "b":
        X = X.view(np.uint8)
    if X.dtype.kind == "f":
        finite = np.isfinite(X)
        if not finite.all():
            return f"Input contains NaN or infinity: {requirement}; {_found(X, ~finite)}"
    negative = X < 0
    if negative.any():
        return f"Negative values in data: {requirement}; {_found(X, negative)}"
    if X.dtype.kind == "f":
        fractional = X != np.floor(X)
        if fractional.any():
            return f"{requirement}; {_found(X, fractional)}"
    if upper is not None:
        over = X > upper
        if over.any():
            return f"{requirement}; {_found(X, over)}"
    return None


# -- what the families' sample and reseed share ------------------------------------------------


def draw_rows(
    draw: Callable[[np.ndarray, int], np.ndarray], values: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """``draw(values[k], counts[k])`` rows for each component ``k``, stacked in order."""
    return np.concatenate([draw(v, int(n)) for v, n in zip(values, counts, strict=True)])


def blend_toward_row(
    values: np.ndarray,
    component: int,
    row_values: np.ndarray,
    counts: np.ndarray,
    regularize: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """``values`` with one component set halfway between a data row and the other components.

    The other components are pooled with their weights ``counts``: the restarted component
    sits near the row, yet is spread enough to take responsibility for rows like it. Only
    that component is passed through ``regularize``; the others are left untouched.
    """
    pooled = pooled_others(values, component, counts)
    values = values.copy()
    row_values = np.where(np.isnan(row_values), pooled, row_values)  # a row with NaN
    values[component] = regularize(0.5 * (row_values + pooled))
    return values
