"""Every figure renders to a non-empty PNG (Agg backend), for fitted models and samples."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import pytest

from streamem import (
    BayesianGaussianMixture,
    BernoulliMixture,
    GaussianMixture,
    plotting,
    select_n_components,
)
from streamem.estimators import mixture_of

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


def drawn_weights(ax):
    """Heights, colours and tick labels of the bars of a weights panel."""
    bars = ax.containers[0]
    heights = np.array([bar.get_height() for bar in bars])
    colours = [matplotlib.colors.to_hex(bar.get_facecolor()) for bar in bars]
    ticks = [int(t.get_text()) for t in ax.get_xticklabels()]
    return heights, colours, ticks


@pytest.fixture(scope="module")
def pruned(data):
    # 3 clusters fitted with 7 components and a Dirichlet-process prior: 3 empty themselves
    # (one cluster stays split in two)
    return BayesianGaussianMixture(
        7,
        weight_concentration_prior=1e-3,
        init_params="random_from_data",
        max_iter=300,
        random_state=0,
    ).fit(data)


def test_weights_figure_draws_the_sorted_weights_and_the_emptied_ones(pruned, tmp_path):
    weights = pruned.weights_
    assert pruned.converged_ and (weights > 0.01).sum() == 4 and (weights < 1e-3).sum() == 3
    figure = plotting.plot_weights(pruned)
    (ax,) = figure.axes
    heights, colours, ticks = drawn_weights(ax)
    order = np.argsort(-weights, kind="stable")
    np.testing.assert_array_equal(heights, weights[order])
    assert ticks == order.tolist()  # each bar names its component
    effective = matplotlib.colors.to_hex(plotting.EFFECTIVE_COLOUR)
    emptied = matplotlib.colors.to_hex(plotting.EMPTIED_COLOUR)
    assert colours == [effective] * 4 + [emptied] * 3
    (line,) = ax.lines
    assert line.get_ydata()[0] == 0.01
    assert ax.get_title() == "BayesianGaussianMixture: 4 of 7 effective"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["effective (> 0.01)", "emptied", "threshold"]
    assert_png(figure, tmp_path / "weights.png")


def test_weights_figure_compares_models_side_by_side(pruned, data):
    gm = GaussianMixture(3, random_state=0).fit(data)
    figure = plotting.plot_weights([pruned, gm], threshold=0.3, names=["DP", "EM"], log=True)
    left, right = figure.axes
    assert right.get_title() == f"EM: {(gm.weights_ > 0.3).sum()} of 3 effective"
    np.testing.assert_array_equal(drawn_weights(right)[0], np.sort(gm.weights_)[::-1])
    assert left.get_yscale() == "log" and left.get_shared_y_axes().joined(left, right)
    # a Mixture value and given axes; the figure of the axes comes back
    fig, axes = plt.subplots(1, 2)
    assert plotting.plot_weights((mixture_of(gm), gm), ax=axes, threshold=0) is fig
    assert not axes[0].lines  # no threshold line at 0
    assert drawn_weights(axes[0])[1] == [matplotlib.colors.to_hex("C0")] * 3
    plt.close("all")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: plotting.plot_weights(m, threshold=1.0),
            r"threshold must be a weight in \[0, 1\)",
        ),
        (lambda m: plotting.plot_weights([]), "at least one fitted model"),
        (lambda m: plotting.plot_weights([m, m], names=["a"]), "got 1 names for 2 models"),
        (lambda m: plotting.plot_weights([m, m], ax=plt.gca()), "got 1 axes for 2 models"),
    ],
)
def test_weights_figure_refuses_bad_arguments(pruned, call, message):
    with pytest.raises(ValueError, match=message):
        call(pruned)
    plt.close("all")
