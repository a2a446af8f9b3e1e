"""Model files: what saving may and may not replace; loading hostile or damaged files."""

from __future__ import annotations

import functools
import importlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from sklearn.base import clone

import streamem
import streamem.cli
from streamem import (
    BernoulliMixture,
    BinomialMixture,
    GaussianMixture,
    GroupedGaussianMixture,
    ModelFileError,
    MultinomialMixture,
    PoissonMixture,
)
from streamem.io import MANIFEST, read_archive, to_zarr

from .conftest import make_blobs

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def fitted():
    return GaussianMixture(2, random_state=0, max_iter=5).fit(make_blobs(200, 2, 2))


def test_save_refuses_to_replace_a_directory(fitted, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "precious.txt").write_text("user data")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fitted.save(results)
    assert (results / "precious.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_save_refuses_an_empty_directory_too(fitted, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IsADirectoryError):
        fitted.save(tmp_path / "empty")
    assert (tmp_path / "empty").is_dir()


def test_save_into_a_directory_by_file_name(fitted, tmp_path):
    fitted.save(tmp_path / "model.streamem")
    np.testing.assert_array_equal(streamem.load(tmp_path / "model.streamem").means_, fitted.means_)


def test_to_zarr_refuses_to_replace_a_file(tmp_path):
    target = tmp_path / "labels.zarr"
    target.write_text("not a store")
    with pytest.raises(NotADirectoryError):
        to_zarr(np.arange(4), target, overwrite=True)
    assert target.read_text() == "not a store"


# -- loading hostile or damaged files ---------------------------------------------------------


class Entry(NamedTuple):
    """A zip member for :func:`zip_bytes`: raw ``data``, any method, sizes and checksum."""

    name: str
    data: bytes
    method: int = zipfile.ZIP_STORED
    size: int | None = None  # uncompressed size; default len(data)
    crc: int | None = None
    stored: int | None = None  # compressed size; default len(data)


def zip_bytes(entries: list[Entry]) -> bytes:
    """A zip archive of ``entries`` exactly as given (duplicates, lies about sizes...)."""
    body, directory = bytearray(), bytearray()
    for entry in entries:
        name = entry.name.encode()
        size = len(entry.data) if entry.size is None else entry.size
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        stored = len(entry.data) if entry.stored is None else entry.stored
        common = (entry.method, 0, 0x21, crc, stored, size, len(name))
        directory += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, *common, 0, 0, 0, 0, 0, len(body)
        )
        directory += name
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, *common, 0) + name + entry.data
    count = len(entries)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), len(body), 0)
    return bytes(body + directory + end)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(header: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def fitted_of(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["content"]["__dict__"]["fitted"]["__dict__"]


def rewrite(
    data: bytes,
    path: Path,
    edit: Callable[[dict[str, Any]], None] | None = None,
    replace: dict[str, bytes] | None = None,
    extra: tuple[Entry, ...] = (),
) -> Path:
    """Write the model file ``data`` to ``path``, its manifest edited, members replaced."""
    content = members(data)
    if edit is not None:
        manifest = json.loads(content[MANIFEST])
        edit(manifest)
        content[MANIFEST] = json.dumps(manifest).encode()
    content.update(replace or {})
    entries = [Entry(name, value) for name, value in content.items()]
    path.write_bytes(zip_bytes(entries + list(extra)))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    """Small model files: batch Gaussian, batch Bernoulli, online (stepwise) Gaussian."""
    folder = tmp_path_factory.mktemp("models")
    X = make_blobs(200, 2, 2)
    B = (np.random.RandomState(0).random_sample((200, 4)) < 0.3).astype(float)
    models = {
        "gaussian": GaussianMixture(2, random_state=0, max_iter=3).fit(X),
        "bernoulli": BernoulliMixture(2, random_state=0, max_iter=3).fit(B),
        "online": GaussianMixture(2, random_state=0).partial_fit(X),
    }
    for name, model in models.items():
        model.save(folder / name)
    return {name: (folder / name).read_bytes() for name in models}


@pytest.fixture
def no_cli(monkeypatch):
    """Fail the test if anything runs the command line or exits."""

    def fail(*args, **kwargs):
        raise AssertionError("the CLI ran or sys.exit was called while loading")

    monkeypatch.setattr(sys, "exit", fail)
    monkeypatch.setattr(streamem.cli, "main", fail)


def refused(path: Path, match: str) -> ModelFileError:
    with pytest.raises(ModelFileError, match=match) as info:
        streamem.load(path)
    assert str(path) in str(info.value)
    return info.value


def round_trip_cases():
    rng = np.random.RandomState(0)
    X = make_blobs(200, 2, 2)  # as many features as components: (k, d) arrays are square
    counts = rng.poisson(2.0, size=(200, 3)).astype(float)
    binary = (counts > 2).astype(float)
    trials = np.column_stack([counts[:, :2], counts[:, :2].sum(axis=1) + 1])
    categories = rng.randint(0, 3, size=(200, 2)).astype(float)
    return [
        *((GaussianMixture(2, covariance_type=c, max_iter=3), X) for c in COVARIANCE_TYPES),
        (GaussianMixture(2, algorithm="online", average=True, max_iter=2), X),
        (BernoulliMixture(2, max_iter=3), binary),
        (BinomialMixture(2, trials_column=-1, max_iter=3), trials),
        (MultinomialMixture(2, n_categories=3, max_iter=3), categories),
        (MultinomialMixture(2, max_iter=3), counts + 1),
        (PoissonMixture(2, max_iter=3), counts),
        (GroupedGaussianMixture(2, max_iter=3), X),
    ]


COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@pytest.mark.parametrize(
    ("estimator", "X"), round_trip_cases(), ids=lambda v: v.__class__.__name__
)
@pytest.mark.parametrize("online", [False, True], ids=["fit", "partial_fit"])
def test_every_estimator_loads_and_continues(estimator, X, online, tmp_path):
    estimator = clone(estimator).set_params(random_state=0, max_iter=3)
    model = estimator.partial_fit(X[:100]) if online else estimator.fit(X)
    model.save(tmp_path / "model")
    loaded = streamem.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    if online:
        np.testing.assert_array_equal(
            loaded.partial_fit(X[100:]).weights_, model.partial_fit(X[100:]).weights_
        )


def test_checkpoints_still_read(tmp_path):
    path = tmp_path / "fit.ckpt"
    calls = []

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        GaussianMixture(2, max_iter=5, checkpoint=str(path), callback=stop).fit(make_blobs())
    kind, content = read_archive(path)
    assert kind == "checkpoint" and {"fingerprint", "progress"} <= set(content)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such model file"):
        streamem.load(tmp_path / "absent.streamem")


# -- 1. nothing but registered estimators and streamem's plain data classes is created ---------


def test_main_module_guards_its_cli(no_cli, monkeypatch):
    monkeypatch.delitem(sys.modules, "streamem.__main__", raising=False)
    try:
        importlib.import_module("streamem.__main__")
    finally:
        sys.modules.pop("streamem.__main__", None)
        monkeypatch.delattr(streamem, "__main__", raising=False)


@pytest.mark.parametrize("where", ["class", "tuple", "dataclass"])
def test_a_class_in_main_is_never_imported(files, tmp_path, no_cli, monkeypatch, where):
    monkeypatch.delitem(sys.modules, "streamem.__main__", raising=False)

    def edit(manifest):
        content = manifest["content"]["__dict__"]
        if where == "class":
            content["class"] = "streamem.__main__:main"
        else:
            tag = f"__{where}__"
            fitted_of(manifest)["extra_"] = {tag: "streamem.__main__:main", "fields": {}}

    refused(rewrite(files["gaussian"], tmp_path / "m", edit), "refusing to create")
    assert "streamem.__main__" not in sys.modules


@pytest.mark.parametrize(
    "name",
    [
        "streamem.selection:Selection",
        "streamem.io:ModelFileError",
        "streamem.estimators._base:MixtureEstimator",
        "sklearn.mixture:GaussianMixture",
        "builtins:dict",
        ["streamem.estimators.gaussian", "GaussianMixture"],
    ],
)
def test_only_registered_estimators_are_created(files, tmp_path, name):
    def edit(manifest):
        manifest["content"]["__dict__"]["class"] = name

    refused(rewrite(files["gaussian"], tmp_path / "m", edit), "not a streamem estimator")


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ("__tuple__", "os:system"),
        ("__tuple__", "streamem.cli:UsageError"),
        ("__tuple__", "streamem.io:ModelFileError"),
        ("__tuple__", "streamem.not_a_module:Params"),
        ("__tuple__", "streamem.plotting:Figure"),
        ("__tuple__", "streamem.families.gaussian:Gaussian"),
        ("__dataclass__", "streamem.families.gaussian:GaussianParams"),
        ("__dataclass__", "streamem.io:dataclasses"),
    ],
)
def test_values_are_only_streamem_namedtuples_and_dataclasses(files, tmp_path, tag, name):
    imported = set(sys.modules)

    def edit(manifest):
        fitted_of(manifest)["extra_"] = {tag: name, "fields": {}}

    refused(rewrite(files["gaussian"], tmp_path / "m", edit), "refusing to create")
    assert not {m for m in set(sys.modules) - imported if m.startswith("streamem")}


# -- 2. memory: what is read is bounded by the file's size ------------------------------------


@functools.cache
def bomb() -> Entry:
    """A 4 MB deflated member that inflates to almost 4 GiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = compressor.compress(bytes(2**20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = piece * 4095 + compressor.flush()
    return Entry("bomb.npy", data, zipfile.ZIP_DEFLATED, size=4095 * 2**20, crc=0)


def peak_memory(function: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_unreferenced_bomb_member_is_never_read(files, tmp_path):
    path = rewrite(files["gaussian"], tmp_path / "m", extra=(bomb(),))
    assert path.stat().st_size < 5 * 2**20
    assert peak_memory(lambda: streamem.load(path)) < 50 * 2**20


def test_referenced_bomb_member_is_refused_unread(files, tmp_path):
    def edit(manifest):
        fitted_of(manifest)["means_"] = {"__array__": "bomb.npy"}

    path = rewrite(files["gaussian"], tmp_path / "m", edit, extra=(bomb(),))
    assert peak_memory(lambda: refused(path, "'bomb.npy' is compressed")) < 50 * 2**20


def test_member_larger_than_the_file_is_refused(files, tmp_path):
    data = npy(np.zeros((2, 2)))
    huge = Entry("means.npy", data, size=2**31, stored=2**31)

    def edit(manifest):
        fitted_of(manifest)["means_"] = {"__array__": "means.npy"}

    path = rewrite(files["gaussian"], tmp_path / "m", edit, extra=(huge,))
    refused(path, "'means.npy' says it holds 2147483648 bytes")


@pytest.mark.parametrize(
    ("header", "data", "match"),
    [
        ({"descr": "<f8", "fortran_order": False, "shape": (10**12,)}, bytes(32), "declares"),
        ({"descr": "<f8", "fortran_order": False, "shape": (2, 2)}, bytes(24), "declares"),
        ({"descr": "<f8", "fortran_order": False, "shape": (2, 2)}, bytes(40), "declares"),
        ({"descr": "|O", "fortran_order": False, "shape": (2,)}, bytes(16), "unsupported dtype"),
        ({"descr": [("a", "<f8")], "fortran_order": False, "shape": (2,)}, bytes(16), "dtype"),
        ({"descr": "<f8", "fortran_order": False, "shape": (-2, -2)}, bytes(32), "shape"),
    ],
)
def test_npy_header_is_checked_before_allocating(files, tmp_path, header, data, match):
    member = "value.fitted.means_.npy"
    path = rewrite(files["gaussian"], tmp_path / "m", replace={member: npy_header(header) + data})
    assert peak_memory(lambda: refused(path, match)) < 50 * 2**20


def test_manifest_size_is_bounded(files, tmp_path, monkeypatch):
    monkeypatch.setattr(streamem.io, "MAX_MANIFEST_BYTES", 1000)
    refused(rewrite(files["gaussian"], tmp_path / "m"), "'model.json' says it holds")


def test_compressed_members_are_refused(files, tmp_path):
    path = tmp_path / "m"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members(files["gaussian"]).items():
            archive.writestr(name, data)
    refused(path, r"is compressed; .* \(re-pack")


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_manifest_is_refused(files, tmp_path, depth):
    text = members(files["gaussian"])[MANIFEST].decode()
    nested = "[" * depth + "]" * depth
    text = text.replace('"tol": 0.001', f'"tol": {nested}')
    path = rewrite(files["gaussian"], tmp_path / "m", replace={MANIFEST: text.encode()})
    refused(path, "nested more than 64 levels")


def test_duplicated_members_are_refused(files, tmp_path):
    means = members(files["gaussian"])["value.fitted.means_.npy"]
    path = rewrite(
        files["gaussian"], tmp_path / "m", extra=(Entry("value.fitted.means_.npy", means),)
    )
    refused(path, "more than one member called 'value.fitted.means_.npy'")


# -- 3. tampered content -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["predict", "__class__", "_cache_", "not an identifier_"])
def test_fitted_entries_cannot_replace_methods(files, tmp_path, name):
    def edit(manifest):
        fitted_of(manifest)[name] = 1

    error = refused(rewrite(files["gaussian"], tmp_path / "m", edit), "fitted attribute")
    assert repr(name) in str(error)


ARRAY_TAMPERING = [
    ("gaussian", "means_", np.zeros((3, 2)), r"means_ has shape \(3, 2\), expected \(2, 2\)"),
    ("gaussian", "means_", np.zeros((2, 2), dtype=int), "means_ must be a float array"),
    ("gaussian", "means_", np.array([[0.0, np.nan], [1, 1]]), "means_ holds NaN or infinite"),
    ("gaussian", "weights_", np.array([0.7, 0.7]), "weights_ must be non-negative and sum to 1"),
    ("gaussian", "weights_", np.array([-0.5, 1.5]), "weights_ must be non-negative"),
    ("gaussian", "weights_", np.array([1e308, 1e308]), "weights_ must be non-negative"),
    ("gaussian", "precisions_cholesky_", -np.eye(2)[None].repeat(2, 0), "positive diagonal"),
    ("gaussian", "precisions_cholesky_", np.ones((2, 2, 2)), "triangular"),
    ("gaussian", "covariances_", np.eye(2), "covariances_ has shape"),
    ("gaussian", "covariances_", np.zeros((2, 2, 2)), "covariances_ must have a positive"),
    ("bernoulli", "probabilities_", np.full((2, 4), 1.5), r"probabilities_ must lie in \[0, 1\]"),
    ("bernoulli", "probabilities_", np.full((2, 3), 0.5), "probabilities_ has shape"),
    (
        "online",
        "stepwise_state_.models.0.weights",
        np.array([1.0]),
        r"stepwise_state_.models\[0\].weights has shape",
    ),
    (
        "online",
        "stepwise_state_.models.0.params.means",
        np.zeros((2, 3)),
        r"stepwise_state_.models\[0\].params.means has shape",
    ),
]


@pytest.mark.parametrize(("file", "attribute", "value", "match"), ARRAY_TAMPERING)
def test_tampered_arrays_are_refused(files, tmp_path, file, attribute, value, match):
    member = f"value.fitted.{attribute}.npy"
    assert member in members(files[file])
    refused(rewrite(files[file], tmp_path / "m", replace={member: npy(value)}), match)


SCALAR_TAMPERING = [
    ("n_features_in_", 3, "means_ has shape"),
    ("n_features_in_", "2", "n_features_in_ must be an int"),
    ("n_features_in_", True, "n_features_in_ must be an int"),
    ("n_iter_", -1, "n_iter_ must be an int"),
    ("converged_", "yes", "converged_ must be True or False"),
    ("lower_bound_", "NaN", "lower_bound_ must be a number"),
    ("lower_bounds_", [0.0, "x"], r"lower_bounds_\[1\] must be a number"),
    ("weights_", [0.5, 0.5], "weights_ must be a float array"),
]


@pytest.mark.parametrize(("attribute", "value", "match"), SCALAR_TAMPERING)
def test_tampered_fitted_values_are_refused(files, tmp_path, attribute, value, match):
    def edit(manifest):
        fitted_of(manifest)[attribute] = value

    refused(rewrite(files["gaussian"], tmp_path / "m", edit), match)


@pytest.mark.parametrize(
    ("parameter", "value", "match"),
    [
        ("n_components", 3, r"weights_ has shape \(2,\), expected \(3,\)"),
        ("n_components", 0, "n_components must be an int"),
        ("covariance_type", "banana", "covariance_type is 'banana'"),
        ("banana", 1, "GaussianMixture has no parameter 'banana'"),
    ],
)
def test_tampered_parameters_are_refused(files, tmp_path, parameter, value, match):
    def edit(manifest):
        manifest["content"]["__dict__"]["params"]["__dict__"][parameter] = value

    refused(rewrite(files["gaussian"], tmp_path / "m", edit), match)


def test_estimators_load_by_a_re_exported_name(files, tmp_path):
    def edit(manifest):
        manifest["content"]["__dict__"]["class"] = "streamem:GaussianMixture"

    assert type(streamem.load(rewrite(files["gaussian"], tmp_path / "m", edit))) is GaussianMixture


def test_an_estimator_without_parameters_loads(files, tmp_path):
    def edit(manifest):
        fitted = fitted_of(manifest)
        for name in list(fitted):
            if name != "n_features_in_":
                del fitted[name]

    loaded = streamem.load(rewrite(files["gaussian"], tmp_path / "m", edit))
    assert vars(loaded)["n_features_in_"] == 2


def test_removed_attribute_is_refused(files, tmp_path):
    def edit(manifest):
        del fitted_of(manifest)["weights_"]

    refused(rewrite(files["gaussian"], tmp_path / "m", edit), "lack weights_")


def _set(manifest, keys, value):
    node = manifest
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


STATE = ("content", "__dict__", "fitted", "__dict__", "stepwise_state_")
MANIFEST_EDITS = [
    (("content",), []),
    (("content", "__dict__"), 5),
    (("content", "__dict__", "fitted"), {"__dict__": 5}),
    (("content", "__dict__", "fitted", "__dict__", "means_"), {"__array__": 5}),
    (("content", "__dict__", "fitted", "__dict__", "means_"), {"__array__": "absent.npy"}),
    (("content", "__dict__", "fitted", "__dict__", "means_"), {"__array__": MANIFEST}),
    (("content", "__dict__", "class"), ["streamem.estimators.gaussian", "GaussianMixture"]),
    (("content", "__dict__", "extra"), 1),
    (("kind",), 5),
    (("kind",), "checkpoint"),
    (("version",), "1"),
    (("version",), 99),
    (("format",), "zip"),
    ((*STATE, "fields"), {"banana": 1}),
    ((*STATE, "fields"), 7),
    ((*STATE, "__tuple__"), "streamem.families.gaussian:GaussianParams"),
    ((*STATE, "unexpected"), 1),
]


@pytest.mark.parametrize(("keys", "value"), MANIFEST_EDITS, ids=lambda v: str(v)[:40])
def test_manifest_edits_become_model_file_errors(files, tmp_path, keys, value):
    path = rewrite(files["online"], tmp_path / "m", lambda m: _set(m, keys, value))
    with pytest.raises(ModelFileError) as info:
        streamem.load(path)
    assert str(path) in str(info.value)


def test_manifest_that_is_not_an_object(files, tmp_path):
    path = rewrite(files["gaussian"], tmp_path / "m", replace={MANIFEST: b"[1, 2]"})
    refused(path, "does not describe a streamem-model file")


def test_cli_info_on_a_tampered_file_says_one_line(files, tmp_path):
    member = "value.fitted.means_.npy"
    path = rewrite(files["gaussian"], tmp_path / "m", replace={member: npy(np.zeros((3, 2)))})
    result = subprocess.run(
        [sys.executable, "-m", "streamem", "info", str(path)],
        capture_output=True,
        text=True,
        cwd=Path(streamem.__file__).parents[1],
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "means_ has shape (3, 2)" in result.stderr
    assert str(path) in result.stderr


# -- 4. fuzzing: only ModelFileError comes out, nothing is run or written -----------------------

CLASS_NAMES = [
    "streamem.__main__:main",
    "streamem.cli:main",
    "streamem.cli:UsageError",
    "streamem.plotting:plot_lower_bound",
    "os:system",
    "builtins:eval",
    "streamem.io:ModelFileError",
    "streamem.selection:Selection",
    "streamem.sources:Rows",
    "streamem.datasets:MixtureTruth",
    "streamem:GaussianMixture",
    "streamem.estimators._base:MixtureEstimator",
    "streamem.estimators.gaussian:GaussianMixture",
    "streamem.estimators.discrete:BernoulliMixture",
    "streamem.estimators.discrete:PoissonMixture",
    "streamem.families._base:Mixture",
    "streamem.families.gaussian:Gaussian",
    "streamem.families.gaussian:GaussianParams",
    "streamem.families.bernoulli:BernoulliParams",
    "streamem.drivers.stepwise:StepwiseState",
    "streamem.estep:EStepResult",
]


ARRAY_NAMES = ["value.fitted.means_.npy", "value.fitted.weights_.npy", MANIFEST, "absent.npy"]
TAGS = ["__tuple__", "__dataclass__"]


def tagged(children: st.SearchStrategy) -> st.SearchStrategy:
    fields = st.dictionaries(st.text(max_size=6), children, max_size=3)
    return st.one_of(
        st.builds(lambda name: {"__array__": name}, st.sampled_from(ARRAY_NAMES)),
        st.builds(lambda value: {"__dict__": value}, fields),
        st.builds(
            lambda tag, name, value: {tag: name, "fields": value},
            st.sampled_from(TAGS),
            st.sampled_from(CLASS_NAMES),
            fields,
        ),
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(CLASS_NAMES),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=6), children, max_size=3)
        | tagged(children)
    ),
    max_leaves=6,
)
small_arrays = arrays(
    dtype=st.sampled_from(["<f8", "<f4", "<i8", "|b1", "<c16", "<U3", ">f8"]),
    shape=array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
)
FUZZ = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}


def check_load(data: bytes) -> None:
    """Load ``data``: only ModelFileError comes out; nothing is run, imported or written."""

    def fail(*args, **kwargs):
        raise AssertionError("the CLI ran or sys.exit was called while loading")

    with (
        tempfile.TemporaryDirectory() as folder,
        mock.patch.object(sys, "exit", fail),
        mock.patch.object(streamem.cli, "main", fail),
    ):
        path = Path(folder) / "model.streamem"
        path.write_bytes(data)
        imported = set(sys.modules)
        try:
            streamem.load(path)
        except ModelFileError as exc:
            assert str(path) in str(exc)
        assert os.listdir(folder) == ["model.streamem"]
        assert not {m for m in set(sys.modules) - imported if m.startswith("streamem")}


@settings(max_examples=50, **FUZZ)
@given(data=st.data())
def test_fuzz_damaged_bytes(files, data):
    blob = bytearray(files[data.draw(st.sampled_from(sorted(files)))])
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(blob)))
        operation = data.draw(st.sampled_from(["truncate", "flip", "overwrite"]))
        if operation == "truncate":
            del blob[where:]
        elif operation == "flip" and where < len(blob):
            blob[where] ^= 1 << data.draw(st.integers(0, 7))
        else:
            chunk = data.draw(st.binary(min_size=1, max_size=8))
            blob[where : where + len(chunk)] = chunk
    check_load(bytes(blob))


@settings(max_examples=50, **FUZZ)
@given(data=st.data())
def test_fuzz_members(files, data):
    entries = [
        Entry(*item) for item in members(files[data.draw(st.sampled_from(sorted(files)))]).items()
    ]
    for _ in range(data.draw(st.integers(1, 3))):
        if not entries:
            break
        i, j = (data.draw(st.integers(0, len(entries) - 1)) for _ in range(2))
        operation = data.draw(
            st.sampled_from(["remove", "duplicate", "swap", "rename", "array", "compress"])
        )
        if operation == "remove":
            del entries[i]
        elif operation == "duplicate":
            entries.insert(j, entries[i])
        elif operation == "swap":
            entries[i], entries[j] = (
                entries[i]._replace(data=entries[j].data),
                entries[j]._replace(data=entries[i].data),
            )
        elif operation == "rename":
            names = [entry.name for entry in entries] + ["x.npy", MANIFEST]
            entries[i] = entries[i]._replace(name=data.draw(st.sampled_from(names)))
        elif operation == "array":
            entries[i] = entries[i]._replace(data=npy(data.draw(small_arrays)))
        else:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            packed = compressor.compress(entries[i].data) + compressor.flush()
            entries[i] = Entry(entries[i].name, packed, zipfile.ZIP_DEFLATED, len(entries[i].data))
    check_load(zip_bytes(entries))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """The keys leading to every value inside ``value`` (not ``value`` itself)."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    paths = []
    for key, child in items:
        paths.append((*prefix, key))
        if isinstance(child, dict | list):
            paths += _paths(child, (*prefix, key))
    return paths


def _get(value: Any, keys: tuple) -> Any:
    for key in keys:
        value = value[key]
    return value


@settings(max_examples=100, **FUZZ)
@given(data=st.data())
def test_fuzz_manifest(files, data):
    content = members(files[data.draw(st.sampled_from(sorted(files)))])
    manifest = json.loads(content[MANIFEST])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(manifest)
        operation = data.draw(st.sampled_from(["replace", "delete", "rename", "reshape"]))
        if operation == "replace" and paths:
            _set(manifest, data.draw(st.sampled_from(paths)), data.draw(json_values))
        elif operation == "delete" and paths:
            keys = data.draw(st.sampled_from(paths))
            del _get(manifest, keys[:-1])[keys[-1]]
        elif operation == "rename":
            names = [
                p for p in paths if isinstance(_get(manifest, p), str) and ":" in _get(manifest, p)
            ]
            if names:
                _set(
                    manifest,
                    data.draw(st.sampled_from(names)),
                    data.draw(st.sampled_from(CLASS_NAMES)),
                )
        else:
            name = data.draw(st.sampled_from(sorted(set(content) - {MANIFEST})))
            array = np.load(io.BytesIO(content[name]))
            array = array[None] if array.ndim == 0 else array
            changed = data.draw(
                st.sampled_from(
                    [
                        array.T,
                        array.ravel(),
                        array[:-1],
                        np.concatenate([array, array[:1]]),
                        array[..., None],
                    ]
                )
            )
            content[name] = npy(np.ascontiguousarray(changed))
    content[MANIFEST] = json.dumps(manifest).encode()
    check_load(zip_bytes([Entry(*item) for item in content.items()]))
