"""Mixtures of discrete components, and of grouped Gaussian rows, fitted chunk by chunk.

``BernoulliMixture``, ``BinomialMixture``, ``MultinomialMixture`` and ``PoissonMixture`` fit
binary, binomial, multinomial/categorical and Poisson components; ``GroupedGaussianMixture``
fits rows that are groups of draws from one univariate Gaussian component each. They share the
engine, the drivers and the API of :class:`streamem.GaussianMixture`: fit, predict,
predict_proba, score_samples, score, bic, aic and sample, in memory or out of core.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._validation import check_array_shape, check_float, check_int, check_weights_init
from ..families._base import Mixture
from ..families.bernoulli import Bernoulli, BernoulliParams
from ..families.binomial import Binomial, BinomialParams
from ..families.grouped_gaussian import GroupedGaussian, GroupedGaussianParams
from ..families.multinomial import Multinomial, MultinomialParams
from ..families.poisson import Poisson, PoissonParams
from ._base import MixtureEstimator
from ._docs import share_docs


class _ParamsMixture(MixtureEstimator):
    """An estimator whose component parameters are the fields of one NamedTuple of arrays.

    Each field ``name`` of ``_params_type`` has an initial value ``name_init`` (a constructor
    parameter) and a fitted attribute ``name_``.
    """

    _params_type: ClassVar[type]

    def _shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        """The shape of each parameter for data with ``n_features`` columns."""
        raise NotImplementedError

    def _check_values(self, name: str, values: np.ndarray) -> None:
        """Raise a ValueError if the user's initial ``name`` has values out of range."""

    def _regularize(self, params: Any) -> Any:
        """User-given initial parameters made valid for the family (floors, clipping)."""
        return params

    def _check_initial_parameters(self, n_features: int) -> None:
        owner = type(self).__name__
        if self.weights_init is not None:
            check_weights_init(self.weights_init, self.n_components, owner)
        for name, shape in self._shapes(n_features).items():
            values = getattr(self, f"{name}_init")
            if values is not None:
                values = check_array_shape(f"{name}_init", values, shape, owner)
                self._check_values(name, values)

    def _needs_responsibilities(self) -> bool:
        names = self._params_type._fields
        return self.weights_init is None or any(getattr(self, f"{n}_init") is None for n in names)

    def _apply_initial_parameters(self, model: Mixture | None, n_features: int) -> Mixture:
        names = self._params_type._fields
        if model is None:
            weights, params = None, self._params_type(*(None for _ in names))
        else:
            weights, params = model.weights, model.params
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64).copy()
        given = {
            name: np.asarray(getattr(self, f"{name}_init"), dtype=np.float64).copy()
            for name in names
            if getattr(self, f"{name}_init") is not None
        }
        if given:
            params = self._regularize(params._replace(**given))
        return Mixture(self._family(), weights, params)

    def _set_model(self, model: Mixture) -> None:
        self.weights_ = model.weights
        for name, values in zip(self._params_type._fields, model.params, strict=True):
            setattr(self, f"{name}_", values)

    def _get_model(self) -> Mixture:
        params = self._params_type(
            *(
                np.asarray(getattr(self, f"{name}_"), dtype=np.float64)
                for name in self._params_type._fields
            )
        )
        return Mixture(self._family(), np.asarray(self.weights_, dtype=np.float64), params)


class _CountsMixture(_ParamsMixture):
    """Discrete components: non-negative integer data, one array of probabilities or rates."""

    #: The floor parameter and its (exclusive) upper bound.
    _floor: ClassVar[tuple[str, float]] = ("min_probability", 0.5)

    def _check_parameters(self) -> None:
        super()._check_parameters()
        name, high = self._floor
        check_float(
            name,
            getattr(self, name),
            type(self).__name__,
            low=0.0,
            high=high,
            low_open=True,
            high_open=True,
        )

    def _check_values(self, name: str, values: np.ndarray) -> None:
        owner = type(self).__name__
        if name == "rates" and np.any(values < 0):
            raise ValueError(f"{owner}: rates_init must be non-negative.")
        if name == "probabilities" and np.any((values < 0) | (values > 1)):
            raise ValueError(f"{owner}: probabilities_init must lie in [0, 1].")

    def _regularize(self, params: Any) -> Any:
        return type(params)(self._family().regularize(params[0]))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Data are non-negative integers: scikit-learn's checks then give integer data.
        tags.input_tags.positive_only = True
        tags.input_tags.categorical = True
        return tags


@share_docs
class BernoulliMixture(_CountsMixture):
    """Mixture of independent Bernoulli (binary) features, fitted by EM over chunks of rows.

    Each component ``k`` gives feature ``d`` of a row the value 1 with probability
    ``probabilities_[k, d]``, independently of the other features. Data must be 0/1 (any
    numeric dtype) or bool; anything else raises a ValueError naming the rows.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    tol : float, default=1e-3
        Convergence threshold: EM stops when the mean log-likelihood of the data changes by
        less than ``tol`` between iterations.
    min_probability : float, default=1e-10
        Probabilities are kept in ``[min_probability, 1 − min_probability]``, so that a
        feature that is constant within a component leaves log-likelihoods finite. Must be
        in (0, 0.5).
    max_iter : int, default=100
        Maximum number of EM iterations (passes over the data).
    n_init : int, default=1
        Number of initialisations; all advance in the same passes, the best is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn, as in scikit-learn, on a uniform sample of
        ``init_size`` rows. ``k-means++`` and ``random_from_data`` start each component from a
        single row, whose 0s and 1s become probabilities at the floor: prefer ``kmeans`` or
        ``random``.
    weights_init : array-like of shape (n_components,), default=None
        Initial mixture weights.
    probabilities_init : array-like of shape (n_components, n_features), default=None
        Initial probabilities, in [0, 1] (clipped to the ``min_probability`` bounds).
    %(shared_parameters)s

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixture weights.
    probabilities_ : ndarray of shape (n_components, n_features)
        Probability that each feature is 1 in each component.
    %(shared_attributes)s

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.estimators.discrete import BernoulliMixture
    >>> X = np.array([[1, 1, 0, 0]] * 30 + [[0, 0, 1, 1]] * 20)
    >>> bm = BernoulliMixture(n_components=2, random_state=0).fit(X)
    >>> order = np.argsort(bm.weights_)
    >>> bm.weights_[order]
    array([0.4, 0.6])
    >>> bm.probabilities_[order].round(3)
    array([[0., 0., 1., 1.],
           [1., 1., 0., 0.]])
    """

    _params_type = BernoulliParams

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-3,
        min_probability: float = 1e-10,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        probabilities_init: Any = None,
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
        self.tol = tol
        self.min_probability = min_probability
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.probabilities_init = probabilities_init
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

    def _family(self) -> Bernoulli:
        return Bernoulli(float(self.min_probability), self.missing)

    def _shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        return {"probabilities": (self.n_components, n_features)}


@share_docs
class BinomialMixture(_CountsMixture):
    """Mixture of independent binomial counts, fitted by EM over chunks of rows.

    Each feature of a row counts successes out of ``n`` trials; in component ``k`` feature
    ``d`` succeeds with probability ``probabilities_[k, d]``. The number of trials is the
    same constant ``n_trials`` for every row, or, with ``trials_column``, read from a column
    of the data: that column holds each row's number of trials (shared by all the row's
    features) and is not itself a feature. Successes must be integers from 0 to the number
    of trials; anything else raises a ValueError naming the rows.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    n_trials : int, default=1
        Number of trials behind every feature of every row (ignored with ``trials_column``).
    trials_column : int or None, default=None
        Index of the column of ``X`` that holds each row's number of trials (negative values
        count from the end), or None for the constant ``n_trials``.
    tol : float, default=1e-3
        Convergence threshold: EM stops when the mean log-likelihood of the data changes by
        less than ``tol`` between iterations.
    min_probability : float, default=1e-10
        Probabilities are kept in ``[min_probability, 1 − min_probability]``. Must be in
        (0, 0.5).
    max_iter : int, default=100
        Maximum number of EM iterations (passes over the data).
    n_init : int, default=1
        Number of initialisations; all advance in the same passes, the best is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn, on a sample of ``init_size`` rows.
        ``k-means++`` and ``random_from_data`` start each component from a single row, so
        some of its parameters start at the floor: prefer ``kmeans`` or ``random``.
    weights_init : array-like of shape (n_components,), default=None
        Initial mixture weights.
    probabilities_init : array-like of shape (n_components, n_successes), default=None
        Initial success probabilities in [0, 1]; ``n_successes`` is the number of columns
        of ``X``, less the trials column if there is one.
    %(shared_parameters)s

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixture weights.
    probabilities_ : ndarray of shape (n_components, n_successes)
        Success probability of each feature in each component, in the order of the
        columns of ``X`` without the trials column.
    %(shared_attributes)s

    Examples
    --------
    The two coins of Do & Batzoglou (2008): five sets of ten tosses.

    >>> import numpy as np
    >>> from streamem.estimators.discrete import BinomialMixture
    >>> heads = np.array([[5], [9], [8], [4], [7]])
    >>> coins = BinomialMixture(
    ...     2, n_trials=10, tol=1e-10, weights_init=[0.5, 0.5], learn_weights=False,
    ...     probabilities_init=[[0.6], [0.5]],
    ... ).fit(heads)
    >>> coins.probabilities_.ravel().round(2)
    array([0.8 , 0.52])

    Per-row trials: column 0 holds the number of tosses of each set.

    >>> tosses = np.array([[10, 5], [20, 18], [10, 8], [5, 2], [10, 7]])
    >>> BinomialMixture(1, trials_column=0).fit(tosses).probabilities_.round(3)
    array([[0.727]])
    """

    _params_type = BinomialParams

    def __init__(
        self,
        n_components: int = 1,
        *,
        n_trials: int = 1,
        trials_column: int | None = None,
        tol: float = 1e-3,
        min_probability: float = 1e-10,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        probabilities_init: Any = None,
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
        self.n_trials = n_trials
        self.trials_column = trials_column
        self.tol = tol
        self.min_probability = min_probability
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.probabilities_init = probabilities_init
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

    def _family(self) -> Binomial:
        column = None if self.trials_column is None else int(self.trials_column)
        return Binomial(int(self.n_trials), column, float(self.min_probability), self.missing)

    def _check_parameters(self) -> None:
        super()._check_parameters()
        check_int("n_trials", self.n_trials, 1, type(self).__name__)

    def _check_initial_parameters(self, n_features: int) -> None:
        check_trials_column(self.trials_column, n_features, type(self).__name__)
        super()._check_initial_parameters(n_features)

    def _shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        successes = n_features - (self.trials_column is not None)
        return {"probabilities": (self.n_components, successes)}


@share_docs
class MultinomialMixture(_CountsMixture):
    """Mixture of multinomial count vectors, or of independent categorical labels.

    *Count vectors* (the default): each row counts how often each of its columns'
    categories occurred (words in a document, reads per gene, …), and component ``k`` draws
    the row's ``Σ x`` items independently with probabilities ``probabilities_[k]`` (shape
    ``(n_components, n_features)``). Counts must be non-negative integers and every row must
    have a positive total.

    *Categorical labels* (``n_categories=C``): each column holds one label, an integer in
    ``[0, C)``, independent of the other columns given the component; ``probabilities_``
    then has shape ``(n_components, n_features, C)`` and ``probabilities_[k, d, c]`` is the
    probability that column ``d`` has label ``c`` in component ``k``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    n_categories : int or None, default=None
        None for count vectors; the number of labels ``C`` (≥ 2) for categorical columns.
    n_trials : int or None, default=None
        Count vectors only: the total of every row, when it is fixed (rows with another
        total are rejected). It lets :meth:`sample` draw rows; None allows any positive total.
    tol : float, default=1e-3
        Convergence threshold: EM stops when the mean log-likelihood of the data changes by
        less than ``tol`` between iterations.
    min_probability : float, default=1e-10
        Probabilities below ``min_probability`` are raised to it and each distribution is
        renormalised. Must be in (0, 0.5).
    max_iter : int, default=100
        Maximum number of EM iterations (passes over the data).
    n_init : int, default=1
        Number of initialisations; all advance in the same passes, the best is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn, on a sample of ``init_size`` rows.
        ``k-means++`` and ``random_from_data`` start each component from a single row, so
        some of its parameters start at the floor: prefer ``kmeans`` or ``random``.
    weights_init : array-like of shape (n_components,), default=None
        Initial mixture weights.
    probabilities_init : array-like, default=None
        Initial probabilities, shaped as ``probabilities_``; each distribution (last axis)
        must sum to 1.
    %(shared_parameters)s

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixture weights.
    probabilities_ : ndarray
        Category probabilities of each component: shape (n_components, n_features) for
        count vectors, (n_components, n_features, n_categories) for categorical labels.
    %(shared_attributes)s

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.estimators.discrete import MultinomialMixture
    >>> X = np.array([[8, 1, 1]] * 10 + [[1, 1, 8]] * 10)
    >>> mm = MultinomialMixture(n_components=2, random_state=0).fit(X)
    >>> mm.probabilities_[np.argsort(mm.probabilities_[:, 0])].round(3)
    array([[0.1, 0.1, 0.8],
           [0.8, 0.1, 0.1]])

    Categorical labels: two columns with labels 0, 1 or 2.

    >>> labels = np.array([[0, 2]] * 10 + [[1, 1]] * 10)
    >>> cm = MultinomialMixture(2, n_categories=3, random_state=0).fit(labels)
    >>> cm.probabilities_.shape
    (2, 2, 3)
    """

    _params_type = MultinomialParams

    def __init__(
        self,
        n_components: int = 1,
        *,
        n_categories: int | None = None,
        n_trials: int | None = None,
        tol: float = 1e-3,
        min_probability: float = 1e-10,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        probabilities_init: Any = None,
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
        self.n_categories = n_categories
        self.n_trials = n_trials
        self.tol = tol
        self.min_probability = min_probability
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.probabilities_init = probabilities_init
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

    def _family(self) -> Multinomial:
        return Multinomial(
            None if self.n_categories is None else int(self.n_categories),
            None if self.n_trials is None else int(self.n_trials),
            float(self.min_probability),
            self.missing,
        )

    def _check_parameters(self) -> None:
        super()._check_parameters()
        check_multinomial_layout(self.n_categories, self.n_trials, type(self).__name__)

    def _shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        shape = (self.n_components, n_features)
        if self.n_categories is not None:
            shape += (self.n_categories,)
        return {"probabilities": shape}

    def _check_values(self, name: str, values: np.ndarray) -> None:
        super()._check_values(name, values)
        if not np.allclose(values.sum(axis=-1), 1.0, rtol=0, atol=1e-6):
            raise ValueError(
                f"{type(self).__name__}: each distribution in probabilities_init (last axis) "
                "must sum to 1."
            )


@share_docs
class PoissonMixture(_CountsMixture):
    """Mixture of independent Poisson counts, fitted by EM over chunks of rows.

    In component ``k`` feature ``d`` of a row is a Poisson count with mean
    ``rates_[k, d]``, independently of the other features. Counts must be non-negative
    integers (any numeric dtype); anything else raises a ValueError naming the rows.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    tol : float, default=1e-3
        Convergence threshold: EM stops when the mean log-likelihood of the data changes by
        less than ``tol`` between iterations.
    min_rate : float, default=1e-10
        Rates are at least ``min_rate`` (> 0), so that a feature that is always 0 within a
        component leaves log-likelihoods finite.
    max_iter : int, default=100
        Maximum number of EM iterations (passes over the data).
    n_init : int, default=1
        Number of initialisations; all advance in the same passes, the best is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn, on a sample of ``init_size`` rows.
        ``k-means++`` and ``random_from_data`` start each component from a single row, so
        some of its parameters start at the floor: prefer ``kmeans`` or ``random``.
    weights_init : array-like of shape (n_components,), default=None
        Initial mixture weights.
    rates_init : array-like of shape (n_components, n_features), default=None
        Initial rates, non-negative (raised to ``min_rate``).
    %(shared_parameters)s

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixture weights.
    rates_ : ndarray of shape (n_components, n_features)
        Mean count of each feature in each component.
    %(shared_attributes)s

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.estimators.discrete import PoissonMixture
    >>> X = np.array([[0], [1], [2], [1], [20], [22], [18], [21]])
    >>> pm = PoissonMixture(n_components=2, random_state=0).fit(X)
    >>> np.sort(pm.rates_.ravel()).round(2)
    array([ 1.  , 20.25])
    """

    _params_type = PoissonParams
    _floor = ("min_rate", np.inf)

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-3,
        min_rate: float = 1e-10,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        rates_init: Any = None,
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
        self.tol = tol
        self.min_rate = min_rate
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.rates_init = rates_init
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

    def _family(self) -> Poisson:
        return Poisson(float(self.min_rate), self.missing)

    def _shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        return {"rates": (self.n_components, n_features)}


@share_docs
class GroupedGaussianMixture(_ParamsMixture):
    """Mixture of univariate Gaussians in which each row is a group of draws from one of them.

    A row holds ``n_features`` exchangeable draws (replicate measurements of one unit, say)
    that all come from the same component ``N(means_[k], variances_[k])``; rows are assigned
    to components as wholes. The M-step is the exact maximum-likelihood estimate. Every row
    has the same number of draws; with ``missing='marginalize'`` a missing (NaN) draw is simply
    absent.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    tol : float, default=1e-3
        Convergence threshold: EM stops when the mean log-likelihood of the data changes by
        less than ``tol`` between iterations.
    reg_covar : float, default=1e-6
        Non-negative regularisation added to the variances.
    max_iter : int, default=100
        Maximum number of EM iterations (passes over the data).
    n_init : int, default=1
        Number of initialisations; all advance in the same passes, the best is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are drawn, on a sample of ``init_size`` rows.
    weights_init : array-like of shape (n_components,), default=None
        Initial mixture weights.
    means_init : array-like of shape (n_components,), default=None
        Initial means.
    variances_init : array-like of shape (n_components,), default=None
        Initial variances, positive.
    %(shared_parameters)s

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixture weights.
    means_ : ndarray of shape (n_components,)
        Mean of the draws of each component.
    variances_ : ndarray of shape (n_components,)
        Variance of the draws of each component.
    %(shared_attributes)s

    Examples
    --------
    >>> import numpy as np
    >>> from streamem.estimators.discrete import GroupedGaussianMixture
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(1, 1, (5, 200)), rng.normal(10, 2, (5, 200))])
    >>> gg = GroupedGaussianMixture(n_components=2, random_state=0).fit(X)
    >>> gg.predict(X)
    array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    >>> gg.means_.round(2), gg.variances_.round(2)
    (array([10.03,  0.95]), array([3.75, 0.97]))
    """

    _params_type = GroupedGaussianParams

    def __init__(
        self,
        n_components: int = 1,
        *,
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        variances_init: Any = None,
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
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.variances_init = variances_init
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

    def _family(self) -> GroupedGaussian:
        group_size = getattr(self, "n_features_in_", None)
        return GroupedGaussian(
            float(self.reg_covar),
            None if group_size is None else int(group_size),
            self.missing,
        )

    def _check_parameters(self) -> None:
        super()._check_parameters()
        check_float("reg_covar", self.reg_covar, type(self).__name__, low=0.0)

    def _shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        return {"means": (self.n_components,), "variances": (self.n_components,)}

    def _check_values(self, name: str, values: np.ndarray) -> None:
        if name == "variances" and np.any(values <= 0):
            raise ValueError(f"{type(self).__name__}: variances_init must be positive.")


def check_trials_column(column: Any, n_features: int, owner: str) -> None:
    """Refuse a ``trials_column`` that is not a column of data with ``n_features`` columns
    (or leaves no column of successes)."""
    if column is None:
        return
    if isinstance(column, bool | np.bool_) or not isinstance(column, int | np.integer):
        raise ValueError(f"{owner}: trials_column must be None or an int, got {column!r}.")
    if not -n_features <= column < n_features:
        raise ValueError(
            f"{owner}: trials_column={column} is not a column of X, which has "
            f"{n_features} column(s)."
        )
    if n_features < 2:
        raise ValueError(
            f"{owner}: with trials_column, X needs at least one column of successes "
            "besides the trials column."
        )


def check_multinomial_layout(n_categories: Any, n_trials: Any, owner: str) -> None:
    """Refuse ``n_categories`` and ``n_trials`` out of range, or given together."""
    if n_categories is not None:
        check_int("n_categories", n_categories, 2, owner)
        if n_trials is not None:
            raise ValueError(
                f"{owner}: n_trials applies to count vectors only; leave it None with "
                "n_categories (each categorical column is one draw)."
            )
    if n_trials is not None:
        check_int("n_trials", n_trials, 1, owner)
