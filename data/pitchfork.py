"""Pitchfork reviews (P4KxSpotify, Pinter et al. 2020, Zenodo 10.5281/zenodo.3603330): review text → score.

Albums are scored 0–10 in steps of 0.1. Appendix B: 1,500 randomly selected reviews → BERT base.
Reads ``P4KxSpotify.csv`` (columns ``review`` and ``score``; both names are config fields), drops
rows without a review text or score, then draws ``n`` rows without replacement with
``numpy.random.default_rng(seed)`` (kept in file order). The draw depends only on the file and
the seed, so every run and split uses the same 1,500 reviews.
"""

from __future__ import annotations

from .base import RegressionData
from .text_table import text_release

NAME = "pitchfork"


def load(
    root: str = "data/pitchfork",
    file: str = "P4KxSpotify.csv",
    text_column: str = "review",
    target_column: str = "score",
    n: int | None = 1500,
    seed: int = 0,
    encoding: str | None = None,
) -> RegressionData:
    return text_release(NAME, root, file, text_column, target_column, encoding=encoding, dropna=True, n=n, seed=seed)
