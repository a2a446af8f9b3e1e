"""Missing values: a cloudy multispectral image, fitted and filled in (writes docs/missing.png).

A synthetic 4-band image of four land-cover classes. Clouds hide the three visible bands
(the fourth, a longer wavelength, sees through them) and the sensor drops 10% of the values
at random; a few pixels are lost entirely. ``GaussianMixture(missing="marginalize")`` fits
the classes from every pixel's observed bands, and ``impute`` fills each gap with its
conditional mean given the pixel's observed bands, E[x_m | x_o] = Σ_k r_k E[x_m | x_o, k].

Run: ``python scripts/examples/missing_values.py [output.png]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import streamem

rng = np.random.default_rng(7)
size, bands = 160, 4

# four land-cover classes in smooth regions (the truth)
yy, xx = np.mgrid[0:size, 0:size] / size
field = np.sin(5 * xx + 2 * np.cos(3 * yy)) + np.cos(4 * yy - xx)
classes = np.digitize(field, np.quantile(field, [0.25, 0.5, 0.75]))
centres = np.array(
    [[0.1, 0.2, 0.1, 0.5], [0.3, 0.4, 0.3, 0.3], [0.6, 0.5, 0.4, 0.2], [0.2, 0.1, 0.6, 0.8]]
)
mixing = np.array(
    [[1.0, 0.8, 0.6, 0.5], [0.8, 1.0, 0.7, 0.4], [0.6, 0.7, 1.0, 0.3], [0.5, 0.4, 0.3, 1.0]]
)
noise = rng.multivariate_normal(np.zeros(bands), 0.003 * mixing, size=(size, size))
truth = centres[classes] + noise  # (size, size, bands)

# clouds: blobs hiding bands 0-2; random dropouts; a few pixels lost entirely
cloud = np.zeros((size, size), bool)
for cy, cx, r in rng.uniform([0, 0, 10], [size, size, 28], size=(7, 3)):
    cloud |= (np.mgrid[0:size, 0:size][0] - cy) ** 2 + (
        np.mgrid[0:size, 0:size][1] - cx
    ) ** 2 < r**2
data = truth.copy()
data[cloud, :3] = np.nan
data[rng.random(data.shape) < 0.10] = np.nan
data[rng.random((size, size)) < 0.01] = np.nan

X = data.reshape(-1, bands)
model = streamem.GaussianMixture(4, missing="marginalize", random_state=0).fit(X)
imputed = model.impute(X).reshape(size, size, bands)

gaps = np.isnan(data)
column_means = np.where(gaps, np.nanmean(X, axis=0), data)
rmse = np.sqrt(np.mean((imputed[gaps] - truth[gaps]) ** 2))
baseline = np.sqrt(np.mean((column_means[gaps] - truth[gaps]) ** 2))
print(f"missing: {gaps.mean():.1%} of the values, {cloud.mean():.1%} of the pixels under cloud")
print(f"RMSE of the filled values: impute {rmse:.4f}, column means {baseline:.4f}")
print(f"classes found: weights {np.sort(model.weights_).round(3)}")

if __name__ == "__main__":
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[2] / "docs" / "missing.png"
    )
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9), constrained_layout=True)
    band = 0
    limits = dict(vmin=np.nanmin(truth[..., band]), vmax=np.nanmax(truth[..., band]))
    shown = np.ma.masked_invalid(data[..., band])
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("white")
    for ax, image, title in zip(
        axes,
        (truth[..., band], shown, imputed[..., band]),
        ("truth (band 0)", "data: clouds and dropouts (white)", "imputed: E[x_m | x_o]"),
        strict=True,
    ):
        ax.imshow(image, cmap=cmap, **limits)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"GaussianMixture(4, missing='marginalize'): RMSE {rmse:.3f} (column means {baseline:.3f})"
    )
    fig.savefig(output, dpi=110)
    print(f"wrote {output}")
