"""The neighbour heads' shared base: similarity, the learned temperature, input checks and the memory-bounded predict.

Neighbour heads predict ŷ = SoftMax(logits) y_ref (paper sections 3.2–3.3); :class:`NeighborHead.predict` is the
memory-bounded path over a large reference set.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import distances
from . import similarities as Sim
from .dtypes import in_compute_dtype, label_bound


def _check(
    z: torch.Tensor, z_ref: torch.Tensor, y_ref: torch.Tensor | None, exclude_self: bool, embed_dim: int | None = None
) -> None:
    """Validate inputs at the door (ValueError saying what is allowed): shapes always, finiteness not in a CUDA
    training step (:func:`softstep.distances.in_cuda_training`).
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
    if distances.in_cuda_training(z):
        return
    # z and z_ref are scanned once, with their magnitude, by the similarity's frame (softstep.similarities.frame)
    if y_ref is not None and not torch.isfinite(y_ref).all():
        raise ValueError("y_ref contains NaN or inf; clean or impute the inputs first")
    if y_ref is not None and z.is_floating_point() and not y_ref.abs().max() <= label_bound(z.dtype):
        raise ValueError(
            f"y_ref holds values up to |y| = {float(y_ref.abs().max()):.3g}, beyond {label_bound(z.dtype):.3g}, where "
            f"the head's {z.dtype} gradients overflow; scale the targets (e.g. min-max to [0, 1], as the pipeline and "
            "SoftStepRegressor do) or use float64 embeddings"
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
        if similarity not in Sim.SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; allowed: {', '.join(Sim.SIMILARITIES)}")
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1; got {embed_dim}")
        if gamma is not None and (
            isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1e6
        ):
            raise ValueError(f"gamma must be None (1/d) or a number in (0, 1e6]; got {gamma!r}")
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
        return self._scaled(self._raw_sim(z, z_ref, mask))

    def frame(self, z, z_ref) -> Sim.Frame:
        """What Sim needs from the whole call (checks, centring, scale), computed once: :func:`softstep.similarities.frame`."""
        return Sim.frame(z, z_ref, self.similarity, gamma=self.gamma)

    def _raw_sim(self, z, z_ref, mask=None, fr: Sim.Frame | None = None):
        """Sim(z, z_ref) without β, in the call's frame ``fr`` (None: this call's); the first training call sets β."""
        sim = Sim.similarity_block(self.frame(z, z_ref) if fr is None else fr, z, z_ref)
        if self.log_scale is not None and self.training and not self._scale_ready():
            self._init_scale(sim.detach(), mask)
        return sim

    def _beta(self, dtype: torch.dtype) -> torch.Tensor:
        """β = exp(θ), at most √(the dtype's largest value): a larger β overflows its own gradient (β · ∂ŷ/∂logits)."""
        cap = 0.5 * math.log(torch.finfo(dtype).max)
        return self.log_scale.to(dtype).clamp(max=cap).exp()  # exp in the similarities' dtype: no float32 overflow

    @staticmethod
    def _row_max(sim, mask=None):
        """Each row's largest similarity over the entries ``mask`` keeps: the shift of :meth:`_scaled`."""
        with torch.no_grad():
            return (sim if mask is None else sim.masked_fill(mask, -torch.inf)).amax(-1, keepdim=True)

    def _scaled(self, sim, shift=None):
        """β · (Sim − shift), ``shift`` a per-row constant (the row's largest similarity): softmax is unchanged by it,
        and a large β (one fitted to rounding noise) cannot overflow the logits to ±inf."""
        if self.log_scale is None:
            return sim if shift is None else sim - shift
        beta = self._beta(sim.dtype)
        if shift is None:
            return sim * beta
        diff = sim - shift  # before β: β·Sim − β·shift would cancel its digits away
        return diff.mul_(beta) if not diff.requires_grad else diff * beta

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
        """β · (Sim − the row's largest) with excluded entries −inf: the logits before SoftStep or SoftKStep (Algorithm
        2 line 11, Algorithm 1 line 7), shifted as :meth:`logits` shifts them, for the softmax mass the step removes
        (experiments/protocol/sparsity.py).

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        mask : torch.Tensor of bool, shape (B, N), optional

        Returns
        -------
        torch.Tensor, shape (B, N)
        """
        sim = self._raw_sim(z, z_ref, mask)
        logit = self._scaled(sim, self._row_max(sim, mask))
        return logit if mask is None else logit.masked_fill(mask, -torch.inf)

    def logits(self, z, z_ref, mask=None, fr: Sim.Frame | None = None):  # pragma: no cover - abstract
        """The logits (B, N) the weights are a softmax of; each head defines them (``fr``: the call's frame)."""
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
        z, z_ref = in_compute_dtype(z, z_ref)  # one dtype per call: z's (softstep.dtypes)
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
        z, z_ref = in_compute_dtype(z, z_ref)  # one dtype per call: z's (softstep.dtypes)
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

        One pass over the reference set: what Sim needs from it (the magnitude check, the centring and scale) is
        computed once per call (:meth:`frame`), each tile of references is prepared once for every query
        (:func:`softstep.similarities.side`), and every block computes the whole matrix's entries.

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
        z, z_ref = in_compute_dtype(z, z_ref)  # one dtype per call: z's (softstep.dtypes)
        _check(z, z_ref, y_ref, False, self.embed_dim)
        was_training = self.training
        self.eval()
        try:
            y = y_ref.to(z.dtype)
            y2 = y.unsqueeze(-1) if y.dim() == 1 else y
            out = self._predict(self.frame(z, z_ref), z, z_ref, y2, max_elements) if len(z) else y2[:0]
            return out.squeeze(-1) if y.dim() == 1 else out
        finally:
            self.train(was_training)

    def _predict(self, fr, z, z_ref, y2, max_elements):
        """Predictions (B, m) in whole rows of at most ``max_elements`` entries (a head's tiled path replaces it)."""
        rows = max(1, max_elements // z_ref.shape[0])
        return torch.cat([torch.softmax(self.logits(zb, z_ref, fr=fr), dim=-1) @ y2 for zb in z.split(rows)])

    def _blocks(self, fr, queries, z_ref, max_elements, passes: int = 1, first=Sim.similarity_sides):
        """(pass, query rows, reference columns, β-free Sim block) over the whole matrix, tiles of references outer:
        each tile is prepared once per pass for every query (:func:`block_shape`); the first pass yields ``first``'s
        result instead of Sim (e.g. only its row bounds)."""
        rows, cols = block_shape(len(queries.x), z_ref.shape[0], max_elements, cache=z_ref.device.type == "cpu")
        for p in range(passes):
            for j in range(0, z_ref.shape[0], cols):
                tile = slice(j, j + cols)
                refs = Sim.side(fr, z_ref[tile])
                for i in range(0, len(queries.x), rows):
                    block = slice(i, i + rows)
                    yield p, block, tile, (first if p == 0 else Sim.similarity_sides)(fr, queries.take(block), refs)


#: Entries of one block of ``predict``'s tiled path on the CPU: small enough to stay in cache, whatever
#: ``max_elements`` allows (a GPU takes blocks of ``max_elements``: fewer, larger kernels).
BLOCK_ENTRIES = 2**20
#: Queries per block of the tiled path: each prepared tile of references serves them together.
QUERY_BLOCK = 256


def block_shape(q: int, n: int, max_elements: int, cache: bool = True) -> tuple[int, int]:
    """(query rows, reference columns) of a block of ``predict``'s tiled path: at most ``max_elements`` entries (and
    :data:`BLOCK_ENTRIES` with ``cache``, on the CPU), :data:`QUERY_BLOCK` rows where the references allow as many
    columns.

    Parameters
    ----------
    q, n : int
        Queries and references.
    max_elements : int
        The largest block.
    cache : bool, default=True
        Blocks of at most :data:`BLOCK_ENTRIES` entries (the CPU's caches).

    Returns
    -------
    rows, cols : int

    Examples
    --------
    >>> block_shape(1000, 10**6, 2**22), block_shape(10, 50, 2**22), block_shape(10, 50, 7)
    ((256, 4096), (10, 50), (7, 1))
    >>> block_shape(1000, 10**6, 2**26, cache=False)  # a GPU: blocks of max_elements
    (256, 262144)
    """
    size = max(1, min(max_elements, BLOCK_ENTRIES) if cache else max_elements)
    cols = max(1, min(n, size // min(q, QUERY_BLOCK)))
    return max(1, min(q, size // cols)), cols
