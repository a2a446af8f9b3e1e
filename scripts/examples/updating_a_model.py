"""Fit once, update daily, watch drift: the figure of the README's "Updating a model".

An archive of 30 days is fitted once; then each new day is folded in with ``partial_fit``.
From day 20 on, one component starts to move: the mean log-likelihood of each new day under
the model before its update falls — that is how drift shows — and a model with a half-life
follows it while the counting model (every row weighs the same) lags.

Run: ``python scripts/examples/updating_a_model.py [output.png]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np

import streamem
from streamem import plotting

rng = np.random.default_rng(7)
centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 6.0]])
ROWS_PER_DAY = 2000


def day(t: int) -> np.ndarray:
    """One day of rows; from day 20 on the third component drifts by 0.15 a day."""
    moved = centres.copy()
    moved[2] += max(t - 20, 0) * np.array([0.15, -0.1])
    parts = [rng.normal(size=(ROWS_PER_DAY // 3, 2)) + c for c in moved]
    return np.vstack(parts)


archive = np.vstack([day(t) for t in range(-30, 0)])
counting = streamem.GaussianMixture(3, random_state=0).fit(archive)
forgetting = streamem.GaussianMixture(3, random_state=0, half_life=4 * ROWS_PER_DAY).fit(archive)
# updates keep component identities: the component that will drift, found once
k = int(np.argmin(((counting.means_ - centres[2]) ** 2).sum(axis=1)))
j = int(np.argmin(((forgetting.means_ - centres[2]) ** 2).sum(axis=1)))
for t in range(40):
    rows = day(t)
    counting.partial_fit(rows)
    forgetting.partial_fit(rows)

before = counting.update_history_["log_likelihood"]
print(f"new-day log-likelihood, day 0: {before[0]:.3f}, day 39: {before[-1]:.3f}")
print(
    f"after 40 days the drifting mean is {centres[2] + 19 * np.array([0.15, -0.1])}; "
    f"counting model {np.round(counting.means_[k], 2)}, "
    f"half-life model {np.round(forgetting.means_[j], 2)}"
)
figure = plotting.plot_updates(forgetting)
axis = figure.axes[0]
axis.plot(np.arange(1, 41), before, color="0.6", label="counting model (no forgetting)")
axis.plot([], [], color="C0", label="half-life of 4 days")
axis.axvline(21, color="0.5", ls="--", lw=1)
axis.legend(fontsize="small")
output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/updates.png")
figure.savefig(output, dpi=90, bbox_inches="tight")
print(f"wrote {output}")
