"""Choosing the number of components two ways on one Zarr store: a BIC sweep, or one
Dirichlet-process fit whose unneeded components empty themselves (writes docs/choosing_k.png).

The store holds 20 000 rows of 4 Gaussian components in 3 features. The sweep fits K = 1..8
(three starts each, sharing their passes) and keeps the lowest BIC; the Bayesian mixture is
fitted once with K = 12 and a weight concentration of 1e-3, and counts the components with
more than 1% of the weight. Mean-field variational Bayes empties components more slowly the
more rows there are (see the Bayesian guide): at 20 000 rows it takes a few hundred
iterations; on a large store, fit it on a sample of rows.

Run: ``python scripts/examples/choosing_k.py [output.png]``
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

import streamem
from streamem import plotting

with tempfile.TemporaryDirectory() as folder:
    store = f"{folder}/blobs.zarr"
    truth = streamem.make_mixture(store, 20_000, 3, 4, "full", dtype="float64", seed=3)
    data = f"{store}/data"

    t0 = time.perf_counter()
    selection = streamem.select_n_components(
        streamem.GaussianMixture(random_state=0), data, n_components=range(1, 9)
    )
    sweep_seconds = time.perf_counter() - t0
    best = selection.best_estimator_.n_components

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a non-converged fit would show in the figure
        dp = streamem.BayesianGaussianMixture(
            n_components=12,
            weight_concentration_prior=1e-3,
            init_params="random_from_data",
            max_iter=500,
            random_state=1,
        ).fit(data)
    dp_seconds = time.perf_counter() - t0
    effective = int((dp.weights_ > 0.01).sum())

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
plotting.plot_selection(selection, ax=left)
left.set_title(f"BIC sweep, K = 1..8: K = {best} in {sweep_seconds:.1f} s")
plotting.plot_weights(dp, ax=right)
right.set_title(
    f"one Dirichlet-process fit, K ≤ 12: K = {effective} in {dp_seconds:.1f} s\n"
    f"({dp.n_iter_} iterations)",
)
fig.tight_layout()
out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/choosing_k.png")
out.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(out, dpi=70)


def listed(weights: np.ndarray) -> str:
    return " ".join(f"{w:.3f}" for w in np.sort(weights)[::-1])


print(f"true weights: {listed(truth.weights)}")
print(f"BIC sweep: K = {best} in {sweep_seconds:.1f} s")
print(
    f"Dirichlet process: K = {effective} in {dp_seconds:.1f} s "
    f"({dp.n_iter_} iterations, converged: {dp.converged_})"
)
print(f"its weights above 1%: {listed(dp.weights_[dp.weights_ > 0.01])}")
print(f"wrote {out}")
