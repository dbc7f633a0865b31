"""Books (MachineHack "Predict the price of books"): synopsis → log price.

The hackathon's ``Data_Train.xlsx`` holds 6,237 books with the columns ``Title, Author, Edition,
Reviews, Ratings, Synopsis, Genre, BookCategory, Price``. Appendix B: synopses → DistilBERT;
label: natural log of ``Price``. Reading .xlsx needs openpyxl; a CSV export
(``Data_Train.csv``, same columns) is used when the .xlsx is absent.
"""

from __future__ import annotations

from pathlib import Path

from . import checks
from .base import RegressionData
from .table import text_table

NAME = "books"


def load(
    root: str = "data/books",
    file: str = "Data_Train.xlsx",
    text_column: str = "Synopsis",
    target_column: str = "Price",
    log_target: bool = True,
) -> RegressionData:
    root = Path(root).expanduser()
    table = root / file
    if not table.exists() and table.with_suffix(".csv").exists():
        table = table.with_suffix(".csv")
    checks.require(
        NAME, root, {f"{file} or {Path(file).with_suffix('.csv')} (columns {text_column!r}, {target_column!r})": table}
    )
    df = checks.read_table(table, name=NAME)
    return text_table(
        NAME,
        table,
        df,
        text_column,
        target_column,
        log_target=log_target,
        dropna=False,
        preprocessing=f"{table.name}-{checks.file_digest(table)}",
    )
