"""Learned SoftStep parameters, global or instance-wise (section 3.1, Algorithms 1–2)."""
from __future__ import annotations

import torch
from torch import nn

from .functional import log_soft_step, log_soft_k_step

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

    ``top`` (line 14) is the row's largest normalised similarity excluding the query
    itself; the head passes it. With the paper's normalisation (the query's own
    similarity inside the row's min–max, line 13) it is below 1 in training, and
    line 15 keeps the nearest neighbour above l. Where the row's maximum is a
    neighbour (evaluation, or ``norm="exclude_self"``) top = 1, the default, and
    l = l₀ − ε.
    """

    def __init__(self, *, param_mode: str = "global", embed_dim: int | None = None, eps: float = 1e-4):
        super().__init__()
        if not (isinstance(eps, (int, float)) and 0 < eps < 1):
            raise ValueError(f"eps must be a number in (0, 1); got {eps!r}")
        self.params = SigmoidParams(3, param_mode=param_mode, embed_dim=embed_dim)
        self.eps = eps

    def forward(self, s_norm: torch.Tensor, z: torch.Tensor, top: torch.Tensor | None = None) -> torch.Tensor:
        """Log-weights (B, N) for normalised similarities ``s_norm`` of queries ``z``; ``top`` (B, 1) or None (= 1)."""
        l0, u0, t = (p.unsqueeze(-1) for p in self.params(z).unbind(-1))
        eps = max(self.eps, 8 * torch.finfo(s_norm.dtype).eps)
        if top is not None:  # min(l₀, top) by a where: its backward is 4 kernels against minimum's 10
            top = top.to(l0.dtype)
            l0 = torch.where(top < l0, top, l0)
        l = l0 - eps
        u = l + u0 * (1 - l)
        return log_soft_step(s_norm, l, u, t)


class SoftKStep(nn.Module):
    """The learned neighbourhood size of Algorithm 1 lines 2–5, 13–19 and SoftKStep.

    k = max(σ(·) · (N − 1), 1) with N = |Z_N|, the size of the reference set the head is
    given (line 9): in training the batch, the query itself included (so N − 1 is the
    number of candidates), at evaluation the training split. σ is applied once: line 3's
    "linear layer with sigmoid activation" and line 14's σ are the same sigmoid (applied
    twice, k could only range over 50–73 % of N). k is thus a learned *fraction* of the
    reference set: with σ = 0.1 a query keeps about 3 of a batch of 32 and about 1,000
    of a training split of 10⁴. q and t are fixed (4 and 0.75).
    """

    def __init__(self, *, param_mode: str = "global", embed_dim: int | None = None, q: float = 4.0, t: float = 0.75):
        super().__init__()
        self.params = SigmoidParams(1, param_mode=param_mode, embed_dim=embed_dim)
        self.q, self.t = q, t

    def k(self, z: torch.Tensor, n_ref: int) -> torch.Tensor:
        """Per-query k, shape (B, 1), for a reference set of ``n_ref`` items."""
        return (self.params(z) * (n_ref - 1)).clamp_min(1.0)

    def forward(self, ranks: torch.Tensor, z: torch.Tensor, n_ref: int, *, k_floor: torch.Tensor | None = None) -> torch.Tensor:
        """Log-weights (B, N) for 0-based ``ranks`` over a reference set of ``n_ref`` items.

        ``k_floor`` (B, 1), optional: a per-query lower bound on k (in training the DiffKNN head
        passes each row's smallest soft rank; see :class:`softstep.DiffKNNHead`).
        """
        k = self.k(z, n_ref)
        if k_floor is not None:  # max(k, floor) by a where (fewer kernels in the backward than maximum)
            k_floor = k_floor.to(k.dtype)
            k = torch.where(k_floor > k, k_floor, k)
        return log_soft_k_step(ranks, k, self.q, self.t)
