"""Regression heads with one call signature, ``head(z, z_ref, y_ref, exclude_self=False)`` (paper sections 3.2–3.3).

``z`` (B, d) are the queries, ``z_ref`` (N, d) and ``y_ref`` (N,) or (N, m) the reference set: the batch in
training (``exclude_self=True``: the first B references are the queries), the training split at evaluation.
Neighbour heads predict ŷ = SoftMax(logits) y_ref; :meth:`NeighborHead.predict` is the memory-bounded path.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from . import distances
from .diffknn import DiffKNNHead
from .nca import NCAHead


class LinearHead(nn.Module):
    """ŷ = W z + b: the paper's linear baseline (Table 1); it accepts and ignores the reference set.

    Parameters
    ----------
    embed_dim : int
        The embedding width d.
    out_dim : int, default=1
        The number of targets; 1 gives predictions of shape (B,).

    Examples
    --------
    >>> import torch
    >>> LinearHead(4)(torch.zeros(3, 4)).shape
    torch.Size([3])
    """

    #: The trainer gives a head a reference set (and skips one-item batches) only when it needs one.
    needs_reference = False

    def __init__(self, embed_dim: int, out_dim: int = 1):
        super().__init__()
        self.linear = nn.Linear(embed_dim, out_dim)
        self.out_dim = out_dim

    def forward(self, z, z_ref=None, y_ref=None, exclude_self: bool = False):
        """Predictions W z + b.

        Parameters
        ----------
        z : torch.Tensor, shape (B, embed_dim)
        z_ref, y_ref, exclude_self
            Ignored.

        Returns
        -------
        torch.Tensor, shape (B,) or (B, out_dim)
        """
        if z.dim() != 2 or z.shape[1] != self.linear.in_features:
            raise ValueError(f"z must be (B, {self.linear.in_features}); got {tuple(z.shape)}")
        if (
            not distances.in_cuda_training(z) and not torch.isfinite(z).all()
        ):  # a CUDA step leaves this to the epoch's loss check
            raise ValueError("z contains NaN or inf; clean or impute the inputs first")
        y = self.linear(z)
        return y.squeeze(-1) if self.out_dim == 1 else y

    def predict(self, z, z_ref=None, y_ref=None, **_):
        """Same as ``forward``: a linear head needs no memory-bounded path."""
        return self(z)


#: The paper's tuned hyper-parameters per head (appendix A), the one copy: ``configs/head/*.yaml`` read them
#: (``${paper_tuned:<head>,<key>}``), :class:`~softstep.SoftStepRegressor` defaults to them, and
#: ``scripts/make_tables.py --hparams-from paper`` keeps the results that match them.
TUNED = {
    "linear": {"similarity": None, "embed_dim": 25, "batch_size": 32},
    "nca": {"similarity": "rbf", "embed_dim": 100, "batch_size": 32},
    "nca_g": {"similarity": "l2", "embed_dim": 100, "batch_size": 32},
    "nca_i": {"similarity": "rbf", "embed_dim": 100, "batch_size": 32},
    "diffknn_g": {"similarity": "rbf", "embed_dim": 25, "batch_size": 32},
    "diffknn_i": {"similarity": "l2", "embed_dim": 25, "batch_size": 32},
}

#: The paper's six heads by name, in Table 1's order: each a head class with its fixed arguments.
HEADS = {
    "linear": partial(LinearHead),
    "nca": partial(NCAHead, softstep=None),
    "nca_g": partial(NCAHead, softstep="global"),
    "nca_i": partial(NCAHead, softstep="instance"),
    "diffknn_g": partial(DiffKNNHead, softstep="global"),
    "diffknn_i": partial(DiffKNNHead, softstep="instance"),
}


def build_head(name: str, embed_dim: int, **kwargs) -> nn.Module:
    """One of the paper's six heads by name (Table 1's columns; :data:`HEADS`).

    Parameters
    ----------
    name : {"linear", "nca", "nca_g", "nca_i", "diffknn_g", "diffknn_i"}
    embed_dim : int
        The embedding width d.
    **kwargs
        Passed to a neighbour head (``similarity``, ``gamma``, and for k-NN ``q``, ``t``, ``rank_strength``);
        the linear head ignores them.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> head = build_head("nca_i", 25, similarity="rbf")
    >>> z = torch.randn(8, 25); head(z, z, torch.rand(8), exclude_self=True).shape
    torch.Size([8])
    """
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; allowed: {', '.join(HEADS)}")
    factory = HEADS[name]
    return factory(embed_dim, **(kwargs if factory.func.needs_reference else {}))
