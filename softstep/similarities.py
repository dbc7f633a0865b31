"""Sim, the similarity matrix of section 3.2 (SIM in Algorithms 1 and 2), computed block by block in a frame.

:func:`frame` checks a call's inputs and prepares, in one pass over the references, what every block of the
matrix needs, so that a tile of queries against a tile of references (:func:`similarity_block`) has the entries
the whole matrix (:func:`similarity`) has. The distances themselves are :mod:`softstep.distances`'.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import distances
from .distances import SQDIST_FLOOR, Side, centre_scale, column_stats, prepare_rows, squared_distances

SIMILARITIES = ("l2", "cos", "rbf", "dot")


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
        return Side(*prepare_rows(v, fr.centre, fr.scale), None)
    u = F.normalize(v, dim=-1)
    return Side(*prepare_rows(u, fr.centre, fr.scale), (u * u).sum(-1))


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
    sq = squared_distances(a, b, fr.scale)
    if fr.kind == "cos":
        return (a.unit2.unsqueeze(-1) + b.unit2 - sq) * 0.5
    if sq.requires_grad:
        return -sq.clamp_min(SQDIST_FLOOR).sqrt() if fr.kind == "l2" else -fr.gamma * sq
    return sq.clamp_min_(SQDIST_FLOOR).sqrt_().neg_() if fr.kind == "l2" else sq.mul_(-fr.gamma)


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
        ref_stats = column_stats(z_ref, total=kind != "dot")
        stats = (ref_stats, ref_stats if z is z_ref else column_stats(z, total=False))
        if not distances.in_cuda_training(z):  # the one scan of the inputs: finite, and not too large
            _check_stats(stats, z, gamma if kind == "rbf" else None)
    if kind == "dot":
        return Frame(kind, g, None, None)
    return Frame(kind, g, *centre_scale(z, z_ref, unit=kind == "cos", stats=stats))


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
    sq = squared_distances(a, b, fr.scale)
    far, near = sq.amax(-1, keepdim=True), sq.amin(-1, keepdim=True)
    if fr.kind == "l2":
        return -far.clamp_min_(SQDIST_FLOOR).sqrt_(), -near.clamp_min_(SQDIST_FLOOR).sqrt_()
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
    bounds of the references and queries (:func:`~softstep.distances.column_stats`)."""
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
