"""Learned SoftStep parameters, global or instance-wise (section 3.1, Algorithms 1–2)."""
from __future__ import annotations

import torch
from torch import nn

from .functional import log_soft_step, soft_k_step

PARAM_MODES = ("global", "instance")


class SigmoidParams(nn.Module):
    """``n`` parameters in (0, 1): σ(θ) (``"global"``) or σ(W z + b) (``"instance"``).

    Returns a (B, n) tensor for queries ``z`` of shape (B, d). Global parameters
    start at θ = 0 (σ = 0.5); the instance layer starts with zero weights and zero
    bias, so both modes start from the same function.
    """

    def __init__(self, n: int, *, param_mode: str = "global", embed_dim: int | None = None):
        super().__init__()
        if param_mode not in PARAM_MODES:
            raise ValueError(f"unknown param_mode {param_mode!r}; allowed: {', '.join(PARAM_MODES)}")
        self.param_mode = param_mode
        if param_mode == "instance":
            if not embed_dim or embed_dim < 1:
                raise ValueError(f"param_mode='instance' needs embed_dim >= 1; got {embed_dim}")
            self.linear = nn.Linear(embed_dim, n)
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        else:
            self.theta = nn.Parameter(torch.zeros(n))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.param_mode == "instance":
            return torch.sigmoid(self.linear(z))
        return torch.sigmoid(self.theta).to(z.dtype).expand(z.shape[0], -1)


class SoftStep(nn.Module):
    """SoftStep on row-normalised similarities: Algorithm 2 lines 7–17.

    (l₀, u₀, t) = σ(·) per query; l = min(l₀, top) − ε; u = l + u₀(1 − l); the
    result is log SoftStep(s_norm; l, u, t), added to the raw similarities.

    ``top`` is the row's largest normalised similarity excluding the query itself.
    Because :func:`softstep.functional.row_minmax` leaves the query out of the min
    and max, ``top`` is 1 on every row, so l = l₀ − ε < 1 and the nearest
    neighbour (s_norm = 1) always keeps a non-zero weight.
    """

    def __init__(self, *, param_mode: str = "global", embed_dim: int | None = None, eps: float = 1e-4):
        super().__init__()
        self.params = SigmoidParams(3, param_mode=param_mode, embed_dim=embed_dim)
        self.eps = eps

    def forward(self, s_norm: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Log-weights (B, N) for normalised similarities ``s_norm`` of queries ``z``."""
        l0, u0, t = self.params(z).unbind(-1)
        eps = max(self.eps, 8 * torch.finfo(s_norm.dtype).eps)
        l = (l0 - eps).unsqueeze(-1)
        u = l + u0.unsqueeze(-1) * (1 - l)
        return log_soft_step(s_norm, l, u, t.unsqueeze(-1))


class SoftKStep(nn.Module):
    """The learned neighbourhood size of Algorithm 1 lines 2–5, 13–19 and SoftKStep.

    k = max(σ(·) · (N − 1), 1), so k is a learned *fraction* of the reference
    set: a batch of 32 at training and the whole training split at evaluation
    see the same quantile of neighbours. q and t are fixed (4 and 0.75).
    """

    def __init__(self, *, param_mode: str = "global", embed_dim: int | None = None, q: float = 4.0, t: float = 0.75):
        super().__init__()
        self.params = SigmoidParams(1, param_mode=param_mode, embed_dim=embed_dim)
        self.q, self.t = q, t

    def k(self, z: torch.Tensor, n_ref: int) -> torch.Tensor:
        """Per-query k, shape (B, 1)."""
        return (self.params(z) * (n_ref - 1)).clamp_min(1.0)

    def forward(self, ranks: torch.Tensor, z: torch.Tensor, n_ref: int, *, k_floor: torch.Tensor | None = None) -> torch.Tensor:
        """Log-weights (B, N) for 0-based soft ``ranks`` over ``n_ref`` candidates.

        ``k_floor`` (B, 1), optional: a per-query lower bound on k (the heads pass each row's
        smallest soft rank, so that the best neighbour keeps weight 1 even when soft ranks of
        near-ties are all far from 0).
        """
        k = self.k(z, n_ref)
        if k_floor is not None:
            k = torch.maximum(k, k_floor.to(k.dtype))
        return soft_k_step(ranks, k, self.q, self.t)
