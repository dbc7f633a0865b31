"""Bring your own table: a CSV / TSV / Parquet / Excel file → tabular features or a text column.

``dataset=table dataset.loader.path=FILE dataset.loader.target=COLUMN`` and either
``dataset.loader.features=[a,b,c]`` (or ``all``: every numeric column but the target; modality
``table``, extractor ``identity``) or ``dataset.loader.text_column=COLUMN`` (modality ``text``;
pick a text extractor, e.g. ``extractor=minilm``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from . import checks
from .base import DataError, RegressionData

DOC = checks.REPO_README


def load(path: str, target: str, features: Sequence[str] | str | None = None, text_column: str | None = None,
         name: str = "table", log_target: bool = False, dropna: bool = False, sheet=0) -> RegressionData:
    """Load ``path``; label = column ``target`` (natural log of it with ``log_target``).

    ``dropna`` drops rows with a missing target, feature or text before the checks; without it a
    missing or non-numeric value is an error that names the file, column and row.
    """
    if path is None or str(path).strip() in ("", "???"):
        raise DataError(f"dataset {name!r}: set dataset.loader.path to your CSV or Parquet file (see {DOC}, 'Bring your own data')")
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"dataset {name!r}: no file at {path.resolve()} (dataset.loader.path); see {DOC}, 'Bring your own data'")
    if (features is None) == (text_column is None):
        raise DataError(f"dataset {name!r}: set exactly one of dataset.loader.features (a list of numeric columns, or 'all') "
                        f"and dataset.loader.text_column; got features={features!r}, text_column={text_column!r}")
    df = checks.read_table(path, name=name, sheet=sheet)
    checks.check_columns(df, path, {"target": target}, name=name)
    if len(df) == 0:
        raise DataError(f"dataset {name!r}: {path} has a header but no data rows")
    if text_column is not None:
        return text_table(name, path, df, text_column, target, log_target=log_target, dropna=dropna,
                          preprocessing=f"{path.name}-{checks.file_digest(path)}")
    if isinstance(features, str):
        if features != "all":
            features = [features]
        else:
            features = [c for c in df.columns if c != target and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
            if not features:
                raise DataError(f"dataset {name!r}: {path} has no numeric column besides the target {target!r}")
    features = [str(c) for c in features]
    if target in features:
        raise DataError(f"dataset {name!r}: the target column {target!r} is also listed in features")
    checks.check_columns(df, path, {f"features[{i}]": c for i, c in enumerate(features)}, name=name)
    if dropna:
        df = df.dropna(subset=[target, *features])
    y = checks.numeric(df, target, path, name=name)
    if log_target:
        y = checks.log_target(y, path, target, name=name)
    x = np.stack([checks.numeric(df, c, path, name=name, what="feature") for c in features], axis=1)
    items = torch.from_numpy(x.astype(np.float32))
    tag = f"{path.name}-{checks.file_digest(path)}-{len(features)}cols-log{int(log_target)}-dropna{int(dropna)}"
    return RegressionData(name, "table", items, y, preprocessing=tag)


def text_table(name, path, df, text_column: str, target: str, *, log_target=False, dropna=True, n=None, seed=0,
               preprocessing: str = "") -> RegressionData:
    """(text, numeric target) rows of a read table: shared by ``table`` and the paper's text datasets.

    Rows with an empty text are dropped when ``dropna``; else they are an error. ``n`` rows are
    then sampled with ``seed`` (all rows when None).
    """
    checks.check_columns(df, path, {"text_column": text_column, "target_column": target}, name=name)
    if dropna:
        df = checks.drop_missing(df, [text_column, target])
    else:
        empty = checks.drop_missing(df, [text_column])
        if len(empty) < len(df):
            i = int(np.flatnonzero(~df.index.isin(empty.index))[0])
            raise DataError(f"dataset {name!r}: {path}, column {text_column!r}, row {i}: empty text; "
                            f"fix the row or set dropna=true")
    df = checks.sample_rows(df, n, seed, name=name)
    if len(df) == 0:
        raise DataError(f"dataset {name!r}: {path} has no row with both a {text_column!r} text and a {target!r} value")
    y = checks.numeric(df, target, path, name=name)
    if log_target:
        y = checks.log_target(y, path, target, name=name)
    tag = f"{preprocessing}-text-log{int(log_target)}-dropna{int(dropna)}" + (f"-sample{len(df)}-seed{seed}" if n else "")
    return RegressionData(name, "text", checks.text_column(df, text_column), y, preprocessing=tag)
