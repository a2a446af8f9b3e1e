"""Estimators with missing values (``missing=``): the errors, monotone EM, the engines
agreeing, NaN-free data unchanged, ``drop`` as complete-case analysis, rows with nothing
observed, ``impute``, everything else (restarts, K-sweeps, partial_fit, incremental EM,
checkpoints, save/load, plots, the CLI) and recovery against complete-case analysis and
column-mean imputation."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as hst

from streamem import GaussianMixture, load, select_n_components, to_zarr
from streamem.estimators.discrete import (
    BernoulliMixture,
    BinomialMixture,
    GroupedGaussianMixture,
    MultinomialMixture,
    PoissonMixture,
)

MEANS = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, -3.0]])
COVARIANCE = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.2], [0.3, 0.2, 1.0]])


def two_blobs(n: int = 1200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.4
    X = rng.multivariate_normal(np.zeros(3), COVARIANCE, size=n)
    return X + np.where(labels[:, None], MEANS[1], MEANS[0])


def gaps(X: np.ndarray, rate: float = 0.3, seed: int = 1) -> np.ndarray:
    X = np.array(X, dtype=np.float64)
    X[np.random.default_rng(seed).random(X.shape) < rate] = np.nan
    return X


def fitted_attributes(estimator) -> dict:
    return {
        k: v
        for k, v in vars(estimator).items()
        if k.endswith("_") and k not in ("stepwise_state_", "update_history_")
    }


# -- what NaN means ------------------------------------------------------------------------


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("estimator", [GaussianMixture(2), PoissonMixture(2)])
def test_default_refuses_nan_naming_the_parameter(estimator, lazy):
    X = gaps(np.abs(np.rint(two_blobs(300))), 0.05)
    data = da.from_array(X, chunks=100) if lazy else X
    with pytest.raises(ValueError, match=r"NaN.*missing='marginalize'"):
        estimator.fit(data)


@pytest.mark.parametrize("missing", ["error", "marginalize", "drop"])
def test_infinite_values_stay_an_error(missing):
    X = gaps(two_blobs(300), 0.1)
    X[150, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixture(2, missing=missing, init_size=100, random_state=0).fit(X)


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="missing must be one of"):
        GaussianMixture(2, missing="ignore").fit(two_blobs(50))


def test_multinomial_counts_refuse_and_suggest_drop():
    X = np.random.default_rng(0).multinomial(10, [0.2, 0.3, 0.5], size=200).astype(float)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="missing='drop'"):
        MultinomialMixture(2, missing="marginalize", random_state=0).fit(X)
    MultinomialMixture(2, missing="drop", random_state=0).fit(X)


# -- exact EM ------------------------------------------------------------------------------


def count_data(name: str, rng: np.random.Generator) -> tuple:
    z = rng.random(1500) < 0.4
    if name == "bernoulli":
        X = np.where(z[:, None], rng.random((1500, 6)) < 0.8, rng.random((1500, 6)) < 0.2)
        return BernoulliMixture, {}, X
    if name == "poisson":
        return PoissonMixture, {}, np.where(z[:, None], rng.poisson(2, (1500, 5)), 9)
    if name == "binomial":
        return (
            BinomialMixture,
            {"n_trials": 5},
            np.where(z[:, None], 1, rng.binomial(5, 0.7, (1500, 5))),
        )
    if name == "categorical":
        labels = np.where(z[:, None], rng.choice(3, (1500, 4), p=[0.7, 0.2, 0.1]), 2)
        return MultinomialMixture, {"n_categories": 3}, labels
    return GroupedGaussianMixture, {}, np.where(z[:, None], rng.normal(0, 1, (1500, 8)), 4)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("algorithm", ["batch", "incremental"])
def test_gaussian_lower_bound_never_decreases(covariance_type, algorithm):
    X = gaps(two_blobs(), 0.3)
    X[:20] = np.nan  # rows with nothing observed
    model = GaussianMixture(
        2,
        covariance_type=covariance_type,
        missing="marginalize",
        algorithm=algorithm,
        chunk_size=300,
        tol=1e-10,
        max_iter=30,
        random_state=0,
    ).fit(X)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-10)
    if algorithm == "batch":
        assert model.score(X) == pytest.approx(model.lower_bound_, abs=1e-6)


@pytest.mark.parametrize("name", ["bernoulli", "poisson", "binomial", "categorical", "grouped"])
def test_count_families_lower_bound_never_decreases(name):
    cls, options, X = count_data(name, np.random.default_rng(0))
    model = cls(2, missing="marginalize", tol=1e-10, max_iter=40, random_state=0, **options)
    model.fit(gaps(X, 0.3))
    assert np.all(np.diff(model.lower_bounds_) >= -1e-10)
    assert np.isfinite(model.score(gaps(X, 0.3)))


def fit_three_ways(make, X, client):
    local = make().fit(X)
    lazy = make().fit(da.from_array(X, chunks=250))
    with client.as_current():
        cluster = make().fit(da.from_array(X, chunks=250))
    return local, lazy, cluster


@pytest.mark.parametrize(
    "make",
    [
        lambda: GaussianMixture(
            2, covariance_type="full", missing="marginalize", chunk_size=250, random_state=0
        ),
        lambda: GaussianMixture(
            2, covariance_type="diag", missing="marginalize", chunk_size=250, random_state=0
        ),
        lambda: PoissonMixture(2, missing="marginalize", chunk_size=250, random_state=0),
    ],
    ids=["full", "diag", "poisson"],
)
def test_numpy_dask_and_local_cluster_agree(make, cluster_client):
    X = gaps(np.abs(two_blobs(1000)), 0.3)
    if "Poisson" in type(make()).__name__:
        X = np.rint(X)
    local, lazy, cluster = fit_three_ways(make, X, cluster_client)
    for other in (lazy, cluster):
        assert other.n_iter_ == local.n_iter_
        for name, value in fitted_attributes(local).items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                np.testing.assert_allclose(getattr(other, name), value, rtol=0, atol=1e-10)
        assert other.lower_bound_ == pytest.approx(local.lower_bound_, abs=1e-10)


ESTIMATORS = [
    (GaussianMixture, {"covariance_type": "full"}),
    (GaussianMixture, {"covariance_type": "tied"}),
    (GaussianMixture, {"covariance_type": "diag"}),
    (GaussianMixture, {"covariance_type": "spherical"}),
    (PoissonMixture, {}),
    (BinomialMixture, {"n_trials": 20}),
    (GroupedGaussianMixture, {}),
]


@pytest.mark.parametrize("algorithm", ["batch", "incremental", "online"])
@pytest.mark.parametrize(("cls", "options"), ESTIMATORS)
def test_no_nan_gives_the_refusing_path_bit_for_bit(cls, options, algorithm):
    X = np.abs(np.rint(two_blobs(900) * 2))
    common = dict(options, algorithm=algorithm, max_iter=8, chunk_size=300, random_state=0)
    refusing = cls(2, **common).fit(X)
    accepting = cls(2, missing="marginalize", **common).fit(X)
    for name, value in fitted_attributes(refusing).items():
        other = getattr(accepting, name)
        assert np.array_equal(value, other) if isinstance(value, np.ndarray) else value == other
    assert np.array_equal(refusing.score_samples(X), accepting.score_samples(X))


def test_drop_is_complete_case_analysis():
    X = gaps(two_blobs(), 0.1)
    complete = ~np.isnan(X).any(axis=1)
    dropped = GaussianMixture(2, missing="drop", random_state=0, init_size=10_000).fit(X)
    reference = GaussianMixture(2, random_state=0, init_size=10_000).fit(X[complete])
    np.testing.assert_allclose(dropped.means_, reference.means_, rtol=1e-10)
    np.testing.assert_allclose(dropped.covariances_, reference.covariances_, rtol=1e-10)
    labels = dropped.predict(X)
    assert np.all(labels[~complete] == -1) and np.all(labels[complete] >= 0)
    assert np.isnan(dropped.predict_proba(X)[~complete]).all()
    assert dropped.score(X) == pytest.approx(reference.score(X[complete]), rel=1e-12)


def test_rows_with_nothing_observed_carry_no_information():
    X = gaps(two_blobs(), 0.2)
    empty = np.full((50, 3), np.nan)
    options = dict(missing="marginalize", random_state=0, tol=1e-8, init_size=5000)
    with_empty = GaussianMixture(2, **options).fit(np.vstack([X, empty]))
    np.testing.assert_allclose(with_empty.score_samples(empty), 0.0, atol=1e-12)
    np.testing.assert_allclose(
        with_empty.predict_proba(empty), np.tile(with_empty.weights_, (50, 1))
    )
    # the same EM path as without them (the initial sample imputes column means, so start
    # both from the same parameters)
    start = dict(
        weights_init=with_empty.weights_,
        means_init=with_empty.means_,
        precisions_init=with_empty.precisions_,
    )
    a = GaussianMixture(2, max_iter=5, **options, **start).fit(X)
    b = GaussianMixture(2, max_iter=5, **options, **start).fit(np.vstack([X, empty]))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-10)


@settings(max_examples=20, deadline=None)
@given(pattern=hst.lists(hst.booleans(), min_size=3, max_size=3), seed=hst.integers(0, 50))
def test_rows_score_the_model_marginalised_to_their_observed_columns(pattern, seed):
    """For any pattern, score_samples of rows missing it is the log-likelihood under the
    mixture marginalised to the observed columns (Gaussians are closed under it)."""
    observed = np.array(pattern)
    model = MODEL_FOR_PROPERTY
    X = two_blobs(40, seed)
    X[:, ~observed] = np.nan
    scores = model.score_samples(X)
    if not observed.any():
        np.testing.assert_allclose(scores, 0.0, atol=1e-12)
        return
    marginal = GaussianMixture(2, covariance_type="full")
    marginal.weights_ = model.weights_
    marginal.means_ = model.means_[:, observed]
    marginal.covariances_ = model.covariances_[:, observed][:, :, observed]
    marginal.precisions_cholesky_ = np.array(
        [np.linalg.cholesky(np.linalg.inv(c)) for c in marginal.covariances_]
    )
    marginal.n_features_in_ = int(observed.sum())
    marginal.converged_ = True
    expected = marginal.score_samples(X[:, observed])
    np.testing.assert_allclose(scores, expected, rtol=1e-10)


MODEL_FOR_PROPERTY = GaussianMixture(2, missing="marginalize", random_state=0).fit(two_blobs(600))


# -- impute ----------------------------------------------------------------------------------


def test_impute_beats_column_means_on_held_out_entries(tmp_path):
    truth = two_blobs(3000)
    X = gaps(truth, 0.3)
    held = np.isnan(X)
    model = GaussianMixture(2, missing="marginalize", random_state=0).fit(X)
    imputed = model.impute(X)
    assert np.array_equal(imputed[~held], X[~held])
    rmse = np.sqrt(np.mean((imputed[held] - truth[held]) ** 2))
    means = np.where(held, np.nanmean(X, axis=0), X)
    baseline = np.sqrt(np.mean((means[held] - truth[held]) ** 2))
    assert rmse < 0.6 * baseline
    # lazy in, lazy out, written chunk by chunk under the name 'imputed'
    lazy = model.impute(da.from_array(X, chunks=700))
    assert isinstance(lazy, da.Array)
    path = to_zarr(lazy, tmp_path / "imputed.zarr")
    assert path.endswith("/imputed")
    np.testing.assert_allclose(zarr.open(path)[:], imputed, rtol=0, atol=1e-10)


def test_impute_keeps_xarray_coordinates(tmp_path):
    xr = pytest.importorskip("xarray")
    X = gaps(two_blobs(400), 0.2)
    model = GaussianMixture(2, missing="marginalize", random_state=0).fit(X)
    data = xr.DataArray(X, dims=("time", "band"), coords={"time": np.arange(400) * 10})
    imputed = model.impute(data)
    assert imputed.dims == ("time", "band") and imputed.name == "imputed"
    np.testing.assert_array_equal(imputed["time"], data["time"])
    np.testing.assert_allclose(imputed.values, model.impute(X), rtol=0, atol=1e-10)
    path = to_zarr(imputed, tmp_path / "unnamed.zarr")
    assert path.endswith("/imputed")


def test_impute_returns_the_input_layout_with_the_sample_dimension_second(tmp_path):
    """Profiles × depth stored as (depth, profile): the result has the input's dimensions,
    coordinates, attributes and name, and only its missing values change."""
    xr = pytest.importorskip("xarray")
    X = gaps(two_blobs(300), 0.25)
    model = GaussianMixture(2, missing="marginalize", random_state=0).fit(X)
    data = xr.DataArray(
        X.T,
        dims=("depth", "profile"),
        coords={
            "depth": [5.0, 10.0, 20.0],
            "profile": np.arange(300) + 1000,
            "lon": ("profile", np.linspace(-30, 30, 300)),
        },
        attrs={"units": "degC", "source": "float"},
        name="temperature",
    )
    model.sample_dim = "profile"
    imputed = model.impute(data)
    assert isinstance(imputed, xr.DataArray)
    assert imputed.dims == ("depth", "profile") and imputed.name == "temperature"
    assert imputed.attrs == data.attrs
    for name, coord in data.coords.items():
        assert imputed[name].dims == coord.dims
        np.testing.assert_array_equal(imputed[name], coord)
    expected = model.impute(X).T
    values = imputed.values
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-10)
    seen = ~np.isnan(X.T)
    assert np.array_equal(values[seen], X.T[seen]) and not np.isnan(values).any()
    path = to_zarr(imputed, tmp_path / "filled.zarr")
    assert path.endswith("/temperature")
    np.testing.assert_allclose(
        xr.open_zarr(tmp_path / "filled.zarr", consolidated=False)["temperature"], values
    )
    # a Dataset: its feature variables filled in place, other variables untouched
    dataset = xr.Dataset(
        {
            "temperature": data,
            "salinity": data.isel(depth=[0, 1]) * 0.1 + 30,
            "station": ("profile", np.arange(300) % 7),
        }
    )
    model.variables = ["temperature", "salinity"]
    with pytest.raises(ValueError, match="6 features"):
        model.impute(dataset)  # the model has 3 features, the two variables 6 (aligned)
    model.variables = ["temperature"]
    filled = model.impute(dataset)
    assert isinstance(filled, xr.Dataset) and set(filled) == set(dataset)
    assert filled["temperature"].dims == ("depth", "profile")
    np.testing.assert_allclose(filled["temperature"].values, values, rtol=0, atol=1e-12)
    xr.testing.assert_identical(filled["salinity"], dataset["salinity"])
    xr.testing.assert_identical(filled["station"], dataset["station"])
    assert to_zarr(filled, tmp_path / "dataset.zarr") == str(tmp_path / "dataset.zarr")
    written = xr.open_zarr(tmp_path / "dataset.zarr", consolidated=False)
    np.testing.assert_allclose(written["temperature"].transpose(*data.dims), values)
    np.testing.assert_array_equal(written["station"], dataset["station"])


def test_to_zarr_names_in_memory_imputed_data_imputed(tmp_path):
    X = gaps(two_blobs(300), 0.2)
    model = GaussianMixture(2, missing="marginalize", random_state=0).fit(X)
    path = to_zarr(model.impute(X), tmp_path / "imputed.zarr")
    assert path.endswith("/imputed")
    store = zarr.open(path)
    assert store.metadata.dimension_names == ("sample", "feature")
    np.testing.assert_array_equal(store[:], model.impute(X))
    path = to_zarr(model.predict_proba(X), tmp_path / "proba.zarr")
    assert path.endswith("/responsibilities")
    dropping = GaussianMixture(2, missing="drop", random_state=0).fit(X)
    proba = dropping.predict_proba(X)  # NaN for the rows left out
    assert np.isnan(proba).any()
    assert to_zarr(proba, tmp_path / "dropped.zarr").endswith("/responsibilities")


@pytest.mark.parametrize("name", ["bernoulli", "poisson", "binomial", "categorical", "grouped"])
def test_impute_count_families(name):
    cls, options, X = count_data(name, np.random.default_rng(2))
    data = gaps(X, 0.2)
    model = cls(2, missing="marginalize", random_state=0, **options).fit(data)
    imputed = model.impute(data)
    held = np.isnan(data)
    assert not np.isnan(imputed).any()
    assert np.array_equal(imputed[~held], data[~held])
    if name == "categorical":  # the most probable label
        assert set(np.unique(imputed[held])) <= {0.0, 1.0, 2.0}


# -- everything else keeps working ---------------------------------------------------------


def test_restarts_and_k_sweep_share_passes():
    X = gaps(two_blobs(), 0.3)
    model = GaussianMixture(2, missing="marginalize", n_init=3, random_state=0).fit(X)
    assert model.converged_
    selection = select_n_components(
        GaussianMixture(missing="marginalize", random_state=0), X, range(1, 4)
    )
    assert selection.best_estimator_.n_components == 2


def test_k_sweep_with_drop_counts_the_rows_kept():
    X = gaps(two_blobs(), 0.1)
    kept = X[~np.isnan(X).any(axis=1)]
    assert 0 < len(kept) < 0.8 * len(X)
    selection = select_n_components(
        GaussianMixture(missing="drop", random_state=0), X, range(1, 4)
    )
    for row, fitted in zip(selection.table, selection.estimators_, strict=True):
        total = fitted.score_samples(kept).sum()  # the complete rows, nothing else
        p = row["n_parameters"]
        assert row["log_likelihood"] == pytest.approx(total, rel=1e-10)
        assert row["bic"] == pytest.approx(-2 * total + p * np.log(len(kept)), rel=1e-10)
        assert row["aic"] == pytest.approx(-2 * total + 2 * p, rel=1e-10)
        assert row["bic"] == pytest.approx(fitted.bic(X), rel=1e-10)


def test_partial_fit_online_and_checkpoint(tmp_path):
    X = gaps(two_blobs(2000), 0.3)
    online = GaussianMixture(2, missing="marginalize", batch_size=200, random_state=0)
    for part in np.array_split(X, 5):
        online.partial_fit(part)
    batch = GaussianMixture(2, missing="marginalize", random_state=0).fit(X)
    order = np.argsort(online.means_[:, 0]), np.argsort(batch.means_[:, 0])
    np.testing.assert_allclose(online.means_[order[0]], batch.means_[order[1]], atol=0.3)
    checkpoint = str(tmp_path / "fit.ckpt")
    resumed = GaussianMixture(
        2, missing="marginalize", checkpoint=checkpoint, max_iter=4, random_state=0
    ).fit(X)
    assert resumed.n_iter_ == 4


def test_save_load_and_predict(tmp_path):
    X = gaps(two_blobs(), 0.3)
    model = GaussianMixture(2, covariance_type="diag", missing="marginalize", random_state=0)
    model.fit(X)
    model.save(tmp_path / "model.streamem")
    loaded = load(tmp_path / "model.streamem")
    assert loaded.missing == "marginalize"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    loaded.partial_fit(X[:300])  # the saved running state (masked statistics) continues


def test_plots_with_gaps():
    pytest.importorskip("matplotlib")
    from streamem.plotting import plot_1d, plot_2d

    X = gaps(two_blobs(), 0.3)
    model = GaussianMixture(2, missing="marginalize", random_state=0).fit(X)
    plot_1d(model, X)
    plot_2d(model, X)


def test_cli_fit_and_impute(tmp_path):
    from streamem.cli import main

    X = gaps(two_blobs(), 0.3)
    store = tmp_path / "data.zarr"
    zarr.open_group(str(store), mode="w").create_array("data", data=X, chunks=(400, 3))
    model = tmp_path / "model.streamem"
    assert main(["fit", f"{store}/data", "-k", "2", "--missing", "marginalize",
                 "-o", str(model), "--quiet"]) == 0  # fmt: skip
    out = tmp_path / "imputed.zarr"
    assert main(["impute", str(model), f"{store}/data", "-o", str(out), "--quiet"]) == 0
    imputed = zarr.open(f"{out}/imputed")[:]
    np.testing.assert_allclose(imputed, load(model).impute(X), rtol=0, atol=1e-10)


# -- recovery --------------------------------------------------------------------------------


def recovery_errors(X: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> dict:
    """Errors of the means and covariances fitted three ways: marginalised, complete
    rows only, and column means imputed (components matched by their first mean)."""
    options = dict(random_state=0, tol=1e-5, max_iter=300)
    fits = {
        "marginalize": GaussianMixture(2, missing="marginalize", **options).fit(X),
        "complete-case": GaussianMixture(2, missing="drop", **options).fit(X),
        "column means": GaussianMixture(2, **options).fit(
            np.where(np.isnan(X), np.nanmean(X, axis=0), X)
        ),
    }
    errors = {}
    for name, model in fits.items():
        order = np.argsort(model.means_[:, 0])
        errors[name] = (
            float(np.abs(model.means_[order] - means).max()),
            float(np.abs(model.covariances_[order] - covariances).max()),
        )
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["random", "depth"])
def test_recovery_beats_complete_case_and_column_means(mechanism):
    rng = np.random.default_rng(11)
    n = 200_000
    means = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, 2.0, -2.0, 1.0]])
    base = np.array([[1.0, 0.8, 0.6, 0.4], [0.8, 1.0, 0.8, 0.6], [0.6, 0.8, 1.0, 0.8],
                     [0.4, 0.6, 0.8, 1.0]])  # fmt: skip
    covariances = np.array([base, 0.5 * base + 0.5 * np.eye(4)])
    labels = rng.random(n) < 0.4
    truth = np.where(
        labels[:, None],
        rng.multivariate_normal(means[1], covariances[1], n),
        rng.multivariate_normal(means[0], covariances[0], n),
    )
    X = truth.copy()
    if mechanism == "random":  # 30% of entries missing completely at random
        X[rng.random(X.shape) < 0.3] = np.nan
    else:  # profiles cut at a depth that depends on the surface value (missing at random)
        depth = np.where(truth[:, 0] > 1.5, rng.integers(2, 5, n), rng.integers(3, 5, n))
        X[np.arange(4)[None, :] >= depth[:, None]] = np.nan
    errors = recovery_errors(X, means, covariances)
    print(f"\nrecovery ({mechanism}): max |error| of (means, covariances)")
    for name, (mean_error, covariance_error) in errors.items():
        print(f"  {name:14s} means {mean_error:.4f}  covariances {covariance_error:.4f}")
    ours = errors["marginalize"]
    for other in ("complete-case", "column means"):
        assert ours[0] < errors[other][0] or ours[0] < 0.02
        assert ours[1] < errors[other][1]
