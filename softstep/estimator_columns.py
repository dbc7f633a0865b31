"""A DataFrame's categorical columns for :class:`~softstep.SoftStepRegressor`: strings and categories one-hot
encoded with the categories of the rows ``fit`` was given, laid out as the pipeline's ``features=all`` lays out a
table (``experiments/inputs/tabular.py``: the numeric columns first, then each categorical column's sorted
categories), so a saved estimator's ``features`` are the pipeline's and ``scripts/predict.py`` reads them.

A string column with a distinct value in most rows (an identifier, free text) is left out with a warning, as the
pipeline leaves it out; a category that ``fit`` never saw sets none of its column's one-hot columns, with a warning
that counts the rows. Not in the paper (issue 29).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def categorical_columns(X) -> list[str]:
    """The columns of a DataFrame ``X`` that are neither numbers nor bools (none for an array).

    Parameters
    ----------
    X : array-like or DataFrame

    Returns
    -------
    list of str

    Examples
    --------
    >>> categorical_columns(pd.DataFrame({"a": [1.0], "city": ["oslo"], "ok": [True]}))
    ['city']
    """
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(dtypes, "items"):
        return []
    return [str(c) for c, dtype in dtypes.items() if dtype.kind not in "biuf"]


def fit_categories(X) -> dict[str, list[str]]:
    """Each categorical column's sorted categories (as strings); a column with a distinct value in most rows is
    left out with a :class:`UserWarning`; an empty cell is a :class:`ValueError` naming the column and row.

    Parameters
    ----------
    X : DataFrame or array-like

    Returns
    -------
    dict of str to list of str

    Examples
    --------
    >>> fit_categories(pd.DataFrame({"a": [1.0, 2.0, 3.0], "city": ["oslo", "bergen", "oslo"]}))
    {'city': ['bergen', 'oslo']}
    """
    out, left = {}, []
    for c in categorical_columns(X):
        col = X[c]
        empty = np.flatnonzero(col.isna().to_numpy())
        if len(empty):
            raise ValueError(
                f"X's column {c!r} (categorical) is empty in row {int(empty[0])} and {len(empty) - 1} more; fill or "
                f"drop those rows (an empty cell is no category)"
            )
        values = col.astype(str)
        if values.nunique() > max(20, len(values) // 2):
            left.append(c)
            continue
        out[c] = sorted(values.unique())
    if left:
        warnings.warn(
            f"X's columns {left} have a distinct value in most rows (identifiers or free text) and are left out; "
            "one-hot encoding them would add a column per row",
            UserWarning,
            stacklevel=3,
        )
    return out


def encoded(X, categories: dict[str, list[str]]):
    """``X`` with its numeric columns first, then one column per category (``city=oslo``: 1.0 or 0.0) of each
    column in ``categories``; other non-numeric columns are dropped. ``X`` itself when it has no categorical column.

    Parameters
    ----------
    X : DataFrame or array-like
    categories : dict of str to list of str
        :func:`fit_categories`.

    Returns
    -------
    DataFrame or the input

    Examples
    --------
    >>> out = encoded(pd.DataFrame({"city": ["oslo", "bergen"], "a": [1.0, 2.0]}), {"city": ["bergen", "oslo"]})
    >>> list(out.columns), out.to_numpy().tolist()
    (['a', 'city=bergen', 'city=oslo'], [[1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    """
    cats = categorical_columns(X)
    if not cats:
        return X
    numeric = X[[c for c in X.columns if str(c) not in cats]]
    parts, unseen = [numeric.astype(np.float64)], []
    for c, values in categories.items():
        if c not in X.columns:
            raise ValueError(f"X has no column {c!r}, which the model was fitted on")
        col = X[c].astype(str)
        parts.append(pd.DataFrame({f"{c}={v}": (col == v).to_numpy(np.float64) for v in values}, index=X.index))
        n = int((~col.isin(values)).sum())
        if n:
            unseen.append(f"{n:,} of {len(col):,} rows in column {c!r} (e.g. {col[~col.isin(values)].iloc[0]!r})")
    if unseen:
        warnings.warn(
            f"categories fit never saw: {'; '.join(unseen)}; no one-hot column is set for them",
            UserWarning,
            stacklevel=3,
        )
    return pd.concat(parts, axis=1)


def one_hot_mask(names, categories: dict[str, list[str]]) -> np.ndarray:
    """Which of the encoded column ``names`` are one-hot columns (standardisation leaves them as they are).

    Parameters
    ----------
    names : sequence of str
    categories : dict of str to list of str

    Returns
    -------
    numpy.ndarray of bool

    Examples
    --------
    >>> one_hot_mask(["a", "city=oslo"], {"city": ["oslo"]}).tolist()
    [False, True]
    """
    hot = {f"{c}={v}" for c, values in categories.items() for v in values}
    return np.array([str(n) in hot for n in names], dtype=bool)


def keep_one_hot(scaler, names, categories: dict[str, list[str]]):
    """``scaler`` (a fitted :class:`~sklearn.preprocessing.StandardScaler` of the encoded columns ``names``) made to
    pass the one-hot columns through unchanged (mean 0, variance 1), as the pipeline standardises the numeric
    columns only.

    Parameters
    ----------
    scaler : sklearn.preprocessing.StandardScaler
    names : sequence of str
    categories : dict of str to list of str

    Returns
    -------
    StandardScaler
        ``scaler`` itself.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> sc = keep_one_hot(StandardScaler().fit(np.array([[1.0, 0.0], [3.0, 1.0]])), ["a", "c=x"], {"c": ["x"]})
    >>> sc.transform(np.array([[3.0, 1.0]])).tolist()
    [[1.0, 1.0]]
    """
    mask = one_hot_mask(names, categories)
    if mask.any():
        scaler.mean_[mask], scaler.var_[mask], scaler.scale_[mask] = 0.0, 1.0, 1.0
    return scaler
