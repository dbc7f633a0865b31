"""Differentiable k-NN with SoftKStep: section 3.2 and Algorithm 1."""

from __future__ import annotations

import math

import torch

from . import functional as Fn
from .functional import log_soft_k_step
from .neighbors import NeighborHead
from .ranks import rank_dtype, soft_rank
from .softstep import SoftKStep


class DiffKNNHead(NeighborHead):
    """Differentiable k-NN with SoftKStep: section 3.2 and Algorithm 1.

    logits = Sim + log SoftKStep(ranks, k, q, t), 0-based ranks, k from :class:`softstep.SoftKStep`. In
    training the ranks are soft (line 12; strength in units of each row's mean gap) and k is floored at the
    row's best soft rank; at evaluation they are exact (a top-⌈k + q⌉ partial sort, ties in topk's order).
    Why: docs/paper-choices.md#the-heads ("Ranks at evaluation are exact", "Soft ranks in training", "The k floor").

    Parameters
    ----------
    embed_dim : int
        The embedding width d.
    similarity : {"l2", "cos", "rbf", "dot"}, default="l2"
    softstep : {"global", "instance"}, default="global"
        k's parameter mode (Algorithm 1 lines 2–5).
    q : float, default=4.0
    t : float, default=0.75
        SoftKStep's transition width and curvature (line 19).
    rank_strength : float, default=0.1
        Soft-rank strength in units of the row's mean gap.
    param_init : {"zero", "authors"}, default="zero"
        How k's parameters start (:class:`softstep.softstep.SoftKStep`).
    gamma, learn_scale, scale_init, init_perplexity
        As for :class:`NeighborHead`.

    Examples
    --------
    >>> import torch
    >>> head = DiffKNNHead(2, learn_scale=False).eval()  # k = σ(0) · (9 − 1) = 4, q = 4
    >>> z_ref = torch.arange(1.0, 10.0).unsqueeze(1) * torch.tensor([[1.0, 0.0]])
    >>> w = head.neighbor_weights(torch.zeros(1, 2), z_ref)
    >>> int((w > 0).sum())  # ranks 0 to 7 are below k + q
    8
    """

    def __init__(
        self,
        embed_dim: int,
        similarity: str = "l2",
        softstep: str = "global",
        *,
        gamma=None,
        q: float = 4.0,
        t: float = 0.75,
        rank_strength: float = 0.1,
        learn_scale: bool = True,
        scale_init: str = "perplexity",
        init_perplexity: float = 5.0,
        param_init: str = "zero",
    ):
        super().__init__(
            embed_dim,
            similarity,
            gamma=gamma,
            learn_scale=learn_scale,
            scale_init=scale_init,
            init_perplexity=init_perplexity,
        )
        for name, value in (("q", q), ("t", t), ("rank_strength", rank_strength)):
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
        self.kstep = SoftKStep(param_mode=softstep, embed_dim=embed_dim, q=q, t=t, init=param_init)
        self.rank_strength = rank_strength

    #: Its top-⌈k + q⌉ buffers come on top of the similarity block (docs/paper-choices.md#prediction-memory).
    predict_bytes_per_entry = 33

    def logits(self, z, z_ref, mask=None):
        """Sim + log SoftKStep: Algorithm 1 lines 6–20; soft ranks in training, exact ranks at evaluation.

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        mask : torch.Tensor of bool, shape (B, N), optional
            True = the query itself (line 10).

        Returns
        -------
        torch.Tensor, shape (B, N)
        """
        sim = self.sim(z, z_ref, mask)
        n = z_ref.shape[0]  # line 9: N = |Z_N|, in training the query included
        if not self.training:
            out = torch.full_like(sim, -torch.inf)
            logit, idx = self._top_logits(sim, z, n, mask)
            return out.scatter_(-1, idx, logit)
        ranks = self.soft_ranks(sim, mask)
        # the row's best soft rank: never the query's own, which soft_ranks puts n + 2 gaps below every candidate
        out = sim + self.kstep(ranks, z, n, k_floor=ranks.min(-1, keepdim=True).values)
        return out if mask is None else out.masked_fill(mask, -torch.inf)

    def soft_ranks(self, sim, mask=None):
        """0-based soft ranks of each row, SOFT_RANK(−sim) − 1 (Algorithm 1 line 12), the query itself last (line 10).

        Parameters
        ----------
        sim : torch.Tensor, shape (B, N)
        mask : torch.Tensor of bool, shape (B, N), optional

        Returns
        -------
        torch.Tensor, shape (B, N)
            0 = most similar; in units of the row's mean gap (docs/paper-choices.md#the-heads, "Soft ranks in training").
        """
        n = sim.shape[1] - (0 if mask is None else 1)
        wide = sim.to(rank_dtype(sim))
        lo, hi = Fn.row_bounds(wide, mask)
        gap = (hi - lo) / max(n - 1, 1)  # not detached: soft ranks do change with the scale of a row
        gap = torch.where(gap > 0, gap, 1.0)
        dissim = (hi.detach() - wide) / gap  # ≥ 0, 0 = most similar; soft ranks do not change with a shift
        if mask is not None:  # line 10: the query itself goes below every other candidate
            dissim = dissim.masked_fill(mask, 2.0 * n + 1.0)
        ranks = soft_rank(dissim, self.rank_strength)  # torchsort's kernels, coalesced on CUDA (softstep/ranks.py)
        return (ranks - 1.0).to(sim.dtype)

    def _top_logits(self, sim, z, n, mask=None):
        """(logits, reference indices) of each row's ⌈k + q⌉ most similar references, exact ranks 0, 1, 2, …"""
        if mask is not None:
            sim = sim.masked_fill(mask, -torch.inf)
        k = self.kstep.k(z, n)
        width = min(sim.shape[1] - (0 if mask is None else 1), math.ceil(float(k.detach().max()) + self.kstep.q))
        top, idx = sim.topk(width, dim=-1)
        ranks = torch.arange(width, dtype=sim.dtype, device=sim.device).expand_as(top)
        return top + log_soft_k_step(ranks, k.to(sim.dtype), self.kstep.q, self.kstep.t), idx

    def _predict_rows(self, z, z_ref, y_ref, max_elements):
        """Predictions of one block of queries from its top-⌈k + q⌉ references."""
        logit, idx = self._top_logits(self.sim(z, z_ref), z, z_ref.shape[0])
        w = torch.softmax(logit, dim=-1)
        y = y_ref.to(w.dtype)[idx]  # (B, width) or (B, width, m)
        return (w.unsqueeze(-1) * y).sum(1) if y.dim() == 3 else (w * y).sum(1)
