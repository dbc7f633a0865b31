"""Regression heads with one call signature, ``head(z, z_ref, y_ref, exclude_self=False)`` (paper sections 3.2–3.3).

``z`` (B, d) are the queries, ``z_ref`` (N, d) and ``y_ref`` (N,) or (N, m) the reference set: the batch in
training (``exclude_self=True``: the first B references are the queries), the training split at evaluation.
Neighbour heads predict ŷ = SoftMax(logits) y_ref; :meth:`NeighborHead.predict` is the memory-bounded path.
"""
from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from . import functional as Fn
from .functional import log_soft_k_step
from .ranks import rank_dtype, soft_rank
from .softstep import SoftKStep, SoftStep


def _check(z: torch.Tensor, z_ref: torch.Tensor, y_ref: torch.Tensor | None, exclude_self: bool,
           embed_dim: int | None = None) -> None:
    """Validate inputs at the door (ValueError saying what is allowed): shapes always, finiteness not in a CUDA
    training step (:func:`softstep.functional.in_cuda_training`).
    """
    if z.dim() != 2 or z_ref.dim() != 2:
        raise ValueError(f"z and z_ref must be 2-D (B, d) and (N, d); got {tuple(z.shape)} and {tuple(z_ref.shape)}")
    if z.shape[1] != z_ref.shape[1]:
        raise ValueError(f"embedding dimensions differ: z has d={z.shape[1]}, z_ref has d={z_ref.shape[1]}")
    if embed_dim is not None and z.shape[1] != embed_dim:
        raise ValueError(f"the head was built for embed_dim={embed_dim}; got embeddings with d={z.shape[1]}")
    n = z_ref.shape[0]
    if n < 1:
        raise ValueError("the reference set is empty; it needs at least 1 item (2 with exclude_self=True)")
    if exclude_self:
        if n < z.shape[0]:
            raise ValueError(f"exclude_self=True means the first B references are the B queries; "
                             f"got {z.shape[0]} queries and only {n} references")
        if n < 2:
            raise ValueError("exclude_self=True needs a reference set of at least 2 (each query excludes itself)")
    if y_ref is not None and (y_ref.dim() not in (1, 2) or y_ref.shape[0] != n):
        raise ValueError(f"y_ref must be (N,) or (N, m) with N={n}; got {tuple(y_ref.shape)}")
    if Fn.in_cuda_training(z):
        return
    for name, x in (("z", z), ("z_ref", z_ref), ("y_ref", y_ref)):
        if x is not None and not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf; clean or impute the inputs first")


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
        y = self.linear(z)
        return y.squeeze(-1) if self.out_dim == 1 else y

    def predict(self, z, z_ref=None, y_ref=None, **_):
        """Same as ``forward``: a linear head needs no memory-bounded path."""
        return self(z)


#: How the first training batch sets β (``NeighborHead(scale_init=...)``).
SCALE_INITS = ("std", "perplexity")


def _log_beta_for_perplexity(sim, mask, perplexity: float, start: torch.Tensor) -> torch.Tensor:
    """log β at which the median row of softmax(β·Sim), its own entry excluded, has the given perplexity
    (bisection on log β around ``start``).
    """
    x = sim.double() if mask is None else sim.double().masked_fill(mask, -torch.inf)
    target = math.log(min(perplexity, max(x.shape[1] - (0 if mask is None else 1), 1)))
    lo, hi = float(start) - 30.0, float(start) + 30.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        p = torch.softmax(x * math.exp(mid), -1)
        entropy = (-(p * p.clamp_min(1e-300).log()).sum(-1)).median()  # per row, then the (lower) median
        lo, hi = (mid, hi) if entropy > target else (lo, mid)  # perplexity falls as β grows
    return start.new_tensor(0.5 * (lo + hi))


class NeighborHead(nn.Module):
    """Base of the neighbour heads: ŷ = SoftMax(logits(z, z_ref)) y_ref, the prediction of sections 3.2–3.3.

    The similarities are multiplied by a learned inverse temperature β = exp(θ), started from the first
    training batch (``learn_scale=False``: β = 1, the paper as printed); docs/paper-choices.md#the-heads,
    "A learned temperature" and "The temperature's start".

    Parameters
    ----------
    embed_dim : int
        The embedding width d.
    similarity : {"l2", "cos", "rbf", "dot"}, default="l2"
        See :func:`softstep.similarity`.
    gamma : float, optional
        The rbf bandwidth (None: 1/d).
    learn_scale : bool, default=True
        Learn β; False keeps β = 1.
    scale_init : {"perplexity", "std"}, default="perplexity"
        How the first training batch sets β.
    init_perplexity : float, default=5.0
        The median row's perplexity at the start (``scale_init="perplexity"``), > 1.

    Examples
    --------
    >>> import torch
    >>> head = build_head("nca", 2).eval()
    >>> isinstance(head, NeighborHead)
    True
    >>> z_ref, y_ref = torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([0.0, 1.0])
    >>> head.predict(torch.zeros(1, 2), z_ref, y_ref)
    tensor([0.5000])
    """

    needs_reference = True
    #: Peak extra memory of ``predict`` per query × reference entry of a block, in bytes, on CUDA
    #: (``trainer.max_elements=auto`` sizes its blocks with it; docs/paper-choices.md#prediction-memory).
    predict_bytes_per_entry = 32

    def __init__(self, embed_dim: int, similarity: str = "l2", *, gamma: float | None = None, learn_scale: bool = True,
                 scale_init: str = "perplexity", init_perplexity: float = 5.0):
        super().__init__()
        if scale_init not in SCALE_INITS:
            raise ValueError(f"unknown scale_init {scale_init!r}; allowed: {', '.join(SCALE_INITS)}")
        if not (isinstance(init_perplexity, (int, float)) and 1 < init_perplexity < math.inf):
            raise ValueError(f"init_perplexity must be a finite number > 1; got {init_perplexity!r}")
        self.scale_init, self.init_perplexity = scale_init, float(init_perplexity)
        if similarity not in Fn.SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; allowed: {', '.join(Fn.SIMILARITIES)}")
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1; got {embed_dim}")
        if gamma is not None and not (isinstance(gamma, (int, float)) and 0 < gamma < math.inf):
            raise ValueError(f"gamma must be None (1/d) or a finite number > 0; got {gamma!r}")
        self.embed_dim, self.similarity, self.gamma = embed_dim, similarity, gamma
        self.log_scale = nn.Parameter(torch.zeros(())) if learn_scale else None
        self.register_buffer("scale_initialised", torch.tensor(not learn_scale))

    def sim(self, z, z_ref, mask=None):
        """β · Sim(z, z_ref); the first call in training sets β (see the class docstring).

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        mask : torch.Tensor of bool, shape (B, N), optional
            Entries left out of β's initialisation.

        Returns
        -------
        torch.Tensor, shape (B, N)
        """
        sim = Fn.similarity(z, z_ref, self.similarity, gamma=self.gamma)
        if self.log_scale is None:
            return sim
        if self.training and not self._scale_ready():
            self._init_scale(sim.detach(), mask)
        return sim * self.log_scale.exp().to(sim.dtype)

    def _scale_ready(self) -> bool:
        """The buffer ``scale_initialised``, read again only when it changed (each read of a CUDA buffer waits for the
        GPU; docs/paper-choices.md#no-host-reads-in-a-cuda-training-step).
        """
        buf, seen = self.scale_initialised, getattr(self, "_scale_seen", None)
        if seen is not None and torch.compiler.is_compiling():
            return seen[2]  # a Python value: a compiled step guards on it instead of breaking its graph on a read
        if seen is None or seen[0] is not buf or seen[1] != buf._version:
            seen = self._scale_seen = (buf, buf._version, bool(buf))
        return seen[2]

    def _load_from_state_dict(self, *args, **kwargs):
        self._scale_seen = None  # a loaded scale_initialised is read again
        super()._load_from_state_dict(*args, **kwargs)

    @torch.no_grad()
    def _init_scale(self, sim, mask) -> None:
        """Set θ = log β from the first batch with a spread (``scale_init``); until then β stays 1."""
        x = sim if mask is None else sim.masked_fill(mask, torch.nan)
        std = ((x - x.nanmean(-1, keepdim=True)) ** 2).nanmean(-1).sqrt().nanmean()
        if not (torch.isfinite(std) and std > 0):  # one reference, or all ties: wait for a batch with a spread
            return
        log_beta = -std.log()
        if self.scale_init == "perplexity":
            log_beta = _log_beta_for_perplexity(sim, mask, self.init_perplexity, log_beta)
        self.log_scale.copy_(log_beta.to(self.log_scale.dtype))
        self.scale_initialised.fill_(True)
        self._scale_seen = (self.scale_initialised, self.scale_initialised._version, True)

    def logits(self, z, z_ref, mask=None):  # pragma: no cover - abstract
        """The logits (B, N) the weights are a softmax of; each head defines them."""
        raise NotImplementedError

    def neighbor_weights(self, z, z_ref, exclude_self: bool = False) -> torch.Tensor:
        """The weights SoftMax(logits) the prediction averages ``y_ref`` with.

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        exclude_self : bool, default=False
            The first B references are the queries; their own weights are 0.

        Returns
        -------
        torch.Tensor, shape (B, N)
            Rows sum to 1; excluded entries are exactly 0.
        """
        _check(z, z_ref, None, exclude_self, self.embed_dim)
        return self._weights(z, z_ref, exclude_self)

    def forward(self, z, z_ref, y_ref, exclude_self: bool = False):
        """ŷ = SoftMax(logits) y_ref (Algorithm 1 line 20 and Algorithm 2 line 17, then the prediction of section 3.2).

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        y_ref : torch.Tensor, shape (N,) or (N, m)
        exclude_self : bool, default=False
            Training: the first B references are the queries, each excluded from its own prediction.

        Returns
        -------
        torch.Tensor, shape (B,) or (B, m)
        """
        _check(z, z_ref, y_ref, exclude_self, self.embed_dim)
        w = self._weights(z, z_ref, exclude_self)
        return w @ y_ref.to(w.dtype)

    def _weights(self, z, z_ref, exclude_self: bool) -> torch.Tensor:
        """softmax(logits) of inputs already checked by the caller."""
        mask = self._self_mask(z.shape[0], z_ref.shape[0], z.device) if exclude_self else None
        return torch.softmax(self.logits(z, z_ref, mask), dim=-1)

    def _self_mask(self, b: int, n: int, device) -> torch.Tensor:
        """(b, n) mask, True where query i meets itself at reference i; kept for the next call of the same shape."""
        mask = getattr(self, "_last_mask", None)
        if mask is None or mask.shape != (b, n) or mask.device != torch.device(device):
            mask = self._last_mask = torch.arange(b, device=device).unsqueeze(1) == torch.arange(n, device=device)
        return mask

    @torch.no_grad()
    def predict(self, z, z_ref, y_ref, *, max_elements: int = 2**22):
        """Eval-mode ``forward`` without a query × reference block above ``max_elements`` entries.

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        y_ref : torch.Tensor, shape (N,) or (N, m)
        max_elements : int, default=2**22
            The largest block built (docs/paper-choices.md#prediction-memory).

        Returns
        -------
        torch.Tensor, shape (B,) or (B, m)
        """
        _check(z, z_ref, y_ref, False, self.embed_dim)
        was_training = self.training
        self.eval()
        try:
            n = z_ref.shape[0]
            rows = max(1, max_elements // n)
            return torch.cat([self._predict_rows(z[i : i + rows], z_ref, y_ref, max_elements)
                              for i in range(0, len(z), rows)])
        finally:
            self.train(was_training)

    def _predict_rows(self, z, z_ref, y_ref, max_elements):
        """Predictions of one block of queries against the whole reference set."""
        return torch.softmax(self.logits(z, z_ref), dim=-1) @ y_ref.to(z.dtype)


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

    def __init__(self, embed_dim: int, similarity: str = "l2", softstep: str | None = None, *, gamma=None,
                 norm: str = "paper", learn_scale: bool = True, scale_init: str = "perplexity", init_perplexity: float = 5.0):
        super().__init__(embed_dim, similarity, gamma=gamma, learn_scale=learn_scale, scale_init=scale_init,
                         init_perplexity=init_perplexity)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)}")
        self.norm = norm
        self.softstep = None if softstep is None else SoftStep(param_mode=softstep, embed_dim=embed_dim)

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

    def __init__(self, embed_dim: int, similarity: str = "l2", softstep: str = "global", *, gamma=None,
                 q: float = 4.0, t: float = 0.75, rank_strength: float = 0.1, learn_scale: bool = True,
                 scale_init: str = "perplexity", init_perplexity: float = 5.0):
        super().__init__(embed_dim, similarity, gamma=gamma, learn_scale=learn_scale, scale_init=scale_init,
                         init_perplexity=init_perplexity)
        for name, value in (("q", q), ("t", t), ("rank_strength", rank_strength)):
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
        self.kstep = SoftKStep(param_mode=softstep, embed_dim=embed_dim, q=q, t=t)
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
