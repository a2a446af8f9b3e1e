"""streamem against the other tools that fit Gaussian mixtures by EM, side by side.

Tools: streamem, scikit-learn, pomegranate 1.x (torch), Spark MLlib (``local[2]``, the
RDD-based ``pyspark.mllib.clustering.GaussianMixture``, the only one that takes an initial
model; full covariances only) and R's mclust (through ``Rscript``). A tool that is not
installed is skipped with a note.

Every tool fits the same data (a mixture of ``K`` correlated Gaussians, float64) from the same
start: the weights, means and covariances of one scikit-learn iteration on a subsample, given
to each tool through its own initial parameters (scikit-learn/streamem ``*_init``, pomegranate's
``Normal(means, covs)`` and ``priors``, Spark's ``initialModel``, mclust's ``em(parameters=)``).
Convergence tests are off, so every fit runs exactly the iterations asked for (mclust, whose
tolerance cannot be negative, stops early only on an exactly unchanged log-likelihood; the
script then says so and times the iterations it ran).

- **s/iter**: ``(t(1 + ITERATIONS) - t(1)) / ITERATIONS`` for fits of ``1 + ITERATIONS`` and of
  one iteration, so fixed costs (validation, data conversion, a final E-step) cancel; the
  median of ``REPEATS`` such pairs.
- **peak MiB above data**: each tool runs in its own process; the peak resident set size
  (``VmHWM``, reset through ``/proc/PID/clear_refs`` once the data are loaded) during one fit of
  ``1 + ITERATIONS`` iterations, minus the resident size at its start. For Spark it is the JVM's
  (which builds and caches its own copy of the data inside the fit), for mclust R's.
- **mean log-likelihood**: the parameters each tool returns after ``1 + ITERATIONS``
  iterations, all scored by scikit-learn's ``GaussianMixture.score`` on the whole data.

``--spark-check`` runs the experiment behind the Spark MLlib row instead (see
``docs/performance.rst``): from the same start, Spark's parameters after one iteration against
scikit-learn's (``reg_covar=0``) and against a NumPy transcription of Spark's E-step, then both
run to Spark's default convergence rule.

Run (default 1M × 16 rows, K=8; tens of minutes on 2 cores, most of them Spark's)::

    PYTHONPATH=. python scripts/bench_peers.py [--n 1000000] [--d 16] [--k 8]
        [--covariance-type full diag] [--iterations 3] [--repeats 3] [--tools ...]
    PYTHONPATH=. python scripts/bench_peers.py --spark-check
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy import linalg
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

TOOLS = ("streamem", "sklearn", "pomegranate", "spark", "mclust")
SPARK_EPSILON = np.finfo(np.float64).eps  # MLUtils.EPSILON: 2**-52


# --- data, start, scoring (the parent process) -------------------------------------------------


def make_data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """The data of ``bench_inmemory.py`` (imported when called, in the parent process: the
    tools' own processes do not load streamem)."""
    from bench_inmemory import make_data as same_data

    return same_data(n, d, k, seed)


def initial_parameters(X: np.ndarray, k: int, kind: str) -> dict[str, np.ndarray]:
    """One scikit-learn iteration on a subsample: the start every tool is given."""
    init = SklearnGaussianMixture(k, covariance_type=kind, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init.fit(X[:: max(1, len(X) // 50_000)])
    return {"weights": init.weights_, "means": init.means_, "covariances": init.covariances_}


def sklearn_model(params: dict[str, np.ndarray], kind: str) -> SklearnGaussianMixture:
    """A fitted scikit-learn model holding given parameters (for its scoring code)."""
    model = SklearnGaussianMixture(len(params["weights"]), covariance_type=kind)
    model.weights_ = np.asarray(params["weights"], dtype=np.float64)
    model.means_ = np.asarray(params["means"], dtype=np.float64)
    model.covariances_ = covariances = np.asarray(params["covariances"], dtype=np.float64)
    if kind == "full":
        eye = np.eye(covariances.shape[-1])
        model.precisions_cholesky_ = np.stack(
            [
                linalg.solve_triangular(linalg.cholesky(c, lower=True), eye, lower=True).T
                for c in covariances
            ]
        )
    else:
        model.precisions_cholesky_ = 1.0 / np.sqrt(covariances)
    return model


def mean_log_likelihood(X: np.ndarray, params: dict[str, np.ndarray], kind: str) -> float:
    return float(sklearn_model(params, kind).score(X))


# --- memory of a process ------------------------------------------------------------------------


def memory(pid: int | str = "self") -> tuple[int, int]:
    """(current, peak) resident set size of a process in bytes."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def reset_peak(pid: int | str = "self") -> int:
    """Reset a process's peak RSS to its current RSS (Linux >= 4.0); return that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory(pid)[0]


def measure(fit, iterations: int, repeats: int, pid: int | str = "self") -> dict:
    """Peak memory of one fit of 1 + iterations, then ``repeats`` timed pairs of fits.

    ``fit(max_iter)`` returns the parameters as a dict of arrays.
    """
    base = reset_peak(pid)
    params = fit(1 + iterations)
    peak = memory(pid)[1] - base
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fit(1)
        t1 = time.perf_counter()
        fit(1 + iterations)
        t2 = time.perf_counter()
        samples.append(((t2 - t1) - (t1 - t0)) / iterations)
    return {**params, "seconds": np.array(samples), "peak": np.array(peak)}


# --- the tools (each runs in a worker process) -------------------------------------------------


def run_estimator(cls, X, start, kind, iterations, repeats):
    """A scikit-learn-API ``GaussianMixture`` class (streamem's or scikit-learn's)."""

    def fit(max_iter):
        model = cls(
            len(start["weights"]),
            covariance_type=kind,
            tol=0,
            max_iter=max_iter,
            weights_init=start["weights"],
            means_init=start["means"],
            precisions_init=np.linalg.inv(start["covariances"])
            if kind == "full"
            else 1 / start["covariances"],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
        return {
            "weights": model.weights_,
            "means": model.means_,
            "covariances": model.covariances_,
        }

    return measure(fit, iterations, repeats)


def run_streamem(X, start, kind, iterations, repeats):
    from streamem import GaussianMixture

    return run_estimator(GaussianMixture, X, start, kind, iterations, repeats)


def run_sklearn(X, start, kind, iterations, repeats):
    return run_estimator(SklearnGaussianMixture, X, start, kind, iterations, repeats)


def run_pomegranate(X, start, kind, iterations, repeats):
    import torch
    from pomegranate.distributions import Normal
    from pomegranate.gmm import GeneralMixtureModel

    data = torch.from_numpy(X)

    def fit(max_iter):
        components = [
            Normal(torch.tensor(m), torch.tensor(c), covariance_type=kind)
            for m, c in zip(start["means"], start["covariances"], strict=True)
        ]
        # tol=-inf: never stop early (pomegranate stops when the improvement is below tol)
        model = GeneralMixtureModel(
            components,
            priors=torch.tensor(start["weights"]),
            max_iter=max_iter,
            tol=-np.inf,
        )
        model.fit(data)
        return {
            "weights": model.priors.detach().numpy(),
            "means": np.stack([c.means.detach().numpy() for c in model.distributions]),
            "covariances": np.stack([c.covs.detach().numpy() for c in model.distributions]),
        }

    return measure(fit, iterations, repeats)


def spark_context():
    from pyspark import SparkConf, SparkContext

    conf = (
        SparkConf()
        .setMaster("local[2]")
        .setAppName("bench_peers")
        .set("spark.driver.memory", "8g")
        .set("spark.ui.enabled", "false")
    )
    context = SparkContext(conf=conf)
    context.setLogLevel("ERROR")
    return context


def spark_train(context, rows, start, max_iter, tol=0.0):
    """Spark MLlib's GMM from the given start; its parameters as arrays."""
    from pyspark.mllib.clustering import GaussianMixture
    from pyspark.mllib.linalg import DenseMatrix, Vectors
    from pyspark.mllib.stat.distribution import MultivariateGaussian

    d = start["means"].shape[1]
    gaussians = [
        MultivariateGaussian(Vectors.dense(m), DenseMatrix(d, d, c.ravel(order="F")))
        for m, c in zip(start["means"], start["covariances"], strict=True)
    ]
    # train() reads k, weights and gaussians of its initial model
    initial = SimpleNamespace(k=len(gaussians), weights=start["weights"], gaussians=gaussians)
    model = GaussianMixture.train(
        rows,
        len(start["weights"]),
        convergenceTol=tol,
        maxIterations=max_iter,
        seed=0,
        initialModel=initial,
    )
    return {
        "weights": np.array(model.weights),
        "means": np.stack([g.mu.toArray() for g in model.gaussians]),
        "covariances": np.stack([g.sigma.toArray() for g in model.gaussians]),
    }


def run_spark(X, start, kind, iterations, repeats):
    context = spark_context()
    jvm = context._jvm.java.lang.ProcessHandle.current().pid()
    rows = context.parallelize(list(X), 2)
    result = measure(
        lambda max_iter: spark_train(context, rows, start, max_iter), iterations, repeats, jvm
    )
    context.stop()
    return result


MCLUST_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; kind <- args[2]; iterations <- as.integer(args[3]); repeats <- as.integer(args[4])
suppressPackageStartupMessages(library(mclust))
meta <- read.table(file.path(dir, "shape.txt"))
n <- meta[1, 1]; d <- meta[1, 2]; k <- meta[1, 3]
X <- readBin(file.path(dir, "X.f64"), "double", n * d)
dim(X) <- c(n, d)
read_start <- function(name, size) readBin(file.path(dir, paste0(name, ".f64")), "double", size)
pro <- read_start("weights", k)
mu <- matrix(read_start("means", k * d), d, k)  # written as (k, d) row-major = (d, k) here
status <- function() {
  s <- readLines("/proc/self/status")
  kb <- function(f) as.numeric(strsplit(trimws(sub(".*:", "", s[startsWith(s, f)])), " ")[[1]][1])
  c(kb("VmRSS:"), kb("VmHWM:")) * 1024
}
if (kind == "full") {
  model <- "VVV"
  sigma <- array(read_start("covariances", k * d * d), c(d, d, k))
  variance <- list(modelName = model, d = d, G = k, sigma = sigma,
                   cholsigma = array(apply(sigma, 3, chol), c(d, d, k)))
} else {
  model <- "VVI"
  v <- matrix(read_start("covariances", k * d), d, k)
  scale <- apply(v, 2, function(x) exp(mean(log(x))))
  variance <- list(modelName = model, d = d, G = k, scale = scale,
                   shape = sweep(v, 2, scale, "/"),
                   sigma = array(apply(v, 2, diag), c(d, d, k)))
}
start <- list(pro = pro, mean = mu, variance = variance)
# em() is one E-step, then iterations of (M-step, E-step) until itmax or until the
# log-likelihood does not change at all (tol = 0); info says -itmax when it reached itmax
iterations_of <- function(result) abs(attr(result, "info")[["iterations"]])
fit <- function(itmax) {
  suppressWarnings(em(X, modelName = model, parameters = start,
                      control = emControl(tol = c(0, 0), itmax = c(itmax, itmax))))
}
cat("5", file = "/proc/self/clear_refs")
base <- status()[1]
result <- fit(1 + iterations)
peak <- status()[2] - base
ran <- iterations_of(result)
seconds <- numeric(repeats)
for (r in seq_len(repeats)) {
  t0 <- proc.time()[["elapsed"]]; fit(1)
  t1 <- proc.time()[["elapsed"]]; fit(1 + iterations)
  t2 <- proc.time()[["elapsed"]]
  seconds[r] <- ((t2 - t1) - (t1 - t0)) / (ran - 1)
}
p <- result$parameters
covs <- if (kind == "full") p$variance$sigma else apply(p$variance$sigma, 3, diag)
writeBin(as.double(p$pro), file.path(dir, "out-weights.f64"))
writeBin(as.double(p$mean), file.path(dir, "out-means.f64"))
writeBin(as.double(covs), file.path(dir, "out-covariances.f64"))
writeBin(c(seconds, peak, ran), file.path(dir, "out-timing.f64"))
"""


def run_mclust(X, start, kind, iterations, repeats, workdir):
    n, d = X.shape
    k = len(start["weights"])
    (workdir / "shape.txt").write_text(f"{n} {d} {k}\n")
    X.T.tofile(workdir / "X.f64")  # column-major, as R stores a matrix
    for name in ("weights", "means", "covariances"):
        np.ascontiguousarray(start[name], dtype=np.float64).tofile(workdir / f"{name}.f64")
    script = workdir / "mclust.R"
    script.write_text(MCLUST_SCRIPT)
    del X
    subprocess.run(
        ["Rscript", str(script), str(workdir), kind, str(iterations), str(repeats)], check=True
    )

    def read(name):
        return np.fromfile(workdir / f"out-{name}.f64")

    timing = read("timing")
    if timing[repeats + 1] < 2:  # the start is a fixed point: nothing to time
        raise RuntimeError("mclust converged exactly after one iteration")
    covariances = read("covariances")
    covariances = (
        covariances.reshape(k, d, d) if kind == "full" else covariances.reshape(k, d)
    )  # R's (d, d, k) / (d, k), column-major, read row-major
    return {
        "weights": read("weights"),
        "means": read("means").reshape(k, d),
        "covariances": covariances,
        "seconds": timing[:repeats],
        "peak": np.array(timing[repeats]),
        "iterations": np.array(timing[repeats + 1]),
    }


def worker(tool: str, workdir: Path, kind: str, iterations: int, repeats: int) -> None:
    X = np.load(workdir / "X.npy")
    with np.load(workdir / f"start-{kind}.npz") as saved:
        start = dict(saved)
    if tool == "mclust":
        result = run_mclust(X, start, kind, iterations, repeats, workdir)
    else:
        run = {
            "streamem": run_streamem,
            "sklearn": run_sklearn,
            "pomegranate": run_pomegranate,
            "spark": run_spark,
        }[tool]
        result = run(X, start, kind, iterations, repeats)
    np.savez(workdir / f"result-{tool}-{kind}.npz", **result)


# --- availability, the table -------------------------------------------------------------------


def missing(tool: str, kind: str) -> str | None:
    """Why a tool cannot run here, or None."""
    module = {"streamem": "streamem", "sklearn": "sklearn", "pomegranate": "pomegranate"}
    if tool in module:
        found = importlib.util.find_spec(module[tool]) is not None
        return None if found else f"{module[tool]} is not installed"
    if tool == "spark":
        if kind != "full":
            return "Spark MLlib fits full covariances only"
        if importlib.util.find_spec("pyspark") is None:
            return "pyspark is not installed"
        return None if shutil.which("java") else "java is not on PATH"
    if not shutil.which("Rscript"):
        return "Rscript is not on PATH"
    check = subprocess.run(
        ["Rscript", "-e", "quit(status = !requireNamespace('mclust', quietly = TRUE))"],
        capture_output=True,
    )
    return None if check.returncode == 0 else "the R package mclust is not installed"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("streamem", "scikit-learn", "numpy", "pomegranate", "torch", "pyspark"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    if shutil.which("Rscript"):
        r = subprocess.run(
            ["Rscript", "-e", "cat(R.version.string, as.character(packageVersion('mclust')))"],
            capture_output=True,
            text=True,
        )
        found["R, mclust"] = r.stdout.strip()
    if shutil.which("java"):
        java = subprocess.run(["java", "-version"], capture_output=True, text=True)
        found["java"] = java.stderr.splitlines()[0]
    return found


def benchmark(args: argparse.Namespace) -> None:
    print(
        f"N={args.n} D={args.d} K={args.k} float64; {args.iterations} timed iterations, "
        f"median of {args.repeats}; load: {os.getloadavg()[0]:.2f}"
    )
    print("; ".join(f"{name} {v}" for name, v in versions().items()))
    X = make_data(args.n, args.d, args.k)
    data_mib = X.nbytes / 2**20
    with tempfile.TemporaryDirectory(prefix="bench_peers-") as tmp:
        workdir = Path(tmp)
        np.save(workdir / "X.npy", X)
        rows = []
        for kind in args.covariance_type:
            np.savez(workdir / f"start-{kind}.npz", **initial_parameters(X, args.k, kind))
            for tool in args.tools:
                reason = missing(tool, kind)
                if reason:
                    print(f"skipped {tool} ({kind}): {reason}", flush=True)
                    continue
                options = (
                    f"--workdir {tmp} --covariance-type {kind} --iterations {args.iterations} "
                    f"--repeats {args.repeats}"
                )
                command = [sys.executable, __file__, "--worker", tool, *options.split()]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    print(f"failed {tool} ({kind}):\n{done.stderr[-3000:]}", flush=True)
                    continue
                with np.load(workdir / f"result-{tool}-{kind}.npz") as result:
                    result = dict(result)
                seconds = float(np.median(result["seconds"]))
                if "iterations" in result and result["iterations"] < 1 + args.iterations:
                    print(
                        f"note: {tool} ({kind}) stopped after {result['iterations']:g} "
                        "iterations (log-likelihood exactly unchanged); timed over those"
                    )
                rows.append(
                    {
                        "tool": tool,
                        "cov": kind,
                        "seconds": seconds,
                        "samples": result["seconds"].tolist(),
                        "peak_mib": float(result["peak"]) / 2**20,
                        "mean_log_likelihood": mean_log_likelihood(X, result, kind),
                    }
                )
                print(
                    f"done {tool} ({kind}): {seconds:.3f} s/iter, samples "
                    f"{np.round(result['seconds'], 3).tolist()}",
                    flush=True,
                )
    print(f"\ndata: {data_mib:.0f} MiB; load after the run: {os.getloadavg()[0]:.2f}\n")
    header = (
        f"{'tool':<12} {'cov':<5} {'s/iter':>8} {'ratio':>7} {'peak MiB above data':>20} "
        f"{'mean log-lik':>13}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ours = [r["seconds"] for r in rows if r["tool"] == "streamem" and r["cov"] == row["cov"]]
        ratio = f"{row['seconds'] / ours[0]:6.1f}x" if ours else "      -"
        print(
            f"{row['tool']:<12} {row['cov']:<5} {row['seconds']:>8.3f} {ratio:>7} "
            f"{row['peak_mib']:>20.0f} {row['mean_log_likelihood']:>13.4f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


# --- the Spark MLlib investigation -------------------------------------------------------------


def spark_reference_step(X, params, epsilon=SPARK_EPSILON, block=100_000):
    """One EM iteration as Spark MLlib computes it, in NumPy: returns (parameters, log-lik).

    Spark's ``ExpectationSum.add`` takes ``p_k = EPSILON + w_k * pdf_k(x)`` (densities, not
    log-densities) and normalises them; its M-step is ``E[x xᵀ] - μ μᵀ`` without regularisation.
    ``epsilon=0`` gives textbook EM (scikit-learn with ``reg_covar=0``).
    """
    k, d = params["means"].shape
    weights_sum = np.zeros(k)
    sums = np.zeros((k, d))
    scatter = np.zeros((k, d, d))
    total = 0.0
    model = sklearn_model(params, "full")
    for lo in range(0, len(X), block):
        x = X[lo : lo + block]
        weighted = np.exp(model._estimate_weighted_log_prob(x))  # w_k * pdf_k(x), as Spark
        p = epsilon + weighted
        p_sum = p.sum(axis=1, keepdims=True)
        total += np.log(p_sum).sum()
        r = p / p_sum
        weights_sum += r.sum(axis=0)
        sums += r.T @ x
        scatter += np.einsum("nk,ni,nj->kij", r, x, x, optimize=True)
    means = sums / weights_sum[:, None]
    covariances = scatter / weights_sum[:, None, None] - means[:, :, None] * means[:, None, :]
    new = {"weights": weights_sum / weights_sum.sum(), "means": means, "covariances": covariances}
    return new, total


def largest_difference(a: dict, b: dict) -> float:
    names = ("weights", "means", "covariances")
    return max(float(np.max(np.abs(a[name] - b[name]))) for name in names)


def sklearn_fit(X, start, max_iter, tol=0.0):
    """scikit-learn without regularisation (Spark has none) from the given start."""
    model = SklearnGaussianMixture(
        len(start["weights"]),
        tol=tol,
        max_iter=max_iter,
        reg_covar=0,
        weights_init=start["weights"],
        means_init=start["means"],
        precisions_init=np.linalg.inv(start["covariances"]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    fitted = {"weights": model.weights_, "means": model.means_}
    return {**fitted, "covariances": model.covariances_}, model.n_iter_


def spark_check(args: argparse.Namespace) -> None:
    X = make_data(args.n, args.d, args.k)
    start = initial_parameters(X, args.k, "full")
    context = spark_context()
    rows = context.parallelize(list(X), 2)
    n, k, eps = len(X), args.k, SPARK_EPSILON
    print(f"N={n} D={args.d} K={k} float64, full covariances, one start for all")

    spark_1 = spark_train(context, rows, start, 1)
    sklearn_1, _ = sklearn_fit(X, start, 1)
    reference_1, _ = spark_reference_step(X, start)
    plain_1, _ = spark_reference_step(X, start, epsilon=0.0)
    print("\nafter one iteration, largest absolute difference of the parameters:")
    for label, a, b in [
        ("Spark MLlib vs scikit-learn (reg_covar=0)", spark_1, sklearn_1),
        ("Spark MLlib vs NumPy transcription, EPSILON=2**-52", spark_1, reference_1),
        ("NumPy transcription, EPSILON=0 vs scikit-learn", plain_1, sklearn_1),
        ("scikit-learn's own change in that iteration", start, sklearn_1),
    ]:
        print(f"  {label:<52} {largest_difference(a, b):.3e}")

    weighted = np.exp(sklearn_model(start, "full")._estimate_weighted_log_prob(X))
    density = weighted.sum(axis=1)
    leaked = (k * eps / (density + k * eps)).sum()  # responsibility that EPSILON hands out
    print(
        f"\nat the start: {np.mean(density < k * eps):.2%} of the rows have a mixture density "
        f"below K*EPSILON = {k * eps:.2e}; EPSILON hands out {leaked:.0f} rows' worth of "
        f"responsibility ({leaked / n:.2%}), spread evenly over the components"
    )

    # Spark's own stopping rule: |change of the total log-likelihood| <= 0.01, at most 100
    spark = spark_train(context, rows, start, 100, tol=0.01)
    context.stop()
    print("\nmean log-likelihood (scored by scikit-learn) of the NumPy transcription of Spark:")
    reference, previous, iteration, trajectory = start, None, 0, []
    while iteration < 100:
        reference, total = spark_reference_step(X, reference)
        iteration += 1
        trajectory.append(mean_log_likelihood(X, reference, "full"))
        if previous is not None and abs(total - previous) <= 0.01:
            break
        previous = total
    print("  " + ", ".join(f"{i + 1}: {v:.4f}" for i, v in enumerate(trajectory)))
    fitted, n_iter = sklearn_fit(X, start, 1000, tol=1e-8)
    print("\nrun to convergence (Spark's rule: total log-likelihood changes by <= 0.01):")
    for label, params in [
        ("Spark MLlib (tol=0.01, maxIter=100)", spark),
        (f"NumPy transcription of Spark, {iteration} iterations", reference),
        (f"scikit-learn (reg_covar=0, tol=1e-8), {n_iter} iterations", fitted),
    ]:
        print(f"  {label:<52} {mean_log_likelihood(X, params, 'full'):.4f}")
    difference = largest_difference(spark, reference)
    print(f"  Spark vs its transcription: parameters differ by {difference:.1e}")
    for label, params in [("Spark MLlib", spark), ("scikit-learn", fitted)]:
        eigenvalues = np.linalg.eigvalsh(params["covariances"])
        print(
            f"  {label:<13} weights {np.round(np.sort(params['weights']), 4).tolist()}; "
            f"covariance eigenvalues {eigenvalues.min():.3g} to {eigenvalues.max():.3g}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows (default 1000000)")
    parser.add_argument("--d", type=int, default=16, help="features (default 16)")
    parser.add_argument("--k", type=int, default=8, help="components (default 8)")
    parser.add_argument(
        "--covariance-type", nargs="+", default=["full", "diag"], choices=["full", "diag"]
    )
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed pairs of fits (default 3)")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--spark-check", action="store_true", help="run the Spark MLlib investigation instead"
    )
    parser.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.workdir, args.covariance_type[0], args.iterations, args.repeats)
    elif args.spark_check:
        spark_check(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
