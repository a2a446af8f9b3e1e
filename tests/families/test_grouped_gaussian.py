"""Grouped Gaussian rows far from the origin: centring keeps them accurate.

The checks they share with the count families are in test_counts.py.
"""

from __future__ import annotations

import numpy as np

from streamem.estep import component_log_prob
from streamem.families.grouped_gaussian import GroupedGaussian

from ..conftest import assert_close
from .test_counts import problem, stats_of


def test_grouped_log_prob_far_from_origin():
    """Centring rows on the chunk's mean keeps data offset by 1e6 as accurate as data at 0."""
    family, params, X = problem("grouped")
    shifted = params._replace(means=params.means + 1e6)
    near = component_log_prob(family, params, X)
    far = component_log_prob(family, shifted, X + 1e6)
    np.testing.assert_allclose(far, near, rtol=1e-9)


def test_grouped_merge_far_from_origin_has_no_cancellation():
    """Chunks of draws at 1e6 merge to the scatter of draws at 0, to 1e-9."""
    rng = np.random.RandomState(5)
    X = rng.normal(size=(500, 20))
    resp = rng.dirichlet(np.ones(2), size=500)
    family = GroupedGaussian()
    parts = [stats_of(family, X[s] + 1e6, resp[s]) for s in np.array_split(np.arange(500), 7)]
    merged = parts[0]
    for part in parts[1:]:
        merged = family.merge(merged, part)
    reference = stats_of(family, X, resp)
    assert_close(merged.scatter, reference.scatter, 1e-9)
    assert_close(merged.means - 1e6, reference.means, 1e-7, scale=1.0)
