"""A deep regressor with a head: extractor (optional) → embedding network (``arch``) → embedding z → head.

The paper's model (section 5): a pretrained extractor's features, a 200-wide MLP to the embedding, and one head;
:mod:`softstep.training` trains it.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

ARCHS = ("mlp", "mlp_bn_tanh", "linear", "identity")


def embedding_net(arch: str, in_dim: int, hidden: int, embed_dim: int, dropout: float = 0.0) -> nn.Module:
    """The network from features to the embedding z (the paper's 200-wide MLP, section 5).

    Parameters
    ----------
    arch : {"mlp", "mlp_bn_tanh", "linear", "identity"}
        ``mlp``: Linear → ReLU → Dropout → Linear; ``mlp_bn_tanh``: [BatchNorm → Linear → Tanh] × 2, the
        authors' blocks (a bounded embedding); ``linear``: one Linear; ``identity``: the features themselves.
    in_dim, hidden, embed_dim : int
        Feature width, hidden width, embedding width (``identity`` needs ``embed_dim == in_dim``).
    dropout : float, default 0.0

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> embedding_net("mlp", 10, 200, 25)(torch.zeros(4, 10)).shape
    torch.Size([4, 25])
    """
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
    """extractor (optional) → embedding network → embedding z → head: a deep regressor with a SoftStep head.

    Parameters
    ----------
    in_dim, hidden, embed_dim : int
        The embedding network's widths (:func:`embedding_net`).
    head : torch.nn.Module
        One of the library's heads (:func:`softstep.build_head`), called as ``head(z, z_ref, y_ref, ...)``.
    extractor : torch.nn.Module, optional
        A feature extractor trained with the rest (absent when features are precomputed).
    dropout : float, default 0.0
    arch : str, default "mlp"
        The embedding network (:func:`embedding_net`).

    Examples
    --------
    >>> import torch
    >>> from softstep import build_head
    >>> model = Regressor(10, 200, 25, build_head("nca_i", 25))
    >>> z = model.embed(torch.randn(8, 10))
    >>> model.head(z, z, torch.rand(8), exclude_self=True).shape
    torch.Size([8])
    """

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
            with _extractor_autocast(self.extractor_dtype, self.mlp_device.type):
                x = self.extractor(x)
            x = x.float()  # the MLP and the head run in float32 whatever the extractor's precision
        return self.mlp(x)

    @property
    def mlp_device(self) -> torch.device:
        return next(self.mlp.parameters()).device


def _extractor_autocast(dtype: torch.dtype | None, device_type: str):
    """The context the extractor's forward runs in: autocast to ``dtype``, or nothing."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def embed_rows(model: Regressor, inputs, idx, batch_size: int, device) -> torch.Tensor:
    """The embeddings of rows ``idx`` of ``inputs``, in batches of ``batch_size`` (the caller sets eval mode).

    Parameters
    ----------
    model : Regressor
    inputs : object with ``batches(idx, batch_size, device)``, e.g. :class:`softstep.training_types.TensorInputs`
    idx : sequence of int
    batch_size : int
    device : torch.device or str

    Returns
    -------
    torch.Tensor of shape (len(idx), embed_dim)

    Examples
    --------
    >>> import torch
    >>> from softstep import build_head
    >>> from softstep.training_types import TensorInputs
    >>> model = Regressor(3, 8, 4, build_head("linear", 4)).eval()
    >>> embed_rows(model, TensorInputs(torch.randn(10, 3)), range(10), 4, "cpu").shape
    torch.Size([10, 4])
    """
    return torch.cat([model.embed(x) for x in inputs.batches(idx, batch_size, device)])
