"""NCA with optional SoftStep: section 3.3 and Algorithm 2."""

from __future__ import annotations

import torch

from . import functional as Fn
from .neighbors import NeighborHead
from .softstep import SoftStep

NORMS = ("paper", "exclude_self")


class NCAHead(NeighborHead):
    """Neighbourhood component analysis, optionally with SoftStep: section 3.3 and Algorithm 2.

    ``softstep=None``: logits = Sim (plain NCA; the query's own entry weight 0). ``"global"`` or
    ``"instance"``: logits = Sim + log SoftStep(Norm(Sim)), Norm the row min–max of line 13. What
    ``norm`` changes: docs/paper-choices.md#the-heads ("Row min–max normalisation").

    Parameters
    ----------
    embed_dim : int
        The embedding width d.
    similarity : {"l2", "cos", "rbf", "dot"}, default="l2"
    softstep : {None, "global", "instance"}, default=None
        SoftStep's parameter mode, or none.
    gamma, learn_scale, scale_init, init_perplexity
        As for :class:`NeighborHead`.
    norm : {"paper", "exclude_self"}, default="paper"
        Line 13 as printed (the query's own similarity in the row's min–max) or without it.
    param_init : {"zero", "authors"}, default="zero"
        How SoftStep's parameters start (:class:`softstep.softstep.SigmoidParams`).

    Examples
    --------
    >>> import torch
    >>> head = NCAHead(2, softstep="global", learn_scale=False)
    >>> z_ref = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [9.0, 0.0]])
    >>> head.neighbor_weights(torch.zeros(1, 2), z_ref)  # the farthest gets weight exactly 0
    tensor([[0.6652, 0.2447, 0.0900, 0.0000]], grad_fn=<SoftmaxBackward0>)
    """

    def __init__(
        self,
        embed_dim: int,
        similarity: str = "l2",
        softstep: str | None = None,
        *,
        gamma=None,
        norm: str = "paper",
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
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)}")
        self.norm = norm
        self.softstep = (
            None if softstep is None else SoftStep(param_mode=softstep, embed_dim=embed_dim, init=param_init)
        )

    @property
    def predict_bytes_per_entry(self) -> int:
        """Plain NCA's predict keeps fewer temporaries (docs/paper-choices.md#prediction-memory)."""
        return 16 if self.softstep is None else 32

    def logits(self, z, z_ref, mask=None):
        """Sim, or Sim + log SoftStep(Norm(Sim)): Algorithm 2 lines 11–17; excluded entries −inf.

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        mask : torch.Tensor of bool, shape (B, N), optional
            True = the query itself.

        Returns
        -------
        torch.Tensor, shape (B, N)
        """
        sim = self.sim(z, z_ref, mask)
        if self.softstep is None:
            return self._logits_from_sim(sim, z, None, None, mask)
        whole_row = self.norm == "paper" and mask is not None  # line 13: the query's own similarity included
        return self._logits_from_sim(sim, z, *Fn.row_bounds(sim, None if whole_row else mask), mask, whole_row)

    def _logits_from_sim(self, sim, z, lo, hi, mask=None, top_from_row=False):
        """Algorithm 2 lines 13–17 from β·Sim and the row bounds (``top_from_row``: line 14's top from the row)."""
        if self.softstep is not None:
            s_norm = Fn.scale_rows(sim, lo, hi, mask)  # the query's own entry 0
            # line 14: the largest normalised similarity of the other items (None: 1, the row's maximum is one of them)
            top = s_norm.masked_fill(mask, -torch.inf).max(-1, keepdim=True).values if top_from_row else None
            sim = sim + self.softstep(s_norm, z, top)
        return sim if mask is None else sim.masked_fill(mask, -torch.inf)

    def _predict_rows(self, z, z_ref, y_ref, max_elements):
        """Streams over the reference set in tiles when a row block would exceed ``max_elements``: one pass for each
        row's min and max, one for an online softmax.
        """
        n = z_ref.shape[0]
        cols = max(1, max_elements // len(z))
        if cols >= n:
            return super()._predict_rows(z, z_ref, y_ref, max_elements)
        y = y_ref.to(z.dtype)
        y2 = y.unsqueeze(-1) if y.dim() == 1 else y
        tiles = [slice(j, j + cols) for j in range(0, n, cols)]
        lo = hi = None
        if self.softstep is not None:
            bounds = [Fn.row_bounds(self.sim(z, z_ref[s]), None) for s in tiles]
            lo = torch.stack([b[0] for b in bounds]).amin(0)
            hi = torch.stack([b[1] for b in bounds]).amax(0)
        run_max = torch.full((len(z), 1), -torch.inf, dtype=z.dtype, device=z.device)
        denom = torch.zeros_like(run_max)
        acc = torch.zeros(len(z), y2.shape[1], dtype=z.dtype, device=z.device)
        for s in tiles:
            logit = self._logits_from_sim(self.sim(z, z_ref[s]), z, lo, hi)
            new_max = torch.maximum(run_max, logit.amax(-1, keepdim=True))
            shift = torch.where(torch.isinf(new_max), torch.zeros_like(new_max), new_max)
            scale = torch.exp(run_max - shift)
            p = torch.exp(logit - shift)
            denom = denom * scale + p.sum(-1, keepdim=True)
            acc = acc * scale + p @ y2[s]
            run_max = new_max
        out = acc / denom
        return out.squeeze(-1) if y.dim() == 1 else out
