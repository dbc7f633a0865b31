"""Books (MachineHack "Predict the price of books"): synopsis → log price.

The hackathon's ``Data_Train.xlsx`` holds 6,237 books with the columns ``Title, Author, Edition,
Reviews, Ratings, Synopsis, Genre, BookCategory, Price``. Appendix B: synopses → DistilBERT;
label: natural log of ``Price``. Reading .xlsx needs openpyxl; a CSV export
(``Data_Train.csv``, same columns) is used when the .xlsx is absent.
"""

from __future__ import annotations

from pathlib import Path

from .base import RegressionData
from .text_table import text_release

NAME = "books"


def load(
    root: str = "data/books",
    file: str = "Data_Train.xlsx",
    text_column: str = "Synopsis",
    target_column: str = "Price",
    log_target: bool = True,
) -> RegressionData:
    csv = str(Path(file).with_suffix(".csv"))
    return text_release(NAME, root, file, text_column, target_column, fallback=csv, log_target=log_target, dropna=False)
