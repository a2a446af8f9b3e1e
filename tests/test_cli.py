"""The streamem command, end to end through subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from argparse import SUPPRESS
from pathlib import Path

import numpy as np
import pytest
import zarr

from streamem import load
from streamem.cli import main
from streamem.datasets import make_mixture

# the tests that run the command in a subprocess are slow (still run by the default `pytest`)
slow = pytest.mark.slow


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


@slow
def test_demo_small():
    result = run("demo", "--size", "4MiB", "--chunk-size", "1MiB", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["converged"] and summary["max_abs_mean_error"] < 0.05
    assert summary["n_samples"] == 4 * 2**20 // 32


@slow
def test_demo_prints_table():
    result = run("demo", "--size", "2MiB", "--chunk-size", "512KiB")
    assert result.returncode == 0, result.stderr
    assert "fitted out of core" in result.stdout and "true mean → fitted mean" in result.stdout


@slow
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


@slow
def test_missing_store_is_one_line_exit_2(tmp_path):
    result = run("fit", str(tmp_path / "missing.zarr"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"streamem fit: error: No such Zarr store: '{tmp_path / 'missing.zarr'}'"
    ]


@slow
def test_bad_option_is_exit_2():
    result = run("fit", "x.zarr", "--covariance-type", "banana")
    assert result.returncode == 2 and "invalid choice: 'banana'" in result.stderr
    result = run("fit", "x.zarr", "--family", "banana")
    assert result.returncode == 2 and "unknown family 'banana'" in result.stderr


@slow
def test_bad_model_file_is_exit_2(tmp_path):
    (tmp_path / "bad.streamem").write_text("not a model")
    result = run("info", str(tmp_path / "bad.streamem"))
    assert result.returncode == 2 and "damaged or not a streamem model file" in result.stderr
    assert "Traceback" not in result.stderr


@slow
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


@slow
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


@slow
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


@slow
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


@slow
def test_fit_output_onto_a_directory_keeps_the_directory(store, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "notes.txt").write_text("keep me")
    result = run("fit", f"{store}/data", "-k", "2", "-o", str(results), "--quiet")
    assert result.returncode == 2, result.stderr
    assert "is a directory" in result.stderr and "Traceback" not in result.stderr
    assert (results / "notes.txt").read_text() == "keep me"


@slow
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


# -- in process: progress bars and the --json vocabulary --------------------------------------


def call(capsys, *args: str) -> tuple[str, str]:
    """``streamem ARGS`` in this process: its stdout and stderr (exit code 0 asserted)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def last_bar(err: str, name: str) -> str:
    """The last state of the bar ``name`` written to stderr."""
    states = [part for part in re.split(r"[\r\n]", err) if part.startswith(name)]
    assert states, f"no {name!r} bar in {err!r}"
    return states[-1]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 6000-row store of 5 chunks (a few more rows in the last) and a model fitted to it
    with 1200-row chunks."""
    folder = tmp_path_factory.mktemp("small")
    make_mixture(folder / "data.zarr", 6000, 2, 2, chunk_rows=1300, seed=4)
    model = folder / "m.streamem"
    assert main(["fit", str(folder / "data.zarr"), "-o", str(model), "--chunk-size", "1200"]) == 0
    return folder


def test_generate_shows_chunks_and_keeps_a_summary_line(tmp_path, capsys):
    store = str(tmp_path / "g.zarr")
    out, err = call(
        capsys, "generate", store, "--samples", "1000", "--features", "2", "-k", "2",
        "--chunk-size", "300", "--progress", "--json",
    )  # fmt: skip
    summary = json.loads(out)  # the bars went to stderr
    assert summary["n_samples"] == 1000 and summary["written"] == [store]
    bar = last_bar(err, "generate")
    assert "100%" in bar and "4/4" in bar and "1,000 rows" in bar and "rows/s" in bar
    assert err.endswith("\n")  # the finished bar stays on screen, as one line


@pytest.mark.parametrize(
    ("command", "chunks", "rows"),
    [
        (["predict", "-o", "{out}/l.zarr"], "5/5", "6,000 rows"),
        (["predict", "-o", "{out}/l.zarr", "--proba"], "10/10", "12,000 rows"),
        (["impute", "-o", "{out}/i.zarr"], "5/5", "6,000 rows"),
        (["score"], "5/5", "6,000 rows"),
        (["update", "--dry-run"], "15/15", "18,000 rows"),  # score, update, score
    ],
)
def test_reading_commands_show_chunks_done_of_all(small, tmp_path, capsys, command, chunks, rows):
    name, *rest = command
    rest = [part.format(out=tmp_path) for part in rest]
    args = [name, str(small / "m.streamem"), str(small / "data.zarr"), *rest]
    out, err = call(capsys, *args, "--progress", "--json")
    assert json.loads(out)["n_samples"] == 6000
    bar = last_bar(err, name)
    assert "100%" in bar and chunks in bar and rows in bar, bar
    # --quiet wins over --progress; without a terminal there are no bars either
    for extra in (["--progress", "--quiet"], []):
        rest = [part.replace(".zarr", f"-{len(extra)}.zarr") for part in rest]
        args = [name, str(small / "m.streamem"), str(small / "data.zarr"), *rest]
        out, err = call(capsys, *args, *extra, "--json")
        assert err == "" and json.loads(out)["n_samples"] == 6000


def test_fit_bar_counts_iterations_after_the_initialisation(small, tmp_path, capsys):
    out, err = call(
        capsys, "fit", str(small / "data.zarr"), "-o", str(tmp_path / "m.streamem"),
        "--n-init", "2", "--progress", "--json",
    )  # fmt: skip
    n_iter = json.loads(out)["n_iter"]
    assert "initialising: 2 components, model 1/1, 6,000 sampled rows of 1 chunks" in err
    bar = last_bar(err, "GaussianMixture EM (initialised in")
    assert f"{n_iter}/{n_iter}" in bar and "100%" in bar  # the total: iterations run
    assert "log-likelihood" in bar


def test_the_demo_shows_its_write(capsys):
    out, err = call(capsys, "demo", "--size", "64KiB", "--chunk-size", "16KiB", "--progress")
    bar = last_bar(err, "write")
    assert "100%" in bar and "4/4" in bar and "2,048 rows" in bar
    assert "fitted out of core" in out


def documented_fields() -> dict[str, set[str]]:
    """The JSON fields of docs/guide/cli.rst's table, with the commands that write each."""
    text = (Path(__file__).parents[1] / "docs" / "guide" / "cli.rst").read_text()
    table = text.split("JSON output")[1].split("Renamed fields")[0]
    fields: dict[str, set[str]] = {}
    for row in table.split("   * - ")[2:]:
        cells = re.split(r"\n     - ", row)
        names = re.findall(r"``(\w+)``", cells[0])
        commands = set(re.findall(r"\w+", cells[3]))
        for name in names:
            fields[name] = commands
    return fields


def test_one_name_per_quantity_across_commands(small, tmp_path, capsys):
    data, model = str(small / "data.zarr"), str(small / "m.streamem")
    fitted = load(model)
    X = zarr.open_array(small / "data.zarr" / "data")[:]
    outputs = {}
    for command in (
        ["generate", str(tmp_path / "g.zarr"), "--samples", "100", "--features", "2"],
        ["fit", data, "-o", str(tmp_path / "f.streamem"), "--chunk-size", "1200"],
        ["info", model],
        ["score", model, data],
        ["predict", model, data, "-o", str(tmp_path / "l.zarr")],
        ["impute", model, data, "-o", str(tmp_path / "i.zarr")],
        ["update", model, data, "-o", str(tmp_path / "u.streamem")],
        ["select", data, "-k", "1..2", "--n-init", "1"],
        ["plot", model, "-o", str(tmp_path / "figures")],
        ["demo", "--size", "64KiB", "--chunk-size", "16KiB"],
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outputs[command[0]] = json.loads(call(capsys, *command, "--json")[0])

    documented = documented_fields()
    old_names = {"lower_bound", "n_rows_seen", "log_likelihood_before"}
    old_names |= {"log_likelihood_after", "seed", "path"}
    for command, summary in outputs.items():
        for field in set(summary) - old_names:
            assert field in documented, f"{command} writes {field!r}, not in docs/guide/cli.rst"
            assert command in documented[field], f"{command}: {field!r}"
    for field, commands in documented.items():
        for command in commands:
            if command in outputs and field not in ("elbo_per_row", "probabilities", "rates"):
                written = set(outputs[command])
                if command == "select":  # and in each row of its table
                    written |= set(outputs[command]["table"][0])
                assert field in written or field in ("covariances", "means"), (
                    f"docs/guide/cli.rst says {command} writes {field!r}"
                )

    # the same quantity, the same value under the one name
    score = fitted.score(data)  # the same chunks as the command's: the same bits
    assert score == pytest.approx(fitted.score(X), rel=1e-12)
    assert outputs["score"]["mean_log_likelihood"] == score
    assert outputs["info"]["mean_log_likelihood"] == fitted.lower_bound_
    assert outputs["update"]["mean_log_likelihood_before"] == score
    assert outputs["update"]["mean_log_likelihood_after"] == load(tmp_path / "u.streamem").score(
        data
    )
    for row in outputs["select"]["table"]:
        assert row["mean_log_likelihood"] == pytest.approx(row["log_likelihood"] / 6000, 1e-15)
    for command in ("generate", "predict", "impute", "score", "update", "select"):
        assert outputs[command]["n_samples"] == (100 if command == "generate" else 6000)
    assert outputs["update"]["n_samples_seen"] == 12000  # the fit's rows, then the update's
    # renamed fields keep their old names for one release, with the same values
    for command in ("fit", "info", "update", "demo"):
        summary = outputs[command]
        assert summary["lower_bound"] == summary["mean_log_likelihood"]
        assert summary["n_rows_seen"] == summary["n_samples_seen"]
    update = outputs["update"]
    assert update["log_likelihood_before"] == update["mean_log_likelihood_before"]
    assert update["log_likelihood_after"] == update["mean_log_likelihood_after"]
    assert outputs["generate"]["seed"] == outputs["generate"]["random_state"] == 0
    assert "lower_bound" not in outputs["score"]  # never was a field of score


def test_generate_writes_to_an_object_store(tmp_path, capsys):
    """``generate s3://…``: the same store as on disk, complete or absent (a real
    S3-compatible server on 127.0.0.1)."""
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    from streamem.datasets import load_truth

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": f"http://{host}:{port}"},
        }
        fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
        fs.mkdir("cli-generate")  # moto's buckets are shared by every server of the process
        url = "s3://cli-generate/generated.zarr"
        common = ["--samples", "1000", "--features", "2", "-k", "2", "--chunk-size", "300"]
        common += ["--storage-options", json.dumps(options), "--json"]
        out, _ = call(capsys, "generate", url, *common)
        assert json.loads(out)["written"] == [url]
        call(capsys, "generate", str(tmp_path / "local.zarr"), *common)
        remote = zarr.open_group(url, mode="r", storage_options=options)
        local = zarr.open_group(tmp_path / "local.zarr", mode="r")
        for name in ("data", "labels"):
            assert remote[name].chunks == local[name].chunks
            np.testing.assert_array_equal(remote[name][:], local[name][:])
        truth = dict(remote.attrs["streamem_truth"])
        assert truth["path"] == url
        np.testing.assert_array_equal(truth["means"], load_truth(tmp_path / "local.zarr").means)
        fs.invalidate_cache()
        assert fs.ls("cli-generate") == ["cli-generate/generated.zarr"]  # no temporary left
        assert main(["generate", url, *common]) == 2  # exists: refused without --overwrite
        assert "--overwrite" in capsys.readouterr().err
        fs.rm("cli-generate", recursive=True)
    finally:
        server.stop()


def test_info_takes_only_the_options_that_act_on_it(tmp_path, capsys):
    from streamem.cli import build_parser

    parser = build_parser()
    info = next(a for a in parser._actions if a.dest == "command").choices["info"]
    shown = {o for a in info._actions if a.help != SUPPRESS for o in a.option_strings}
    assert shown == {"-h", "--help", "--json", "--debug", "--storage-options"}  # MODEL: a URL
    for option in ("--cluster", "--scheduler", "--progress", "--quiet"):
        assert option not in info.format_help()
    with pytest.raises(SystemExit) as exit:
        main(["info", "m.streamem", "--cluster", "local:2"])
    assert exit.value.code == 2 and "unrecognized arguments: --cluster" in capsys.readouterr().err
    # --quiet, which scripts pass to every command, is still taken
    assert main(["info", str(tmp_path / "missing.streamem"), "--quiet"]) == 2
    assert "No such model file" in capsys.readouterr().err


def test_select_warns_in_one_line_and_starts_three_times(small, capsys):
    out, err = call(capsys, "select", str(small / "data.zarr"), "-k", "1..2", "--json")
    assert err.splitlines() == [
        "streamem select: warning: the best number of components by BIC, 2, is at the edge "
        "of the range tried (1–2): try a wider range."
    ]
    from streamem import GaussianMixture, select_n_components

    with pytest.warns(UserWarning, match="at the edge"):  # the Python function's defaults
        expected = select_n_components(
            GaussianMixture(random_state=0, chunk_size="64MiB"), str(small / "data.zarr"), [1, 2]
        )
    table = json.loads(out)["table"]
    assert [row["bic"] for row in table] == [row["bic"] for row in expected.table]


@slow
def test_quiet_silences_the_local_cluster(small):
    result = run(
        "score", str(small / "m.streamem"), str(small / "data.zarr"), "--cluster", "local:1",
        "--quiet", "--json",
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == ""
    expected = load(small / "m.streamem").score(str(small / "data.zarr"))
    assert json.loads(result.stdout)["mean_log_likelihood"] == pytest.approx(expected, 1e-12)


@pytest.mark.parametrize(
    "command",
    [
        ["fit", "{data}", "-o", "{tmp}/m.streamem", "--summary", "gs://bucket/fit.json"],
        ["select", "{data}", "-k", "1..2", "--plot", "s3://bucket/bic.png"],
        ["plot", "{model}", "-o", "s3://bucket/figures"],
    ],
)
def test_local_files_refuse_urls_before_any_work(small, tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    fields = {"data": small / "data.zarr", "model": small / "m.streamem", "tmp": tmp_path}
    code = main([part.format(**fields) for part in command])
    err = capsys.readouterr().err
    assert code == 2 and "is a URL; summaries and figures" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written, no local folder 's3:'
