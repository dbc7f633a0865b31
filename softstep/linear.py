"""The linear head ŷ = W z + b: the paper's baseline (Table 1), with the neighbour heads' call signature."""

from __future__ import annotations

import torch
from torch import nn

from . import distances
from .dtypes import in_compute_dtype


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
        (z,) = in_compute_dtype(z)  # the weights meet z in its dtype (softstep.dtypes)
        y = nn.functional.linear(z, self.linear.weight.to(z.dtype), self.linear.bias.to(z.dtype))
        return y.squeeze(-1) if self.out_dim == 1 else y

    def predict(self, z, z_ref=None, y_ref=None, **_):
        """Same as ``forward``: a linear head needs no memory-bounded path."""
        return self(z)
