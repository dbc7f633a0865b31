"""Bring your own table: a CSV / TSV / Parquet / Excel file → tabular features or a text column.

``dataset=table dataset.loader.path=FILE dataset.loader.target=COLUMN`` and either
``dataset.loader.features=[a,b,c]`` (or ``all``: every numeric and categorical column but the
target; modality ``table``, extractor ``identity``) or ``dataset.loader.text_column=COLUMN``
(modality ``text``; pick a text extractor, e.g. ``extractor=minilm``).

Feature columns are returned raw (``RegressionData.columns``): numeric columns as floats,
categorical ones (strings, categories, bools) as strings. The pipeline standardises and one-hot
encodes them per split, fitted on the training split only (``experiments/inputs/tabular.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .base import DataError, RegressionData
from .text_table import text_table

DOC = checks.BYO_DOC
log = logging.getLogger("softstep")


def load(
    path: str,
    target: str,
    features: Sequence[str] | str | None = None,
    text_column: str | None = None,
    name: str = "table",
    log_target: bool | str = False,
    dropna: bool = False,
    sheet=0,
) -> RegressionData:
    """Load ``path``; label = column ``target`` (natural log of it with ``log_target``, of 1 + it with ``log1p``).

    ``dropna`` drops rows with a missing target, feature or text before the checks; without it a
    missing or non-numeric value is an error that names the file, column and row.
    """
    if path is None or str(path).strip() in ("", "???"):
        raise DataError(
            f"dataset {name!r}: set dataset.loader.path to your CSV or Parquet file (see {DOC}, 'Bring your own data')"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(
            f"dataset {name!r}: no file at {path.resolve()} (dataset.loader.path); see {DOC}, 'Bring your own data'"
        )
    if (features is None) == (text_column is None):
        raise DataError(
            f"dataset {name!r}: set exactly one of dataset.loader.features (a list of columns, or 'all') "
            f"and dataset.loader.text_column; got features={features!r}, text_column={text_column!r}"
        )
    df = checks.read_table(path, name=name, sheet=sheet)
    checks.check_columns(df, path, {"target": target}, name=name)
    if len(df) == 0:
        raise DataError(f"dataset {name!r}: {path} has a header but no data rows")
    source = f"{path.name}-{checks.file_digest(path)}"
    if text_column is not None:
        return text_table(
            name,
            path,
            df,
            text_column,
            target,
            log_target=log_target,
            dropna=dropna,
            preprocessing=source,
        )
    return columns_data(name, path, df, target, features, log_target=log_target, dropna=dropna, source=source)


def columns_data(name: str, path, df: pd.DataFrame, target: str, features, *, log_target, dropna, source: str):
    """A read table's ``features`` (a list, or ``all``) as raw columns, label = ``target``: shared by ``table`` and the
    tables that packages ship. ``source`` names the file and its content in the cache tag."""
    numeric_cols, categorical_cols = feature_columns(df, features, target, path, name=name)
    features = [c for c in df.columns if c in set(numeric_cols) | set(categorical_cols)]
    rows = np.arange(len(df))
    if dropna:
        keep = df[[target, *features]].notna().all(axis=1).to_numpy()
        df, rows = df[keep], rows[keep]
    y = checks.numeric(df, target, path, name=name)
    if log_target:
        y = checks.log_target(y, path, target, name=name, how=log_target)
    frame = pd.DataFrame(index=range(len(df)))
    for c in features:
        if c in numeric_cols:
            frame[c] = checks.numeric(df, c, path, name=name, what="feature")
        else:
            frame[c] = categorical(df, c, path, name=name)
    log.info(
        "dataset %r: features from %s: numeric %s; categorical (one-hot) %s",
        name,
        path.name,
        numeric_cols or "none",
        categorical_cols or "none",
    )
    tag = f"{source}-{len(numeric_cols)}num-{len(categorical_cols)}cat-{checks.log_tag(log_target)}-dropna{int(dropna)}"
    return RegressionData(
        name,
        "table",
        rows,
        y,
        preprocessing=tag,
        columns={"frame": frame, "numeric": numeric_cols, "categorical": categorical_cols},
    )


def is_categorical(col: pd.Series) -> bool:
    """Strings, categories and bools are categorical. A text column whose values are mostly numbers is
    numeric (its odd cells, e.g. a typo, are then reported as errors rather than silently becoming categories)."""
    if pd.api.types.is_bool_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype):
        return True
    if pd.api.types.is_numeric_dtype(col):
        return False
    present = col.dropna()
    return len(present) == 0 or pd.to_numeric(present, errors="coerce").notna().mean() < 0.5


def feature_columns(df: pd.DataFrame, features, target: str, path, *, name: str) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns, in the file's order.

    ``features="all"``: every column but the target that is numeric, bool, a category or a string,
    except date/time columns and string columns with a distinct value in most rows (identifiers or
    free text: one-hot encoding them would add a column per row); list such a column to use it.
    """
    if isinstance(features, str) and features == "all":
        chosen, skipped = [], []
        for c in df.columns:
            if c == target:
                continue
            col = df[c]
            if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col):
                skipped.append(c)
            elif is_categorical(col) and not pd.api.types.is_bool_dtype(col) and col.nunique() > max(20, len(col) // 2):
                skipped.append(c)
            else:
                chosen.append(c)
        if skipped:
            log.info(
                "dataset %r: features=all skipped %s (dates, identifiers or free text; list a column in "
                "dataset.loader.features to use it)",
                name,
                skipped,
            )
        if not chosen:
            raise DataError(f"dataset {name!r}: {path} has no feature column besides the target {target!r}")
    else:
        chosen = [features] if isinstance(features, str) else list(features)
    chosen = [str(c) for c in chosen]
    if target in chosen:
        raise DataError(f"dataset {name!r}: the target column {target!r} is also listed in features")
    checks.check_columns(df, path, {f"features[{i}]": c for i, c in enumerate(chosen)}, name=name)
    categorical_cols = [c for c in chosen if is_categorical(df[c])]
    return [c for c in chosen if c not in categorical_cols], categorical_cols


def categorical(df: pd.DataFrame, column: str, path, *, name: str) -> pd.Series:
    """Column ``column`` as strings (the categories); an empty cell names the file, column and row."""
    raw = df[column]
    bad = np.flatnonzero(raw.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"dataset {name!r}: {path}, column {column!r} (categorical feature), row {i} "
            f"(label {df.index[i]!r}) is empty; {len(bad)} such row(s) in all. Fix or drop them "
            f"(or set dropna=true)"
        )
    return raw.astype(str).reset_index(drop=True)
