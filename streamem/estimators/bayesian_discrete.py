"""Variational Bayesian mixtures of discrete components, fitted chunk by chunk, online
(stochastic variational inference) or incrementally: ``BayesianBernoulliMixture``,
``BayesianBinomialMixture``, ``BayesianPoissonMixture`` and ``BayesianMultinomialMixture``.

Each is its plain mixture's model with a conjugate prior on the component parameters and a
Dirichlet(-process) prior on the weights, as :class:`streamem.BayesianGaussianMixture` is
:class:`streamem.GaussianMixture`'s.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._validation import check_int
from ..engines import Engine
from ..families._base import Mixture
from ..families.bayesian_discrete import (
    BayesianBernoulli,
    BayesianBinomial,
    BayesianMultinomial,
    BayesianPoisson,
    BetaParams,
    BetaPrior,
    DirichletParams,
    DirichletPrior,
    GammaParams,
    GammaPrior,
)
from .bayesian import BayesianMixture, share_bayesian_docs
from .discrete import check_multinomial_layout, check_trials_column


class _BayesianCountsMixture(BayesianMixture):
    """A variational mixture of count components (not for direct use).

    ``_params_type`` is the family's posterior (its first field the weights'
    concentration; each other field ``name`` is the fitted attribute ``name_``),
    ``_prior_names`` the constructor parameters of the component prior (each ``name`` gives
    the fitted attribute ``name_``, broadcast to ``_prior_shape``), and ``_point_name`` the
    attribute holding the posterior means (the plain mixture's parameters).
    """

    _params_type: ClassVar[type]
    _prior_names: ClassVar[tuple[str, ...]]
    _point_name: ClassVar[str] = "probabilities"

    def _prior_shape(self, n_features: int) -> tuple[int, ...]:
        """The shape of each prior array for data with ``n_features`` columns."""
        return (n_features,)

    def _default_prior(self, name: str, engine: Engine) -> Any:
        raise NotImplementedError

    def _check_parameters(self) -> None:
        super()._check_parameters()
        owner = type(self).__name__
        for name in self._prior_names:
            value = getattr(self, name)
            if value is None:
                continue
            try:
                values = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                values = np.array(np.nan)
            if not np.all(np.isfinite(values) & (values > 0)):
                raise ValueError(
                    f"{owner}: {name} must be a positive float or an array of positive "
                    f"floats, got {value!r}."
                )

    def _set_prior(self, engine: Engine) -> None:
        owner = type(self).__name__
        shape = self._prior_shape(engine.n_features)
        for name in self._prior_names:
            value = getattr(self, name)
            if value is None:
                value = self._default_prior(name, engine)
            values = np.asarray(value, dtype=np.float64)
            try:
                values = np.broadcast_to(values, shape).copy()
            except ValueError:
                raise ValueError(
                    f"{owner}: {name} has shape {values.shape}; it must be a float or an "
                    f"array that broadcasts to {shape} (one value per feature"
                    f"{' and category' if len(shape) == 2 else ''})."
                ) from None
            setattr(self, f"{name}_", values)

    def _set_model(self, model: Mixture) -> None:
        self._set_weights(model)
        fields = self._params_type._fields[1:]
        for name, values in zip(fields, model.params[1:], strict=True):
            setattr(self, f"{name}_", values)
        setattr(self, f"{self._point_name}_", model.family.point(model.params)[0])

    def _get_model(self) -> Mixture:
        params = self._params_type(
            self._weight_concentration(),
            *(
                np.asarray(getattr(self, f"{name}_"), dtype=np.float64)
                for name in self._params_type._fields[1:]
            ),
        )
        return Mixture(self._family(), np.asarray(self.weights_, dtype=np.float64), params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Data are non-negative integers: scikit-learn's checks then give integer data.
        tags.input_tags.positive_only = True
        tags.input_tags.categorical = True
        return tags


_COMMON_PARAMETERS = """\
    tol : float, default=1e-3
        Convergence threshold on the change of the total ELBO between iterations (batch) or
        passes (incremental), as scikit-learn's ``BayesianGaussianMixture``: the change of
        ``lower_bound_`` times the total row weight. Online fits compare their per-row
        estimate of the ELBO from pass to pass with ``tol``.
    max_iter : int, default=100
        Maximum number of iterations (passes over the data).
    n_init : int, default=1
        Number of initialisations; all advance in the same passes, the one with the largest
        ELBO is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn, on a uniform sample of ``init_size`` rows.
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}, \
default='dirichlet_process'
        The prior of the weights: stick-breaking (truncated at ``n_components``) or a
        symmetric Dirichlet.
    weight_concentration_prior : float, default=None
        Concentration ``γ`` of the weight prior (> 0; default ``1 / n_components``). Small
        values put the weight on few components.
"""

_COMMON_ATTRIBUTES = """\
    weights_ : ndarray of shape (n_components,)
        Posterior means of the mixture weights.
    weight_concentration_prior_ : float
        The concentration of the weight prior used.
    weight_concentration_ : ndarray of shape (n_components,) or tuple of two
        Dirichlet parameters of the weights, or the two Beta parameters of each stick
        (``dirichlet_process``).
    lower_bound_ : float
        ELBO (every constant included) per unit of row weight at the last iteration of the
        best initialisation (online fits: its estimate over the last pass).
    lower_bounds_ : list of float
        ELBO per unit of row weight at each iteration of the best initialisation.
"""

_REFERENCES = """\
    .. [1] C. M. Bishop (2006), *Pattern Recognition and Machine Learning*, ch. 10,
       Springer.
    .. [2] D. M. Blei and M. I. Jordan (2006), "Variational inference for Dirichlet process
       mixtures", Bayesian Analysis 1(1), 121–143.
    .. [3] M. D. Hoffman, D. M. Blei, C. Wang and J. Paisley (2013), "Stochastic variational
       inference", JMLR 14, 1303–1347.
"""


_BETA_PRIOR_DOC = """\
    success_concentration_prior : float or array-like of shape (n_features,), default=1.0
        ``a₀`` > 0 of the ``Beta(a₀, b₀)`` prior of every probability: pseudo-counts of ones
        (successes). The default ``Beta(1, 1)`` is uniform; ``Beta(0.5, 0.5)`` is Jeffreys'
        prior.
    failure_concentration_prior : float or array-like of shape (n_features,), default=1.0
        ``b₀`` > 0: pseudo-counts of zeros (failures).
"""

_BETA_ATTRIBUTES_DOC = """\
    probabilities_ : ndarray of shape (n_components, n_features)
        Posterior means ``a / (a + b)`` of the probabilities.
    success_concentration_ : ndarray of shape (n_components, n_features)
        ``a = a₀ + Σ r x`` of each posterior ``Beta(a, b)``.
    failure_concentration_ : ndarray of shape (n_components, n_features)
        ``b = b₀ + Σ r (n − x)``.
    success_concentration_prior_, failure_concentration_prior_ : ndarray of shape \
(n_features,)
        ``a₀`` and ``b₀`` used.
"""


def _share_docs(cls: type) -> type:
    cls.__doc__ = (
        cls.__doc__.replace("    %(common_parameters)s\n", _COMMON_PARAMETERS)
        .replace("    %(common_attributes)s\n", _COMMON_ATTRIBUTES)
        .replace("    %(references)s\n", _REFERENCES)
        .replace("    %(beta_prior)s\n", _BETA_PRIOR_DOC)
        .replace("    %(beta_attributes)s\n", _BETA_ATTRIBUTES_DOC)
    )
    return share_bayesian_docs(cls)


class _BetaMixture(_BayesianCountsMixture):
    _params_type = BetaParams
    _prior_names = ("success_concentration_prior", "failure_concentration_prior")

    def _prior(self) -> BetaPrior:
        return BetaPrior(
            float(self.weight_concentration_prior_),
            np.asarray(self.success_concentration_prior_, dtype=np.float64),
            np.asarray(self.failure_concentration_prior_, dtype=np.float64),
        )


@_share_docs
class BayesianBernoulliMixture(_BetaMixture):
    """Variational Bayesian mixture of independent Bernoulli (binary) features.

    :class:`streamem.BernoulliMixture`'s model with a ``Beta(a₀, b₀)`` prior on each
    probability and a Dirichlet-process (or Dirichlet) prior on the weights, fitted by
    variational Bayes over chunks of rows: the E-step uses ``E[log p] = ψ(a) − ψ(a + b)`` and
    ``E[log(1 − p)] = ψ(b) − ψ(a + b)``, the update is the conjugate posterior from the
    merged statistics. Components the data do not need empty themselves, so
    ``n_components`` is an upper bound. Data must be 0/1 or bool.

    Parameters
    ----------
    n_components : int, default=1
        Maximum number of mixture components.
    %(common_parameters)s
    %(beta_prior)s
    %(shared_parameters)s

    Attributes
    ----------
    %(common_attributes)s
    %(beta_attributes)s
    %(shared_attributes)s

    See Also
    --------
    BernoulliMixture : maximum-likelihood fit with a fixed number of components.

    References
    ----------
    %(references)s

    Examples
    --------
    >>> import numpy as np
    >>> from streamem import BayesianBernoulliMixture
    >>> rng = np.random.RandomState(0)
    >>> p = np.where(np.arange(200)[:, None] < 120, [0.9, 0.9, 0.1, 0.1], [0.1, 0.1, 0.9, 0.9])
    >>> X = (rng.uniform(size=(200, 4)) < p).astype(int)
    >>> bm = BayesianBernoulliMixture(n_components=4, random_state=0).fit(X)
    >>> bm.weights_.round(3)
    array([0.585, 0.413, 0.001, 0.   ])
    >>> bm.probabilities_[bm.weights_ > 0.01].round(2)
    array([[0.9 , 0.87, 0.12, 0.13],
           [0.11, 0.1 , 0.88, 0.84]])
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weight_concentration_prior_type: str = "dirichlet_process",
        weight_concentration_prior: float | None = None,
        success_concentration_prior: Any = 1.0,
        failure_concentration_prior: Any = 1.0,
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
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.success_concentration_prior = success_concentration_prior
        self.failure_concentration_prior = failure_concentration_prior
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

    def _family(self) -> BayesianBernoulli:
        return BayesianBernoulli(
            self._prior(),
            self.weight_concentration_prior_type,
            getattr(self, "_data_weight", None),
            self.missing,
        )


@_share_docs
class BayesianBinomialMixture(_BetaMixture):
    """Variational Bayesian mixture of independent binomial counts.

    :class:`streamem.BinomialMixture`'s model (``n_trials`` trials behind every feature, or
    each row's own in ``trials_column``) with a ``Beta(a₀, b₀)`` prior on each success
    probability and a Dirichlet-process (or Dirichlet) prior on the weights, fitted by
    variational Bayes over chunks of rows. Components the data do not need empty
    themselves, so ``n_components`` is an upper bound.

    Parameters
    ----------
    n_components : int, default=1
        Maximum number of mixture components.
    n_trials : int, default=1
        Number of trials behind every feature of every row (ignored with ``trials_column``).
    trials_column : int or None, default=None
        Index of the column of ``X`` that holds each row's number of trials (not a feature).
    %(common_parameters)s
    %(beta_prior)s
    %(shared_parameters)s

    Attributes
    ----------
    %(common_attributes)s
    %(beta_attributes)s
    %(shared_attributes)s

    ``n_features`` above is the number of columns of successes (without ``trials_column``).

    See Also
    --------
    BinomialMixture : maximum-likelihood fit with a fixed number of components.

    References
    ----------
    %(references)s

    Examples
    --------
    >>> import numpy as np
    >>> from streamem import BayesianBinomialMixture
    >>> heads = np.array([[1], [2], [1], [0], [9], [8], [10], [9]])
    >>> coins = BayesianBinomialMixture(2, n_trials=10, random_state=0).fit(heads)
    >>> np.sort(coins.probabilities_.ravel()).round(2)
    array([0.12, 0.88])
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        n_trials: int = 1,
        trials_column: int | None = None,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weight_concentration_prior_type: str = "dirichlet_process",
        weight_concentration_prior: float | None = None,
        success_concentration_prior: Any = 1.0,
        failure_concentration_prior: Any = 1.0,
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
        self.n_trials = n_trials
        self.trials_column = trials_column
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.success_concentration_prior = success_concentration_prior
        self.failure_concentration_prior = failure_concentration_prior
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

    def _family(self) -> BayesianBinomial:
        column = None if self.trials_column is None else int(self.trials_column)
        return BayesianBinomial(
            self._prior(),
            int(self.n_trials),
            column,
            self.weight_concentration_prior_type,
            getattr(self, "_data_weight", None),
            self.missing,
        )

    def _check_parameters(self) -> None:
        super()._check_parameters()
        check_int("n_trials", self.n_trials, 1, type(self).__name__)

    def _check_initial_parameters(self, n_features: int) -> None:
        check_trials_column(self.trials_column, n_features, type(self).__name__)

    def _prior_shape(self, n_features: int) -> tuple[int, ...]:
        check_trials_column(self.trials_column, n_features, type(self).__name__)
        return (n_features - (self.trials_column is not None),)


@_share_docs
class BayesianPoissonMixture(_BayesianCountsMixture):
    """Variational Bayesian mixture of independent Poisson counts.

    :class:`streamem.PoissonMixture`'s model with a ``Gamma(α₀, β₀)`` prior (shape, rate)
    on each rate and a Dirichlet-process (or Dirichlet) prior on the weights, fitted by
    variational Bayes over chunks of rows: the E-step uses ``E[log λ] = ψ(α) − log β`` and
    ``E[λ] = α / β``, the update is ``α = α₀ + Σ r x``, ``β = β₀ + Σ r``. Components the data
    do not need empty themselves, so ``n_components`` is an upper bound.

    Parameters
    ----------
    n_components : int, default=1
        Maximum number of mixture components.
    %(common_parameters)s
    shape_prior : float or array-like of shape (n_features,), default=1.0
        ``α₀`` > 0 of the ``Gamma(α₀, β₀)`` prior of every rate: pseudo-counts.
    inverse_scale_prior : float or array-like of shape (n_features,), default=None
        ``β₀`` > 0, the prior's rate (inverse scale): pseudo-rows. Default:
        ``shape_prior / m`` with ``m`` the mean count of each feature in the data (at least
        one count over all the rows), so the prior's mean is the data's mean, as
        scikit-learn's ``mean_prior`` is; it takes one pass over the data.
    %(shared_parameters)s

    Attributes
    ----------
    %(common_attributes)s
    rates_ : ndarray of shape (n_components, n_features)
        Posterior means ``α / β`` of the rates.
    shape_ : ndarray of shape (n_components, n_features)
        ``α = α₀ + Σ r x`` of each posterior ``Gamma(α, β)``.
    inverse_scale_ : ndarray of shape (n_components, n_features)
        ``β = β₀ + Σ r``.
    shape_prior_, inverse_scale_prior_ : ndarray of shape (n_features,)
        ``α₀`` and ``β₀`` used.
    %(shared_attributes)s

    See Also
    --------
    PoissonMixture : maximum-likelihood fit with a fixed number of components.

    References
    ----------
    %(references)s

    Examples
    --------
    >>> import numpy as np
    >>> from streamem import BayesianPoissonMixture
    >>> X = np.array([[0], [1], [2], [1], [20], [22], [18], [21]])
    >>> pm = BayesianPoissonMixture(n_components=3, random_state=0).fit(X)
    >>> np.sort(pm.rates_[pm.weights_ > 0.05].ravel()).round(2)
    array([ 1.22, 20.03])
    """

    _params_type = GammaParams
    _prior_names = ("shape_prior", "inverse_scale_prior")
    _point_name = "rates"

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weight_concentration_prior_type: str = "dirichlet_process",
        weight_concentration_prior: float | None = None,
        shape_prior: Any = 1.0,
        inverse_scale_prior: Any = None,
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
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.shape_prior = shape_prior
        self.inverse_scale_prior = inverse_scale_prior
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

    def _default_prior(self, name: str, engine: Engine) -> np.ndarray:
        """``shape_prior_ / m``, ``m`` the mean count of each feature (one pass)."""
        d, ones = engine.n_features, np.ones(1)
        # the variational family (its statistics are Poisson's), so that errors about the
        # data offer what the variational mixtures accept
        prior = GammaPrior(1.0, ones, ones)
        family = BayesianPoisson(prior, "dirichlet_distribution", missing=self.missing)
        params = GammaParams(ones, np.ones((1, d)), np.ones((1, d)))
        stats = engine.estep((Mixture(family, ones, params),)).stats[0]
        weight = float(stats.counts[0])
        mean = np.maximum(stats.sums[0] / weight, 1.0 / weight)
        return self.shape_prior_ / mean

    def _prior(self) -> GammaPrior:
        return GammaPrior(
            float(self.weight_concentration_prior_),
            np.asarray(self.shape_prior_, dtype=np.float64),
            np.asarray(self.inverse_scale_prior_, dtype=np.float64),
        )

    def _family(self) -> BayesianPoisson:
        return BayesianPoisson(
            self._prior(),
            self.weight_concentration_prior_type,
            getattr(self, "_data_weight", None),
            self.missing,
        )


@_share_docs
class BayesianMultinomialMixture(_BayesianCountsMixture):
    """Variational Bayesian mixture of multinomial count vectors, or of independent
    categorical labels.

    :class:`streamem.MultinomialMixture`'s model (count vectors, or ``n_categories`` labels
    per column) with a ``Dirichlet(α₀)`` prior on each distribution over categories and a
    Dirichlet-process (or Dirichlet) prior on the weights, fitted by variational Bayes over
    chunks of rows: the E-step uses ``E[log p_c] = ψ(α_c) − ψ(Σ α)``, the update is
    ``α = α₀ + Σ r x`` (one-hot labels for categorical columns). Components the data do not
    need empty themselves, so ``n_components`` is an upper bound.

    Parameters
    ----------
    n_components : int, default=1
        Maximum number of mixture components.
    n_categories : int or None, default=None
        None for count vectors; the number of labels ``C`` (≥ 2) for categorical columns.
    n_trials : int or None, default=None
        Count vectors only: the total of every row, when it is fixed.
    %(common_parameters)s
    concentration_prior : float or array-like, default=1.0
        ``α₀`` > 0 of the Dirichlet prior of every distribution: pseudo-counts of each
        category. A float, or an array broadcasting to (n_features,) for count vectors,
        (n_features, n_categories) for categorical labels. The default is uniform on the
        simplex.
    %(shared_parameters)s

    Attributes
    ----------
    %(common_attributes)s
    probabilities_ : ndarray
        Posterior means ``α / Σ α`` of the category probabilities: shape (n_components,
        n_features) for count vectors, (n_components, n_features, n_categories) for labels.
    concentration_ : ndarray
        ``α = α₀ + Σ r x`` of each posterior Dirichlet, shaped as ``probabilities_``.
    concentration_prior_ : ndarray
        ``α₀`` used, shape (n_features,) or (n_features, n_categories).
    %(shared_attributes)s

    See Also
    --------
    MultinomialMixture : maximum-likelihood fit with a fixed number of components.

    References
    ----------
    %(references)s

    Examples
    --------
    >>> import numpy as np
    >>> from streamem import BayesianMultinomialMixture
    >>> X = np.array([[8, 1, 1]] * 10 + [[1, 1, 8]] * 10)
    >>> mm = BayesianMultinomialMixture(n_components=3, random_state=0).fit(X)
    >>> (mm.weights_ > 0.05).sum()
    np.int64(2)
    """

    _params_type = DirichletParams
    _prior_names = ("concentration_prior",)

    def __init__(
        self,
        n_components: int = 1,
        *,
        n_categories: int | None = None,
        n_trials: int | None = None,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weight_concentration_prior_type: str = "dirichlet_process",
        weight_concentration_prior: float | None = None,
        concentration_prior: Any = 1.0,
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
        self.n_categories = n_categories
        self.n_trials = n_trials
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.concentration_prior = concentration_prior
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

    def _check_parameters(self) -> None:
        super()._check_parameters()
        check_multinomial_layout(self.n_categories, self.n_trials, type(self).__name__)

    def _prior_shape(self, n_features: int) -> tuple[int, ...]:
        if self.n_categories is None:
            return (n_features,)
        return (n_features, int(self.n_categories))

    def _prior(self) -> DirichletPrior:
        return DirichletPrior(
            float(self.weight_concentration_prior_),
            np.asarray(self.concentration_prior_, dtype=np.float64),
        )

    def _family(self) -> BayesianMultinomial:
        return BayesianMultinomial(
            self._prior(),
            None if self.n_categories is None else int(self.n_categories),
            None if self.n_trials is None else int(self.n_trials),
            self.weight_concentration_prior_type,
            getattr(self, "_data_weight", None),
            self.missing,
        )
