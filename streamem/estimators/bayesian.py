"""``BayesianGaussianMixture``: scikit-learn's variational Gaussian mixture, fitted chunk by
chunk, online (stochastic variational inference) or incrementally."""

from __future__ import annotations

import numbers
import re
from dataclasses import replace
from typing import Any

import numpy as np

from .._validation import check_array_shape, check_float, check_option
from ..drivers.common import Settings, elbo_penalty
from ..engines import Engine
from ..families._base import Mixture
from ..families._variational import WEIGHT_PRIOR_TYPES
from ..families.bayesian_gaussian import (
    BayesianGaussian,
    BayesianGaussianParams,
    GaussianWishartPrior,
)
from ..families.gaussian import COVARIANCE_TYPES
from ._base import MixtureEstimator
from ._docs import SHARED_ATTRIBUTES, SHARED_PARAMETERS
from .gaussian import GaussianMixture

# the weights have no initial values and are always learned (from their prior); missing
# entries are refused or their rows dropped (the variational families have no masked
# statistics), and the bound is the ELBO
MISSING_DOC = """\
    missing : {'error', 'drop'}, default='error'
        What NaN entries mean: refused (``'error'``), or rows with NaN left out of the fit
        (``'drop'``; their predictions are -1 and NaN). Variational mixtures do not marginalise
        missing entries: the plain mixtures do (``missing='marginalize'``).
"""
BAYESIAN_PARAMETERS_DOC = MISSING_DOC + re.sub(
    r"    (learn_weights|missing) : .*?\n(?=    \w)", "", SHARED_PARAMETERS, flags=re.S
)
BAYESIAN_ATTRIBUTES_DOC = re.sub(
    r"    lower_bound_ : .*?\n(?=    n_features_in_)", "", SHARED_ATTRIBUTES, flags=re.S
)


def share_bayesian_docs(cls: type) -> type:
    """Fill a Bayesian estimator docstring's ``%(shared_parameters)s`` and
    ``%(shared_attributes)s``."""
    cls.__doc__ = cls.__doc__.replace("    %(shared_parameters)s\n", BAYESIAN_PARAMETERS_DOC)
    cls.__doc__ = cls.__doc__.replace("    %(shared_attributes)s\n", BAYESIAN_ATTRIBUTES_DOC)
    return cls


class BayesianMixture(MixtureEstimator):
    """What the variational Bayesian mixtures share (not for direct use): Dirichlet(-process)
    weights always learned from their prior, data-dependent priors set before the fit, the
    stopping rule on the total ELBO, and stochastic variational inference for online fits."""

    # No weights_init: the weights are always learned, from their prior.
    learn_weights = True
    weights_init = None

    def _set_prior(self, engine: Engine) -> None:
        """Set the ``*_prior_`` attributes (from the parameters, else from the data)."""
        raise NotImplementedError

    def _check_parameters(self) -> None:
        super()._check_parameters()
        owner = type(self).__name__
        if self.missing == "marginalize":
            raise ValueError(
                f"{owner}: missing='marginalize' is not available for variational mixtures; "
                f"use missing='drop' (rows with NaN left out), or "
                f"{owner.removeprefix('Bayesian')}(missing='marginalize'), whose EM "
                "marginalises missing entries exactly."
            )
        check_option(
            "weight_concentration_prior_type",
            self.weight_concentration_prior_type,
            WEIGHT_PRIOR_TYPES,
            owner,
        )
        if self.weight_concentration_prior is not None:
            check_float(
                "weight_concentration_prior",
                self.weight_concentration_prior,
                owner,
                low=0.0,
                low_open=True,
            )

    def _prepare(self, engine: Engine, do_init: bool, partial: bool = False) -> None:
        """Set the prior (data-dependent defaults from one pass, at every ``fit`` as
        scikit-learn and at the first ``partial_fit``), the row weight the statistics
        stand for in stochastic variational inference, and the weight ``tol`` is divided by
        (the total row weight for batch and incremental fits: ``tol`` applies to the change
        of the total ELBO, as scikit-learn's)."""
        if do_init or not partial:
            self.weight_concentration_prior_ = (
                1.0 / self.n_components
                if self.weight_concentration_prior is None
                else float(self.weight_concentration_prior)
            )
            self._set_prior(engine)
        state = getattr(self, "stepwise_state_", None)
        total = total_weight(engine)
        if partial:
            seen = 0.0 if do_init or state is None else state.weight_seen
            self._data_weight = seen + total
        else:
            self._data_weight = total if self.algorithm == "online" else None
        online = partial or self.algorithm == "online"
        self._tol_weight = 1.0 if online or total <= 0 else total
        if state is not None and not do_init:  # continue with this prior and data weight
            family = self._family()
            models = tuple(model._replace(family=family) for model in state.models)
            self.stepwise_state_ = state._replace(models=models)

    def _settings(self, batch_size: int | None = None) -> Settings:
        settings = super()._settings(batch_size)
        return replace(settings, tol=self.tol / getattr(self, "_tol_weight", 1.0))

    def _apply_initial_parameters(self, model: Mixture | None, n_features: int) -> Mixture:
        return model  # no initial parameters: the start is drawn from the data

    def _set_weights(self, model: Mixture) -> None:
        self.weights_ = model.weights
        concentration = model.params.weight_concentration
        if self.weight_concentration_prior_type == "dirichlet_process":
            self.weight_concentration_ = tuple(concentration)
        else:
            self.weight_concentration_ = concentration

    def _weight_concentration(self) -> np.ndarray:
        return np.asarray(self.weight_concentration_, dtype=np.float64)

    # -- online updates: the bound is the ELBO's estimate ---------------------------------------

    def _update(self, X: Any, sample_weight: Any) -> tuple[float, float]:
        total, weight = super()._update(X, sample_weight)
        # the batch's share of KL(q(θ) ‖ p(θ)): its weight over the rows the posterior stands for
        model = self._get_model()
        total -= elbo_penalty(model) * weight / max(self._data_weight, np.finfo(float).tiny)
        self.lower_bound_ = total / weight
        self.lower_bounds_[-1] = self.lower_bound_
        return total, weight


class BayesianGaussianMixture(BayesianMixture):
    """Variational Bayesian Gaussian mixture, fitted over chunks of rows, in memory or out of
    core, in batch, online (stochastic variational inference) or incrementally.

    Parameters, defaults, attributes and methods are those of
    :class:`sklearn.mixture.BayesianGaussianMixture`: from the same initial responsibilities
    both give the same posterior to floating-point rounding. A Dirichlet-process (or
    Dirichlet) prior on the weights lets components the data do not need empty themselves, so
    ``n_components`` is an upper bound rather than a choice. Variational Bayes has the shape of
    EM (the E-step uses expected natural parameters, the M-step is the conjugate posterior
    update from the merged statistics), so every source, engine and algorithm of
    :class:`streamem.GaussianMixture` serves it.

    Differences from scikit-learn: ``lower_bound_`` is the exact evidence lower bound (ELBO,
    every constant included, so it is comparable between models) *per unit of row weight*,
    where scikit-learn's is the total without its constants. ``tol`` applies, as
    scikit-learn's, to the change of the *total* ELBO (``lower_bound_`` times the total row
    weight), so from the same start both stop at the same iteration. The data-dependent prior
    defaults (``mean_prior``, ``covariance_prior``) take one pass over the data, as in
    scikit-learn.
    ``sample_weight`` counts a row as that many copies (also in those defaults).

    Parameters
    ----------
    n_components : int, default=1
        Maximum number of mixture components; the posterior may leave some (nearly) empty.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        As in scikit-learn: each component has its own Wishart posterior over a general
        precision matrix (``full``), all share one (``tied``), or the precision is diagonal
        (``diag``) or a multiple of the identity (``spherical``).
    tol : float, default=1e-3
        Convergence threshold on the change of the total ELBO between iterations (batch) or
        passes (incremental), as scikit-learn's: the change of ``lower_bound_`` times the
        total row weight. Online fits compare their per-row estimate of the ELBO from pass
        to pass with ``tol`` (a noisy estimate cannot resolve ``tol`` over all rows).
    reg_covar : float, default=1e-6
        Non-negative regularisation added to the diagonal of each component's scatter, per
        unit of responsibility.
    max_iter : int, default=100
        Maximum number of iterations (passes over the data).
    n_init : int, default=1
        Number of initialisations; all advance in the same passes, the one with the largest
        ELBO is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn, as in scikit-learn, on a uniform sample of
        ``init_size`` rows.
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}, \
default='dirichlet_process'
        The prior of the weights: stick-breaking (truncated at ``n_components``) or a
        symmetric Dirichlet.
    weight_concentration_prior : float, default=None
        Concentration ``γ`` of the weight prior (> 0; default ``1 / n_components``). Small
        values put the weight on few components.
    mean_precision_prior : float, default=None
        ``β₀`` > 0, how strongly the means are pulled to ``mean_prior`` (default 1).
    mean_prior : array-like of shape (n_features,), default=None
        Prior mean ``m₀`` of the means (default: the mean of the data).
    degrees_of_freedom_prior : float, default=None
        ``ν₀`` > n_features − 1 of the Wishart prior (default ``n_features``).
    covariance_prior : float or array-like, default=None
        ``W₀⁻¹`` of the Wishart prior, shaped by ``covariance_type`` ((D, D) for ``full``
        and ``tied``, (D,) for ``diag``, a float for ``spherical``; default: the covariance
        of the data, ``ddof=1``).
    %(shared_parameters)s

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Posterior means of the mixture weights.
    means_ : ndarray of shape (n_components, n_features)
        Posterior means ``m_k`` of the component means.
    covariances_ : ndarray
        ``W_k⁻¹ / ν_k``, the inverse of the posterior mean of each precision, shaped by
        ``covariance_type``.
    precisions_ : ndarray
        ``ν_k W_k``, the posterior means of the precisions.
    precisions_cholesky_ : ndarray
        Cholesky factors ``L`` of the precisions (``P = L Lᵀ``).
    weight_concentration_prior_ : float
        The concentration of the weight prior used.
    weight_concentration_ : ndarray of shape (n_components,) or tuple of two
        Dirichlet parameters of the weights, or the two Beta parameters of each stick
        (``dirichlet_process``).
    mean_precision_prior_ : float
        ``β₀`` used.
    mean_precision_ : ndarray of shape (n_components,)
        ``β_k``.
    mean_prior_ : ndarray of shape (n_features,)
        ``m₀`` used.
    degrees_of_freedom_prior_ : float
        ``ν₀`` used.
    degrees_of_freedom_ : ndarray of shape (n_components,) or float
        ``ν_k`` (one value for ``tied``).
    covariance_prior_ : float or ndarray
        ``W₀⁻¹`` used.
    lower_bound_ : float
        ELBO per unit of row weight at the last iteration of the best initialisation
        (online fits: its estimate over the last pass).
    lower_bounds_ : list of float
        ELBO per unit of row weight at each iteration of the best initialisation.
    %(shared_attributes)s

    See Also
    --------
    GaussianMixture : maximum-likelihood fit with a fixed number of components.
    select_n_components : choosing ``n_components`` by BIC or AIC instead.

    Notes
    -----
    Mean-field variational Bayes prunes slowly on large data: the posterior of an unneeded
    component shrinks with the evidence against it, which for a redundant split of a true
    component can take many iterations. Starting from k-means on a sample (the default) and
    a small ``weight_concentration_prior`` help; so does reading the effective components
    from ``weights_`` with a threshold.

    References
    ----------
    .. [1] C. M. Bishop (2006), *Pattern Recognition and Machine Learning*, ch. 10,
       Springer.
    .. [2] D. M. Blei and M. I. Jordan (2006), "Variational inference for Dirichlet process
       mixtures", Bayesian Analysis 1(1), 121–143.
    .. [3] M. D. Hoffman, D. M. Blei, C. Wang and J. Paisley (2013), "Stochastic variational
       inference", JMLR 14, 1303–1347.

    Examples
    --------
    >>> import numpy as np
    >>> from streamem import BayesianGaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [12, 4], [10, 7]])
    >>> bgm = BayesianGaussianMixture(n_components=2, random_state=42).fit(X)
    >>> bgm.means_[np.argsort(bgm.means_[:, 0])].round(2)
    array([[2.5 , 2.29],
           [8.46, 4.52]])
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
        weight_concentration_prior_type: str = "dirichlet_process",
        weight_concentration_prior: float | None = None,
        mean_precision_prior: float | None = None,
        mean_prior: Any = None,
        degrees_of_freedom_prior: float | None = None,
        covariance_prior: Any = None,
        missing: str = "error",
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
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
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.missing = missing
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
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

    # -- checks --------------------------------------------------------------------------------

    def _check_parameters(self) -> None:
        super()._check_parameters()
        owner = type(self).__name__
        check_option("covariance_type", self.covariance_type, COVARIANCE_TYPES, owner)
        check_float("reg_covar", self.reg_covar, owner, low=0.0)
        if self.mean_precision_prior is not None:
            check_float(
                "mean_precision_prior", self.mean_precision_prior, owner, low=0.0, low_open=True
            )
        if self.degrees_of_freedom_prior is not None:
            check_float(
                "degrees_of_freedom_prior",
                self.degrees_of_freedom_prior,
                owner,
                low=0.0,
                low_open=True,
            )
        if self.covariance_type == "spherical" and self.covariance_prior is not None:
            check_float("covariance_prior", self.covariance_prior, owner, low=0.0, low_open=True)

    def _check_width(self, n_features: int) -> None:
        # the same limit as GaussianMixture's (it reads covariance_type and n_components only)
        GaussianMixture._check_width(self, n_features)

    # -- the prior, from the parameters and the data --------------------------------------------

    def _set_prior(self, engine: Engine) -> None:
        owner = type(self).__name__
        d = engine.n_features
        kind = self.covariance_type
        moments = None
        if self.mean_prior is None or self.covariance_prior is None:
            moments = _data_moments(engine, kind, getattr(self, "missing", "error"))
        self.mean_precision_prior_ = (
            1.0 if self.mean_precision_prior is None else float(self.mean_precision_prior)
        )
        if self.mean_prior is None:
            self.mean_prior_ = moments[1]
        else:
            self.mean_prior_ = check_array_shape("mean_prior", self.mean_prior, (d,), owner)
        if self.degrees_of_freedom_prior is None:
            self.degrees_of_freedom_prior_ = float(d)
        elif self.degrees_of_freedom_prior > d - 1.0:
            self.degrees_of_freedom_prior_ = float(self.degrees_of_freedom_prior)
        else:
            raise ValueError(
                f"{owner}: degrees_of_freedom_prior must be greater than n_features - 1 = "
                f"{d - 1}, got {self.degrees_of_freedom_prior:.3f}."
            )
        if self.covariance_prior is None:
            weight, _, scatter = moments
            covariance = scatter / (weight - 1.0 if weight > 1.0 else weight)  # ddof=1
            self.covariance_prior_ = (
                float(covariance.mean()) if kind == "spherical" else covariance
            )
        else:
            self.covariance_prior_ = _check_covariance_prior(self.covariance_prior, kind, d)

    def _prior(self) -> GaussianWishartPrior:
        return GaussianWishartPrior(
            float(self.weight_concentration_prior_),
            float(self.mean_precision_prior_),
            np.asarray(self.mean_prior_, dtype=np.float64),
            float(self.degrees_of_freedom_prior_),
            self.covariance_prior_
            if self.covariance_type == "spherical"
            else np.asarray(self.covariance_prior_, dtype=np.float64),
        )

    # -- the model -----------------------------------------------------------------------------

    def _family(self) -> BayesianGaussian:
        return BayesianGaussian(
            self._prior(),
            self.covariance_type,
            float(self.reg_covar),
            self.weight_concentration_prior_type,
            getattr(self, "_data_weight", None),
            getattr(self, "missing", "error"),
        )

    def _set_model(self, model: Mixture) -> None:
        params = model.params
        self._set_weights(model)
        self.mean_precision_ = params.mean_precision
        self.means_ = params.means
        if self.covariance_type == "tied":
            self.degrees_of_freedom_ = np.float64(params.degrees_of_freedom[0])
        else:
            self.degrees_of_freedom_ = params.degrees_of_freedom
        self.covariances_ = params.covariances
        chol = params.precisions_cholesky
        self.precisions_cholesky_ = chol
        if self.covariance_type == "full":
            self.precisions_ = chol @ chol.transpose(0, 2, 1)
        elif self.covariance_type == "tied":
            self.precisions_ = chol @ chol.T
        else:
            self.precisions_ = chol**2

    def _get_model(self) -> Mixture:
        k = len(self.weights_)
        params = BayesianGaussianParams(
            self._weight_concentration(),
            np.asarray(self.mean_precision_, dtype=np.float64),
            np.asarray(self.means_, dtype=np.float64),
            np.broadcast_to(np.asarray(self.degrees_of_freedom_, dtype=np.float64), (k,)).copy(),
            np.asarray(self.covariances_, dtype=np.float64),
            np.asarray(self.precisions_cholesky_, dtype=np.float64),
        )
        return Mixture(self._family(), np.asarray(self.weights_, dtype=np.float64), params)


share_bayesian_docs(BayesianGaussianMixture)


def total_weight(engine: Engine) -> float:
    """The total row weight of an engine's data."""
    weights = getattr(engine, "sample_weight", None)
    return float(engine.n_rows) if weights is None else float(weights.sum())


def _data_moments(
    engine: Engine, covariance_type: str, missing: str = "error"
) -> tuple[float, np.ndarray, np.ndarray]:
    """Total weight, mean and centred scatter (a matrix for ``full`` and ``tied``, else its
    diagonal) of the data, in one pass: the E-step of a one-component model (of the rows
    without NaN, with ``missing='drop'``)."""
    d = engine.n_features
    # the variational family (its statistics are the Gaussian's), so that errors about the
    # data offer what the variational mixtures accept
    kind = "full" if covariance_type in ("full", "tied") else "diag"
    spread = np.eye(d)[None] if kind == "full" else np.ones((1, d))
    prior = GaussianWishartPrior(1.0, 1.0, np.zeros(d), float(d), spread[0])
    family = BayesianGaussian(prior, kind, 0.0, "dirichlet_distribution", None, missing)
    ones = np.ones(1)
    params = BayesianGaussianParams(
        ones, ones, np.zeros((1, d)), np.full(1, d + 1.0), spread, spread
    )
    stats = engine.estep((Mixture(family, ones, params),)).stats[0]
    return float(stats.counts[0]), stats.means[0], stats.scatter[0]


def _check_covariance_prior(value: Any, kind: str, d: int) -> np.ndarray | float:
    owner = "BayesianGaussianMixture"
    if kind == "spherical":
        if not isinstance(value, numbers.Real):
            raise ValueError(f"{owner}: covariance_prior must be a float > 0 for 'spherical'.")
        return float(value)
    shape = (d, d) if kind in ("full", "tied") else (d,)
    hint = f"(covariance_type={kind!r})"
    covariance = check_array_shape("covariance_prior", value, shape, owner, hint)
    if kind == "diag":
        if np.any(covariance <= 0):
            raise ValueError(f"{owner}: 'diag' covariance_prior must be positive.")
    elif not np.allclose(covariance, covariance.T) or np.any(np.linalg.eigvalsh(covariance) <= 0):
        raise ValueError(
            f"{owner}: '{kind}' covariance_prior must be symmetric and positive definite."
        )
    return covariance
