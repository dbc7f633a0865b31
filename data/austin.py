"""Austin housing (Kaggle ericpierce/austinhousingprices): listing description → log price.

``austinHousingData.csv`` holds about 15,000 Zillow listings with (among 47 columns)
``description`` and ``latestPrice``. Appendix B: descriptions → DistilBERT; label: natural log
of ``latestPrice``. Rows with an empty description are dropped (there is nothing to encode).
"""

from __future__ import annotations

from .base import RegressionData
from .text_table import text_release

NAME = "austin"


def load(
    root: str = "data/austin",
    file: str = "austinHousingData.csv",
    text_column: str = "description",
    target_column: str = "latestPrice",
    log_target: bool = True,
) -> RegressionData:
    return text_release(
        NAME, root, file, text_column, target_column, drop_empty_text=True, log_target=log_target, dropna=False
    )
