"""The algebra of statistics, for every family: ``merge`` is the statistics of the union.

For random rows with random responsibilities, cut into three parts A, B, C (any of them may
be empty), every family's statistics obey

* merge(stats(A), stats(B)) == stats(A ∪ B), in any order and grouping (commutative,
  associative), so chunks can be reduced as a tree in any order;
* subtract(merge(a, b), b) == a, which incremental EM relies on;
* scale(s, 2) == merge(s, s) == stats of every row twice == stats at twice the weight, and
  scale(s, f) == stats at f times the weight, which stepwise EM relies on.

The model is river's ``stats/test_parallel.py``. Statistics are compared field by field to
``rtol`` of the field's magnitude in the statistics of all the rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamem.families._base import stats_from_responsibilities
from streamem.families.bayesian_discrete import (
    BayesianBernoulli,
    BayesianBinomial,
    BayesianMultinomial,
    BayesianPoisson,
    BetaPrior,
    DirichletPrior,
    GammaPrior,
)
from streamem.families.bernoulli import Bernoulli
from streamem.families.binomial import Binomial
from streamem.families.gaussian import COVARIANCE_TYPES, Gaussian
from streamem.families.grouped_gaussian import GroupedGaussian
from streamem.families.multinomial import Multinomial
from streamem.families.poisson import Poisson

K = 3


def rows(elements: st.SearchStrategy, n_features: int, dtype: Any = np.int64, fix=None):
    """Arrays of 2 to 40 rows of ``n_features`` columns, made valid by ``fix``."""
    strategy = arrays(dtype, st.tuples(st.integers(2, 40), st.just(n_features)), elements=elements)
    return strategy if fix is None else strategy.map(fix)


def with_trials_in_column_1(X: np.ndarray) -> np.ndarray:
    X[:, 1] = X.max(axis=1)  # no more successes than trials
    return X


def with_positive_totals(X: np.ndarray) -> np.ndarray:
    X[:, 0] += 1
    return X


REALS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


class Case(NamedTuple):
    family: Any
    rows: st.SearchStrategy
    rtol: float = 1e-12  # plain sums: exact up to the order of the additions


CASES = {
    **{
        # centred means and scatter, merged with Chan's formula
        f"gaussian-{kind}": Case(Gaussian(kind), rows(REALS, 3, np.float64), 1e-9)
        for kind in COVARIANCE_TYPES
    },
    "bernoulli": Case(Bernoulli(), rows(st.integers(0, 1), 5)),
    "binomial": Case(Binomial(7), rows(st.integers(0, 7), 4)),
    "binomial-trials-column": Case(
        Binomial(trials_column=1), rows(st.integers(0, 11), 3, fix=with_trials_in_column_1)
    ),
    "multinomial": Case(Multinomial(), rows(st.integers(0, 9), 4, fix=with_positive_totals)),
    "categorical": Case(Multinomial(4), rows(st.integers(0, 3), 3)),
    "poisson": Case(Poisson(), rows(st.integers(0, 30), 4)),
    "grouped-gaussian": Case(GroupedGaussian(), rows(REALS, 6, np.float64), 1e-9),
    # the variational families keep their plain family's statistics
    "bayesian-bernoulli": Case(
        BayesianBernoulli(BetaPrior(1.0, 1.0, 1.0)), rows(st.integers(0, 1), 5)
    ),
    "bayesian-binomial-trials-column": Case(
        BayesianBinomial(BetaPrior(1.0, 1.0, 1.0), trials_column=1),
        rows(st.integers(0, 11), 3, fix=with_trials_in_column_1),
    ),
    "bayesian-categorical": Case(
        BayesianMultinomial(DirichletPrior(1.0, 1.0), 4), rows(st.integers(0, 3), 3)
    ),
    "bayesian-poisson": Case(
        BayesianPoisson(GammaPrior(1.0, 1.0, 1.0)), rows(st.integers(0, 30), 4)
    ),
}


def stats_of(family, X, responsibilities):
    return stats_from_responsibilities(family, X, responsibilities)


def defined(stats):
    """Statistics with the (arbitrary) means of components without weight set to 0."""
    if "means" not in stats._fields:
        return stats
    weight = stats.entries if "entries" in stats._fields else stats.counts
    present = (weight > 0).reshape(weight.shape + (1,) * (stats.means.ndim - 1))
    return stats._replace(means=np.where(present, stats.means, 0.0))


def assert_stats_close(actual, expected, X, rtol, scale_of=None, weight=1.0):
    """Each field to ``rtol`` of its magnitude in ``scale_of`` (default: ``expected``).

    A field that is rightly about 0 (the scatter of constant rows) is compared on a floor of
    1e-6 of its natural size for these rows of total weight about ``weight`` × N: max|x| for
    means, N·D·max|x|² for scatter, ``weight`` for counts and sums.
    """
    assert type(actual) is type(expected)
    big = max(float(np.abs(X).max(initial=0)), 1.0)
    natural = {"means": big, "scatter": weight * X.size * big**2}
    scale_of = expected if scale_of is None else scale_of
    for field, a, e, s in zip(
        expected._fields, defined(actual), defined(expected), defined(scale_of), strict=True
    ):
        size = max(float(np.max(np.abs(s), initial=0)), 1e-6 * natural.get(field, weight))
        np.testing.assert_allclose(a, e, rtol=0, atol=rtol * size, err_msg=field)


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_merge_algebra(name, data):
    family, rows, rtol = CASES[name]
    X = data.draw(rows, label="X")
    n = len(X)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    i, j = sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=2), label="cuts"))
    factor = data.draw(st.floats(0.25, 4.0), label="factor")
    rng = np.random.RandomState(seed)
    resp = rng.dirichlet(np.ones(K), size=n) * rng.uniform(0.5, 2.0, size=(n, 1))

    whole = stats_of(family, X, resp)
    a, b, c = (stats_of(family, X[s], resp[s]) for s in (slice(0, i), slice(i, j), slice(j, n)))
    ab = family.merge(a, b)

    def check(actual, expected, **kwargs):
        assert_stats_close(actual, expected, X, rtol, **kwargs)

    # stats(A) ⊕ stats(B) == stats(A ∪ B), in any order and grouping
    check(ab, stats_of(family, X[:j], resp[:j]), scale_of=whole)
    check(family.merge(ab, c), whole)
    check(family.merge(c, ab), whole)
    check(family.merge(b, a), ab, scale_of=whole)
    check(family.merge(a, family.merge(b, c)), family.merge(ab, c))
    check(family.merge(family.merge(c, a), b), family.merge(ab, c))
    # ⊖ undoes ⊕
    check(family.subtract(whole, c), ab, scale_of=whole)
    check(family.subtract(ab, b), a, scale_of=whole)
    check(family.merge(family.subtract(whole, c), c), whole)
    # scaling is merging with itself, counting rows twice, or weighting them
    doubled = family.scale(whole, 2.0)
    check(family.merge(whole, whole), doubled, weight=2.0)
    twice = stats_of(family, np.concatenate([X, X]), np.concatenate([resp, resp]))
    check(twice, doubled, weight=2.0)
    check(stats_of(family, X, 2.0 * resp), doubled, weight=2.0)
    check(stats_of(family, X, factor * resp), family.scale(whole, factor), weight=factor)
