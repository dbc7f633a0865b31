"""The neighbour heads' shared base: similarity, the learned temperature, input checks and the memory-bounded predict.

Neighbour heads predict ŷ = SoftMax(logits) y_ref (paper sections 3.2–3.3); :class:`NeighborHead.predict` is the
memory-bounded path over a large reference set.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import functional as Fn


def _check(
    z: torch.Tensor, z_ref: torch.Tensor, y_ref: torch.Tensor | None, exclude_self: bool, embed_dim: int | None = None
) -> None:
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
            raise ValueError(
                f"exclude_self=True means the first B references are the B queries; "
                f"got {z.shape[0]} queries and only {n} references"
            )
        if n < 2:
            raise ValueError("exclude_self=True needs a reference set of at least 2 (each query excludes itself)")
    if y_ref is not None and (y_ref.dim() not in (1, 2) or y_ref.shape[0] != n):
        raise ValueError(f"y_ref must be (N,) or (N, m) with N={n}; got {tuple(y_ref.shape)}")
    if Fn.in_cuda_training(z):
        return
    for name, x in (("z", z), ("z_ref", z_ref), ("y_ref", y_ref)):
        if x is not None and not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf; clean or impute the inputs first")
    if (
        y_ref is not None
        and y_ref.dtype != z.dtype
        and z.is_floating_point()
        and not torch.isfinite(y_ref.to(z.dtype)).all()
    ):
        raise ValueError(
            f"y_ref holds values beyond {z.dtype}'s range (|y| up to {float(y_ref.abs().max()):.3g}); the head computes "
            f"in z's dtype: scale the targets (e.g. min-max to [0, 1]) or use float64 embeddings"
        )


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
    >>> from softstep import build_head
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

    def __init__(
        self,
        embed_dim: int,
        similarity: str = "l2",
        *,
        gamma: float | None = None,
        learn_scale: bool = True,
        scale_init: str = "perplexity",
        init_perplexity: float = 5.0,
    ):
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

    def logits_without_step(self, z, z_ref, mask=None):
        """β · Sim with excluded entries −inf: the logits before SoftStep or SoftKStep (Algorithm 2 line 11, Algorithm 1
        line 7), for the softmax mass the step removes (experiments/protocol/sparsity.py).

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        mask : torch.Tensor of bool, shape (B, N), optional

        Returns
        -------
        torch.Tensor, shape (B, N)
        """
        sim = self.sim(z, z_ref, mask)
        return sim if mask is None else sim.masked_fill(mask, -torch.inf)

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
            return torch.cat(
                [self._predict_rows(z[i : i + rows], z_ref, y_ref, max_elements) for i in range(0, len(z), rows)]
            )
        finally:
            self.train(was_training)

    def _predict_rows(self, z, z_ref, y_ref, max_elements):
        """Predictions of one block of queries against the whole reference set."""
        return torch.softmax(self.logits(z, z_ref), dim=-1) @ y_ref.to(z.dtype)
