"""Every figure renders to a non-empty PNG (Agg backend), for fitted models and samples."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import pytest

from streamem import (
    BernoulliMixture,
    GaussianMixture,
    plotting,
    select_n_components,
)

from .conftest import make_blobs


@pytest.fixture(scope="module")
def data():
    return make_blobs(3000, d=3, k=3, seed=2)


def assert_png(figure, path):
    figure.savefig(path, dpi=60)
    plt.close(figure)
    image = plt.imread(path)
    assert image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0.01  # not a blank canvas


@pytest.mark.parametrize("kind", ["full", "tied", "diag", "spherical"])
def test_model_figures(data, tmp_path, kind):
    recorder = plotting.Recorder()
    gm = GaussianMixture(3, covariance_type=kind, random_state=0, callback=recorder).fit(data)
    assert len(recorder.models) == gm.n_iter_
    assert_png(plotting.plot_lower_bound(gm), tmp_path / "bound.png")
    assert_png(plotting.plot_1d(gm, data, feature=1), tmp_path / "hist.png")
    assert_png(plotting.plot_2d(gm, data, (0, 2)), tmp_path / "scatter.png")
    assert_png(plotting.plot_evolution(recorder.models, data), tmp_path / "evolution.png")
    assert_png(plotting.plot_parameters(gm), tmp_path / "parameters.png")


def test_animation_to_gif(data, tmp_path):
    recorder = plotting.Recorder()
    GaussianMixture(
        3, init_params="random", max_iter=4, tol=0, random_state=0, callback=recorder
    ).fit(data)
    path = plotting.animate_evolution(recorder.models, data, str(tmp_path / "em.gif"))
    from PIL import Image

    with Image.open(path) as gif:
        assert gif.n_frames == 4


def test_selection_figure(data, tmp_path):
    selection = select_n_components(GaussianMixture(random_state=0), data, range(1, 5))
    assert_png(plotting.plot_selection(selection), tmp_path / "bic.png")


def test_discrete_parameters_figure(tmp_path):
    X = np.random.default_rng(0).random((500, 12)) < np.linspace(0.1, 0.9, 12)
    bm = BernoulliMixture(2, random_state=0).fit(X)
    assert_png(plotting.plot_parameters(bm), tmp_path / "p.png")


def test_sample_rows_reads_lazy_sources_uniformly(data):
    lazy = da.from_array(data, chunks=250)
    rows = plotting.sample_rows(lazy, n=400, random_state=1)
    assert rows.shape == (400, 3)
    assert {tuple(r) for r in rows} <= {tuple(r) for r in data}
    assert plotting.sample_rows(data, n=10_000).shape == data.shape


def test_updates_figure(data, tmp_path):
    model = GaussianMixture(3, random_state=0).fit(data[:2000])
    with pytest.raises(ValueError, match="no updates to show"):
        plotting.plot_updates(model)
    for batch in np.array_split(data[2000:], 4):
        model.partial_fit(batch)
    figure = plotting.plot_updates(model)
    top, bottom = figure.axes
    assert len(top.lines[0].get_xdata()) == 4
    assert len(bottom.lines) == 3
    assert_png(figure, tmp_path / "updates.png")


def test_a_flat_lower_bound_draws_without_a_warning(tmp_path, recwarn):
    class Flat:
        lower_bounds_ = (-5.0, -1.0, -1.0, -1.0)
        converged_ = True

    assert_png(plotting.plot_lower_bound(Flat()), tmp_path / "flat.png")
    assert not [w for w in recwarn if "singular" in str(w.message)]
