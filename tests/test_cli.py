"""The streamem command, end to end through subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import zarr

from streamem import load

# every test here runs the command in a subprocess: slow, still run by the default `pytest`
pytestmark = pytest.mark.slow


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamem", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "data.zarr"
    result = run(
        "generate",
        str(path),
        "--samples",
        "20000",
        "--features",
        "3",
        "--components",
        "3",
        "--chunk-rows",
        "3000",
        "--seed",
        "2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n_samples"] == 20000
    return path


def test_demo_small():
    result = run("demo", "--size", "4MiB", "--chunk-size", "1MiB", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["converged"] and summary["max_abs_mean_error"] < 0.05
    assert summary["n_samples"] == 4 * 2**20 // 32


def test_demo_prints_table():
    result = run("demo", "--size", "2MiB", "--chunk-size", "512KiB")
    assert result.returncode == 0, result.stderr
    assert "fitted out of core" in result.stdout and "true mean → fitted mean" in result.stdout


def test_fit_predict_info_score_select(store, tmp_path):
    model = tmp_path / "m.streamem"
    result = run(
        "fit",
        f"{store}/data",
        "-k",
        "3",
        "-o",
        str(model),
        "--summary",
        str(tmp_path / "s.json"),
        "--json",
        "--chunk-size",
        "5000",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n_components"] == 3 and summary["converged"]
    assert json.loads((tmp_path / "s.json").read_text())["n_iter"] == summary["n_iter"]
    fitted = load(model)

    result = run(
        "predict", str(model), str(store), "--out", str(tmp_path / "labels.zarr"), "--proba"
    )
    assert result.returncode == 0, result.stderr
    data = zarr.open(f"{store}/data")[:]
    np.testing.assert_array_equal(
        zarr.open(tmp_path / "labels.zarr" / "labels")[:], fitted.predict(data)
    )
    proba = zarr.open(tmp_path / "labels-proba.zarr" / "responsibilities")[:]
    np.testing.assert_allclose(proba, fitted.predict_proba(data), rtol=1e-10)

    result = run("info", str(model), "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["n_components"] == 3
    result = run("info", str(model))
    assert "GaussianMixture: 3 components" in result.stdout

    result = run("score", str(model), str(store), "--json")
    assert json.loads(result.stdout)["mean_log_likelihood"] == pytest.approx(
        fitted.score(data), rel=1e-10
    )

    result = run("select", str(store), "--k", "1..4", "--json", "-o", str(tmp_path / "b.s"))
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert table["best_n_components"] == 3 and len(table["table"]) == 4
    assert load(tmp_path / "b.s").n_components == 3


def test_missing_store_is_one_line_exit_2(tmp_path):
    result = run("fit", str(tmp_path / "missing.zarr"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"streamem fit: error: No such Zarr store: '{tmp_path / 'missing.zarr'}'"
    ]


def test_bad_option_is_exit_2():
    result = run("fit", "x.zarr", "--covariance-type", "banana")
    assert result.returncode == 2 and "invalid choice: 'banana'" in result.stderr
    result = run("fit", "x.zarr", "--family", "banana")
    assert result.returncode == 2 and "unknown family 'banana'" in result.stderr


def test_bad_model_file_is_exit_2(tmp_path):
    (tmp_path / "bad.streamem").write_text("not a model")
    result = run("info", str(tmp_path / "bad.streamem"))
    assert result.returncode == 2 and "damaged or not a streamem model file" in result.stderr
    assert "Traceback" not in result.stderr


def test_update_plot_and_checkpoint_flags(store, tmp_path):
    model = tmp_path / "m.streamem"
    assert run("fit", f"{store}/data", "-k", "3", "-o", str(model), "--quiet").returncode == 0

    result = run("update", str(model), f"{store}/data", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n_steps"] == 1
    assert load(model).n_steps_ == 1  # saved back in place

    result = run(
        "plot",
        str(model),
        f"{store}/data",
        "--out",
        str(tmp_path / "figs"),
        "--features",
        "0,2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)["written"]
    assert {os.path.basename(p) for p in written} == {
        "lower_bound.png",
        "parameters.png",
        "weights.png",
        "histogram_feature0.png",
        "scatter_features0_2.png",
        "updates.png",  # the model was updated above
    }
    assert all(os.path.getsize(p) > 2000 for p in written)

    result = run("select", str(store), "--k", "1..3", "--plot", str(tmp_path / "bic.png"))
    assert result.returncode == 0 and os.path.getsize(tmp_path / "bic.png") > 2000

    checkpoint = tmp_path / "fit.ckpt"
    checkpoint.write_bytes(b"an old checkpoint")
    result = run("fit", f"{store}/data", "--checkpoint", str(checkpoint))
    assert result.returncode == 2 and "pass --resume" in result.stderr
    result = run("fit", f"{store}/data", "--resume")
    assert result.returncode == 2 and "--resume needs --checkpoint" in result.stderr


def test_discrete_family_from_the_command_line(tmp_path):
    counts = np.random.default_rng(0).poisson([[2.0, 8.0]] * 500 + [[9.0, 1.0]] * 500)
    np.save(tmp_path / "counts.npy", counts)
    result = run(
        "fit",
        str(tmp_path / "counts.npy"),
        "--family",
        "poisson",
        "-k",
        "2",
        "-o",
        str(tmp_path / "p.streamem"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    rates = np.sort(np.array(json.loads(result.stdout)["rates"]), axis=0)
    np.testing.assert_allclose(rates, [[2.0, 1.0], [9.0, 8.0]], atol=0.5)
    result = run("fit", str(tmp_path / "counts.npy"), "--family", "poisson", "--n-categories", "3")
    assert result.returncode == 2 and "does not apply to poisson" in result.stderr


@pytest.mark.parametrize("family", ["bernoulli", "binomial", "multinomial", "poisson"])
def test_generate_and_fit_discrete_stores(tmp_path, family):
    store = tmp_path / f"{family}.zarr"
    result = run(
        "generate",
        str(store),
        "--family",
        family,
        "--samples",
        "20000",
        "--features",
        "8",
        "--components",
        "2",
        "--chunk-rows",
        "3000",
        "--seed",
        "3",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    truth = json.loads(result.stdout)
    assert truth["family"] == family and truth["n_samples"] == 20000
    options = ["--n-trials", "10"] if family == "binomial" else []
    result = run(
        "fit",
        str(store),
        "--family",
        family,
        "-k",
        "2",
        "--n-init",
        "3",
        "-o",
        str(tmp_path / "m.streamem"),
        "--json",
        *options,
    )
    assert result.returncode == 0, result.stderr
    name = "rates" if family == "poisson" else "probabilities"
    fitted = np.array(json.loads(result.stdout)[name]).reshape(2, -1)
    expected = np.array(truth["parameters"][name]).reshape(2, -1)
    error = min(np.abs(fitted - expected).max(), np.abs(fitted[::-1] - expected).max())
    assert error < (0.5 if family == "poisson" else 0.05)


def test_fit_on_a_local_cluster_and_resume_flags(store, tmp_path):
    model = tmp_path / "c.streamem"
    result = run(
        "fit",
        f"{store}/data",
        "-k",
        "3",
        "--cluster",
        "local:2",
        "-o",
        str(model),
        "--checkpoint",
        str(tmp_path / "fit.ckpt"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    in_process = run("fit", f"{store}/data", "-k", "3", "-o", str(tmp_path / "l.s"), "--json")
    a, b = json.loads(result.stdout), json.loads(in_process.stdout)
    np.testing.assert_allclose(a["means"], b["means"], rtol=1e-10)
    assert not (tmp_path / "fit.ckpt").exists()  # removed once the fit completed
    result = run("fit", f"{store}/data", "--cluster", "remote:2")
    assert result.returncode == 2 and "--cluster expects 'local:N'" in result.stderr


def test_fit_output_onto_a_directory_keeps_the_directory(store, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "notes.txt").write_text("keep me")
    result = run("fit", f"{store}/data", "-k", "2", "-o", str(results), "--quiet")
    assert result.returncode == 2, result.stderr
    assert "is a directory" in result.stderr and "Traceback" not in result.stderr
    assert (results / "notes.txt").read_text() == "keep me"


def test_update_reports_the_change_and_dry_run_writes_nothing(store, tmp_path):
    model = tmp_path / "m.streamem"
    assert run("fit", f"{store}/data", "-k", "3", "-o", str(model), "--quiet").returncode == 0
    saved = model.read_bytes()
    result = run("update", str(model), f"{store}/data", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["model"] is None and model.read_bytes() == saved
    assert summary["n_rows_seen"] == 40_000 and summary["n_updates"] == 1
    assert summary["log_likelihood_after"] >= summary["log_likelihood_before"] - 1e-3
    assert 0 <= summary["largest_change"] < 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.streamem"]

    result = run("update", str(model), f"{store}/data", "--half-life", "5000")
    assert result.returncode == 0, result.stderr
    assert "largest relative parameter change" in result.stdout
    updated = load(model)
    assert updated.half_life == 5000 and len(updated.update_history_["n_rows"]) == 1
    info = run("info", str(model))
    assert "rows seen: 40,000; updates since the fit: 1" in info.stdout
