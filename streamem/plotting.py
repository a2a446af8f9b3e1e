"""Figures of fitted mixtures (matplotlib, an optional dependency: ``pip install streamem[plot]``).

Every function draws on a new figure (or on ``ax`` when given) and returns the figure. Data
too big for a plot are plotted through a uniform sample of rows (:func:`sample_rows`), which
reads any source streamem fits without loading it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .estep import component_log_prob
from .families._base import Mixture


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "streamem.plotting needs matplotlib: pip install 'streamem[plot]'"
        ) from exc
    return plt


def _axes(ax: Any = None, **figure: Any) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    figure.setdefault("figsize", (6, 4))
    fig, ax = _pyplot().subplots(**figure)
    return fig, ax


def _model(model: Any) -> Mixture:
    from .estimators import MixtureEstimator, mixture_of

    return mixture_of(model) if isinstance(model, MixtureEstimator) else model


def sample_rows(X: Any, n: int = 5000, random_state: int = 0, **source: Any) -> np.ndarray:
    """A uniform sample of ``n`` rows of any source (array, Dask, Zarr, xarray...) in memory.

    Parameters
    ----------
    X : array-like, Dask array, Zarr store, xarray object, ...
        The data.
    n : int
        Rows to draw (all rows when there are fewer).
    random_state : int
        Seed of the draw.
    **source
        ``sample_dim``, ``variables``, ``chunk_size``, as for :func:`streamem.open_rows`.

    Returns
    -------
    ndarray of shape (min(n, n_rows), n_features)
    """
    import dask

    from .drivers.init import sample_indices
    from .sources import open_rows

    data = open_rows(X, **source).data
    indices = sample_indices(data.shape[0], n, np.random.RandomState(random_state))
    rows = data if indices is None else data[indices]
    if hasattr(rows, "compute"):
        (rows,) = dask.compute(rows)
    return np.asarray(rows, dtype=np.float64)


def plot_lower_bound(model: Any, ax: Any = None) -> Any:
    """The mean log-likelihood (lower bound) at each iteration of a fitted estimator."""
    fig, ax = _axes(ax)
    bounds = np.asarray(model.lower_bounds_)
    ax.plot(np.arange(1, len(bounds) + 1), bounds, marker="o", markersize=3)
    if len(bounds) > 2:
        rest = bounds[1:]
        spread = rest.max() - rest.min()
        if bounds[0] < rest.min() - 10 * max(spread, 1e-12):
            # a poor start would flatten the rest of the curve: show it as text instead
            margin = 0.1 * spread if spread > 0 else max(abs(rest.max()) * 1e-9, 1e-12)
            ax.set_ylim(rest.min() - margin, rest.max() + margin)
            ax.annotate(f"iteration 1: {bounds[0]:.4g}", xy=(0.02, 0.04), xycoords="axes fraction")
    ax.set_xlabel("iteration (pass over the data)")
    ax.set_ylabel("mean log-likelihood")
    state = "converged" if getattr(model, "converged_", False) else "not converged"
    ax.set_title(f"{type(model).__name__}: {len(bounds)} iterations, {state}")
    ax.grid(alpha=0.3)
    return fig


def _marginal(mixture: Mixture, feature: int, grid: np.ndarray) -> np.ndarray:
    """Each component's density of one feature on ``grid`` (Gaussian families), (K, G)."""
    params = mixture.params
    kind = getattr(mixture.family, "covariance_type", None)
    means = params.means[:, feature]
    variances = {
        "full": lambda: params.covariances[:, feature, feature],
        "tied": lambda: np.full(len(means), params.covariances[feature, feature]),
        "diag": lambda: params.covariances[:, feature],
        "spherical": lambda: params.covariances,
    }[kind]()
    z = (grid[None, :] - means[:, None]) ** 2 / variances[:, None]
    return np.exp(-0.5 * z) / np.sqrt(2 * np.pi * variances[:, None])


def plot_1d(model: Any, X: np.ndarray, feature: int = 0, bins: int = 60, ax: Any = None) -> Any:
    """Histogram of one feature with each weighted component density and the mixture.

    Parameters
    ----------
    model : GaussianMixture or Mixture
        The fitted model.
    X : ndarray of shape (n_samples, n_features)
        Rows to histogram (a sample, see :func:`sample_rows`).
    feature : int
        The feature to plot.
    """
    mixture = _model(model)
    fig, ax = _axes(ax)
    values = np.asarray(X, dtype=float)[:, feature]
    values = values[~np.isnan(values)]  # missing entries (missing='marginalize')
    ax.hist(values, bins=bins, density=True, color="0.8", label="data")
    grid = np.linspace(values.min(), values.max(), 400)
    densities = mixture.weights[:, None] * _marginal(mixture, feature, grid)
    for k, density in enumerate(densities):
        ax.plot(grid, density, lw=1, label=f"component {k}")
    ax.plot(grid, densities.sum(axis=0), color="k", lw=2, label="mixture")
    ax.set_xlabel(f"feature {feature}")
    ax.set_ylabel("density")
    ax.legend(fontsize="small", ncol=2)
    return fig


def _covariance_2d(mixture: Mixture, k: int, features: tuple[int, int]) -> np.ndarray:
    i, j = features
    kind = mixture.family.covariance_type
    c = mixture.params.covariances
    if kind == "full":
        return c[k][np.ix_([i, j], [i, j])]
    if kind == "tied":
        return c[np.ix_([i, j], [i, j])]
    if kind == "diag":
        return np.diag(c[k][[i, j]])
    return np.eye(2) * c[k]


def _ellipse(ax: Any, mean: np.ndarray, covariance: np.ndarray, color: Any) -> None:
    from matplotlib.patches import Ellipse

    values, vectors = np.linalg.eigh(covariance)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    for n_std in (1, 2):
        width, height = 2 * n_std * np.sqrt(np.maximum(values[::-1], 0))
        ax.add_patch(
            Ellipse(mean, width, height, angle=angle, fill=False, color=color, lw=1.5 / n_std)
        )


def plot_2d(
    model: Any,
    X: np.ndarray,
    features: tuple[int, int] = (0, 1),
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Scatter of two features of a sample, coloured by component, with 1σ and 2σ ellipses."""
    mixture = _model(model)
    fig, ax = _axes(ax, figsize=(5.5, 5))
    X = np.asarray(X, dtype=float)
    labels = component_log_prob(mixture.family, mixture.params, X).argmax(axis=1)
    colours = _pyplot().get_cmap("tab10")
    i, j = features
    ax.scatter(X[:, i], X[:, j], s=3, c=[colours(k % 10) for k in labels], alpha=0.4, lw=0)
    for k in range(mixture.n_components):
        mean = mixture.params.means[k][[i, j]]
        _ellipse(ax, mean, _covariance_2d(mixture, k, features), colours(k % 10))
        ax.plot(*mean, "k+", ms=8)
    ax.set_xlabel(f"feature {i}")
    ax.set_ylabel(f"feature {j}")
    ax.set_title(title or f"{mixture.n_components} components")
    return fig


class Recorder:
    """A ``callback`` that keeps the model after every iteration, for :func:`plot_evolution`.

    Examples
    --------
    >>> from streamem.plotting import Recorder
    >>> recorder = Recorder()
    >>> # GaussianMixture(3, callback=recorder).fit(X); plot_evolution(recorder.models, X)
    """

    def __init__(self, init: int = 0) -> None:
        self.init = init
        self.models: list[Mixture] = []
        self.lower_bounds: list[float] = []

    def __call__(self, iteration: Any) -> None:
        if iteration.init == self.init:
            self.models.append(iteration.model)
            self.lower_bounds.append(iteration.lower_bound)


def plot_evolution(
    models: Sequence[Any], X: np.ndarray, features: tuple[int, int] = (0, 1), columns: int = 4
) -> Any:
    """The components across iterations as small multiples (at most 12 panels, evenly spaced)."""
    plt = _pyplot()
    picks = np.unique(np.linspace(0, len(models) - 1, min(len(models), 12)).round().astype(int))
    rows = -(-len(picks) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False, sharex=True, sharey=True
    )
    for ax, index in zip(axes.ravel(), picks, strict=False):
        plot_2d(models[index], X, features, ax=ax, title=f"after iteration {index + 1}")
        ax.set_xlabel("")
        ax.set_ylabel("")
    for ax in axes.ravel()[len(picks) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def animate_evolution(
    models: Sequence[Any], X: np.ndarray, path: str, features: tuple[int, int] = (0, 1)
) -> str:
    """Write the components' evolution across iterations as an animated GIF (needs Pillow)."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, ax = _axes(None, figsize=(5.5, 5))
    X = np.asarray(X, dtype=float)
    limits = X[:, features[0]].min(), X[:, features[0]].max()
    limits_y = X[:, features[1]].min(), X[:, features[1]].max()

    def draw(frame: int) -> None:
        ax.clear()
        plot_2d(models[frame], X, features, ax=ax, title=f"iteration {frame + 1}")
        ax.set_xlim(*limits)
        ax.set_ylim(*limits_y)

    animation = FuncAnimation(fig, draw, frames=len(models))
    animation.save(path, writer=PillowWriter(fps=3))
    _pyplot().close(fig)
    return path


def plot_selection(selection: Any, ax: Any = None) -> Any:
    """BIC and AIC against the number of components, from :func:`select_n_components`."""
    fig, ax = _axes(ax)
    table = selection.table
    ks = [row["n_components"] for row in table]
    for criterion in ("bic", "aic"):
        ax.plot(ks, [row[criterion] for row in table], marker="o", label=criterion.upper())
    best = selection.best_estimator_.n_components
    ax.axvline(best, color="0.5", ls="--", lw=1, label=f"best K = {best}")
    ax.set_xlabel("number of components K")
    ax.set_ylabel("criterion (lower is better)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


EFFECTIVE_COLOUR, EMPTIED_COLOUR = "C0", "0.7"


def plot_weights(
    model: Any,
    ax: Any = None,
    threshold: float = 0.01,
    names: Sequence[str] | None = None,
    log: bool = False,
) -> Any:
    """The weights of the components, sorted: those that kept data and those that emptied.

    A Dirichlet-process prior (:class:`~streamem.BayesianGaussianMixture`) lets the
    components the data do not need empty themselves; this shows how many are left. Bars
    above ``threshold`` (the effective components) are coloured, the others grey; the dashed
    line is the threshold and each title gives the count. Works for any fitted mixture.

    Parameters
    ----------
    model : fitted estimator or Mixture, or a sequence of them
        Several models are drawn side by side, one panel each, on a shared weight axis.
    ax : matplotlib Axes or sequence of Axes, optional
        Where to draw (one per model); a new figure when omitted.
    threshold : float
        Weight above which a component counts as effective, in [0, 1).
    names : sequence of str, optional
        A title for each panel (default: the estimator's class).
    log : bool
        A logarithmic weight axis, to tell the emptied components apart.

    Returns
    -------
    matplotlib Figure

    References
    ----------
    Blei, D. M. and Jordan, M. I. (2006). Variational inference for Dirichlet process
    mixtures. Bayesian Analysis 1(1), 121-143.
    """
    if not 0 <= threshold < 1:
        raise ValueError(
            f"threshold must be a weight in [0, 1), got {threshold!r}; the default 0.01 counts "
            "components with more than 1% of the data"
        )
    models = list(model) if isinstance(model, list | tuple) else [model]
    if not models:
        raise ValueError("plot_weights needs at least one fitted model")
    if names is not None and len(names) != len(models):
        raise ValueError(f"got {len(names)} names for {len(models)} models; give one per model")
    if ax is None:
        fig, axes = _pyplot().subplots(
            1, len(models), figsize=(4.5 * len(models) + 1.5, 3.5), squeeze=False, sharey=True
        )
        axes = list(axes[0])
    else:
        axes = list(ax) if isinstance(ax, list | tuple | np.ndarray) else [ax]
        if len(axes) != len(models):
            raise ValueError(f"got {len(axes)} axes for {len(models)} models; give one per model")
        fig = axes[0].figure
    for i, (one, panel) in enumerate(zip(models, axes, strict=True)):
        weights = np.asarray(_model(one).weights, dtype=float)
        order = np.argsort(-weights, kind="stable")
        effective = weights[order] > threshold
        colours = np.where(effective, EFFECTIVE_COLOUR, EMPTIED_COLOUR)
        bars = panel.bar(np.arange(len(order)), weights[order], color=colours, log=log)
        labels = np.where(effective, "_effective", "_emptied").astype(object)
        if effective.any():  # one legend entry per kind
            labels[np.argmax(effective)] = f"effective (> {threshold:g})"
        if not effective.all():
            labels[np.argmax(~effective)] = "emptied"
        for bar, label in zip(bars, labels, strict=True):
            bar.set_label(label)
        if threshold > 0:
            panel.axhline(threshold, color="0.3", ls="--", lw=1, label="threshold")
        panel.set_xticks(np.arange(len(order)), [str(k) for k in order])
        panel.set_xlabel("component (by weight)")
        name = names[i] if names is not None else type(one).__name__
        panel.set_title(f"{name}: {int(effective.sum())} of {len(weights)} effective")
        panel.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("weight")
    axes[0].legend(fontsize="small")
    return fig


def plot_parameters(model: Any, ax: Any = None) -> Any:
    """Each component's parameters as a heatmap: means, probabilities or rates by feature."""
    fig, ax = _axes(ax, figsize=(7, 3.5))
    for name in ("means_", "probabilities_", "rates_"):
        if hasattr(model, name):
            values = np.asarray(getattr(model, name), dtype=float)
            break
    else:  # pragma: no cover - every estimator has one of them
        raise ValueError(f"{type(model).__name__} has no per-feature parameters to show")
    values = values.reshape(values.shape[0], -1) if values.ndim > 1 else values[:, None]
    image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=name.rstrip("_"))
    weights = np.asarray(model.weights_)
    ax.set_yticks(range(len(weights)), [f"{k} ({w:.2f})" for k, w in enumerate(weights)])
    ax.set_ylabel("component (weight)")
    ax.set_xlabel("feature")
    ax.set_title(f"{type(model).__name__}: {name.rstrip('_')}")
    return fig


def plot_updates(model: Any) -> Any:
    """How a model changed over its updates: drift you can see.

    Top: the mean log-likelihood of each new batch under the model *before* it was folded in
    (a falling curve is data the model no longer explains: drift). Bottom: the component
    weights after each update. Drawn from ``update_history_`` (kept by
    :meth:`~streamem.GaussianMixture.partial_fit` and ``streamem update``).
    """
    history = getattr(model, "update_history_", None)
    if history is None or not len(history["n_rows"]):
        raise ValueError(
            f"this {type(model).__name__} has no updates to show: update_history_ is filled by "
            "partial_fit (or `streamem update`) after a fit"
        )
    fig, (top, bottom) = _pyplot().subplots(2, 1, figsize=(7, 5), sharex=True)
    updates = np.arange(1, len(history["n_rows"]) + 1)
    top.plot(updates, history["log_likelihood"], marker="o", markersize=3)
    top.set_ylabel("mean log-likelihood\nof the new rows")
    top.set_title(f"{type(model).__name__}: {len(updates)} updates")
    top.grid(alpha=0.3)
    weights = np.asarray(history["weights"])
    for k in range(weights.shape[1]):
        bottom.plot(updates, weights[:, k], label=f"component {k}")
    bottom.set_ylabel("weight")
    bottom.set_xlabel("update")
    bottom.grid(alpha=0.3)
    if weights.shape[1] <= 10:
        bottom.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig
