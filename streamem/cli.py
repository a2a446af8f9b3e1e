"""The ``streamem`` command: generate data, fit, predict, score, select, inspect.

Exit codes: 0 on success, 2 on bad usage or bad input (one line on stderr; ``--debug`` shows
the traceback), 1 on anything unexpected.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from argparse import SUPPRESS
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import numpy as np

ESTIMATORS = {
    "gaussian": "GaussianMixture",
    "bernoulli": "BernoulliMixture",
    "binomial": "BinomialMixture",
    "multinomial": "MultinomialMixture",
    "poisson": "PoissonMixture",
    "grouped-gaussian": "GroupedGaussianMixture",
}


class UsageError(Exception):
    """Bad usage: reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is behind ``--help``) and
    whose help shows every default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _estimator_class(family: str) -> type:
    from . import estimators

    if family not in ESTIMATORS:
        raise UsageError(f"unknown family {family!r}; choose from {', '.join(ESTIMATORS)}")
    return getattr(estimators, ESTIMATORS[family])


def _range(text: str) -> list[int]:
    """'1..10' or '2,4,8' → list of ints."""
    try:
        if ".." in text:
            low, high = text.split("..")
            return list(range(int(low), int(high) + 1))
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'a..b' or 'a,b,c', got {text!r}") from None


def _count(minimum: int) -> Any:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "count"
    return parse


def _bytes(text: str) -> str:
    """An argparse type: a positive size in bytes such as 64MiB."""
    from dask.utils import parse_bytes

    try:
        if parse_bytes(text) > 0:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a positive size such as 64MiB, got {text!r}")


def _json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _chunk_size(text: str) -> int | str:
    """An argparse type: rows per chunk (a positive whole number) or bytes (64MiB)."""
    return _count(1)(text) if text.lstrip("-").isdigit() else _bytes(text)


@contextlib.contextmanager
def _scheduler(args: argparse.Namespace) -> Iterator[None]:
    """Run inside a dask.distributed client when --scheduler or --cluster asks for one."""
    address = getattr(args, "scheduler", None)
    cluster_spec = getattr(args, "cluster", None)
    if not address and not cluster_spec:
        yield
        return
    from distributed import Client, LocalCluster

    # importing distributed sets its loggers to INFO (its logging configuration): no chatter
    logging.getLogger("distributed").setLevel(logging.ERROR if args.quiet else logging.WARNING)
    if address:
        with Client(address) as client:
            logging.getLogger(__name__).info("connected to %s", client.dashboard_link)
            yield
        return
    kind, _, count = cluster_spec.partition(":")
    if kind != "local" or not count.isdigit():
        raise UsageError(f"--cluster expects 'local:N', got {cluster_spec!r}")
    with (
        LocalCluster(
            n_workers=int(count),
            threads_per_worker=1,
            dashboard_address=None,
            silence_logs=logging.ERROR if args.quiet else logging.WARNING,
        ) as lc,
        Client(lc),
    ):
        yield


def _bars(args: argparse.Namespace) -> bool:
    """Whether to show progress bars: on a terminal, or when ``--progress`` forces them;
    never with ``--quiet``."""
    return not args.quiet and (args.progress or sys.stderr.isatty())


# Parts of the names of the tasks that finish a chunk's work (``dask.utils.key_split`` of
# their keys): the engines' chunk tasks, the row kernels of predictions and scores, the
# writes of to_zarr and of synthetic stores.
CHUNK_TASK_NAMES = (
    "streamem-chunk",
    "rows_task",
    "store-map",
    "write_chunk",
    "write_discrete_chunk",
)


class _ChunkBar:
    """A progress bar over the chunks of the local Dask computations run inside it.

    A chunk is done when every task of its work has finished (the tasks named by
    :data:`CHUNK_TASK_NAMES`, grouped by chunk index); the total is counted from the graphs
    themselves, ``passes`` times the first graph's chunks until a later graph shows more.
    The rate is in rows per second (``n_rows`` rows per pass). The finished bar stays on
    screen as a one-line summary. Computations on a ``dask.distributed`` cluster do not
    report their tasks here (its dashboard shows them).
    """

    def __init__(
        self, args: argparse.Namespace, desc: str, n_rows: int | None = None, passes: int = 1
    ) -> None:
        # a cluster's tasks run in its workers, out of reach of local callbacks
        self.enabled = _bars(args) and not (args.cluster or args.scheduler)
        self.desc, self.n_rows, self.passes = desc, n_rows, passes
        self.bar: Any = None
        self.done = self.chunks = self.graphs = 0
        self.per_pass: int | None = None

    def __enter__(self) -> _ChunkBar:
        if not self.enabled:
            return self
        import dask
        from dask.callbacks import Callback
        from tqdm.auto import tqdm

        self.bar = tqdm(desc=self.desc, total=None, unit="chunk", leave=True, file=sys.stderr)
        self.started = time.perf_counter()
        self.callback = Callback(start=self._start, posttask=self._posttask)
        # unfused graphs, so that each chunk's tasks keep their names
        self.config = dask.config.set({"optimization.fuse.active": False})
        self.callback.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is None:
            return
        self.callback.__exit__(*exc)
        self.config.__exit__(*exc)
        if exc[0] is None and self.bar.total is not None:
            self.bar.total = self.bar.n  # fewer passes than foreseen: the bar ends full
        self.bar.leave = self.graphs > 0  # in-memory data: no chunks, no bar
        self.bar.refresh()
        self.bar.close()

    @staticmethod
    def _chunk(key: Any) -> Any:
        """The chunk a task works on (its name and row-block index), or None."""
        from dask.utils import key_split

        name = key[0] if isinstance(key, tuple) else key
        if not any(part in key_split(name) for part in CHUNK_TASK_NAMES):
            return None
        return key[1] if isinstance(key, tuple) and len(key) > 1 else key

    def _start(self, dsk: Any) -> None:
        tasks: dict[Any, int] = {}
        for key in dsk:
            chunk = self._chunk(key)
            if chunk is not None:
                tasks[chunk] = tasks.get(chunk, 0) + 1
        self.remaining, self.graphs = tasks, self.graphs + 1
        if self.per_pass is None and tasks:
            self.per_pass = len(tasks)
            self.bar.total = len(tasks) * self.passes
        self.chunks += len(tasks)
        if self.bar.total is not None and self.chunks > self.bar.total:
            self.bar.total = self.chunks
        self.bar.refresh()

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        chunk = self._chunk(key)
        if chunk is None or chunk not in self.remaining:
            return
        self.remaining[chunk] -= 1
        if self.remaining[chunk]:
            return
        del self.remaining[chunk]
        self.bar.update(1)
        if self.n_rows and self.per_pass:
            rows = self.bar.n * self.n_rows / self.per_pass
            rate = rows / max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix_str(f"{rows:,.0f} rows, {rate:,.0f} rows/s", refresh=False)


def _output(args: argparse.Namespace, summary: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(_with_old_names(args.command, summary), indent=2, default=_json_default))
    else:
        print(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


# Fields of --json output renamed to one vocabulary (docs/guide/cli.rst), by the commands
# that wrote them: still written under their old names too, until the next release.
DEPRECATED_FIELDS = {
    "lower_bound": (("mean_log_likelihood", "elbo_per_row"), ("fit", "info", "update", "demo")),
    "n_rows_seen": (("n_samples_seen",), ("fit", "info", "update", "demo")),
    "log_likelihood_before": (("mean_log_likelihood_before",), ("update",)),
    "log_likelihood_after": (("mean_log_likelihood_after",), ("update",)),
    "seed": (("random_state",), ("generate",)),
}


def _with_old_names(command: str, summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` with each field renamed in ``command``'s output also under its old name."""
    extra = {}
    for old, (new, commands) in DEPRECATED_FIELDS.items():
        for name in new:
            if command in commands and name in summary and old not in summary:
                extra[old] = summary[name]
    return {**summary, **extra}


def _bound_field(model: Any) -> str:
    """What a model's lower bound is: the mean log-likelihood per row, or for variational
    models the ELBO per row."""
    return "elbo_per_row" if hasattr(model, "weight_concentration_") else "mean_log_likelihood"


def _summary(model: Any, seconds: float | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "estimator": type(model).__name__,
        "n_components": model.n_components,
        "n_features": model.n_features_in_,
        "converged": bool(model.converged_),
        "n_iter": int(model.n_iter_),
        _bound_field(model): float(model.lower_bound_),
        "weights": model.weights_,
    }
    for name in ("means_", "covariances_", "probabilities_", "rates_"):
        if hasattr(model, name):
            summary[name.rstrip("_")] = getattr(model, name)
    state = getattr(model, "stepwise_state_", None)
    history = getattr(model, "update_history_", None)
    summary["n_samples_seen"] = float(state.weight_seen) if state is not None else None
    summary["n_updates"] = 0 if history is None else len(history["n_rows"])
    if seconds is not None:
        summary["seconds"] = round(seconds, 3)
    return summary


def _describe(model: Any) -> str:
    bound = "ELBO per row" if hasattr(model, "weight_concentration_") else "mean log-likelihood"
    lines = [
        f"{type(model).__name__}: {model.n_components} components, "
        f"{model.n_features_in_} features",
        f"converged: {model.converged_} after {model.n_iter_} iterations; "
        f"{bound} {model.lower_bound_:.6f}",
    ]
    state = getattr(model, "stepwise_state_", None)
    history = getattr(model, "update_history_", None)
    if state is not None:
        updates = 0 if history is None else len(history["n_rows"])
        lines.append(f"rows seen: {state.weight_seen:,.0f}; updates since the fit: {updates}")
    with np.printoptions(precision=4, suppress=True, linewidth=100):
        lines.append(f"weights: {np.asarray(model.weights_)}")
        for name in ("means_", "probabilities_", "rates_"):
            if hasattr(model, name):
                lines.append(f"{name.rstrip('_')}:\n{np.asarray(getattr(model, name))}")
    return "\n".join(lines)


# -- subcommands -----------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from dask.utils import parse_bytes

    args.out = args.output or args.out
    if not args.out:
        raise UsageError("give the store to write: streamem generate -o STORE")
    if isinstance(args.chunk_size, str):
        itemsize = np.dtype(args.dtype).itemsize if args.family == "gaussian" else 8
        args.chunk_rows = max(1, parse_bytes(args.chunk_size) // (args.features * itemsize))
    else:
        args.chunk_rows = args.chunk_size

    start = time.perf_counter()
    with _ChunkBar(args, "generate", args.samples):
        truth = _generate_remote(args) if "://" in args.out else _generate(args)
    seconds = time.perf_counter() - start
    summary = {
        **truth.to_json(),
        "n_samples": args.samples,
        "n_features": args.features,
        "n_components": args.components,
        "random_state": args.random_state,
        "written": [args.out],
        "seconds": round(seconds, 3),
    }
    del summary["seed"]  # called random_state, as the option
    _output(
        args,
        summary,
        f"wrote {args.samples} rows × {args.features} features to {args.out} ({seconds:.1f} s)",
    )
    return 0


def _generate_remote(args: argparse.Namespace) -> Any:
    """``generate`` into an object store: the store is written to a local temporary folder,
    uploaded under a temporary prefix, then copied into place with its metadata last (see
    :func:`streamem.to_zarr`), so the URL opens only once the store is complete."""
    import fsspec
    import zarr

    from ._atomic import remote_atomic_path
    from .datasets import TRUTH_ATTRIBUTE

    url = args.out
    with (
        remote_atomic_path(
            url, overwrite=args.overwrite, storage_options=args.storage_options
        ) as temporary,
        tempfile.TemporaryDirectory(prefix="streamem-generate-") as folder,
    ):
        args.out = os.path.join(folder, "store.zarr")
        truth = _generate(args)
        truth = dataclasses.replace(truth, path=url)
        group = zarr.open_group(args.out, mode="r+")
        group.attrs[TRUTH_ATTRIBUTE] = json.loads(json.dumps(truth.to_json()))
        fs, root = fsspec.core.url_to_fs(temporary, **(args.storage_options or {}))
        fs.put(f"{args.out}/", root, recursive=True)
    args.out = url
    return truth


def _generate(args: argparse.Namespace) -> Any:
    from .datasets import make_discrete_mixture, make_mixture

    if args.family == "gaussian":
        return make_mixture(
            args.out,
            args.samples,
            args.features,
            args.components,
            args.covariance_type,
            dtype=args.dtype,
            chunk_rows=args.chunk_rows,
            seed=args.random_state,
            overwrite=args.overwrite,
        )
    return make_discrete_mixture(
        args.out,
        args.samples,
        args.features,
        args.components,
        args.family,
        chunk_rows=args.chunk_rows,
        seed=args.random_state,
        n_trials=args.n_trials,
        overwrite=args.overwrite,
    )


def _fit_options(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    options: dict[str, Any] = {
        "n_components": args.components,
        "tol": args.tol,
        "max_iter": args.max_iter,
        "n_init": args.n_init,
        "random_state": args.random_state,
        "verbose": int(_bars(args)),
    }
    if args.chunk_size is not None:
        options["chunk_size"] = args.chunk_size
    if args.family == "gaussian":
        options["covariance_type"] = args.covariance_type
    elif args.covariance_type != "full":
        raise UsageError("--covariance-type applies to --family gaussian only")
    for name in ("n_trials", "n_categories", "trials_column"):
        value = getattr(args, name, None)
        if value is not None:
            if name not in cls.__init__.__code__.co_varnames:
                raise UsageError(f"--{name.replace('_', '-')} does not apply to {args.family}")
            options[name] = value
    if getattr(args, "algorithm", "batch") != "batch":
        options["algorithm"] = args.algorithm
    if getattr(args, "max_passes", None) is not None:
        options["max_passes"] = args.max_passes
    if getattr(args, "batch_size", None) is not None:
        options["batch_size"] = args.batch_size
    if getattr(args, "persist", False):
        options["persist"] = True
    if getattr(args, "missing", "error") != "error":
        options["missing"] = args.missing
    if args.sample_dim:
        options["sample_dim"] = args.sample_dim
    if args.variables:
        options["variables"] = args.variables.split(",")
    return options


def _open_data(path: str, args: argparse.Namespace | None = None) -> Any:
    """Paths of NetCDF files open through xarray, Zarr URLs with ``--storage-options``
    through fsspec; everything else goes to the estimator as it is."""
    options = getattr(args, "storage_options", None)
    labelled = getattr(args, "sample_dim", None) or getattr(args, "variables", None)
    if labelled and not path.endswith((".nc", ".nc4", ".netcdf", ".npy")):
        import xarray as xr

        if "://" not in path and not os.path.exists(path):
            raise FileNotFoundError(f"No such Zarr store: {path!r}")
        return xr.open_zarr(path, storage_options=options, consolidated=False)
    if "://" in path and options is not None:
        from .sources import open_zarr

        return open_zarr(path, options)
    if path.endswith((".nc", ".nc4", ".netcdf")):
        import xarray as xr

        if not os.path.exists(path):
            raise FileNotFoundError(f"No such file: {path!r}")
        return xr.open_dataset(path, chunks={})
    return path


def _local_file(path: str | None) -> None:
    """Refuse a URL where a local file is written (it would become a local folder 's3:')."""
    if path and "://" in path:
        raise UsageError(
            f"{path!r} is a URL; summaries and figures are written to local paths (copy "
            "them to the object store afterwards); model files, checkpoints and Zarr stores "
            "go to URLs directly"
        )


def _check_model_output(args: argparse.Namespace, path: str | None) -> None:
    """As :func:`_check_output` for a model file, which may also be a URL."""
    if not (path and "://" in path):
        _check_output(path, args.overwrite)
        return
    import fsspec

    fs, key = fsspec.core.url_to_fs(path, **(getattr(args, "storage_options", None) or {}))
    if fs.isdir(key):
        raise UsageError(f"{path!r} holds objects below it; the output is a file")
    if fs.exists(key) and not args.overwrite:
        raise UsageError(f"{path!r} exists; pass --overwrite to replace it")


@contextlib.contextmanager
def _fsspec_defaults(url: str | None, options: dict[str, Any] | None) -> Iterator[None]:
    """Make ``--storage-options`` fsspec's defaults for ``url``'s protocol, for what opens
    the URL itself (a checkpoint written by the estimator)."""
    if not (url and "://" in url and options):
        yield
        return
    import fsspec

    protocol = url.split("://", 1)[0]
    before = fsspec.config.conf.get(protocol)
    fsspec.config.conf[protocol] = {**(before or {}), **options}
    try:
        yield
    finally:
        if before is None:
            fsspec.config.conf.pop(protocol, None)
        else:
            fsspec.config.conf[protocol] = before


def _check_output(path: str | None, overwrite: bool) -> None:
    """Refuse, before any work is done, an output file that exists (without --overwrite),
    is a directory (never replaced), or is a URL (summaries and figures are local files)."""
    _local_file(path)
    if path and os.path.isdir(path):
        raise UsageError(
            f"{path!r} is a directory; the output is a file: give a file name, "
            f"for example {os.path.join(path, 'model.streamem')!r}"
        )
    if path and os.path.exists(path) and not overwrite:
        raise UsageError(f"{path!r} exists; pass --overwrite to replace it")


def _bayesian(args: argparse.Namespace, options: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """``fit --prior``: the family's Bayesian mixture with that weight prior."""
    from . import estimators

    if args.prior is None:
        if args.weight_concentration is not None:
            raise UsageError("--weight-concentration needs --prior (or --bayesian)")
        return _estimator_class(args.family), options
    if args.family == "grouped-gaussian":
        families = ", ".join(family for family in ESTIMATORS if family != args.family)
        raise UsageError(f"--prior (--bayesian) applies to --family {families}")
    kinds = {"dirichlet-process": "dirichlet_process", "dirichlet": "dirichlet_distribution"}
    options["weight_concentration_prior_type"] = kinds[args.prior]
    if args.weight_concentration is not None:
        options["weight_concentration_prior"] = args.weight_concentration
    return getattr(estimators, "Bayesian" + ESTIMATORS[args.family]), options


def cmd_fit(args: argparse.Namespace) -> int:
    cls = _estimator_class(args.family)
    options = _fit_options(args, cls)
    cls, options = _bayesian(args, options)
    _check_model_output(args, args.output)
    _local_file(args.summary)
    if args.checkpoint:
        from .checkpoint import Checkpoint

        there = Checkpoint(args.checkpoint, {}, args.storage_options).exists()
        if there and not args.resume:
            raise UsageError(
                f"the checkpoint {args.checkpoint!r} exists: pass --resume to continue that fit, "
                "or delete it to start over"
            )
        options["checkpoint"] = args.checkpoint
    elif args.resume:
        raise UsageError("--resume needs --checkpoint PATH")
    model = cls(**options)
    start = time.perf_counter()
    with _scheduler(args), _fsspec_defaults(args.checkpoint, args.storage_options):
        model.fit(_open_data(args.data, args))
    seconds = time.perf_counter() - start
    model.save(args.output, overwrite=args.overwrite, storage_options=args.storage_options)
    summary = {**_summary(model, seconds), "model": args.output, "written": [args.output]}
    if args.summary:
        summary["written"].append(args.summary)
        with open(args.summary, "w") as handle:
            json.dump(_with_old_names("fit", summary), handle, indent=2, default=_json_default)
    _output(args, summary, f"{_describe(model)}\nsaved to {args.output} ({seconds:.1f} s)")
    return 0


def _writing(args: argparse.Namespace) -> dict[str, Any]:
    """How outputs are written: replacing an existing store or not, and fsspec options."""
    return {"overwrite": args.overwrite, "storage_options": args.storage_options}


def _require_output(args: argparse.Namespace) -> str:
    if not args.output:
        raise UsageError(f"give the store to write: streamem {args.command} ... -o STORE")
    return args.output


def _proba_path(path: str) -> str:
    """Where ``predict --proba`` writes the responsibilities: ``labels-proba.zarr``."""
    stem = path.rstrip("/")
    return f"{stem[:-5]}-proba.zarr" if stem.endswith(".zarr") else f"{stem}-proba"


def cmd_predict(args: argparse.Namespace) -> int:
    from .io import to_zarr

    args.out = _require_output(args)
    model = _load_for_data(args)
    data = _open_data(args.data, args)
    outputs = []
    if not args.proba_only:
        outputs.append((model.predict(data), args.out))
    if args.proba or args.proba_only:
        target = args.out if args.proba_only else _proba_path(args.out)
        outputs.append((model.predict_proba(data), target))
    n_rows = int(outputs[0][0].shape[0])
    start = time.perf_counter()
    with _scheduler(args), _ChunkBar(args, "predict", n_rows, passes=len(outputs)):
        written = [to_zarr(result, target, **_writing(args)) for result, target in outputs]
    summary = _data_summary(args, n_rows, time.perf_counter() - start, written=written)
    _output(args, summary, "\n".join(f"wrote {path}" for path in written))
    return 0


def _data_summary(
    args: argparse.Namespace, n_rows: int | None, seconds: float, **fields: Any
) -> dict[str, Any]:
    """The fields every command that reads DATA with MODEL reports."""
    return {
        "model": args.model,
        "data": args.data,
        "n_samples": n_rows,
        **fields,
        "seconds": round(seconds, 3),
    }


def _n_rows(model: Any, data: Any) -> int | None:
    """How many rows ``model`` reads from ``data`` (metadata only), or None if unknown."""
    from .sources import open_rows

    try:
        rows = open_rows(
            data,
            sample_dim=model.get_params().get("sample_dim"),
            variables=model.get_params().get("variables"),
            chunk_size=model.get_params().get("chunk_size"),
        )
    except (ValueError, OSError, TypeError, KeyError):  # the command itself says what is wrong
        return None
    return int(rows.data.shape[0])


def cmd_impute(args: argparse.Namespace) -> int:
    """DATA with each NaN replaced by its conditional mean under MODEL, to a Zarr store."""
    from .io import to_zarr

    args.out = _require_output(args)
    model = _load_for_data(args)
    start = time.perf_counter()
    imputed = model.impute(_open_data(args.data, args))
    n_rows = int(imputed.shape[0])
    with _scheduler(args), _ChunkBar(args, "impute", n_rows):
        path = to_zarr(imputed, args.out, name="imputed", **_writing(args))
    summary = _data_summary(args, n_rows, time.perf_counter() - start, written=[path])
    _output(args, summary, f"wrote {path}")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from .drivers.stepwise import parameter_change
    from .estimators import mixture_of

    if args.output:
        _check_model_output(args, args.output)
    model = _load_for_data(args)
    if args.half_life is not None:
        model.set_params(half_life=args.half_life, half_life_unit=args.half_life_unit)
    steps = getattr(model, "n_steps_", 0)
    data = _open_data(args.data, args)
    n_rows = _n_rows(model, data)
    start = time.perf_counter()
    # three passes: the score before, the update, the score after
    with _scheduler(args), _ChunkBar(args, "update", n_rows, passes=3):
        old = mixture_of(model)
        before = model.score(data)
        model.partial_fit(data)
        after = model.score(data)
    seconds = time.perf_counter() - start
    change = parameter_change(old, mixture_of(model))
    target = None if args.dry_run else (args.output or args.model)
    if target is not None:
        # checked above, or the model updated in place
        model.save(target, overwrite=True, storage_options=args.storage_options)
    summary = {
        **_summary(model, seconds),
        "data": args.data,
        "n_samples": n_rows,
        "n_steps": model.n_steps_,
        "mean_log_likelihood_before": before,
        "mean_log_likelihood_after": after,
        "largest_change": change,
        "model": target,
        "written": [] if target is None else [target],
    }
    saved = "not saved (--dry-run)" if target is None else f"saved to {target}"
    _output(
        args,
        summary,
        f"{_describe(model)}\n{model.n_steps_ - steps} stepwise update(s) "
        f"({model.n_steps_} in all), {summary['n_samples_seen']:,.0f} rows seen\n"
        f"mean log-likelihood of the new data: {before:.6f} before, {after:.6f} after "
        f"({after - before:+.3g}); largest relative parameter change {change:.3g}\n{saved}",
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .io import load

    model = load(args.model, storage_options=getattr(args, "storage_options", None))
    _output(args, {**_summary(model), "model": args.model}, _describe(model))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    model = _load_for_data(args)
    data = _open_data(args.data, args)
    n_rows = _n_rows(model, data)
    start = time.perf_counter()
    with _scheduler(args), _ChunkBar(args, "score", n_rows):
        score = model.score(data)
    summary = _data_summary(args, n_rows, time.perf_counter() - start, mean_log_likelihood=score)
    _output(args, summary, f"mean log-likelihood: {score:.10g}")
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from .selection import select_n_components

    cls = _estimator_class(args.family)
    options = _fit_options(args, cls)
    _check_model_output(args, args.output)
    _check_output(args.plot, args.overwrite)
    options.pop("n_components")
    start = time.perf_counter()
    data = _open_data(args.data, args)
    n_rows = _n_rows(cls(**options), data)
    with _scheduler(args):
        selection = select_n_components(cls(**options), data, args.k, criterion=args.criterion)
    seconds = time.perf_counter() - start
    written = []
    if args.output:
        selection.best_estimator_.save(
            args.output, overwrite=args.overwrite, storage_options=args.storage_options
        )
        written.append(args.output)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from ._atomic import atomic_path
        from .plotting import plot_selection

        with atomic_path(args.plot, overwrite=True) as temporary:  # checked up front
            plot_selection(selection).savefig(
                temporary, dpi=100, bbox_inches="tight", format="png"
            )
        written.append(args.plot)
    summary = {
        "data": args.data,
        "n_samples": n_rows,
        "criterion": args.criterion,
        "best_n_components": selection.best_estimator_.n_components,
        # per row too, as fit, score and update report it
        "table": [
            {**row, "mean_log_likelihood": row["log_likelihood"] / n_rows if n_rows else None}
            for row in selection.table
        ],
        "model": args.output,
        "written": written,
        "seconds": round(seconds, 3),
    }
    _output(args, summary, str(selection))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import plotting
    from ._atomic import atomic_path

    _local_file(args.output)
    model = _load_for_data(args)
    args.out = args.output
    os.makedirs(args.out, exist_ok=True)
    figures = {"lower_bound": plotting.plot_lower_bound(model)}
    figures["parameters"] = plotting.plot_parameters(model)
    figures["weights"] = plotting.plot_weights(model)
    if getattr(model, "update_history_", None) is not None:
        figures["updates"] = plotting.plot_updates(model)
    if args.data and hasattr(model, "covariance_type"):
        with _scheduler(args):
            rows = plotting.sample_rows(_open_data(args.data, args), args.samples)
        i, j = args.pair
        figures[f"histogram_feature{i}"] = plotting.plot_1d(model, rows, feature=i)
        if rows.shape[1] > max(i, j):
            figures[f"scatter_features{i}_{j}"] = plotting.plot_2d(model, rows, (i, j))
    paths = {name: os.path.join(args.out, f"{name}.png") for name in figures}
    for path in paths.values():
        _check_output(path, args.overwrite)
    written = []
    for name, figure in figures.items():
        with atomic_path(paths[name], overwrite=True) as temporary:
            figure.savefig(temporary, dpi=args.dpi, bbox_inches="tight", format="png")
        written.append(paths[name])
    summary = {"model": args.model, "data": args.data, "written": written}
    _output(args, summary, "\n".join(f"wrote {path}" for path in written))
    return 0


def _true_spread(truth: Any) -> np.ndarray:
    """The true standard deviation of every component along every feature, (K, D)."""
    k, d = truth.means.shape
    covariances = np.asarray(truth.covariances, dtype=float)
    if truth.covariance_type == "full":
        return np.sqrt(np.einsum("kii->ki", covariances))
    if truth.covariance_type == "tied":
        return np.tile(np.sqrt(np.diag(covariances)), (k, 1))
    if truth.covariance_type == "diag":
        return np.sqrt(covariances)
    return np.tile(np.sqrt(covariances)[:, None], (1, d))


def cmd_demo(args: argparse.Namespace) -> int:
    import resource

    from dask.utils import format_bytes, parse_bytes
    from scipy.optimize import linear_sum_assignment

    from .datasets import make_mixture
    from .estimators.gaussian import GaussianMixture

    d, k = args.features, args.components
    n = max(k, parse_bytes(args.size) // (4 * d))
    data_bytes = n * d * 4
    chunk_rows = max(1, parse_bytes(args.chunk_size) // (4 * d))
    say = print if not args.json else (lambda *a, **kw: None)
    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="streamem-demo-") as folder:
        store = os.path.join(folder, "demo.zarr")
        say(f"writing {n:,} rows × {d} features ({format_bytes(data_bytes)}) …", flush=True)
        start = time.perf_counter()
        with _ChunkBar(args, "write", n):
            truth = make_mixture(
                store, n, d, k, args.covariance_type, chunk_rows=chunk_rows, seed=1
            )
        written = time.perf_counter() - start
        say(
            f"wrote them to a temporary Zarr store in {-(-n // chunk_rows)} chunks of "
            f"{format_bytes(chunk_rows * d * 4)} in {written:.1f} s"
        )
        model = GaussianMixture(
            k,
            covariance_type=args.covariance_type,
            random_state=0,
            chunk_size=args.chunk_size,
            verbose=int(_bars(args)),
            callback=lambda iteration: stamps.append(time.perf_counter()),
        )
        start = time.perf_counter()
        with _scheduler(args):
            model.fit(store)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    # the first iteration's time includes the initialisation: the others are passes alone
    spans = np.diff(stamps) if len(stamps) > 1 else np.diff([start, *stamps])
    per_iteration = float(np.median(spans)) if len(spans) else float("nan")
    # match fitted components to true ones (they come out in arbitrary order)
    cost = ((model.means_[:, None, :] - truth.means[None]) ** 2).sum(axis=2)
    fitted, true = linear_sum_assignment(cost)
    fitted = fitted[np.argsort(true)]  # in the true components' order
    true = np.sort(true)
    error = float(np.abs(model.means_[fitted] - truth.means[true]).max())
    relative = float((np.abs(model.means_[fitted] - truth.means) / _true_spread(truth)).max())
    summary = {
        **_summary(model, seconds),
        "n_samples": int(n),
        "data_bytes": int(data_bytes),
        "write_seconds": round(written, 3),
        "seconds_per_iteration": round(per_iteration, 4),
        "peak_memory_bytes": int(peak),
        "true_weights": truth.weights,
        "fitted_weights": model.weights_[fitted],
        "max_abs_mean_error": error,
        "max_mean_error_in_standard_deviations": relative,
    }
    if args.json:
        _output(args, summary, "")
        return 0
    print(
        f"fitted out of core in {seconds:.1f} s: {model.n_iter_} EM iterations of "
        f"{per_iteration:.2f} s each (one pass over the store; the rest of the time is the "
        f"initialisation), converged={model.converged_}, "
        f"mean log-likelihood {model.lower_bound_:.5f}"
    )
    print(f"\n{'component':>9}  {'true weight':>11}  {'fitted':>7}   true mean → fitted mean")
    with np.printoptions(precision=3, suppress=True, linewidth=200):
        for j, i in enumerate(fitted):
            print(
                f"{j:>9}  {truth.weights[j]:>11.4f}  {model.weights_[i]:>7.4f}   "
                f"{truth.means[j]} → {model.means_[i]}"
            )
    print(
        f"\nlargest error in a fitted mean: {error:.4f} ({relative:.4f} standard deviations "
        "of its component)"
    )
    print(
        f"peak memory of this process: {format_bytes(peak)} for {format_bytes(data_bytes)} "
        f"of data ({peak / data_bytes:.2f}×, interpreter and libraries included): the data "
        "were never in memory at once"
    )
    return 0


# -- parser ----------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, work: bool = True, urls: bool = True) -> None:
    """The options every command takes; those of long work (bars, Dask) where there is
    some, and ``--storage-options`` where URLs are read or written."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(
        quiet=False, progress=False, storage_options=None, scheduler=None, cluster=None
    )
    if not work:  # --quiet accepted (scripts pass it to every command), not advertised
        parser.add_argument("--quiet", action="store_true", help=SUPPRESS)
        if urls:
            _storage_options(parser)
        return
    parser.add_argument("--quiet", action="store_true", help="no progress bars, no Dask logs")
    parser.add_argument(
        "--progress",
        action="store_true",
        help="progress bars (on stderr) even when it is not a terminal",
    )
    if urls:
        _storage_options(parser)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scheduler", help="address of a dask.distributed scheduler")
    group.add_argument("--cluster", help="start a local cluster: 'local:N' worker processes")


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-options",
        type=_json_object,
        help="fsspec options for s3://, gs://… URLs, as JSON: '{\"anon\": true}', "
        '\'{"client_kwargs": {"endpoint_url": "http://…"}}\'',
    )


def _data_options(parser: argparse.ArgumentParser) -> None:
    """How DATA is read: the same options wherever data are read."""
    parser.add_argument(
        "--sample-dim", help="xarray data (NetCDF or Zarr): the dimension of the samples"
    )
    parser.add_argument(
        "--variables", help="xarray data: the comma-separated data variables to use"
    )


def _model_and_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model file written by streamem fit")
    parser.add_argument("data", help="Zarr store (path or URL), .npy or NetCDF file")
    _data_options(parser)


def _load_for_data(args: argparse.Namespace) -> Any:
    """The model of ``args.model``, reading DATA as ``--sample-dim``/``--variables`` say."""
    from .io import load

    model = load(args.model, storage_options=getattr(args, "storage_options", None))
    if getattr(args, "sample_dim", None):
        model.set_params(sample_dim=args.sample_dim)
    if getattr(args, "variables", None):
        model.set_params(variables=args.variables.split(","))
    return model


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", default="gaussian", help=f"one of {', '.join(ESTIMATORS)}")
    parser.add_argument(
        "--covariance-type",
        default="full",
        choices=["full", "tied", "diag", "spherical"],
        help="gaussian: the covariances' shape",
    )
    parser.add_argument(
        "--tol", type=float, default=1e-3, help="stop when the lower bound changes less"
    )
    parser.add_argument("--max-iter", type=_count(0), default=100, help="most EM iterations")
    parser.add_argument("--n-init", type=_count(1), default=1, help="starts (sharing passes)")
    parser.add_argument("--random-state", type=int, default=0, help="seed")
    parser.add_argument("--seed", dest="random_state", type=int, help=SUPPRESS)
    parser.add_argument("--chunk-size", type=_chunk_size, help="rows, or bytes like 64MiB")
    _data_options(parser)
    parser.add_argument(
        "--n-trials", type=_count(1), help="binomial (or multinomial): trials per row"
    )
    parser.add_argument("--trials-column", type=_count(0), help="binomial: the column of trials")
    parser.add_argument("--n-categories", type=_count(2), help="multinomial: labels per column")
    parser.add_argument(
        "--algorithm",
        default="batch",
        choices=["batch", "online", "incremental"],
        help="EM, stepwise EM, or incremental EM",
    )
    parser.add_argument(
        "--max-passes", type=_count(1), help="online/incremental: passes over the data"
    )
    parser.add_argument("--batch-size", type=_count(1), help="online: rows per update")
    parser.add_argument(
        "--missing",
        default="error",
        choices=["error", "marginalize", "drop"],
        help="what NaN means: refuse it, marginalise it (missing at random), drop its rows",
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="streamem", description="EM for mixture models on data bigger than memory."
    )
    parser.add_argument("--version", action="version", version=f"streamem {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="write a synthetic store, fit it out of core")
    demo.add_argument(
        "--size",
        type=_bytes,
        default="1GiB",
        help="size of the synthetic data (larger than the demo's own peak memory)",
    )
    demo.add_argument("--chunk-size", type=_bytes, default="32MiB", help="bytes per chunk")
    demo.add_argument("--features", type=_count(1), default=8, help="columns")
    demo.add_argument("-k", "--components", type=_count(1), default=4, help="mixture components")
    demo.add_argument(
        "--covariance-type",
        default="full",
        choices=["full", "tied", "diag", "spherical"],
        help="the covariances' shape",
    )
    _common(demo, urls=False)
    demo.set_defaults(run=cmd_demo)

    generate = commands.add_parser("generate", help="synthetic mixture data to a Zarr store")
    generate.add_argument("out", nargs="?", help="the Zarr store to write (or -o)")
    generate.add_argument("-o", "--output", help="the Zarr store to write")
    generate.add_argument("--samples", type=_count(1), default=1_000_000, help="rows")
    generate.add_argument("--features", type=_count(1), default=8, help="columns")
    generate.add_argument(
        "-k", "--components", type=_count(1), default=4, help="mixture components"
    )
    generate.add_argument(
        "--covariance-type",
        default="full",
        choices=["full", "tied", "diag", "spherical"],
        help="gaussian: the true covariances' shape",
    )
    generate.add_argument("--dtype", default="float32", help="gaussian: the data type")
    generate.add_argument(
        "--family",
        default="gaussian",
        choices=["gaussian", "bernoulli", "binomial", "multinomial", "poisson"],
        help="the component family",
    )
    generate.add_argument(
        "--n-trials",
        type=_count(1),
        default=10,
        help="binomial: trials per feature; multinomial: draws per row",
    )
    generate.add_argument(
        "--chunk-size", type=_chunk_size, help="rows, or bytes like 64MiB (default: 64MiB)"
    )
    generate.add_argument("--chunk-rows", dest="chunk_size", type=_count(1), help=SUPPRESS)
    generate.add_argument("--random-state", type=int, default=0, help="seed of the data")
    generate.add_argument("--seed", dest="random_state", type=int, help=SUPPRESS)
    generate.add_argument("--overwrite", action="store_true", help="replace an existing store")
    _common(generate)
    generate.set_defaults(run=cmd_generate)

    fit = commands.add_parser("fit", help="fit a mixture model to DATA, write a model file")
    fit.add_argument("data", help="Zarr store (path or URL), .npy or NetCDF file")
    fit.add_argument("-k", "--components", type=_count(1), default=2, help="mixture components")
    fit.add_argument("-o", "--output", default="model.streamem", help="model file to write")
    fit.add_argument("--summary", help="also write a JSON summary to this file")
    fit.add_argument("--checkpoint", help="save the fit's state here after every iteration")
    fit.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    fit.add_argument(
        "--persist",
        action="store_true",
        help="keep the data in the cluster's memory between iterations",
    )
    fit.add_argument(
        "--prior",
        choices=["dirichlet-process", "dirichlet"],
        help="a Bayesian mixture (variational Bayes) with this prior on the weights: "
        "components the data do not need empty themselves, so -k is an upper bound",
    )
    fit.add_argument(
        "--bayesian",
        dest="prior",
        action="store_const",
        const="dirichlet-process",
        help="same as --prior dirichlet-process",
    )
    fit.add_argument(
        "--weight-concentration",
        type=float,
        help="with --prior: the weight prior's concentration (default 1/k; small: fewer)",
    )
    _model_options(fit)
    _common(fit)
    fit.set_defaults(run=cmd_fit)

    predict = commands.add_parser("predict", help="labels (and responsibilities) to Zarr")
    _model_and_data(predict)
    predict.add_argument("-o", "--output", help="the Zarr store to write the labels to")
    predict.add_argument("--out", dest="output", help=SUPPRESS)
    predict.add_argument(
        "--proba",
        action="store_true",
        help="also write the responsibilities, to OUTPUT with '-proba' before '.zarr'",
    )
    predict.add_argument(
        "--proba-only", action="store_true", help="write responsibilities (not labels) to OUTPUT"
    )
    predict.add_argument("--overwrite", action="store_true", help="replace existing stores")
    _common(predict)
    predict.set_defaults(run=cmd_predict)

    impute = commands.add_parser(
        "impute", help="DATA with each NaN replaced by its conditional mean, to Zarr"
    )
    _model_and_data(impute)
    impute.add_argument("-o", "--output", help="the Zarr store to write the imputed rows to")
    impute.add_argument("--out", dest="output", help=SUPPRESS)
    impute.add_argument("--overwrite", action="store_true", help="replace an existing store")
    _common(impute)
    impute.set_defaults(run=cmd_impute)

    update = commands.add_parser("update", help="update MODEL with new DATA (partial_fit)")
    _model_and_data(update)
    update.add_argument("-o", "--output", help="write the updated model here (default: MODEL)")
    update.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    update.add_argument(
        "--dry-run", action="store_true", help="show what the update changes; save nothing"
    )
    update.add_argument(
        "--half-life",
        type=float,
        help="forget old data: they weigh half after this many rows (or updates) arrive",
    )
    update.add_argument(
        "--half-life-unit", default="rows", choices=["rows", "updates"], help="what it counts"
    )
    _common(update)
    update.set_defaults(run=cmd_update)

    info = commands.add_parser("info", help="describe a model file")
    info.add_argument("model", help="a model file written by streamem fit")
    _common(info, work=False)
    info.set_defaults(run=cmd_info)

    score = commands.add_parser("score", help="mean log-likelihood of DATA under MODEL")
    _model_and_data(score)
    _common(score)
    score.set_defaults(run=cmd_score)

    plot = commands.add_parser("plot", help="PNG figures of MODEL (and a sample of DATA)")
    plot.add_argument("model", help="a model file written by streamem fit")
    plot.add_argument("data", nargs="?", help="rows to draw a sample of (Zarr, .npy, NetCDF)")
    _data_options(plot)
    plot.add_argument("-o", "--output", default="streamem-plots", help="folder for the PNGs")
    plot.add_argument("--out", dest="output", help=SUPPRESS)
    plot.add_argument("--pair", type=_range, default=[0, 1], help="two features to draw: 0,1")
    plot.add_argument("--features", dest="pair", type=_range, help=SUPPRESS)
    plot.add_argument("--samples", type=_count(1), default=5000, help="rows of DATA to draw")
    plot.add_argument("--sample", dest="samples", type=_count(1), help=SUPPRESS)
    plot.add_argument("--dpi", type=_count(1), default=100, help="resolution of the PNGs")
    plot.add_argument("--overwrite", action="store_true", help="replace existing figures")
    _common(plot)
    plot.set_defaults(run=cmd_plot)

    select = commands.add_parser("select", help="BIC/AIC table over numbers of components")
    select.add_argument("data", help="Zarr store (path or URL), .npy or NetCDF file")
    select.add_argument(
        "-k",
        "--components",
        dest="k",
        type=_range,
        default=list(range(1, 11)),
        help="the numbers of components to try: 1..10 or 2,4,8",
    )
    select.add_argument("--k", dest="k", type=_range, help=SUPPRESS)
    select.add_argument(
        "--criterion", default="bic", choices=["bic", "aic"], help="the criterion to minimise"
    )
    select.add_argument("-o", "--output", help="save the best model to this file")
    select.add_argument("--plot", help="write BIC/AIC against K to this PNG file")
    select.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _model_options(select)
    _common(select)
    select.set_defaults(run=cmd_select, components=None, n_init=3)  # one unlucky start
    return parser


def _warning_printer(args: argparse.Namespace) -> Any:
    """Warnings as one line on stderr, ``streamem COMMAND: warning: …`` (with ``--debug``,
    Python's usual form, which names the line that warned)."""
    usual = warnings.showwarning

    def show(message: Any, category: type, filename: str, lineno: int, *rest: Any) -> None:
        if args.debug:
            usual(message, category, filename, lineno, *rest)
        else:
            print(f"streamem {args.command}: warning: {message}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``streamem`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.quiet:  # Dask's own chatter too
        for name in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args)
            code = args.run(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader went away (``streamem info m | head``): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, OSError, TypeError, ArithmeticError) as exc:
        if args.debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        message = message.replace("pass overwrite=True", "pass --overwrite")
        if args.json:
            error = {"command": args.command, "error": message, "type": type(exc).__name__}
            print(json.dumps(error), file=sys.stderr)
        else:
            print(f"streamem {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"streamem {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
