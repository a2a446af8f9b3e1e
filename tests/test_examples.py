"""The worked examples in scripts/examples run and print the numbers they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "scripts" / "examples"


def run(name: str) -> str:
    """Run an example in a fresh interpreter; its standard output."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def numbers(pattern: str, text: str) -> list[float]:
    """The numbers captured by ``pattern`` at its first match in ``text``."""
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in output:\n{text}"
    return [float(group) for group in match.groups()]


def test_two_coins():
    out = run("two_coins.py")
    # the paper's figure: 0.71 / 0.58 after one step, 0.80 / 0.52 after ten
    assert numbers(r"\n\s+1\s+(\S+)\s+(\S+)", out) == [0.7130, 0.5813]
    assert numbers(r"\n\s+10\s+(\S+)\s+(\S+)", out) == [0.7967, 0.5197]
    assert numbers(r"θ_A = (\S+), θ_B = (\S+)\n", out) == [0.7968, 0.5196]
    weights = numbers(r"P\(pick A\) = (\S+), P\(pick B\) = (\S+)", out)
    assert sum(weights) == pytest.approx(1.0, abs=1e-4) and weights != [0.5, 0.5]


def test_gaussian_1d():
    out = run("gaussian_1d.py")
    assert numbers(r"weight of N\(0, 1\)\s+(\S+)\s+(\S+)", out)[0] == 0.3
    (worst,) = numbers(r"/ std err: (\S+)", out)
    assert worst < 3.0  # every estimate within three standard errors of the truth


def test_grouped_gaussian():
    out = run("grouped_gaussian.py")
    true = re.search(r"true:\s+(.*)\n", out).group(1)
    assert re.search(r"estimated:\s+(.*)\n", out).group(1) == true
    for name, truth in (("mean 0", 1), ("sd 0", 1), ("mean 1", 3), ("sd 1", 5)):
        _, estimate, error = numbers(rf"{name}\s+(\S+)\s+(\S+)\s+(\S+)", out)
        assert abs(estimate - truth) < 3 * error


def test_gaussian_2d_restarts():
    out = run("gaussian_2d_restarts.py")
    finals = [float(v) for v in re.findall(r"\n\s+\d+\s+\d+\s+(-\d+\.\d+)", out)]
    assert len(finals) == 6 and max(finals) - min(finals) > 0.1  # restarts disagree
    (kept,) = numbers(r"kept mean log-likelihood (\S+)", out)
    assert kept == pytest.approx(max(finals), abs=1e-5)


def test_digits_bernoulli():
    out = run("digits_bernoulli.py")
    (seconds,) = numbers(r"in (\S+) s\n", out)
    purity, rand_index = numbers(r"purity (\S+), adjusted Rand index (\S+)", out)
    assert seconds < 20 and purity > 0.7 and rand_index > 0.5


def test_updating_a_model(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "updating_a_model.py"), str(tmp_path / "u.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    first, last = numbers(r"day 0: (\S+), day 39: (\S+)\n", result.stdout)
    assert last < first - 0.2  # drift shows as a falling log-likelihood of new data
    counting = numbers(r"counting model \[\s*(\S+)\s+(\S+)\s*\]", result.stdout)
    forgetting = numbers(r"half-life model \[\s*(\S+)\s+(\S+)\s*\]", result.stdout)
    truth = [4.85, 4.1]
    assert np.hypot(*np.subtract(forgetting, truth)) < np.hypot(*np.subtract(counting, truth))
    assert (tmp_path / "u.png").stat().st_size > 10_000


def test_missing_values():
    out = run("missing_values.py")
    imputed, baseline = numbers(r"impute (\S+), column means (\S+)", out)
    assert imputed < 0.6 * baseline


@pytest.mark.slow
def test_choosing_k(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "choosing_k.py"), str(tmp_path / "k.png")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    # both ways find the four components the store was drawn from, with their weights
    assert numbers(r"BIC sweep: K = (\d+)", result.stdout) == [4]
    assert numbers(r"Dirichlet process: K = (\d+) .* converged: True", result.stdout) == [4]
    true = numbers(r"true weights: (\S+) (\S+) (\S+) (\S+)\n", result.stdout)
    found = numbers(r"its weights above 1%: (\S+) (\S+) (\S+) (\S+)\n", result.stdout)
    np.testing.assert_allclose(found, true, atol=0.01)
    assert (tmp_path / "k.png").stat().st_size > 10_000
