"""Parameter and attribute documentation shared by every streamem estimator."""

from __future__ import annotations

SHARED_PARAMETERS = """\
    missing : {'error', 'marginalize', 'drop'}, default='error'
        What NaN entries mean. ``'error'``: refuse them. ``'marginalize'``: missing at
        random, marginalised exactly (Ghahramani & Jordan 1994; Little & Rubin 2002, ch. 11):
        each row's log-likelihood is that of its observed entries, and EM treats the missing
        entries as latent (independent features simply leave them out; full and tied
        Gaussians use their conditional distribution given the observed ones). A row with
        nothing observed scores 0 and its ``predict_proba`` is ``weights_``; :meth:`impute`
        fills the gaps with their conditional means. The initial k-means runs on the sample
        with missing entries replaced by its column means (rounded for count data).
        ``'drop'``: rows with NaN are left out of the fit (complete-case analysis); their
        predictions are -1 (labels) and NaN. Infinite values are refused in every case;
        multinomial count vectors cannot marginalise (their row total would be unknown).
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
        order, in mini-batches of ``batch_size`` rows (default: 1/200 of the rows, from 500 to
        10 000). ``incremental``:
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
    half_life : float, default=None
        Forget old data for drifting streams: in stepwise updates, data weigh half as much
        after ``half_life`` more rows (or updates, see ``half_life_unit``) have arrived.
        Takes precedence over the default schedule, not over ``learning_rate``.
    half_life_unit : {'rows', 'updates'}, default='rows'
        What ``half_life`` counts.
    average : bool, int or 'auto', default='auto'
        Report the running mean of the stepwise statistics (Polyak averaging): from burn-in on
        (``True``), or once that many rows have been seen (an int, as in scikit-learn's
        ``SGDClassifier``), which leaves the poor early iterates out of the average. ``'auto'``:
        from the middle of the first pass on for ``algorithm='online'`` fits (within 1e-3 of
        batch EM's optimum in two passes where the last iterate needs three or more), none
        for :meth:`partial_fit`.
    incremental_store : str, default=None
        A Zarr store to keep the per-chunk statistics of ``incremental`` fits in, when they
        are too large for memory.
    persist : bool or 'auto', default='auto'
        Keep lazy data in the memory of the Dask workers between iterations instead of
        reading it again each pass: ``True`` always, ``'auto'`` when a ``dask.distributed``
        cluster is active and the data take less than half of its memory.
    checkpoint : str, default=None
        A file to save the fit's state to after every iteration (atomically, no pickle).
        Fitting again with the same checkpoint, after the process was killed, continues
        from the last saved iteration and ends with the model of an uninterrupted fit; a
        checkpoint of another configuration or data shape is refused. Removed when the fit
        completes. A URL (``s3://bucket/fit.ckpt``) is written through fsspec, one upload
        per iteration, with fsspec's configuration for its endpoint and credentials
        (``fsspec.config.conf`` or the ``FSSPEC_S3_*`` environment variables).
    callback : callable, default=None
        Called after every iteration (pass) with a :class:`streamem.Iteration`.
"""

SHARED_ATTRIBUTES = """\
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
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names, when ``X`` had string column names.
    n_steps_ : int
        Stepwise updates made (``online`` fits and :meth:`partial_fit`).
    stepwise_state_ : StepwiseState
        What :meth:`partial_fit` continues from: the model's sufficient statistics (per unit
        of row weight) and the row weight they stand for; after ``fit``, those of the data
        at the fitted parameters.
    update_history_ : dict of ndarray
        One entry per :meth:`partial_fit` after a fit (the last 1000): ``n_rows``,
        ``log_likelihood`` (mean, of the new rows under the model before the update),
        ``change`` (largest relative parameter change) and ``weights``.
"""


def share_docs(cls: type) -> type:
    """Fill an estimator docstring's ``%(shared_parameters)s`` and ``%(shared_attributes)s``."""
    cls.__doc__ = cls.__doc__.replace("    %(shared_parameters)s\n", SHARED_PARAMETERS).replace(
        "    %(shared_attributes)s\n", SHARED_ATTRIBUTES
    )
    return cls
