"""VADER valence lexicon: 7,520 English tokens → mean human valence rating (about −4 … +4).

The lexicon ships inside the ``vaderSentiment`` package (``vader_lexicon.txt``, tab-separated:
token, mean valence, standard deviation, raw ratings), so this dataset needs no download.
"""

from __future__ import annotations

import importlib.resources

import numpy as np

from .base import DataError, RegressionData


def load(path: str | None = None, limit: int | None = None) -> RegressionData:
    """Load (token, mean valence) pairs. ``path`` overrides the packaged lexicon; ``limit`` keeps the first n rows."""
    if path is None:
        try:
            path = importlib.resources.files("vaderSentiment") / "vader_lexicon.txt"
        except ModuleNotFoundError as e:
            raise DataError(
                "dataset 'vader' needs the vaderSentiment package: pip install vaderSentiment==3.3.2"
            ) from e
    tokens, valence = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                continue
            try:
                valence.append(float(fields[1]))
            except ValueError as e:
                raise DataError(f"{path}, line {lineno}: column 2 (mean valence) is not a number: {fields[1]!r}") from e
            tokens.append(fields[0])
    if limit:
        tokens, valence = tokens[:limit], valence[:limit]
    return RegressionData("vader", "text", tokens, np.array(valence), preprocessing="raw-token")
