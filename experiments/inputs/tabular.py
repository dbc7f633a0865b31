"""Per-split preprocessing of a table's feature columns (``dataset=table`` with ``features``).

Numeric columns are standardised (``StandardScaler``), categorical ones one-hot encoded
(``OneHotEncoder``, unseen categories ignored: all zeros), both inside one ``ColumnTransformer``
fitted on the training split only, exactly as the labels are scaled. The fitted state is plain
numbers and strings (:meth:`TablePreprocessor.state`), so a saved model stores it as JSON, not as
a pickle; :meth:`TablePreprocessor.from_state` rebuilds the same fitted transformer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from data.base import RegressionData
from experiments.inputs.batches import Inputs


class TablePreprocessor:
    """Standardise ``numeric`` and one-hot encode ``categorical`` columns of a DataFrame."""

    def __init__(self, numeric: list[str], categorical: list[str]):
        if not numeric and not categorical:
            raise ValueError("a table needs at least one feature column")
        self.numeric, self.categorical = list(numeric), list(categorical)
        parts = []
        if self.numeric:
            parts.append(("numeric", StandardScaler(), self.numeric))
        if self.categorical:
            parts.append(
                (
                    "categorical",
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32),
                    self.categorical,
                )
            )
        self.transformer = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)

    def fit(self, frame: pd.DataFrame) -> TablePreprocessor:
        self.transformer.fit(frame[self.numeric + self.categorical])
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, width) float32 features."""
        return np.asarray(self.transformer.transform(frame[self.numeric + self.categorical]), dtype=np.float32)

    @property
    def width(self) -> int:
        return len(self.transformer.get_feature_names_out())

    def state(self) -> dict:
        """The fitted state as JSON-able values: each numeric column's mean and variance, each categorical column's categories."""
        out = {"numeric": {}, "categorical": {}}
        if self.numeric:
            sc = self.transformer.named_transformers_["numeric"]
            out["numeric"] = {c: [float(m), float(v)] for c, m, v in zip(self.numeric, sc.mean_, sc.var_)}
        if self.categorical:
            enc = self.transformer.named_transformers_["categorical"]
            out["categorical"] = {c: [str(x) for x in cats] for c, cats in zip(self.categorical, enc.categories_)}
        return out

    @classmethod
    def from_state(cls, state: dict) -> TablePreprocessor:
        """The transformer :meth:`state` describes, refitted on a few synthetic rows that have exactly those
        means, variances and categories (rows m ± √v, categories cycled), so no fitted object is unpickled."""
        numeric, categorical = list(state["numeric"]), list(state["categorical"])
        n = max([2] + [len(c) for c in state["categorical"].values()])
        n += n % 2
        signs = np.tile([1.0, -1.0], n // 2)
        frame = pd.DataFrame({c: m + np.sqrt(v) * signs for c, (m, v) in state["numeric"].items()}, index=range(n))
        for c, cats in state["categorical"].items():
            frame[c] = [cats[i % len(cats)] for i in range(n)]
        return cls(numeric, categorical).fit(frame)

    def describe(self) -> dict:
        """What the result file records: the columns used and the width they became."""
        return {"numeric": self.numeric, "categorical": self.categorical, "width": self.width}


def split_inputs(
    data: RegressionData, inputs: Inputs, in_dim: int | None, train_idx
) -> tuple[Inputs, int | None, TablePreprocessor | None]:
    """(inputs, width, preprocessor) of one split: a table's columns preprocessed by a transformer fitted on
    ``train_idx``; any other dataset's inputs unchanged (preprocessor None)."""
    if data.columns is None:
        return inputs, in_dim, None
    cols = data.columns
    prep = TablePreprocessor(cols["numeric"], cols["categorical"]).fit(cols["frame"].iloc[np.asarray(train_idx)])
    return Inputs(features=torch.from_numpy(prep.transform(cols["frame"]))), prep.width, prep
