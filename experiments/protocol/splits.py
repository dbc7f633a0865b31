"""The paper's splits (section 5): seed s → 80/20 development/test, then 85/15 train/validation.

Both cuts are stratified on the label, binned into quantiles, as the authors' code did for
regression targets: bins = label quantiles (``n_bins``, fewer where the label has fewer
distinct values or a bin would hold fewer than 2 items). Each seed gives a deterministic,
disjoint (train, val, test) partition of all indices.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split


def quantile_bins(y: np.ndarray, n_bins: int) -> np.ndarray | None:
    """Label quantile bin of each item, or None when no binning leaves ≥ 2 items per bin."""
    y = np.asarray(y, dtype=float)
    for b in range(min(n_bins, len(y) // 2), 1, -1):
        edges = np.unique(np.quantile(y, np.linspace(0, 1, b + 1)[1:-1]))
        bins = np.searchsorted(edges, y, side="right")
        if np.bincount(bins).min() >= 2:
            return bins
    return None


def _cut(idx: np.ndarray, y: np.ndarray, test_size: float, seed: int, n_bins: int):
    bins = quantile_bins(y[idx], n_bins)
    n_test = int(round(test_size * len(idx)))
    if bins is not None and (n_test < bins.max() + 1 or len(idx) - n_test < bins.max() + 1):
        bins = None  # too few items to place one of each bin on both sides
    return train_test_split(idx, test_size=test_size, random_state=seed, stratify=bins)


def paper_split(y, seed: int, n_bins: int = 10, test: float = 0.2, val: float = 0.15):
    """(train, val, test) index arrays for split ``seed``: 80/20, then 85/15 of the 80."""
    y = np.asarray(y, dtype=float)
    if len(y) < 5:
        raise ValueError(f"a paper split needs at least 5 items; the dataset has {len(y)}")
    dev, test_idx = _cut(np.arange(len(y)), y, test, seed, n_bins)
    train_idx, val_idx = _cut(dev, y, val, seed, n_bins)
    return np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)


def final_split(y, seed: int = 0, n_bins: int = 10, val: float = 0.15):
    """(train, val, test) for a final model (``final=true``, ours): every labelled row, cut 85/15 into training and
    early-stopping rows as the paper cuts its development set, stratified the same way; no test rows."""
    y = np.asarray(y, dtype=float)
    if len(y) < 5:
        raise ValueError(f"a final model needs at least 5 labelled items; the dataset has {len(y)}")
    train_idx, val_idx = _cut(np.arange(len(y)), y, val, seed, n_bins)
    return np.sort(train_idx), np.sort(val_idx), np.array([], dtype=int)


def split_indices(cfg: DictConfig, labels, split: int) -> tuple:
    """(train, val, test) rows of ``split``: the paper's 80/20 → 85/15 cut, or with ``final=true`` every labelled
    row cut 85/15 into training and early stopping, no test rows (:func:`final_split`)."""
    if OmegaConf.select(cfg, "final", default=False) is True:
        return final_split(labels, split, cfg.trainer.stratify_bins)
    return paper_split(labels, split, cfg.trainer.stratify_bins)
