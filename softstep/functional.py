"""The functional core: similarities, row min–max normalisation, SoftStep and SoftKStep (paper section 3).

Every function is pure and follows its inputs' device and dtype; finite inputs give finite outputs
(where they are meant to be finite) and finite gradients.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

SIMILARITIES = ("l2", "cos", "rbf", "dot")

#: Smallest admissible transition parameter t (so 1/t <= 1e4).
T_MIN = 1e-4
#: Squared distances are clamped below at this value before the square root.
_SQDIST_FLOOR = 1e-12


def in_cuda_training(z: torch.Tensor) -> bool:
    """Whether ``z`` is a CUDA tensor under autograd, i.e. a training step on a GPU.

    Not in the paper: there the heads skip input checks that read a value back to the host
    (docs/paper-choices.md#no-host-reads-in-a-cuda-training-step).

    Parameters
    ----------
    z : torch.Tensor
        Any tensor, usually the queries' embeddings.

    Returns
    -------
    bool
        True for a CUDA tensor while gradients are enabled.

    Examples
    --------
    >>> import torch
    >>> in_cuda_training(torch.zeros(2, 3))
    False
    """
    return z.is_cuda and torch.is_grad_enabled()


def max_magnitude(dtype: torch.dtype, d: int, gamma: float | None = None) -> float:
    """The largest |entry| of an embedding whose similarities ``dtype`` can hold at dimension ``d``.

    Not in the paper: the bound :func:`similarity` checks
    (docs/paper-choices.md#exact-squared-distances).

    Parameters
    ----------
    dtype : torch.dtype
        A floating-point dtype.
    d : int
        The embedding dimension.
    gamma : float or None, default=None
        The rbf bandwidth γ (None: 1/d); a γ above 1/d lowers the bound.

    Returns
    -------
    float
        The largest admissible |entry|.

    Examples
    --------
    >>> import torch
    >>> f"{max_magnitude(torch.float32, 100):.2g}"
    '4.6e+17'
    """
    return (torch.finfo(dtype).max / (16.0 * d * max(1.0, (gamma or 0.0) * d))) ** 0.5


def _sqdist(
    z: torch.Tensor,
    z_ref: torch.Tensor,
    dense_refine: bool | None = None,
    frame: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Pairwise squared Euclidean distances (B, N), ≥ 0 and exact for duplicates; ``dense_refine``: without a host
    sync (default in a CUDA training step); ``frame``: the (centre, scale) of the whole call (:func:`_centre_scale`).
    Why: docs/paper-choices.md#exact-squared-distances.
    """
    c, s = frame if frame is not None else _centre_scale(z, z_ref)
    b = Side(*_prepare(z_ref, c, s), None)
    a = b if z is z_ref else Side(*_prepare(z, c, s), None)
    return _sq(a, b, s, dense_refine)


def _prepare(v: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows x = (v − c)/s in the call's frame and their squared norms (s is a power of 2: exact, no division)."""
    if torch.is_grad_enabled() and (v.requires_grad or c.requires_grad):
        x = (v - c) * s.reciprocal()
        return x, (x * x).sum(-1)
    x = torch.sub(v, c).mul_(s.reciprocal())  # the same values in one copy
    return x, torch.linalg.vector_norm(x, dim=-1).square_()


def _sq(a: Side, b: Side, s: torch.Tensor, dense_refine: bool | None = None) -> torch.Tensor:
    """‖a − b‖² · s² of two prepared sides: the expanded form, then the direct differences of near pairs."""
    d, same = a.x.shape[1], a is b  # same: a training batch as its own reference set (computed once)
    if dense_refine is None and not (torch.is_grad_enabled() and (a.x.requires_grad or b.x.requires_grad)):
        return _sq_no_grad(a, b, float(s) ** 2)
    norms = b.norm2.unsqueeze(-1) + b.norm2 if same else a.norm2.unsqueeze(-1) + b.norm2
    sq = torch.addmm(norms, a.x, b.x.T, alpha=-2.0)  # one fused pass instead of three; < 0 only for near pairs
    with torch.no_grad():
        near = sq <= 8 * (d + 2) * torch.finfo(sq.dtype).eps * norms
    if in_cuda_training(a.x) if dense_refine is None else dense_refine:
        with torch.no_grad():  # a constant correction: the near pairs' values, the expanded form's gradient
            exact = torch.cdist(a.x, b.x, compute_mode="donot_use_mm_for_euclid_dist") ** 2
            fix = torch.where(near, exact - sq, 0.0)
        return (sq + fix) * (s * s)
    i, j = near.nonzero(as_tuple=True)
    if len(i):
        sq = sq.index_put((i, j), _direct(a.x, b.x, i, j))
    return sq * (s * s)


def _direct(a: torch.Tensor, b: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """‖a_i − b_j‖² of the listed pairs, directly, in bounded memory."""
    step = max(1, 2**22 // max(a.shape[1], 1))
    return torch.cat([((a[i[k : k + step]] - b[j[k : k + step]]) ** 2).sum(-1) for k in range(0, len(i), step)])


def _sq_no_grad(a: Side, b: Side, s2: float) -> torch.Tensor:
    """:func:`_sq` without autograd, in fewer passes over the (B, N) block: s² folded into the product, near pairs
    looked for only in rows whose smallest entry may be one (the same criterion, the same exact values)."""
    d = a.x.shape[1]
    na = a.norm2.unsqueeze(-1)
    sq = torch.add(na, b.norm2).addmm_(a.x, b.x.T, beta=s2, alpha=-2.0 * s2)
    if not sq.numel():
        return sq
    tol = 8 * (d + 2) * torch.finfo(sq.dtype).eps * s2
    rows = (sq.amin(-1, keepdim=True) <= tol * (na + b.norm2.amax())).squeeze(-1).nonzero().squeeze(-1)
    if len(rows):
        i, j = (sq[rows] <= tol * (na[rows] + b.norm2)).nonzero(as_tuple=True)
        if len(i):
            sq[rows[i], j] = _direct(a.x[rows], b.x, i, j) * s2
    return sq


#: Rows per chunk of the one pass over the references (:func:`frame`): bounded memory whatever N is.
_CHUNK_ENTRIES = 2**20


def _chunks(x: torch.Tensor):
    rows = max(1, _CHUNK_ENTRIES // max(1, x.shape[1]))
    return x.split(rows) if len(x) else (x,)


@torch.no_grad()
def _column_stats(x: torch.Tensor, total: bool = True):
    """Per-column (min, max, sum) of ``x`` in one chunked pass (NaN propagates into min and max)."""
    lo = hi = acc = None
    for c in _chunks(x):
        c_lo, c_hi = c.amin(0), c.amax(0)  # both propagate NaN; aminmax(dim=0) is 6x slower on the CPU
        lo = c_lo if lo is None else torch.minimum(lo, c_lo)
        hi = c_hi if hi is None else torch.maximum(hi, c_hi)
        if total:
            acc = c.sum(0) if acc is None else acc + c.sum(0)
    return lo, hi, acc


@torch.no_grad()
def _centre_scale(z: torch.Tensor, z_ref: torch.Tensor, unit: bool = False, stats=None):
    """The centre c (the references' mean) and scale s (the power of 2 at or above the largest |entry − c| of queries
    and references) of the distances, in one chunked pass over each (``unit``: of the unit rows, for cos;
    ``stats``: :func:`_column_stats` of z_ref and z, already computed)."""
    if not (z.numel() and z_ref.numel()):
        return z_ref.new_zeros(z_ref.shape[1]), z_ref.new_ones(())
    if unit:
        stats = None
        same, z_ref = z is z_ref, F.normalize(z_ref, dim=-1)
        z = z_ref if same else F.normalize(z, dim=-1)
    ref_stats, q_stats = stats or (_column_stats(z_ref), None)
    if q_stats is None:
        q_stats = ref_stats if z is z_ref else _column_stats(z, total=False)
    c = ref_stats[2] / z_ref.shape[0]
    # |x − c| ≤ max(hi − c, c − lo), the same rounding entry by entry
    m = torch.maximum(torch.maximum(ref_stats[1] - c, c - ref_stats[0]), torch.maximum(q_stats[1] - c, c - q_stats[0]))
    m = m.amax()
    # a power of 2, so that scaling by it is exact; at least the smallest normal number, so that 1/s is finite
    return c, torch.ldexp(torch.ones_like(m), torch.frexp(m).exponent).clamp_min(torch.finfo(m.dtype).tiny)


class Frame(NamedTuple):
    """What Sim needs from the whole call, computed once (:func:`frame`): every block of rows and columns of the
    similarity matrix is then computed as the whole matrix computes it (one pass over the references).

    Parameters
    ----------
    kind : str
        The similarity.
    gamma : float or None
        The rbf bandwidth actually used.
    centre, scale : torch.Tensor or None
        The distances' centring and scale, a power of 2 (None for ``"dot"``).

    Examples
    --------
    >>> import torch
    >>> frame(torch.zeros(2, 3), torch.ones(4, 3), "l2").centre
    tensor([1., 1., 1.])
    """

    kind: str
    gamma: float | None
    centre: torch.Tensor | None
    scale: torch.Tensor | None


class Side(NamedTuple):
    """Queries or references prepared once in a call's :class:`Frame` (:func:`side`): a block of Sim then reads them
    without touching the raw embeddings again.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
        The rows: centred and scaled (for cos, the unit rows'); for dot the embeddings themselves.
    norm2 : torch.Tensor or None
        Their squared norms (None for dot).
    unit2 : torch.Tensor or None
        cos: the squared norms of the unit rows (1, or 0 for a zero row).

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    >>> fr = frame(z, z, "cos")
    >>> similarity_sides(fr, side(fr, z), side(fr, z))
    tensor([[1.0000, 0.8000],
            [0.8000, 1.0000]])
    """

    x: torch.Tensor
    norm2: torch.Tensor | None
    unit2: torch.Tensor | None

    def take(self, i) -> Side:
        """Rows ``i`` of this side."""
        return Side(*(None if t is None else t[i] for t in self))


def side(fr: Frame, v: torch.Tensor) -> Side:
    """Rows ``v`` prepared in the frame ``fr``: centred, scaled, their norms (unit rows first for cos).

    Parameters
    ----------
    fr : Frame
    v : torch.Tensor, shape (n, d)

    Returns
    -------
    Side

    Examples
    --------
    >>> import torch
    >>> side(frame(torch.zeros(2, 3), torch.ones(4, 3)), torch.ones(4, 3)).x.shape
    torch.Size([4, 3])
    """
    if fr.kind == "dot":
        return Side(v, None, None)
    if fr.kind != "cos":
        return Side(*_prepare(v, fr.centre, fr.scale), None)
    u = F.normalize(v, dim=-1)
    return Side(*_prepare(u, fr.centre, fr.scale), (u * u).sum(-1))


def similarity_sides(fr: Frame, a: Side, b: Side) -> torch.Tensor:
    """Sim of prepared queries ``a`` against prepared references ``b`` (section 3.2): :func:`similarity`'s entries.

    cos is (‖x̂‖² + ‖r̂‖² − ‖x̂ − r̂‖²) / 2 of the unit rows x̂, r̂, the distance centred and exact for near pairs
    like l2's: near-parallel rows keep their digits (docs/paper-choices.md#exact-squared-distances).

    Parameters
    ----------
    fr : Frame
    a, b : Side
        From :func:`side` in the frame ``fr``; the same object for a batch as its own reference set.

    Returns
    -------
    torch.Tensor, shape (len(a.x), len(b.x))

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    >>> fr = frame(z, z, "l2")
    >>> similarity_sides(fr, side(fr, z[:1]), side(fr, z))[0, 1]
    tensor(-5.)
    """
    if fr.kind == "dot":
        return a.x @ b.x.T
    sq = _sq(a, b, fr.scale)
    if fr.kind == "cos":
        return (a.unit2.unsqueeze(-1) + b.unit2 - sq) * 0.5
    if sq.requires_grad:
        return -sq.clamp_min(_SQDIST_FLOOR).sqrt() if fr.kind == "l2" else -fr.gamma * sq
    return sq.clamp_min_(_SQDIST_FLOOR).sqrt_().neg_() if fr.kind == "l2" else sq.mul_(-fr.gamma)


def frame(z: torch.Tensor, z_ref: torch.Tensor, kind: str = "l2", *, gamma: float | None = None) -> Frame:
    """Check the inputs and compute, in one chunked pass over ``z`` and ``z_ref``, what :func:`similarity_block`
    needs from the whole call: SIM of Algorithms 1 and 2, prepared once per call.

    Parameters
    ----------
    z : torch.Tensor, shape (B, d)
        Every query of the call.
    z_ref : torch.Tensor, shape (N, d)
        The reference embeddings.
    kind : {"l2", "cos", "rbf", "dot"}, default="l2"
    gamma : float or None, default=None
        The rbf bandwidth γ; None means 1/d.

    Returns
    -------
    Frame

    Raises
    ------
    ValueError
        For an unknown ``kind``, mismatched shapes, a γ ≤ 0, NaN or inf, or entries above :func:`max_magnitude`
        (not in a CUDA training step).

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    >>> fr = frame(z, z, "rbf")
    >>> torch.equal(similarity_block(fr, z[:1], z[1:]), similarity(z, z, "rbf")[:1, 1:])
    True
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"unknown similarity {kind!r}; allowed: {', '.join(SIMILARITIES)}")
    if z.dim() != 2 or z_ref.dim() != 2 or z.shape[1] != z_ref.shape[1]:
        raise ValueError(
            f"embeddings must be (B, d) and (N, d) with the same d; got {tuple(z.shape)} and {tuple(z_ref.shape)}"
        )
    g = None
    if kind == "rbf":
        g = 1.0 / z.shape[1] if gamma is None else float(gamma)
        if g <= 0:
            raise ValueError(f"rbf gamma must be > 0; got {g}")
    stats = None
    if z.dtype.is_floating_point and z.numel() and z_ref.numel():
        ref_stats = _column_stats(z_ref, total=kind != "dot")
        stats = (ref_stats, ref_stats if z is z_ref else _column_stats(z, total=False))
        if not in_cuda_training(z):  # the one scan of the inputs: finite, and not too large
            _check_stats(stats, z, gamma if kind == "rbf" else None)
    if kind == "dot":
        return Frame(kind, g, None, None)
    return Frame(kind, g, *_centre_scale(z, z_ref, unit=kind == "cos", stats=stats))


@torch.no_grad()
def similarity_bounds(fr: Frame, a: Side, b: Side) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's (min, max) of :func:`similarity_sides` (Norm's bounds, Algorithm 2 line 13), bit for bit: l2 and
    rbf are decreasing in the distance, so the bounds come from the distances' extremes without the block's Sim.

    Parameters
    ----------
    fr : Frame
    a, b : Side

    Returns
    -------
    lo, hi : torch.Tensor, each shape (len(a.x), 1)

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    >>> fr = frame(z, z, "rbf")
    >>> similarity_bounds(fr, side(fr, z[:1]), side(fr, z))
    (tensor([[-50.]]), tensor([[-0.]]))
    """
    if fr.kind not in ("l2", "rbf"):
        sim = similarity_sides(fr, a, b)
        return sim.amin(-1, keepdim=True), sim.amax(-1, keepdim=True)
    sq = _sq(a, b, fr.scale)
    far, near = sq.amax(-1, keepdim=True), sq.amin(-1, keepdim=True)
    if fr.kind == "l2":
        return -far.clamp_min_(_SQDIST_FLOOR).sqrt_(), -near.clamp_min_(_SQDIST_FLOOR).sqrt_()
    return far.mul_(-fr.gamma), near.mul_(-fr.gamma)


def similarity_block(fr: Frame, z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    """Sim of a block of queries ``z`` against a block of references ``z_ref`` in the :class:`Frame` of the whole
    call: the entries of :func:`similarity` of the whole matrix (section 3.2).

    The same as :func:`similarity_sides` of the two sides (:func:`side`).

    Parameters
    ----------
    fr : Frame
        From :func:`frame` of the whole call.
    z : torch.Tensor, shape (b, d)
    z_ref : torch.Tensor, shape (n, d)

    Returns
    -------
    torch.Tensor, shape (b, n)

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> similarity_block(frame(z, z, "cos"), z[:1], z)
    tensor([[1., 0.]])
    """
    a = side(fr, z)
    return similarity_sides(fr, a, a if z is z_ref else side(fr, z_ref))


class MagnitudeError(ValueError):
    """Embeddings too large for their dtype's similarities (:func:`max_magnitude`).

    Parameters
    ----------
    *args
        The message: the magnitude seen and the limit.

    Examples
    --------
    >>> issubclass(MagnitudeError, ValueError)
    True
    """


def _check_stats(stats, z: torch.Tensor, gamma: float | None) -> None:
    """Raise ValueError for NaN or inf, and MagnitudeError for an entry above :func:`max_magnitude`, from the columns'
    bounds of the references and queries (:func:`_column_stats`)."""
    for name, (lo, hi, _) in (("z_ref", stats[0]), ("z", stats[1])):
        if not bool(torch.isfinite(lo).all() & torch.isfinite(hi).all()):
            raise ValueError(f"{name} contains NaN or inf; clean or impute the inputs first")
    limit = max_magnitude(z.dtype, z.shape[1], gamma)
    m = max(float(torch.maximum(-lo, hi).amax()) for lo, hi, _ in stats)
    if m > limit:
        raise MagnitudeError(
            f"embeddings with entries of magnitude {m:.3g} overflow {z.dtype} similarities at d={z.shape[1]} "
            f"(at most {limit:.3g}); normalise the embeddings or use float64"
        )


def similarity(z: torch.Tensor, z_ref: torch.Tensor, kind: str = "l2", *, gamma: float | None = None) -> torch.Tensor:
    """The similarity matrix Sim(Z, Z_N) of section 3.2: SIM in Algorithms 1 and 2.

    Parameters
    ----------
    z : torch.Tensor, shape (B, d)
        The queries.
    z_ref : torch.Tensor, shape (N, d)
        The reference embeddings.
    kind : {"l2", "cos", "rbf", "dot"}, default="l2"
        ``"l2"``: −‖z − r‖ (squared distance floored at 1e-12); ``"cos"``: cosine similarity;
        ``"rbf"``: the log-kernel −γ‖z − r‖²; ``"dot"``: z·r.
    gamma : float or None, default=None
        The rbf bandwidth γ; None means 1/d (the paper states none).

    Returns
    -------
    torch.Tensor, shape (B, N)
        Similarities, larger = more similar.

    Raises
    ------
    ValueError
        For an unknown ``kind``, mismatched shapes, or entries above :func:`max_magnitude`.

    Notes
    -----
    Why the rbf log-kernel and the l2 floor: docs/paper-choices.md#the-heads; exact distances for
    duplicates: docs/paper-choices.md#exact-squared-distances.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    >>> similarity(z[:1], z, "rbf")
    tensor([[ -0.0000, -12.5000, -50.0000]])
    >>> similarity(z[:1], z, "l2")[0, 1:]
    tensor([ -5., -10.])
    """
    return similarity_block(frame(z, z_ref, kind, gamma=gamma), z, z_ref)


def row_minmax(sim: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Row-wise min–max normalisation to [0, 1]: Norm of Algorithm 2 line 13 (section 3.3).

    Parameters
    ----------
    sim : torch.Tensor, shape (B, N)
        Similarities.
    mask : torch.Tensor of bool, shape (B, N), optional
        True = excluded (the query itself in training): no part of the row's min and max.

    Returns
    -------
    torch.Tensor, shape (B, N)
        Normalised similarities; excluded entries are 0, a flat row is 1 everywhere
        (docs/paper-choices.md#flat-rows-and-tied-extremes).

    Examples
    --------
    >>> import torch
    >>> row_minmax(torch.tensor([[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]]))
    tensor([[0.0000, 0.5000, 1.0000],
            [1.0000, 1.0000, 1.0000]])
    >>> row_minmax(torch.tensor([[9.0, 3.0, 5.0]]), torch.tensor([[True, False, False]]))
    tensor([[0., 0., 1.]])
    """
    return scale_rows(sim, *row_bounds(sim, mask), mask)


def row_bounds(sim: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (min, max) over the entries ``mask`` does not exclude: the bounds of Norm, Algorithm 2 line 13.

    Parameters
    ----------
    sim : torch.Tensor, shape (B, N)
        Similarities.
    mask : torch.Tensor of bool, shape (B, N), optional
        True = excluded.

    Returns
    -------
    lo, hi : torch.Tensor, each shape (B, 1)
        A tied extreme passes its gradient to one entry (docs/paper-choices.md#flat-rows-and-tied-extremes).

    Examples
    --------
    >>> import torch
    >>> row_bounds(torch.tensor([[9.0, 3.0, 5.0]]), torch.tensor([[True, False, False]]))
    (tensor([[3.]]), tensor([[5.]]))
    """
    big = torch.finfo(sim.dtype).max
    lo = (sim if mask is None else sim.masked_fill(mask, big)).min(-1, keepdim=True).values
    hi = (sim if mask is None else sim.masked_fill(mask, -big)).max(-1, keepdim=True).values
    return lo, hi


#: A row whose span is within this many ulps of its largest |value| is flat: that span is rounding.
FLAT_ULPS = 64
#: A row whose span is below √(smallest normal) of its dtype is flat too: its gradient's 1/span² would overflow.
FLAT_FLOOR = {dt: torch.finfo(dt).tiny ** 0.5 for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def scale_rows(sim: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(sim − lo) / (hi − lo) with given per-row bounds: Norm of Algorithm 2 line 13, after :func:`row_bounds`.

    Parameters
    ----------
    sim : torch.Tensor, shape (B, N)
        Similarities.
    lo, hi : torch.Tensor, each shape (B, 1)
        Bounds holding every entry not excluded by ``mask`` (lo ≤ sim ≤ hi).
    mask : torch.Tensor of bool, shape (B, N), optional
        True = excluded; those entries come out 0.

    Returns
    -------
    torch.Tensor, shape (B, N)
        Values in [0, 1] without a clamp; a flat row (span within ``FLAT_ULPS`` ulps, or below ``FLAT_FLOOR``) is 1
        (docs/paper-choices.md#flat-rows-and-tied-extremes).

    Examples
    --------
    >>> import torch
    >>> scale_rows(torch.tensor([[1.0, 3.0, 5.0]]), torch.tensor([[1.0]]), torch.tensor([[5.0]]))
    tensor([[0.0000, 0.5000, 1.0000]])
    """
    span = hi - lo
    with torch.no_grad():  # max(|lo|, |hi|) = max(hi, −lo) for lo ≤ hi
        flat = span <= FLAT_ULPS * torch.finfo(span.dtype).eps * torch.maximum(hi, -lo)
        flat |= span < FLAT_FLOOR[span.dtype]  # 1/span² would overflow in the gradient
    out = ((sim - lo) / torch.where(flat, 1.0, span)).masked_fill(flat, 1.0)
    return out if mask is None else out.masked_fill(mask, 0.0)


def log_soft_step(s: torch.Tensor, l: torch.Tensor, u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log SoftStep(s; l, u, t), the SoftStep equation of section 3.1 in log space (Algorithm 2 line 17).

    SoftStep(s) = 0 for s ≤ l, (s − l)^(1/t) / ((s − l)^(1/t) + (u − s)^(1/t)) for l < s < u, 1 for s ≥ u.

    Parameters
    ----------
    s : torch.Tensor
        Normalised similarities.
    l, u : torch.Tensor or float
        Lower and upper thresholds, broadcast against ``s``.
    t : torch.Tensor or float
        The transition's curvature, clamped at ``T_MIN``.

    Returns
    -------
    torch.Tensor
        −inf exactly for s ≤ l, 0 exactly for s ≥ u; finite gradients everywhere
        (docs/paper-choices.md#softstep-in-log-space).

    Examples
    --------
    >>> import torch
    >>> log_soft_step(torch.tensor([0.1, 0.5, 0.9]), 0.2, 0.8, 1.0)
    tensor([   -inf, -0.6931,  0.0000])
    """
    return _log_step(s - l, u - s, t)


def _log_step(above_l: torch.Tensor, below_u: torch.Tensor, t) -> torch.Tensor:
    """log SoftStep from the two distances s − l and u − s (SoftKStep passes k + q − r and r − k)."""
    if isinstance(t, (int, float)):
        t = max(float(t), T_MIN)
    else:
        t = torch.as_tensor(t, dtype=above_l.dtype, device=above_l.device).clamp_min(T_MIN)
    floor = torch.finfo(above_l.dtype).tiny ** 0.5  # keeps 1/(t·(s−l)) finite next to l and u
    x = (torch.log(above_l.clamp_min(floor)) - torch.log(below_u.clamp_min(floor))) / t
    # outside (l, u) the fills replace the (finite) transition value, and their gradient is exactly 0
    return F.logsigmoid(x).masked_fill(below_u <= 0, 0.0).masked_fill(above_l <= 0, -torch.inf)


def soft_step(s: torch.Tensor, l: torch.Tensor, u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SoftStep(s; l, u, t), the equation of section 3.1: exp of :func:`log_soft_step`.

    Parameters
    ----------
    s : torch.Tensor
        Normalised similarities.
    l, u : torch.Tensor or float
        Lower and upper thresholds, broadcast against ``s``.
    t : torch.Tensor or float
        The transition's curvature, clamped at ``T_MIN``.

    Returns
    -------
    torch.Tensor
        Weights in [0, 1]: exactly 0 for s ≤ l, exactly 1 for s ≥ u.

    Examples
    --------
    >>> import torch
    >>> soft_step(torch.tensor([0.1, 0.5, 0.6, 0.9]), 0.2, 0.8, 1.0)
    tensor([0.0000, 0.5000, 0.6667, 1.0000])
    """
    return torch.exp(log_soft_step(s, l, u, t))


@torch.no_grad()
def soft_step_weights(s: torch.Tensor, l: torch.Tensor, u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SoftStep(s; l, u, t) without autograd and in fewer passes, for evaluation: 1 / (1 + ((u − s)/(s − l))^(1/t)),
    the same function as :func:`soft_step` (exactly 0 for s ≤ l, exactly 1 for s ≥ u).

    Parameters
    ----------
    s : torch.Tensor
        Normalised similarities.
    l, u, t : torch.Tensor or float
        As for :func:`soft_step`.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> import torch
    >>> soft_step_weights(torch.tensor([0.1, 0.5, 0.6, 0.9]), 0.2, 0.8, 1.0)
    tensor([0.0000, 0.5000, 0.6667, 1.0000])
    """
    inv_t = 1.0 / (max(float(t), T_MIN) if isinstance(t, (int, float)) else torch.as_tensor(t).clamp_min(T_MIN))
    above = torch.sub(s, l).clamp_min_(0.0)
    ratio = torch.sub(u, s).clamp_min_(0.0).div_(above)  # inf below l, 0 above u
    return ratio.pow_(inv_t).add_(1.0).reciprocal_()


def log_soft_k_step(ranks: torch.Tensor, k: torch.Tensor, q: float = 4.0, t: float = 0.75) -> torch.Tensor:
    """Log-weights of SoftKStep, Algorithm 1 lines 22–29 (with line 24's sign corrected).

    step = 1 for rank ≤ k, 0 for rank ≥ k + q, and (k + q − r)^(1/t) / ((k + q − r)^(1/t) + (r − k)^(1/t))
    between. Line 24 as printed, (k − r)^(1/t), is negative there: docs/paper-choices.md#the-heads.

    Parameters
    ----------
    ranks : torch.Tensor
        0-based ranks (0 = most similar).
    k : torch.Tensor
        The neighbourhood size, broadcast against ``ranks``.
    q : float, default=4.0
        Width of the transition, > 0.
    t : float, default=0.75
        The transition's curvature.

    Returns
    -------
    torch.Tensor
        log(step), like ``ranks``: −inf exactly where the weight is 0.

    Examples
    --------
    >>> import torch
    >>> log_soft_k_step(torch.arange(8.0), torch.tensor(2.0)).exp()
    tensor([1.0000, 1.0000, 1.0000, 0.8123, 0.5000, 0.1877, 0.0000, 0.0000])
    """
    if q <= 0:
        raise ValueError(f"SoftKStep q must be > 0; got {q}")
    return _log_step((k + q) - ranks, ranks - k, t)
