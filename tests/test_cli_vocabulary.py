"""One vocabulary across the subcommands: the same option for the same thing, help with
defaults, --version, JSON errors, a closed pipe."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from streamem import GaussianMixture
from streamem.cli import build_parser, main


def subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def options(name):
    return {o for a in subcommands()[name]._actions for o in a.option_strings}


READS_DATA = ["fit", "predict", "impute", "update", "score", "plot", "select"]
WRITES = ["generate", "fit", "predict", "impute", "update", "plot", "select"]


@pytest.mark.parametrize("name", READS_DATA)
def test_every_reader_takes_the_xarray_and_storage_options(name):
    assert {"--sample-dim", "--variables", "--storage-options"} <= options(name)


@pytest.mark.parametrize("name", WRITES)
def test_every_writer_takes_output_and_overwrite(name):
    assert {"-o", "--output", "--overwrite"} <= options(name)


@pytest.mark.parametrize("name", ["generate", "fit", "select", "demo"])
def test_components_are_k_everywhere(name):
    assert {"-k", "--components"} <= options(name)


def test_every_subcommand_shows_defaults_and_describes_positionals():
    for name, parser in subcommands().items():
        text = parser.format_help()
        assert "(default:" in text, name
        for action in parser._actions:
            if not action.option_strings:
                assert action.help, f"{name} {action.dest}"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith("streamem ")


def test_old_spellings_still_work(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["select", "x.zarr", "--k", "1..3"])
    assert args.k == [1, 2, 3]
    args = parser.parse_args(["generate", "x.zarr", "--seed", "4", "--chunk-rows", "10"])
    assert args.random_state == 4 and args.chunk_size == 10
    args = parser.parse_args(["predict", "m", "d", "--out", "o.zarr"])
    assert args.output == "o.zarr"
    args = parser.parse_args(["plot", "m", "--features", "1,2", "--sample", "7", "--out", "f"])
    assert args.pair == [1, 2] and args.samples == 7 and args.output == "f"


def test_json_errors_are_json(tmp_path, capsys):
    code = main(["info", str(tmp_path / "missing.streamem"), "--json"])
    error = json.loads(capsys.readouterr().err)
    assert code == 2 and error["command"] == "info" and "No such model file" in error["error"]


def test_a_closed_pipe_exits_cleanly(tmp_path):
    model = tmp_path / "m.streamem"
    GaussianMixture(2, random_state=0).fit(np.random.default_rng(0).normal(size=(200, 2))).save(
        model
    )
    result = subprocess.run(
        f"{sys.executable} -m streamem info {model} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.startswith("GaussianMixture") and "Broken pipe" not in result.stderr


def test_xarray_zarr_stores_read_with_sample_dim_and_variables(tmp_path, capsys):
    import xarray as xr
    import zarr

    rng = np.random.default_rng(0)
    profiles = np.arange(400) * 10
    ds = xr.Dataset(
        {
            "temperature": (("profile",), np.r_[rng.normal(size=200), rng.normal(size=200) + 6]),
            "salinity": (("profile",), rng.normal(size=400)),
        },
        coords={"profile": profiles},
    )
    ds.to_zarr(tmp_path / "argo.zarr", consolidated=False)
    model = str(tmp_path / "m.streamem")
    argo = str(tmp_path / "argo.zarr")
    common = ["--variables", "temperature,salinity", "--sample-dim", "profile", "--quiet"]
    assert main(["fit", argo, "-k", "2", "-o", model, *common]) == 0
    assert main(["predict", model, argo, "-o", str(tmp_path / "l.zarr"), *common]) == 0
    labels = zarr.open_group(tmp_path / "l.zarr")
    assert labels["profile"][:].tolist() == profiles.tolist()  # the sample coordinate kept
