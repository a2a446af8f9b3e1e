"""Using a fitted model: predictions, scores, information criteria, sampling, saving."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..estep import (
    chunk_impute,
    chunk_predict,
    chunk_predict_proba,
    chunk_score_samples,
    map_rows,
)
from ..sources import Rows, is_lazy


class PredictMixin:
    """The methods of a fitted streamem estimator that read data without fitting."""

    def _map_rows(
        self,
        X: Any,
        kernel: Any,
        n_columns: int | None,
        dtype: Any,
        name: str,
        columns: str = "component",
    ) -> Any:
        check_is_fitted(self)
        return map_rows(
            self._rows(X, reset=False), kernel, self._get_model(), n_columns, dtype, name, columns
        )

    def predict(self, X: Any) -> Any:
        """The most probable component of each row.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        labels : ndarray or dask.array.Array of shape (n_samples,)
            Component labels (lazy for Dask input).
        """
        return self._map_rows(X, chunk_predict, None, np.int64, "labels")

    def predict_proba(self, X: Any) -> Any:
        """Posterior probability of each component for each row.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        resp : ndarray or dask.array.Array of shape (n_samples, n_components)
            Responsibilities (lazy for Dask input).
        """
        return self._map_rows(
            X, chunk_predict_proba, self.n_components, np.float64, "responsibilities"
        )

    def score_samples(self, X: Any) -> Any:
        """Log-likelihood of each row under the mixture.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        log_prob : ndarray or dask.array.Array of shape (n_samples,)
            ``log p(x)`` of each row (lazy for Dask input).
        """
        return self._map_rows(X, chunk_score_samples, None, np.float64, "log_likelihood")

    def impute(self, X: Any) -> Any:
        """``X`` with each missing (NaN) entry replaced by its conditional mean under the model.

        ``E[x_m | x_o] = Σ_k r_k E[x_m | x_o, k]``, with ``r_k`` the responsibilities given
        the row's observed entries (Ghahramani & Jordan 1994): for a full or tied Gaussian
        the regression of the missing entries on the observed ones within each component,
        for independent features each component's mean (for categorical labels, the most
        probable label instead). A row with nothing observed gets the mixture's mean. Works
        whatever ``missing`` is; other entries are returned unchanged (as float64).

        Parameters
        ----------
        X : array-like, Dask array, Zarr store or xarray object, shape (n_samples, n_features)
            The rows.

        Returns
        -------
        imputed : ndarray, dask.array.Array or xarray object
            (n_samples, n_features), lazy for lazy input (write it with
            :func:`streamem.to_zarr`). For xarray input, the input itself with its missing
            values filled: same dimensions in the same order, coordinates, attributes and
            name (``'imputed'`` for an unnamed DataArray); for a Dataset, its feature
            variables filled and the others unchanged.

        References
        ----------
        Z. Ghahramani and M. I. Jordan (1994), "Supervised learning from incomplete data via
        an EM approach", NIPS 6. R. J. A. Little and D. B. Rubin (2002), *Statistical Analysis
        with Missing Data*, 2nd ed., ch. 11.
        """
        check_is_fitted(self)
        rows = self._rows(X, reset=False)
        imputed = map_rows(
            Rows(rows.data, rows.label), chunk_impute, self._get_model(),
            self.n_features_in_, np.float64, "imputed", columns="feature",
        )  # fmt: skip
        if rows.sample_dim is None:
            return imputed
        return _filled_like(X, imputed, rows.sample_dim, self.variables)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the rows of ``X`` (computed, also for Dask input).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        log_likelihood : float
        """
        return self._total_log_likelihood(X)[0]

    def _total_log_likelihood(self, X: Any) -> tuple[float, int]:
        """Mean log-likelihood of the rows of ``X`` and their number, opening ``X`` once."""
        scores = self.score_samples(X)
        scores = getattr(scores, "data", scores)  # xarray → its array
        if getattr(self, "missing", "error") == "drop":  # rows with NaN were left out
            kept = (~np.isnan(scores)).sum()
            total = np.nansum(scores)
            if is_lazy(scores):
                kept, total = kept.compute(), total.compute()
            return float(total / max(int(kept), 1)), int(kept)
        mean = scores.mean().compute() if is_lazy(scores) else np.mean(scores)
        return float(mean), scores.shape[0]

    def _n_parameters(self) -> int:
        model = self._get_model()
        return model.family.n_parameters(model.params) + model.n_components - 1

    def bic(self, X: Any) -> float:
        """Bayesian information criterion of the model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        bic : float
        """
        score, n = self._total_log_likelihood(X)
        return -2 * score * n + self._n_parameters() * np.log(n)

    def aic(self, X: Any) -> float:
        """Akaike information criterion of the model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            The rows.

        Returns
        -------
        aic : float
        """
        score, n = self._total_log_likelihood(X)
        return -2 * score * n + 2 * self._n_parameters()

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw random rows from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            The rows, grouped by component.
        y : ndarray of shape (n_samples,)
            The component each row was drawn from.
        """
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least "
                "one sample."
            )
        model = self._get_model()
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, model.weights)
        X = model.family.sample(model.params, counts, rng)
        y = np.repeat(np.arange(model.n_components), counts)
        return X, y

    def save(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        storage_options: dict | None = None,
    ) -> None:
        """Save the fitted model (and any running state) to a file, atomically, without pickle.

        Parameters
        ----------
        path : str or path-like
            The file to write (a local path, or a URL such as ``s3://bucket/m.streamem``);
            :func:`streamem.load` reads it back.
        overwrite : bool, default=False
            Replace an existing file (a directory is never replaced).
        storage_options : dict, optional
            fsspec options (endpoint, credentials…) when ``path`` is a URL.
        """
        from ..io import save

        check_is_fitted(self)
        save(self, path, overwrite=overwrite, storage_options=storage_options)


def _filled_like(X: Any, imputed: Any, sample_dim: str, variables: Any) -> Any:
    """The xarray input ``X`` with its feature values replaced by the rows ``imputed``
    (n_samples, n_features), laid out as ``sources.open_rows`` flattened them: each data
    variable transposed to (``sample_dim``, its other dimensions) and reshaped to rows."""
    import xarray as xr

    def refill(array: Any, columns: Any) -> Any:
        features = [d for d in array.dims if d != sample_dim]
        shape = (array.sizes[sample_dim], *(array.sizes[d] for d in features))
        values = xr.DataArray(columns.reshape(shape), dims=(sample_dim, *features))
        filled = array.copy(data=values.transpose(*array.dims).data)
        filled.encoding = {}  # the source's storage chunks, fill values and codecs
        return filled

    if isinstance(X, xr.DataArray):
        out = refill(X, imputed)
        return out if X.name is not None else out.rename("imputed")
    names = list(variables) if variables is not None else None
    if names is None:  # as open_rows chooses them
        names = [name for name, var in X.data_vars.items() if sample_dim in var.dims]
    out, start = X.copy(), 0
    for name in names:
        width = X[name].size // X.sizes[sample_dim]
        out[name] = refill(X[name], imputed[:, start : start + width])
        start += width
    return out
