"""``GaussianMixture``: scikit-learn's estimator, fitted chunk by chunk."""

from __future__ import annotations

from typing import Any

import numpy as np
from dask.utils import format_bytes

from .._validation import (
    check_array_shape,
    check_float,
    check_option,
    check_weights_init,
)
from ..engines.numpy_ import default_threads, physical_memory
from ..families._base import MIN_BLOCK_ROWS, Mixture
from ..families.gaussian import (
    COVARIANCE_TYPES,
    Gaussian,
    GaussianParams,
    precision_cholesky,
    precision_cholesky_from_precisions,
)
from ._base import MixtureEstimator
from ._docs import share_docs


@share_docs
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
    %(shared_parameters)s

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
    %(shared_attributes)s

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
        missing: str = "error",
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
        half_life: float | None = None,
        half_life_unit: str = "rows",
        average: bool | int | str = "auto",
        incremental_store: str | None = None,
        persist: bool | str = "auto",
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
        self.missing = missing
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
        self.half_life = half_life
        self.half_life_unit = half_life_unit
        self.average = average
        self.incremental_store = incremental_store
        self.persist = persist
        self.checkpoint = checkpoint
        self.callback = callback

    def _family(self) -> Gaussian:
        return Gaussian(self.covariance_type, float(self.reg_covar), self.missing)

    def _check_parameters(self) -> None:
        super()._check_parameters()
        owner = type(self).__name__
        check_option("covariance_type", self.covariance_type, COVARIANCE_TYPES, owner)
        check_float("reg_covar", self.reg_covar, owner, low=0.0)

    def _check_width(self, n_features: int) -> None:
        if self.covariance_type not in ("full", "tied"):
            return
        # the E-step expands each row into its D + D(D+1)/2 products, at least 64 rows at
        # once on each thread, against K such rows of coefficients
        width = n_features + n_features * (n_features + 1) // 2
        needed = 8 * width * (MIN_BLOCK_ROWS * default_threads() + 2 * self.n_components)
        if needed > physical_memory() / 4:
            raise ValueError(
                f"{type(self).__name__}: covariance_type={self.covariance_type!r} on "
                f"{n_features} features works on the {width:,} products of each row's "
                f"features (~D²/2 numbers per row, {format_bytes(needed)} at the least), more "
                "than this machine can hold. Use covariance_type='diag', or reduce the "
                "features first (for example with PCA)."
            )

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
