"""The label of a run: min–max scaled to [0, 1] on the training split (the paper's Table 1 unit), and the checks
that make that scaling possible. At the bottom of ``experiments/``: the protocol, the result records and the saved
models all stand on it."""

from __future__ import annotations

import numpy as np

from data.base import DataError, RegressionData


class MinMaxScaler:
    """Labels → [0, 1] with the training split's min and max (fit on train only)."""

    def __init__(self, y_train):
        y_train = np.asarray(y_train, dtype=float)
        self.lo, self.hi = float(y_train.min()), float(y_train.max())
        self.span = self.hi - self.lo if self.hi > self.lo else 1.0

    def transform(self, y):
        return (np.asarray(y, dtype=float) - self.lo) / self.span

    def inverse(self, y_scaled):
        """[0, 1] → the label's units."""
        return self.lo + np.asarray(y_scaled, dtype=float) * self.span

    def mse_to_original(self, mse_scaled: float) -> float:
        """An MSE on the [0, 1] scale, in squared original units."""
        return float(mse_scaled) * self.span**2


def check_labels(data: RegressionData, train_labels: dict[int, np.ndarray], source: str | None = None) -> None:
    """Refuse a constant target, and a split whose training labels are constant (min–max would divide by zero).

    ``source``: where the data came from (a file or folder), named in the message."""
    where = f"dataset {data.name!r}" + (f" ({source})" if source else "")
    if np.ptp(data.labels) == 0:
        raise DataError(f"{where}: every label is {data.labels[0]:g} (a constant target); there is nothing to regress")
    for s, y in train_labels.items():
        if np.ptp(y) == 0:
            raise DataError(
                f"{where}, split {s}: every training label is {y[0]:g}; min-max label "
                f"scaling needs two distinct values (use other splits or more varied data)"
            )
