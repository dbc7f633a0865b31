"""The identity extractor for tabular and synthetic data: features are the inputs."""

from __future__ import annotations

import torch

from .base import Extractor


class Identity(Extractor):
    modality, pooling, cache_key = "table", "none", "identity"

    def __init__(self, in_dim: int):
        super().__init__()
        if not in_dim or in_dim < 1:
            raise ValueError(f"the identity extractor needs in_dim >= 1 (the number of feature columns); got {in_dim}")
        self.out_dim = int(in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def build(in_dim: int | None = None, finetune: bool = False, **_) -> Identity:
    """Config builder: ``finetune`` has no parameters to act on."""
    return Identity(in_dim)
