"""The figure in the README: streamem.plotting on a 2-D mixture (writes docs/figures.png).

Run: ``python scripts/examples/readme_figure.py [output.png]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

import streamem
from streamem import plotting

rng = np.random.default_rng(4)
centres = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
shapes = [
    np.array([[1.0, 0.6], [0.6, 1.0]]),
    np.eye(2) * 0.5,
    np.array([[1.5, -0.7], [-0.7, 1.0]]),
]
X = np.vstack(
    [
        rng.multivariate_normal(c, s, size=n)
        for c, s, n in zip(centres, shapes, (3000, 2000, 2500), strict=True)
    ]
)

recorder = plotting.Recorder()
gm = streamem.GaussianMixture(
    3, init_params="random_from_data", random_state=2, tol=1e-6, callback=recorder
).fit(X)
selection = streamem.select_n_components(streamem.GaussianMixture(random_state=0), X, range(1, 8))

fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
plotting.plot_lower_bound(gm, ax=axes[0])
plotting.plot_2d(gm, X, ax=axes[1], title="fitted components (1σ and 2σ)")
plotting.plot_1d(gm, X, feature=1, ax=axes[2])
plotting.plot_selection(selection, ax=axes[3])
fig.tight_layout()
out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/figures.png")
out.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(out, dpi=70)
evolution = plotting.plot_evolution(recorder.models, X, columns=6)
evolution.savefig(out.with_name("evolution.png"), dpi=55)
print(f"wrote {out} and {out.with_name('evolution.png')} ({gm.n_iter_} iterations)")
