"""Exact squared Euclidean distances between rows prepared in a call's frame: the kernel of Sim (section 3.2).

The rows are centred and scaled by a power of 2 once per call (:func:`centre_scale`), so every block of a
similarity matrix is computed as the whole matrix computes it; near pairs (duplicates among them) are recomputed
directly, so their distances are exact (docs/paper-choices.md#exact-squared-distances).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

#: Squared distances are clamped below at this value before the square root (the l2 similarity's floor).
SQDIST_FLOOR = 1e-12


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


class Side(NamedTuple):
    """Queries or references prepared once in a call's frame (:func:`softstep.similarities.side`): a block of Sim
    then reads them without touching the raw embeddings again.

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
    >>> rows = Side(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([5.0, 25.0]), None)
    >>> rows.take([1]).norm2
    tensor([25.])
    """

    x: torch.Tensor
    norm2: torch.Tensor | None
    unit2: torch.Tensor | None

    def take(self, i) -> Side:
        """Rows ``i`` of this side."""
        return Side(*(None if t is None else t[i] for t in self))


def _sqdist(
    z: torch.Tensor,
    z_ref: torch.Tensor,
    dense_refine: bool | None = None,
    frame: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Pairwise squared Euclidean distances (B, N), ≥ 0 and exact for duplicates; ``dense_refine``: without a host
    sync (default in a CUDA training step); ``frame``: the (centre, scale) of the whole call (:func:`centre_scale`).
    Why: docs/paper-choices.md#exact-squared-distances.
    """
    c, s = frame if frame is not None else centre_scale(z, z_ref)
    b = Side(*prepare_rows(z_ref, c, s), None)
    a = b if z is z_ref else Side(*prepare_rows(z, c, s), None)
    return squared_distances(a, b, s, dense_refine)


def prepare_rows(v: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows x = (v − c)/s in the call's frame and their squared norms (s is a power of 2: exact, no division).

    Parameters
    ----------
    v : torch.Tensor, shape (n, d)
    c : torch.Tensor, shape (d,)
        The centre (:func:`centre_scale`).
    s : torch.Tensor, shape ()
        The scale, a power of 2.

    Returns
    -------
    x, norm2 : torch.Tensor, shapes (n, d) and (n,)

    Examples
    --------
    >>> import torch
    >>> prepare_rows(torch.tensor([[3.0, 5.0]]), torch.tensor([1.0, 1.0]), torch.tensor(2.0))
    (tensor([[1., 2.]]), tensor([5.]))
    """
    if torch.is_grad_enabled() and (v.requires_grad or c.requires_grad):
        x = (v - c) * s.reciprocal()
        return x, (x * x).sum(-1)
    x = torch.sub(v, c).mul_(s.reciprocal())  # the same values in one copy
    return x, torch.linalg.vector_norm(x, dim=-1).square_()


def squared_distances(a: Side, b: Side, s: torch.Tensor, dense_refine: bool | None = None) -> torch.Tensor:
    """‖a − b‖² · s² of two prepared sides: the expanded form, then the direct differences of near pairs.

    Parameters
    ----------
    a, b : Side
        Queries and references prepared in one frame; the same object for a batch as its own reference set.
    s : torch.Tensor, shape ()
        The frame's scale.
    dense_refine : bool or None, default=None
        Correct the near pairs without a host sync (None: so in a CUDA training step, :func:`in_cuda_training`).

    Returns
    -------
    torch.Tensor, shape (len(a.x), len(b.x))
        ≥ 0, and exactly 0 for duplicates.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    >>> c, s = centre_scale(z, z)
    >>> a = Side(*prepare_rows(z, c, s), None)
    >>> squared_distances(a, a, s)[0, 1]
    tensor(25.)
    """
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
    """:func:`squared_distances` without autograd, in fewer passes over the (B, N) block: s² folded into the product, near pairs
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


#: Rows per chunk of the one pass over the references (:func:`softstep.similarities.frame`): bounded memory whatever N is.
_CHUNK_ENTRIES = 2**20


def _chunks(x: torch.Tensor):
    rows = max(1, _CHUNK_ENTRIES // max(1, x.shape[1]))
    return x.split(rows) if len(x) else (x,)


@torch.no_grad()
def column_stats(x: torch.Tensor, total: bool = True):
    """Per-column (min, max, sum) of ``x`` in one chunked pass (NaN propagates into min and max).

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
    total : bool, default=True
        Also the sum (the centre needs the references'; the queries' bounds alone are enough).

    Returns
    -------
    lo, hi, total : torch.Tensor, each shape (d,); ``total`` None when not asked

    Examples
    --------
    >>> import torch
    >>> column_stats(torch.tensor([[1.0, 5.0], [3.0, -1.0]]))
    (tensor([ 1., -1.]), tensor([3., 5.]), tensor([4., 4.]))
    """
    lo = hi = acc = None
    for c in _chunks(x):
        c_lo, c_hi = c.amin(0), c.amax(0)  # both propagate NaN (why not aminmax: docs/performance.md)
        lo = c_lo if lo is None else torch.minimum(lo, c_lo)
        hi = c_hi if hi is None else torch.maximum(hi, c_hi)
        if total:
            acc = c.sum(0) if acc is None else acc + c.sum(0)
    return lo, hi, acc


@torch.no_grad()
def centre_scale(z: torch.Tensor, z_ref: torch.Tensor, unit: bool = False, stats=None):
    """The centre c (the references' mean) and scale s (the power of 2 at or above the largest |entry − c| of queries
    and references) of the distances, in one chunked pass over each.

    Parameters
    ----------
    z, z_ref : torch.Tensor, shapes (B, d) and (N, d)
        Queries and references.
    unit : bool, default=False
        Of the unit rows (for cos).
    stats : tuple, optional
        :func:`column_stats` of z_ref and z, already computed.

    Returns
    -------
    c, s : torch.Tensor, shapes (d,) and ()

    Examples
    --------
    >>> import torch
    >>> centre_scale(torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0], [4.0, 0.0]]))
    (tensor([3., 0.]), tensor(4.))
    """
    if not (z.numel() and z_ref.numel()):
        return z_ref.new_zeros(z_ref.shape[1]), z_ref.new_ones(())
    if unit:
        stats = None
        same, z_ref = z is z_ref, F.normalize(z_ref, dim=-1)
        z = z_ref if same else F.normalize(z, dim=-1)
    ref_stats, q_stats = stats or (column_stats(z_ref), None)
    if q_stats is None:
        q_stats = ref_stats if z is z_ref else column_stats(z, total=False)
    c = ref_stats[2] / z_ref.shape[0]
    # |x − c| ≤ max(hi − c, c − lo), the same rounding entry by entry
    m = torch.maximum(torch.maximum(ref_stats[1] - c, c - ref_stats[0]), torch.maximum(q_stats[1] - c, c - q_stats[0]))
    m = m.amax()
    # a power of 2, so that scaling by it is exact; at least the smallest normal number, so that 1/s is finite
    return c, torch.ldexp(torch.ones_like(m), torch.frexp(m).exponent).clamp_min(torch.finfo(m.dtype).tiny)
