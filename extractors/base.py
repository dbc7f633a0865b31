"""What every extractor is: an ``nn.Module`` that maps a collated batch of one modality to (B, out_dim).

``extractors/`` knows nothing about datasets or heads.
"""

from __future__ import annotations

from torch import nn


class Extractor(nn.Module):
    """Base class.

    Attributes
    ----------
    modality : the input it accepts (``image``, ``audio``, ``text``, ``table``).
    out_dim : width of the feature matrix it returns.
    pooling : how it pools over positions or time (``"none"``, ``"mean"``, ``"cls"``, ``"avgpool"``).
    finetune : whether its parameters train; a frozen extractor is run once and cached.
    cache_key : a string naming the weights and settings, part of the feature-cache key.
    """

    modality: str = "table"
    out_dim: int = 0
    pooling: str = "none"
    finetune: bool = False
    cache_key: str = ""

    def set_finetune(self, finetune: bool) -> Extractor:
        self.finetune = bool(finetune)
        for p in self.parameters():
            p.requires_grad_(self.finetune)
        return self
