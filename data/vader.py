"""VADER valence lexicon: 7,520 English tokens → mean human valence rating (about −4 … +4).

The lexicon ships inside the ``vaderSentiment`` package (``vader_lexicon.txt``, tab-separated:
token, mean valence, standard deviation, raw ratings), so this dataset needs no download.
"""

from __future__ import annotations

from .base import RegressionData
from .lexicons import lexicon, read_pairs
from .packaged import package_file


def load(path: str | None = None, limit: int | None = None) -> RegressionData:
    """Load (token, mean valence) pairs. ``path`` overrides the packaged lexicon; ``limit`` keeps the first n rows."""
    path = path or package_file("vader", "vaderSentiment", "vader_lexicon.txt")
    tokens, valence = read_pairs(path, what="mean valence")
    return lexicon("vader", tokens, valence, limit=limit, preprocessing="raw-token")
