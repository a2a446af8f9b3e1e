"""Every subcommand answers bad input with exit code 2 and one line, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from streamem import GaussianMixture, make_mixture
from streamem.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-inputs")
    make_mixture(folder / "data.zarr", 3000, 2, 2, chunk_rows=1000, seed=0)
    model = GaussianMixture(2, random_state=0).fit(np.random.default_rng(0).normal(size=(300, 2)))
    model.save(folder / "model.streamem")
    (folder / "garbage.streamem").write_bytes(b"not a model")
    np.save(folder / "huge.npy", np.full((100, 2), 1e300))
    np.save(folder / "three.npy", np.zeros((100, 3)))
    np.save(folder / "cut.npy", np.zeros((1000, 2)))
    (folder / "cut.npy").write_bytes((folder / "cut.npy").read_bytes()[:3000])
    (folder / "results").mkdir()
    (folder / "exists.zarr").mkdir()
    return folder


CASES = {
    "demo-features-0": ("demo --features 0", "--features: must be at least 1"),
    "demo-size": ("demo --size lots", "--size: expected a positive size"),
    "generate-chunk-rows-0": ("generate {f}/new.zarr --chunk-rows 0", "must be at least 1"),
    "generate-samples": ("generate {f}/new.zarr --samples -5", "must be at least 1"),
    "generate-exists": ("generate {f}/exists.zarr --samples 10", "pass --overwrite"),
    "fit-missing": ("fit {f}/missing.zarr", "No such Zarr store"),
    "fit-chunk-size": ("fit {f}/data.zarr/data --chunk-size -5MiB", "--chunk-size"),
    "fit-k-0": ("fit {f}/data.zarr/data -k 0", "must be at least 1"),
    "fit-huge-values": ("fit {f}/huge.npy -o {f}/h.streamem", "rescale the features"),
    "fit-truncated-npy": ("fit {f}/cut.npy -o {f}/c.streamem", "may be truncated"),
    "fit-into-directory": ("fit {f}/data.zarr/data -o {f}/results", "is a directory"),
    "fit-exists": ("fit {f}/data.zarr/data -o {f}/model.streamem", "pass --overwrite"),
    "select-exists": ("select {f}/data.zarr/data -o {f}/model.streamem", "pass --overwrite"),
    "update-output-exists": (
        "update {f}/model.streamem {f}/data.zarr/data -o {f}/garbage.streamem",
        "pass --overwrite",
    ),
    "fit-covariance": ("fit {f}/data.zarr/data --covariance-type banana", "invalid choice"),
    "predict-bad-model": (
        "predict {f}/garbage.streamem {f}/data.zarr --out {f}/l.zarr",
        "damaged",
    ),
    "predict-exists": (
        "predict {f}/model.streamem {f}/data.zarr/data --out {f}/exists.zarr",
        "pass --overwrite",
    ),
    "update-missing-data": ("update {f}/model.streamem {f}/missing.zarr", "No such Zarr store"),
    "info-missing": ("info {f}/missing.streamem", "No such model file"),
    "info-garbage": ("info {f}/garbage.streamem", "damaged"),
    "score-wrong-width": ("score {f}/model.streamem {f}/three.npy", "3 features"),
    "plot-garbage": ("plot {f}/garbage.streamem --out {f}/plots", "damaged"),
    "select-k-0": ("select {f}/data.zarr/data --k 0..2", "n_components"),
    "select-k-text": ("select {f}/data.zarr/data --k some", "expected 'a..b'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(case, files, capsys):
    command, expected = CASES[case]
    argv = [*command.format(f=files).split(), "--quiet"]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"streamem {argv[0]}: error: "), lines[0]
    assert expected in lines[0]
    assert "Traceback" not in captured.err
