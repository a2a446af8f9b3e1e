"""K-sweeps and restarts share every pass over the data."""

from __future__ import annotations

import pytest

from streamem import GaussianMixture, select_n_components

from .conftest import CountComputes, K


def test_restarts_share_passes(store):
    """n_init=3: one pass for the initial sample, then one per iteration for all restarts."""
    last_iteration = {}

    def record(iteration):
        last_iteration[iteration.init] = iteration.n_iter

    with CountComputes() as counter:
        GaussianMixture(K, random_state=0, init_size=500, n_init=3, callback=record).fit(store)
    assert sorted(last_iteration) == [0, 1, 2]
    assert counter.count == 1 + max(last_iteration.values())


def test_k_sweep_shares_passes_and_matches_single_fits(store, array):
    base = GaussianMixture(random_state=0, init_size=1000)
    with CountComputes() as counter:
        selection = select_n_components(base, store, range(1, 5))
    longest = max(row["n_iter"] for row in selection.table)
    assert counter.count == 1 + longest + 1  # sample, iterations, final log-likelihoods
    assert selection.best_estimator_.n_components == K
    for row, fitted in zip(selection.table, selection.estimators_, strict=True):
        assert row["bic"] == pytest.approx(fitted.bic(array), rel=1e-9)
        assert row["aic"] == pytest.approx(fitted.aic(array), rel=1e-9)
    assert "BIC" in str(selection)


def test_selection_is_deterministic_without_a_seed(array):
    picks = []
    for _ in range(2):
        selection = select_n_components(GaussianMixture(init_size=1000), array, range(2, 6))
        picks.append([row["bic"] for row in selection.table])
        assert all(fitted.n_init == 3 for fitted in selection.estimators_)
    assert picks[0] == picks[1]


def test_a_best_k_at_the_edge_of_the_range_is_warned_about(array):
    with pytest.warns(UserWarning, match=r"edge of the range tried \(1–2\)"):
        select_n_components(GaussianMixture(random_state=0), array, range(1, 3))
