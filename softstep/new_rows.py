"""What is said of rows a fitted model predicts that are unlike its training rows: values orders of magnitude beyond
the training spread (a warning with the count), and a value the head cannot represent in its dtype (one line naming
the row and the column, instead of the similarity's :class:`~softstep.similarities.MagnitudeError`).

Not in the paper: the estimator (:class:`softstep.SoftStepRegressor`) and ``scripts/predict.py`` both use it.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import torch

from .similarities import MagnitudeError

#: a standardised value further than this many training standard deviations from the column's mean is reported
FAR_STDS = 1e3


def far_warning(x_std: np.ndarray, columns) -> str | None:
    """A one-line warning when rows of ``x_std`` (standardised with the training mean and standard deviation) hold a
    value beyond :data:`FAR_STDS`, with the count, the column with most and an example; None when none does.

    Parameters
    ----------
    x_std : numpy.ndarray of shape (n_rows, n_columns)
    columns : sequence of str
        The columns' names.

    Returns
    -------
    str or None

    Examples
    --------
    >>> far_warning(np.array([[0.5, 2e4], [1.0, -3.0]]), ["a", "b"])
    "1 of 2 rows have a value over 1e+03 training standard deviations from its column's mean (column 'b': 1 row, e.g. row 0 at 2e+04): their predictions extrapolate far beyond the training rows"
    >>> far_warning(np.zeros((3, 2)), ["a", "b"]) is None
    True
    """
    with np.errstate(invalid="ignore"):
        far = np.abs(np.asarray(x_std, dtype=np.float64)) > FAR_STDS
    if not far.any():
        return None
    rows, per_column = far.any(axis=1), far.sum(axis=0)
    c = int(per_column.argmax())
    r = int(far[:, c].argmax())
    return (
        f"{int(rows.sum()):,} of {len(rows):,} rows have a value over {FAR_STDS:.0e} training standard deviations from "
        f"its column's mean (column {str(columns[c])!r}: {int(per_column[c]):,} row{'s' if per_column[c] > 1 else ''}"
        f", e.g. row {r} at {abs(float(x_std[r, c])):.0e}): their predictions extrapolate far beyond the training rows"
    )


def unrepresentable(z: torch.Tensor, x_std: np.ndarray | None, columns, what: str = "row") -> str:
    """The line that replaces a :class:`~softstep.similarities.MagnitudeError`: the first row whose embedding is the
    largest (the one the head's similarities cannot hold in ``z``'s dtype) and, for a table, its column furthest from
    the training mean.

    Parameters
    ----------
    z : torch.Tensor of shape (n_rows, d)
        The rows' embeddings.
    x_std : numpy.ndarray of shape (n_rows, n_columns) or None
        The rows' standardised features (None: not a table, no column is named).
    columns : sequence of str
    what : str, default="row"
        What a row is called (``row``, ``file``).

    Returns
    -------
    str

    Examples
    --------
    >>> z = torch.tensor([[1.0, 0.0], [3e30, 1.0]])
    >>> unrepresentable(z, np.array([[0.1, 0.2], [5e29, 0.3]]), ["a", "b"])
    "row 1 (0-based): column 'a' is 5e+29 training standard deviations from its mean, beyond what the model can represent in torch.float32; fix or drop the row"
    """
    r = int(z.detach().abs().amax(dim=1).nan_to_num(float("inf")).argmax())
    where = f"{what} {r} (0-based)"
    if x_std is None or not len(columns):
        return f"{where}: its embedding is beyond what the model can represent in {z.dtype}; fix or drop the {what}"
    with np.errstate(invalid="ignore"):
        c = int(np.nan_to_num(np.abs(np.asarray(x_std[r], dtype=np.float64)), nan=np.inf).argmax())
    return (
        f"{where}: column {str(columns[c])!r} is {abs(float(x_std[r, c])):.0e} training standard deviations from its "
        f"mean, beyond what the model can represent in {z.dtype}; fix or drop the {what}"
    )


def warn_far(x_std: np.ndarray, columns) -> np.ndarray:
    """``x_std`` itself, after a :class:`UserWarning` of :func:`far_warning` when it holds values far beyond the
    training spread.

    Parameters
    ----------
    x_std : numpy.ndarray of shape (n_rows, n_columns)
    columns : sequence of str

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     _ = warn_far(np.array([[1e5]]), ["a"])
    >>> str(seen[0].message)[:20]
    '1 of 1 rows have a v'
    """
    line = far_warning(x_std, columns)
    if line:
        warnings.warn(line, UserWarning, stacklevel=3)
    return x_std


@contextmanager
def representable(z: torch.Tensor, x_std, columns):
    """A block in which the head's :class:`~softstep.similarities.MagnitudeError` becomes a :class:`ValueError` of
    :func:`unrepresentable` (``x_std``: a callable giving the rows' standardised features, called then only).

    Parameters
    ----------
    z : torch.Tensor of shape (n_rows, d)
    x_std : callable () -> numpy.ndarray
    columns : sequence of str

    Returns
    -------
    contextmanager

    Examples
    --------
    >>> with representable(torch.tensor([[9e30]]), lambda: np.array([[9e30]]), ["a"]):
    ...     raise MagnitudeError("overflow")
    Traceback (most recent call last):
    ...
    ValueError: row 0 (0-based): column 'a' is 9e+30 training standard deviations from its mean, ...
    """
    try:
        yield
    except MagnitudeError:
        raise ValueError(unrepresentable(z, x_std(), columns)) from None
