"""Differentiable k-NN with SoftKStep: section 3.2 and Algorithm 1."""

from __future__ import annotations

import math

import torch

from . import functional as Fn
from . import search as Fn_search
from . import similarities as Sim
from .distances import SQDIST_FLOOR
from .dtypes import in_compute_dtype
from .functional import log_soft_k_step
from .neighbors import NeighborHead, _check, block_shape
from .ranks import rank_dtype, soft_rank
from .search import check_search
from .step import SoftKStep, renamed_step_argument
from .ties import _order, _settle_ties, exact_top, ramp_pairs

__all__ = ["DiffKNNHead", "exact_top", "ramp_pairs"]


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
    step : {"global", "instance"}, default="global"
        k's parameter mode (Algorithm 1 lines 2–5). Its old name ``softstep`` still works, with a
        ``DeprecationWarning``.
    q : float, default=4.0
    t : float, default=0.75
        SoftKStep's transition width and curvature (line 19).
    rank_strength : float, default=0.1
        Soft-rank strength in units of the row's mean gap.
    param_init : {"zero", "authors"}, default="zero"
        How k's parameters start (:class:`softstep.step.SoftKStep`).
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
        step: str = "global",
        *,
        gamma=None,
        q: float = 4.0,
        t: float = 0.75,
        rank_strength: float = 0.1,
        learn_scale: bool = True,
        scale_init: str = "perplexity",
        init_perplexity: float = 5.0,
        param_init: str = "zero",
        softstep=...,
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
        step = renamed_step_argument(step, softstep, "DiffKNNHead", default="global")
        self.kstep = SoftKStep(param_mode=step, embed_dim=embed_dim, q=q, t=t, init=param_init)
        self.rank_strength = rank_strength

    #: Its top-⌈k + q⌉ buffers come on top of the similarity block (docs/paper-choices.md#prediction-memory).
    predict_bytes_per_entry = 33

    def logits(self, z, z_ref, mask=None, fr: Sim.Frame | None = None):
        """β·Sim + log SoftKStep: Algorithm 1 lines 6–20; soft ranks in training, exact ranks at evaluation.

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        mask : torch.Tensor of bool, shape (B, N), optional
            True = the query itself (line 10).
        fr : Frame, optional
            The call's frame (:meth:`frame`); None: this call's.

        Returns
        -------
        torch.Tensor, shape (B, N)
            Shifted by a per-row constant (softmax's weights are unchanged by it).
        """
        sim = self._raw_sim(z, z_ref, mask, fr)
        n = z_ref.shape[0]  # line 9: N = |Z_N|, in training the query included
        if not self.training:
            out = torch.full_like(sim, -torch.inf)
            masked = sim if mask is None else sim.masked_fill(mask, -torch.inf)
            top, idx = exact_top(lambda s: masked[:, s], n, n, self._width(z, n, mask))
            return out.scatter_(-1, idx, self._top_logits(top, z, n))
        ranks = self.soft_ranks(sim, mask)  # scale-free: Sim without β
        # the row's best soft rank: never the query's own, which soft_ranks puts n + 2 gaps below every candidate
        out = self._scaled(sim, self._row_max(sim, mask))
        out = out + self.kstep(ranks, z, n, k_floor=ranks.min(-1, keepdim=True).values)
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
        gap = torch.where(gap * max(n - 1, 1) >= Fn.FLAT_FLOOR[sim.dtype], gap, 1.0)  # a flat row: 1/gap² overflows
        dissim = (hi.detach() - wide) / gap  # ≥ 0, 0 = most similar; soft ranks do not change with a shift
        if mask is not None:  # line 10: the query itself goes below every other candidate
            dissim = dissim.masked_fill(mask, 2.0 * n + 1.0)
        ranks = soft_rank(dissim, self.rank_strength)  # torchsort's kernels, coalesced on CUDA (softstep/ranks.py)
        return (ranks - 1.0).to(sim.dtype)

    def _width(self, z, n, mask=None) -> int:
        """⌈k + q⌉ of the block's largest k: ranks at and past it have weight exactly 0 (Algorithm 1 line 19)."""
        k = self.kstep.k(z, n)
        return min(n - (0 if mask is None else 1), math.ceil(float(k.detach().max()) + self.kstep.q))

    def _top_logits(self, top, z, n):
        """β·(Sim − the row's best) + log SoftKStep of the exact ranks 0, 1, 2, … of each row's ⌈k + q⌉ best ``top``."""
        k = self.kstep.k(z, n)
        ranks = torch.arange(top.shape[1], dtype=top.dtype, device=top.device).expand_as(top)
        shift = top.amax(-1, keepdim=True)  # the row's best (the first entry, unless the leading ranks are unordered)
        return self._scaled(top, shift) + log_soft_k_step(ranks, k.to(top.dtype), self.kstep.q, self.kstep.t)

    def _free(self, z, n, width) -> int:
        """How many leading ranks weigh SoftKStep 1 in every row (rank ≤ k): their order changes nothing."""
        return max(0, min(width - 1, math.floor(float(self.kstep.k(z, n).detach().min())) + 1))

    @torch.no_grad()
    def predict(self, z, z_ref, y_ref, *, max_elements: int = 2**22, search: str = "torch"):
        """Eval-mode ``forward`` in bounded memory (:meth:`NeighborHead.predict`), the candidates of each query's
        ⌈k + q⌉ most similar references found by ``search`` (:mod:`softstep.search`; not in the paper).

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        y_ref : torch.Tensor, shape (N,) or (N, m)
        max_elements : int, default=2**22
            The largest block built.
        search : {"torch", "faiss", "faiss-hnsw"}, default="torch"
            Exact search in torch's blocks; faiss's exact ``IndexFlat``; faiss's approximate HNSW (optional package).

        Returns
        -------
        torch.Tensor, shape (B,) or (B, m)
        """
        check_search(search)
        if search == "torch":
            return super().predict(z, z_ref, y_ref, max_elements=max_elements)
        z, z_ref = in_compute_dtype(z, z_ref)
        _check(z, z_ref, y_ref, False, self.embed_dim)
        was_training = self.training
        self.eval()
        try:
            fr, n = self.frame(z, z_ref), z_ref.shape[0]
            y = y_ref.to(z.dtype)
            y2 = y.unsqueeze(-1) if y.dim() == 1 else y
            m = min(n, 2 * self._width(z, n) + 8)  # a margin: faiss's float32 order may differ in the last digits
            rows = max(1, max_elements // (m * max(1, z.shape[1])))
            out = [
                self._candidate_rows(fr, zb, z_ref, y2, Fn_search.candidates(zb, z_ref, self.similarity, m, search))
                for zb in z.split(rows)
            ]
            out = torch.cat(out) if out else y2[:0]
            return out.squeeze(-1) if y.dim() == 1 else out
        finally:
            self.train(was_training)

    def _candidate_rows(self, fr, z, z_ref, y2, cand):
        """ŷ of queries ``z`` from their candidates ``cand`` (B, m): Sim of each pair in the call's frame (directly),
        the best ⌈k + q⌉ by (value, index), SoftKStep's weights."""
        n = z_ref.shape[0]
        valid = cand >= 0  # HNSW may find fewer than asked
        cand = cand.clamp_min(0)
        q, r = Sim.side(fr, z), Sim.side(fr, z_ref[cand.reshape(-1)])
        if fr.kind == "dot":
            sim = (z.unsqueeze(1) * r.x.view(*cand.shape, -1)).sum(-1)
        else:
            sq = ((q.x.unsqueeze(1) - r.x.view(*cand.shape, -1)) ** 2).sum(-1) * fr.scale**2
            if fr.kind == "cos":
                sim = (q.unit2.unsqueeze(-1) + r.unit2.view(cand.shape) - sq) * 0.5
            else:
                sim = -sq.clamp_min(SQDIST_FLOOR).sqrt() if fr.kind == "l2" else -fr.gamma * sq
        sim = sim.masked_fill(~valid, -torch.inf)
        by_index = cand.argsort(-1)
        sim, cand = sim.gather(-1, by_index), cand.gather(-1, by_index)
        order = sim.sort(dim=-1, descending=True, stable=True).indices
        width = min(self._width(z, n), int(valid.sum(-1).min()))
        return self._weighted(sim.gather(-1, order)[:, :width], cand.gather(-1, order)[:, :width], z, n, y2)

    def _predict(self, fr, z, z_ref, y2, max_elements):
        """Each query's ⌈k + q⌉ most similar references, found exactly (a running best merged tile by tile, each tile
        prepared once; weights past rank ⌈k + q⌉ are exactly 0, so nothing else is needed), then SoftKStep's weights.
        A k too wide for the tiles takes whole rows."""
        n = z_ref.shape[0]
        width = self._width(z, n)
        keep = min(width + 1, n)  # one more: a tie across the cut is seen
        rows, cols = block_shape(len(z), n, max_elements, cache=z.device.type == "cpu")
        if cols < n and 4 * keep > cols:
            return self._predict_wide(fr, z, z_ref, y2, max_elements, width)
        queries = Sim.side(fr, z)
        top = torch.full((len(z), keep), -torch.inf, dtype=z.dtype, device=z.device)
        idx = torch.zeros(len(z), keep, dtype=torch.long, device=z.device)
        for _, i, j, sim in self._blocks(fr, queries, z_ref, max_elements):
            ids = torch.arange(j.start, j.start + sim.shape[1], device=z.device).expand_as(sim)
            if j.start:
                sim, ids = torch.cat([top[i], sim], 1), torch.cat([idx[i], ids], 1)
            v, pos = sim.topk(keep, dim=-1, sorted=False)
            top[i], idx[i] = v, ids.gather(-1, pos)

        def full_rows(r):
            sub = queries.take(r)
            return torch.cat(
                [Sim.similarity_sides(fr, sub, Sim.side(fr, z_ref[t : t + cols])) for t in range(0, n, cols)], 1
            )

        k = self.kstep.k(z, n).detach()
        top, idx = _settle_ties(*_order(top, idx), width, full_rows, matters=lambda r: ramp_pairs(k, self.kstep.q, r))
        return self._weighted(top, idx, z, n, y2)

    def _predict_wide(self, fr, z, z_ref, y2, max_elements, width):
        """Whole rows of at most ``max_elements`` entries, for a k wider than the tiles (:meth:`_wide_rows`); the
        references' tiles are prepared once when they fit in 4 × ``max_elements`` entries, else for each block."""
        n = z_ref.shape[0]
        cols = max(1, min(n, max_elements // z.shape[1]))  # a prepared tile holds at most max_elements entries
        tiles = range(0, n, cols)
        cached = [Sim.side(fr, z_ref[t : t + cols]) for t in tiles] if n * z.shape[1] <= 4 * max_elements else None
        out = []
        for zb in z.split(max(1, max_elements // n)):
            q = Sim.side(fr, zb)
            refs = cached if cached is not None else (Sim.side(fr, z_ref[t : t + cols]) for t in tiles)
            out.append(self._wide_rows(torch.cat([Sim.similarity_sides(fr, q, r) for r in refs], 1), zb, y2))
        return torch.cat(out)

    def _wide_rows(self, sim, z, y2):
        """ŷ from whole rows ``sim``: the best ⌈k + q⌉ + 1 selected unordered, and only the ranks past min k (where
        SoftKStep is below 1) ordered; a tie that would change a weight (two neighbouring ranks on the row's own ramp
        k … k + q, :func:`ramp_pairs`) orders the row by (value, index)."""
        n = sim.shape[1]
        width = self._width(z, n)
        keep, free = min(width + 1, n), self._free(z, n, width)
        top, idx = sim.topk(keep, dim=-1, sorted=False)
        tail = keep - free
        tv, tp = top.topk(tail, dim=-1, largest=False, sorted=True)  # ascending: ranks keep − 1, …, free
        ranks = torch.zeros_like(top).scatter_(
            -1, tp, torch.arange(keep - 1, free - 1, -1, dtype=top.dtype).expand_as(tv)
        )
        k = self.kstep.k(z, n).to(top.dtype)
        # tv[:, j] and tv[:, j + 1] hold ranks keep − 1 − j and keep − 2 − j: a tie there matters only on k's ramp
        ramp = ramp_pairs(k, self.kstep.q, torch.arange(keep - 2, free - 1, -1, device=top.device))
        head_tie = ((top == tv[:, -1:]).sum(-1) > (tv == tv[:, -1:]).sum(-1)) & ramp_pairs(k, self.kstep.q, free - 1)
        tied = ((tv[:, 1:] == tv[:, :-1]) & ramp).any(-1) | head_tie
        rows = tied.nonzero().squeeze(-1)
        if len(rows):
            v, i = sim[rows].sort(dim=-1, descending=True, stable=True)
            top[rows], idx[rows] = v[:, :keep], i[:, :keep]
            ranks[rows] = torch.arange(keep, dtype=top.dtype)
        w = torch.exp_(self._scaled(top, top.amax(-1, keepdim=True)))
        w.mul_(Fn.soft_step_weights(-ranks, -(k + self.kstep.q), -k, self.kstep.t))
        return (w.unsqueeze(-1) * y2[idx]).sum(1) / w.sum(-1, keepdim=True)

    def _weighted(self, top, idx, z, n, y2):
        """ŷ of each query from its best ``top`` (exact ranks 0, 1, …) and their labels ``y2[idx]``."""
        w = torch.softmax(self._top_logits(top, z, n), dim=-1)
        return (w.unsqueeze(-1) * y2[idx]).sum(1)
