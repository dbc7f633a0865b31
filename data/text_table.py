"""A table's text column → text :class:`~data.base.RegressionData`: the ``table`` type's text mode and the
paper's text datasets (Austin, Books, Pitchfork), which read one label file from their data folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import checks
from .base import DataError, RegressionData


def text_release(
    name: str,
    root,
    file: str,
    text_column: str,
    target_column: str,
    *,
    fallback: str | None = None,
    encoding: str | None = None,
    drop_empty_text: bool = False,
    **kw,
) -> RegressionData:
    """Require ``root/file`` (or ``root/fallback`` when only that exists), read it, and return its (text, target) rows.

    ``drop_empty_text`` drops rows with an empty text first (the text column must exist); ``kw`` goes to
    :func:`text_table` (``log_target``, ``dropna``, ``n``, ``seed``). The cache tag names the file read and its
    content digest.
    """
    root = Path(root).expanduser()
    used, shown = file, file
    if fallback is not None:
        shown = f"{file} or {fallback}"
        if not (root / file).exists() and (root / fallback).exists():
            used = fallback
    table = root / used
    checks.require(name, root, {f"{shown} (columns {text_column!r}, {target_column!r})": table})
    df = checks.read_table(table, name=name, encoding=encoding)
    if drop_empty_text:
        checks.check_columns(df, table, {"text_column": text_column, "target_column": target_column}, name=name)
        df = checks.drop_missing(df, [text_column])
    tag = f"{used}-{checks.file_digest(table)}"
    return text_table(name, table, df, text_column, target_column, preprocessing=tag, **kw)


def text_table(
    name,
    path,
    df,
    text_column: str,
    target: str,
    *,
    log_target=False,
    dropna=True,
    n=None,
    seed=0,
    preprocessing: str = "",
) -> RegressionData:
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
            raise DataError(
                f"dataset {name!r}: {path}, column {text_column!r}, row {i}: empty text; fix the row or set dropna=true"
            )
    df = checks.sample_rows(df, n, seed, name=name)
    if len(df) == 0:
        raise DataError(f"dataset {name!r}: {path} has no row with both a {text_column!r} text and a {target!r} value")
    y = checks.numeric(df, target, path, name=name)
    if log_target:
        y = checks.log_target(y, path, target, name=name, how=log_target)
    tag = f"{preprocessing}-text-{checks.log_tag(log_target)}-dropna{int(dropna)}" + (
        f"-sample{len(df)}-seed{seed}" if n else ""
    )
    return RegressionData(name, "text", checks.text_column(df, text_column), y, preprocessing=tag)
