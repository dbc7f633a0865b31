"""What every dataset loader returns: a :class:`RegressionData` of one modality.

``data/`` turns files on disk into (inputs, labels). It knows nothing about models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

MODALITIES = ("image", "audio", "text", "table")


class DataError(ValueError):
    """Bad or missing data. The message names the file, the field and the fix."""


@dataclass
class RegressionData:
    """One regression dataset, held as items plus a loader for each item.

    Attributes
    ----------
    name : dataset name (``rsna``, ``vader``, ...), part of the feature-cache key.
    modality : one of ``image``, ``audio``, ``text``, ``table``: which extractors fit.
    items : length-n sequence of raw items (file paths, strings or feature rows).
    labels : (n,) float64 targets in the dataset's original units.
    load : item → model-ready input (image: float tensor (C, H, W); audio: float
        waveform tensor (T,) at the extractor's sample rate; text: str;
        table: float tensor (p,)). Identity by default.
    preprocessing : a short string that names the preprocessing, part of the
        feature-cache key (change it when the preprocessing changes).
    counts : how the number of items arose, in order: ``{"rows in metadata_compiled.csv": 27550,
        "with an age": ..., ...}``. Shown when the count differs from the paper's
        (``dataset.expected_n``); not part of any cache key.
    columns : table modality only, optional: the raw feature columns, as
        ``{"frame": DataFrame (n rows), "numeric": [names], "categorical": [names]}``.
        The items are then the rows' numbers in the file, and ``experiments/`` standardises
        and one-hot encodes the frame per split, fitted on the training split only.
    """

    name: str
    modality: str
    items: Sequence[Any]
    labels: np.ndarray
    load: Callable[[Any], Any] = field(default=lambda item: item)
    preprocessing: str = ""
    counts: dict = field(default_factory=dict)
    columns: dict | None = None

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise DataError(
                f"dataset {self.name!r}: unknown modality {self.modality!r}; allowed: {', '.join(MODALITIES)}"
            )
        self.labels = np.asarray(self.labels, dtype=np.float64).reshape(-1)
        if len(self.items) != len(self.labels):
            raise DataError(f"dataset {self.name!r}: {len(self.items)} items but {len(self.labels)} labels")
        if len(self.labels) == 0:
            raise DataError(f"dataset {self.name!r} is empty")
        if not np.isfinite(self.labels).all():
            bad = int(np.flatnonzero(~np.isfinite(self.labels))[0])
            raise DataError(
                f"dataset {self.name!r}: label {bad} ({self.items[bad]!r}) is NaN or inf; "
                "drop or fix those rows in the label file"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def dataset(self, indices: Sequence[int]) -> ItemDataset:
        """A torch Dataset over ``indices`` that yields (model-ready input, label)."""
        return ItemDataset(self, np.asarray(indices))


class ItemDataset(torch.utils.data.Dataset):
    def __init__(self, data: RegressionData, indices: np.ndarray):
        self.data, self.indices = data, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        j = int(self.indices[i])
        return self.data.load(self.data.items[j]), float(self.data.labels[j])


def collate(batch):
    """Stack tensors (padding 1-D waveforms of unequal length with zeros); keep strings as a list."""
    xs, ys = zip(*batch)
    y = torch.tensor(ys, dtype=torch.float32)
    if isinstance(xs[0], str):
        return list(xs), y
    if xs[0].dim() == 1 and len({x.shape[0] for x in xs}) > 1:
        return torch.nn.utils.rnn.pad_sequence(list(xs), batch_first=True), y
    return torch.stack(xs), y
