"""Grouped rows: ten batches of 100 measurements, each batch from one of two Gaussians.

Each row holds the 100 draws of one batch, all from the same component: N(1, 1) or N(3, 5²).
A grouped-Gaussian mixture assigns whole rows to components and estimates each component's
mean and variance from all the draws of its rows (the exact maximum-likelihood estimate).
For contrast, a plain one-dimensional Gaussian mixture on the 1000 pooled draws, which
ignores which batch a draw came from, has to untangle two heavily overlapping bumps.

Run: ``python scripts/examples/grouped_gaussian.py``
"""

from __future__ import annotations

import numpy as np

from streamem import GaussianMixture
from streamem.estimators.discrete import GroupedGaussianMixture

MEANS, SDS = np.array([1.0, 3.0]), np.array([1.0, 5.0])
rng = np.random.default_rng(0)
batch_component = np.array([0, 1, 1, 0, 0, 1, 0, 1, 0, 0])
X = MEANS[batch_component, None] + SDS[batch_component, None] * rng.normal(size=(10, 100))

model = GroupedGaussianMixture(n_components=2, random_state=0).fit(X)
order = np.argsort(model.variances_)  # component 0 is the narrow one
found = np.argsort(order)[model.predict(X)]
print("batch component, true:     ", " ".join(map(str, batch_component)))
print("batch component, estimated:", " ".join(map(str, found)))

draws = 100 * np.bincount(found, minlength=2)
mean, sd = model.means_[order], np.sqrt(model.variances_[order])
print(f"{'':12s} {'truth':>6s} {'estimate':>9s} {'std err':>8s}")
for k in range(2):
    print(f"mean {k}       {MEANS[k]:6.2f} {mean[k]:9.3f} {sd[k] / np.sqrt(draws[k]):8.3f}")
    print(f"sd {k}         {SDS[k]:6.2f} {sd[k]:9.3f} {sd[k] / np.sqrt(2 * draws[k]):8.3f}")
print(f"weights      {model.weights_[order].round(2)}  (batches: {np.bincount(found) / 10})")

pooled = GaussianMixture(n_components=2, random_state=0).fit(X.reshape(-1, 1))
order = np.argsort(pooled.covariances_.ravel())
print(
    "ignoring the batches, a 1-D GaussianMixture of the pooled draws finds means "
    f"{pooled.means_.ravel()[order].round(2)} and sds "
    f"{np.sqrt(pooled.covariances_.ravel()[order]).round(2)}"
)
