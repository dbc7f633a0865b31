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
        self.softstep = None if softstep is None else SoftStep(param_mode=softstep, embed_dim=embed_dim)

    @property
    def predict_bytes_per_entry(self) -> int:
        """Plain NCA's predict keeps fewer temporaries (docs/paper-choices.md#prediction-memory)."""
        return 16 if self.softstep is None else 32

    def logits(self, z, z_ref, mask=None, fr: Fn.Frame | None = None):
        """β·Sim, or β·Sim + log SoftStep(Norm(Sim)): Algorithm 2 lines 11–17; excluded entries −inf.

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        mask : torch.Tensor of bool, shape (B, N), optional
            True = the query itself.
        fr : Frame, optional
            The call's frame (:meth:`frame`); None: this call's.

        Returns
        -------
        torch.Tensor, shape (B, N)
            Shifted by a per-row constant (softmax's weights are unchanged by it).
        """
        sim = self._raw_sim(z, z_ref, mask, fr)
        if self.softstep is None:
            return self._logits_from_sim(sim, z, None, sim.detach().amax(-1, keepdim=True), mask)
        whole_row = self.norm == "paper" and mask is not None  # line 13: the query's own similarity included
        return self._logits_from_sim(sim, z, *Fn.row_bounds(sim, None if whole_row else mask), mask, whole_row)

    def _logits_from_sim(self, sim, z, lo, hi, mask=None, top_from_row=False):
        """Algorithm 2 lines 13–17 from Sim and the row bounds (``top_from_row``: line 14's top from the row): β·(Sim −
        hi) + log SoftStep(Norm(Sim)). Norm is scale-free, so it reads Sim without β."""
        logit = self._scaled(sim, hi.detach())
        if self.softstep is not None:
            s_norm = Fn.scale_rows(sim, lo, hi, mask)  # the query's own entry 0
            # line 14: the largest normalised similarity of the other items (None: 1, the row's maximum is one of them)
            top = s_norm.masked_fill(mask, -torch.inf).max(-1, keepdim=True).values if top_from_row else None
            logit = logit + self.softstep(s_norm, z, top)
        return logit if mask is None else logit.masked_fill(mask, -torch.inf)

    def _predict_block(self, fr, z, z_ref, y2, max_elements):
        """Whole rows when they fit in ``max_elements``; else the references in tiles: an online softmax for plain NCA,
        and with SoftStep one pass for each row's min and max (Norm, line 13), one for the weights."""
        n = z_ref.shape[0]
        cols = max(1, max_elements // len(z))
        if cols >= n and self.softstep is None:
            return torch.softmax(self.logits(z, z_ref, fr=fr), dim=-1) @ y2
        tiles = [slice(j, j + cols) for j in range(0, n, cols)]
        acc = torch.zeros(len(z), y2.shape[1], dtype=z.dtype, device=z.device)
        denom = torch.zeros(len(z), 1, dtype=z.dtype, device=z.device)
        if self.softstep is not None:
            return self._predict_softstep(fr, z, z_ref, y2, tiles, acc, denom)
        run_max = torch.full_like(denom, -torch.inf)
        for s in tiles:  # an online softmax, the running maximum of Sim its shift
            sim = self._raw_sim(z, z_ref[s], fr=fr)
            new_max = torch.maximum(run_max, sim.amax(-1, keepdim=True))
            rescale = torch.exp(self._scaled(run_max, new_max)).masked_fill(torch.isinf(run_max), 0.0)
            p = torch.exp_(self._scaled(sim, new_max))
            denom, acc, run_max = denom * rescale + p.sum(-1, keepdim=True), acc * rescale + p @ y2[s], new_max
        return acc / denom

    def _predict_softstep(self, fr, z, z_ref, y2, tiles, acc, denom):
        """Algorithm 2 lines 13–17 in probability space: weights exp(β·(Sim − hi)) · SoftStep(Norm(Sim)) ≤ 1, the row's
        most similar reference weighing exactly 1 (Norm = 1 ≥ u), so that plain sums need no running maximum."""
        sims = None
        if len(tiles) == 1:
            sims = [self._raw_sim(z, z_ref, fr=fr)]
            bounds = [Fn.row_bounds(sims[0])]
        else:
            bounds = [Fn.row_bounds(self._raw_sim(z, z_ref[s], fr=fr)) for s in tiles]
        lo = torch.stack([b[0] for b in bounds]).amin(0)
        hi = torch.stack([b[1] for b in bounds]).amax(0)
        l, u, t = self.softstep.thresholds(z, z.dtype)
        for i, s in enumerate(tiles):
            sim = sims[i] if sims is not None else self._raw_sim(z, z_ref[s], fr=fr)
            p = torch.exp_(self._scaled(sim, hi)).mul_(Fn.soft_step_weights(Fn.scale_rows(sim, lo, hi), l, u, t))
            denom += p.sum(-1, keepdim=True)
            acc += p @ y2[s]
        return acc / denom
