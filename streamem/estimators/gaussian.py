"""``GaussianMixture``: scikit-learn's estimator, fitted chunk by chunk."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import (
    check_array_shape,
    check_float,
    check_option,
    check_weights_init,
)
from ..families._base import Mixture
from ..families.gaussian import (
    COVARIANCE_TYPES,
    Gaussian,
    GaussianParams,
    precision_cholesky,
    precision_cholesky_from_precisions,
)
from ._base import MixtureEstimator


class GaussianMixture(MixtureEstimator):
    """Gaussian mixture model fitted by EM over chunks of rows, in memory or out of core.

    Parameters, attributes and methods are those of :class:`sklearn.mixture.GaussianMixture`;
    from the same initial parameters both give the same model to floating-point rounding.
    NumPy input is fitted in memory on all cores; Dask input (and, through
    :mod:`streamem.sources`, Zarr stores and xarray objects) is fitted chunk by chunk on the
    active Dask scheduler without being loaded, one pass over the data per iteration.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        Each component has its own general covariance matrix (``full``), all share one
        (``tied``), or each has a diagonal (``diag``) or a single variance (``spherical``).
    tol : float, default=1e-3
        Convergence threshold: EM stops when the mean log-likelihood of the data changes by
        less than ``tol`` between iterations.
    reg_covar : float, default=1e-6
        Non-negative regularisation added to the diagonal of the covariances.
    max_iter : int, default=100
        Maximum number of EM iterations (passes over the data).
    n_init : int, default=1
        Number of initialisations; all advance in the same passes, the best is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn, as in scikit-learn, on a uniform sample of
        ``init_size`` rows.
    weights_init : array-like of shape (n_components,), default=None
        Initial mixture weights.
    means_init : array-like of shape (n_components, n_features), default=None
        Initial means.
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances), shaped by ``covariance_type`` as in
        scikit-learn.
    random_state : int, RandomState instance or None, default=None
        Seed for the sample, the initialisation and :meth:`sample`.
    warm_start : bool, default=False
        If true, each ``fit`` starts from the previous solution (``n_init`` is ignored).
    verbose : int, default=0
        1: a progress bar over iterations (with the log-likelihood and its change); 2: also
        one over the chunks of each pass. Bars go to stderr and are silent off a terminal.
    verbose_interval : int, default=10
        Kept for compatibility with scikit-learn (the progress bar updates every iteration).
    learn_weights : bool, default=True
        If false the mixture weights stay at their initial values (``weights_init``).
    chunk_size : int or str, default=None
        Rows per chunk (int) or bytes per chunk ("64MiB"). None keeps a Dask array's chunks,
        reads Zarr stores, ``.npy`` files and xarray objects in chunks of about 64 MiB, and
        splits in-memory data into a few chunks per core.
    init_size : int, default=100_000
        Rows drawn uniformly at random to initialise from (all rows when there are fewer).
    split_every : int, default=8
        Fan-in of the tree that merges the chunks' statistics.
    sample_dim : str, default=None
        For xarray input: the dimension that indexes samples (default: the first); every
        other dimension is a feature. Predictions on xarray input are xarray objects along it.
    variables : list of str, default=None
        For ``xarray.Dataset`` input: the data variables to use as features (default: all
        that have the sample dimension).
    algorithm : {'batch', 'online', 'incremental'}, default='batch'
        ``batch``: EM, one pass over the data per iteration. ``online``: stepwise EM
        (see :meth:`partial_fit`) over passes through the data in a random chunk and row
        order, in mini-batches of ``batch_size`` rows (default 10 000). ``incremental``:
        incremental EM (Neal & Hinton, 1998), an M-step after every chunk, the chunks'
        statistics kept (in memory, or in ``incremental_store``); its lower bound (the free
        energy) never decreases.
    max_passes : int, default=None
        For ``online`` and ``incremental``: the maximum number of passes over the data
        (default ``max_iter``).
    batch_size : int, default=None
        Rows per stepwise update (``online`` fits and :meth:`partial_fit`).
    learning_decay : float, default=0.6
        κ ∈ (0.5, 1] in the step size ``η_t = (t + learning_offset)^(−κ)``.
    learning_offset : float, default=2.0
        t₀ ≥ 0 in the step size.
    learning_rate : float, default=None
        A constant step size η ∈ (0, 1] instead of the decaying one: old data are forgotten
        geometrically, which follows a drifting stream.
    average : bool or int, default=False
        Report the running mean of the stepwise statistics (Polyak averaging): from burn-in on
        (``True``), or once that many rows have been seen (an int, as in scikit-learn's
        ``SGDClassifier``), which leaves the poor early iterates out of the average.
    incremental_store : str, default=None
        A Zarr store to keep the per-chunk statistics of ``incremental`` fits in, when they
        are too large for memory.
    persist : bool or 'auto', default=False
        Keep lazy data in the memory of the Dask workers between iterations instead of
        reading it again each pass: ``True`` always, ``'auto'`` when a ``dask.distributed``
        cluster is active and the data take less than half of its memory.
    checkpoint : str, default=None
        A file to save the fit's state to after every iteration (atomically, no pickle).
        Fitting again with the same checkpoint, after the process was killed, continues
        from the last saved iteration and ends with the model of an uninterrupted fit; a
        checkpoint of another configuration or data shape is refused. Removed when the fit
        completes.
    callback : callable, default=None
        Called after every iteration (pass) with a :class:`streamem.Iteration`.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixture weights.
    means_ : ndarray of shape (n_components, n_features)
        Component means.
    covariances_ : ndarray
        Component covariances, shaped by ``covariance_type``.
    precisions_ : ndarray
        Inverses of the covariances.
    precisions_cholesky_ : ndarray
        Cholesky factors ``L`` of the precisions (``P = L Lᵀ``).
    converged_ : bool
        Whether the best initialisation converged.
    n_iter_ : int
        Iterations run by the best initialisation.
    lower_bound_ : float
        Mean log-likelihood at the last iteration of the best initialisation.
    lower_bounds_ : list of float
        Mean log-likelihood at each iteration of the best initialisation.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when ``X`` had string column names.
    n_steps_ : int
        Stepwise updates made (``online`` fits and :meth:`partial_fit`).

    Examples
    --------
    >>> import numpy as np
    >>> from streamem import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> gm.means_[np.argsort(gm.means_[:, 0])]
    array([[ 1.,  2.],
           [10.,  2.]])
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        learn_weights: bool = True,
        chunk_size: int | str | None = None,
        init_size: int = 100_000,
        split_every: int = 8,
        sample_dim: str | None = None,
        variables: list[str] | None = None,
        algorithm: str = "batch",
        max_passes: int | None = None,
        batch_size: int | None = None,
        learning_decay: float = 0.6,
        learning_offset: float = 2.0,
        learning_rate: float | None = None,
        average: bool = False,
        incremental_store: str | None = None,
        persist: bool | str = False,
        checkpoint: str | None = None,
        callback: Any = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.learn_weights = learn_weights
        self.chunk_size = chunk_size
        self.init_size = init_size
        self.split_every = split_every
        self.sample_dim = sample_dim
        self.variables = variables
        self.algorithm = algorithm
        self.max_passes = max_passes
        self.batch_size = batch_size
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.learning_rate = learning_rate
        self.average = average
        self.incremental_store = incremental_store
        self.persist = persist
        self.checkpoint = checkpoint
        self.callback = callback

    def _family(self) -> Gaussian:
        return Gaussian(self.covariance_type, float(self.reg_covar))

    def _check_parameters(self) -> None:
        super()._check_parameters()
        owner = type(self).__name__
        check_option("covariance_type", self.covariance_type, COVARIANCE_TYPES, owner)
        check_float("reg_covar", self.reg_covar, owner, low=0.0)

    def _precisions_shape(self, n_features: int) -> tuple[int, ...]:
        k, d = self.n_components, n_features
        return {
            "full": (k, d, d),
            "tied": (d, d),
            "diag": (k, d),
            "spherical": (k,),
        }[self.covariance_type]

    def _check_initial_parameters(self, n_features: int) -> None:
        owner = type(self).__name__
        if self.weights_init is not None:
            check_weights_init(self.weights_init, self.n_components, owner)
        if self.means_init is not None:
            check_array_shape(
                "means_init", self.means_init, (self.n_components, n_features), owner
            )
        if self.precisions_init is not None:
            precisions = check_array_shape(
                "precisions_init",
                self.precisions_init,
                self._precisions_shape(n_features),
                owner,
                f"(covariance_type={self.covariance_type!r})",
            )
            if self.covariance_type in ("diag", "spherical"):
                if np.any(precisions <= 0):
                    raise ValueError(
                        f"{owner}: precisions_init must be positive for covariance_type="
                        f"{self.covariance_type!r}."
                    )
            else:
                matrices = precisions[None] if precisions.ndim == 2 else precisions
                for k, matrix in enumerate(matrices):
                    symmetric = np.allclose(matrix, matrix.T)
                    if not symmetric or np.any(np.linalg.eigvalsh(matrix) <= 0):
                        raise ValueError(
                            f"{owner}: precisions_init[{k}] must be symmetric and positive "
                            "definite."
                        )

    def _needs_responsibilities(self) -> bool:
        return (
            self.means_init is None or self.precisions_init is None or (self.weights_init is None)
        )

    def _apply_initial_parameters(self, model: Mixture | None, n_features: int) -> Mixture:
        family = self._family()
        if model is None:
            weights = means = covariances = chol = None
        else:
            weights = model.weights
            means, covariances, chol = model.params
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64).copy()
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64).copy()
        if self.precisions_init is not None:
            covariances, chol = precision_cholesky_from_precisions(
                self.precisions_init, self.covariance_type
            )
        return Mixture(family, weights, GaussianParams(means, covariances, chol))

    def _set_model(self, model: Mixture) -> None:
        means, covariances, chol = model.params
        self.weights_ = model.weights
        self.means_ = means
        self.covariances_ = covariances
        self.precisions_cholesky_ = chol
        if self.covariance_type == "full":
            self.precisions_ = chol @ chol.transpose(0, 2, 1)
        elif self.covariance_type == "tied":
            self.precisions_ = chol @ chol.T
        else:
            self.precisions_ = chol**2

    def _get_model(self) -> Mixture:
        family = self._family()
        covariances = np.asarray(self.covariances_, dtype=np.float64)
        chol = getattr(self, "precisions_cholesky_", None)
        if chol is None:
            covariances, chol, _ = precision_cholesky(covariances, self.covariance_type)
        return Mixture(
            family,
            np.asarray(self.weights_, dtype=np.float64),
            GaussianParams(np.asarray(self.means_, dtype=np.float64), covariances, chol),
        )
