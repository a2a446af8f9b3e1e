"""A one-dimensional mixture of two Gaussians, recovered to sampling accuracy.

10 000 points from 30% N(0, 1) and 70% N(5, 2²). The fitted weights, means and standard
deviations are printed next to the truth with their standard errors, from the empirical
(outer-product-of-scores) Fisher information of the mixture log-likelihood: every estimate
should lie within a few standard errors of the truth.

Run: ``python scripts/examples/gaussian_1d.py``
"""

from __future__ import annotations

import numpy as np

from streamem import GaussianMixture

N = 10_000
TRUTH = {"weight": (0.3, 0.7), "mean": (0.0, 5.0), "sd": (1.0, 2.0)}

rng = np.random.default_rng(0)
first = rng.random(N) < TRUTH["weight"][0]
x = np.where(first, rng.normal(0.0, 1.0, N), rng.normal(5.0, 2.0, N))

# Overlapping components converge slowly: the default tol=1e-3 stops short of the optimum.
gm = GaussianMixture(n_components=2, tol=1e-10, max_iter=1000, random_state=0).fit(x[:, None])
order = np.argsort(gm.means_[:, 0])  # component 0 is the one near 0
weight = gm.weights_[order]
mean = gm.means_[order, 0]
sd = np.sqrt(gm.covariances_[order, 0, 0])

# Scores (gradients of each point's log-likelihood) with respect to
# (weight of the first component, mean_0, mean_1, sd_0, sd_1).
resp = gm.predict_proba(x[:, None])[:, order]
z = (x[:, None] - mean) / sd
scores = np.column_stack(
    [
        resp[:, 0] / weight[0] - resp[:, 1] / weight[1],
        resp * z / sd,
        resp * (z**2 - 1) / sd,
    ]
)
standard_errors = np.sqrt(np.diag(np.linalg.inv(scores.T @ scores)))
estimates = np.array([weight[0], *mean, *sd])
truths = np.array([TRUTH["weight"][0], *TRUTH["mean"], *TRUTH["sd"]])
names = ["weight of N(0, 1)", "mean 0", "mean 1", "sd 0", "sd 1"]

print(f"{N} points, converged in {gm.n_iter_} iterations")
print(f"{'parameter':18s} {'truth':>7s} {'estimate':>9s} {'std err':>8s} {'z':>6s}")
for name, truth, estimate, se in zip(names, truths, estimates, standard_errors, strict=True):
    print(f"{name:18s} {truth:7.3f} {estimate:9.4f} {se:8.4f} {(estimate - truth) / se:6.2f}")
worst = np.max(np.abs(estimates - truths) / standard_errors)
print(f"largest |estimate − truth| / std err: {worst:.2f}")
