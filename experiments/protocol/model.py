"""The model of one split: extractor (optional) → embedding network (``model.arch``) → embedding z → head."""

from __future__ import annotations

import torch
from torch import nn

from experiments.inputs.batches import Inputs
from experiments.protocol.device import extractor_autocast

ARCHS = ("mlp", "mlp_bn_tanh", "linear", "identity")


def embedding_net(arch: str, in_dim: int, hidden: int, embed_dim: int, dropout: float = 0.0) -> nn.Module:
    """Features → embedding (``model.arch``): ``mlp`` Linear → ReLU → Dropout → Linear; ``mlp_bn_tanh``
    [BatchNorm → Linear → Tanh] × 2, the authors' blocks (a bounded embedding); ``linear`` one Linear;
    ``identity`` the features themselves (``embed_dim`` must equal their width)."""
    if arch == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, embed_dim))
    if arch == "mlp_bn_tanh":
        return nn.Sequential(
            nn.BatchNorm1d(in_dim),
            nn.Linear(in_dim, hidden),
            nn.Tanh(),
            nn.Dropout(dropout),
            nn.BatchNorm1d(hidden),
            nn.Linear(hidden, embed_dim),
            nn.Tanh(),
        )
    if arch == "linear":
        return nn.Linear(in_dim, embed_dim)
    if arch == "identity":
        if embed_dim != in_dim:
            raise ValueError(
                f"model.arch=identity passes the {in_dim} features on as the embedding; "
                f"set model.embed_dim={in_dim} (got {embed_dim})"
            )
        return nn.Identity()
    raise ValueError(f"unknown model.arch {arch!r}; allowed: {', '.join(ARCHS)}")


class Regressor(nn.Module):
    """extractor (optional: absent when features are precomputed) → embedding network → embedding → head."""

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        embed_dim: int,
        head: nn.Module,
        extractor: nn.Module | None = None,
        dropout: float = 0.0,
        arch: str = "mlp",
    ):
        super().__init__()
        self.in_dim, self.extractor = in_dim, extractor
        self.mlp = embedding_net(arch, in_dim, hidden, embed_dim, dropout)
        self.head = head
        self.extractor_dtype: torch.dtype | None = None  # autocast dtype of the extractor (trainer.precision)

    @property
    def uses_reference(self) -> bool:
        """Whether the head predicts from a reference set (``head.needs_reference``; False for the linear head)."""
        return self.head.needs_reference

    @property
    def min_batch(self) -> int:
        """The smallest training batch: 2 where the head needs another item or BatchNorm needs batch statistics."""
        batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.mlp.modules())
        return 2 if (self.uses_reference or batch_norm) else 1

    def embed(self, x) -> torch.Tensor:
        if self.extractor is not None:
            with extractor_autocast(self.extractor_dtype, self.mlp_device.type):
                x = self.extractor(x)
            x = x.float()  # the MLP and the head run in float32 whatever the extractor's precision
        return self.mlp(x)

    @property
    def mlp_device(self) -> torch.device:
        return next(self.mlp.parameters()).device


def embed_rows(model: Regressor, inputs: Inputs, idx, batch_size: int, device) -> torch.Tensor:
    """The embeddings of rows ``idx`` of ``inputs``, in batches of ``batch_size`` (the caller sets eval mode)."""
    return torch.cat([model.embed(x) for x in inputs.batches(idx, batch_size, device)])
