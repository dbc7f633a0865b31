"""Austin housing (Kaggle ericpierce/austinhousingprices): listing description → log price.

``austinHousingData.csv`` holds about 15,000 Zillow listings with (among 47 columns)
``description`` and ``latestPrice``. Appendix B: descriptions → DistilBERT; label: natural log
of ``latestPrice``. Rows with an empty description are dropped (there is nothing to encode).
"""

from __future__ import annotations

from pathlib import Path

from . import checks
from .base import RegressionData
from .table import text_table

NAME = "austin"


def load(
    root: str = "data/austin",
    file: str = "austinHousingData.csv",
    text_column: str = "description",
    target_column: str = "latestPrice",
    log_target: bool = True,
) -> RegressionData:
    root = Path(root).expanduser()
    table = root / file
    checks.require(NAME, root, {f"{file} (columns {text_column!r}, {target_column!r})": table})
    df = checks.read_table(table, name=NAME)
    checks.check_columns(df, table, {"text_column": text_column, "target_column": target_column}, name=NAME)
    df = checks.drop_missing(df, [text_column])
    return text_table(
        NAME,
        table,
        df,
        text_column,
        target_column,
        log_target=log_target,
        dropna=False,
        preprocessing=f"{file}-{checks.file_digest(table)}",
    )
