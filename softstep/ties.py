"""DiffKNN's exact ranks at evaluation: each query's best ⌈k + q⌉ references found tile by tile, ties ordered by
reference index wherever the order can change a SoftKStep weight (not in the paper, which leaves ties to its
sort), so that tiled and whole-row evaluation rank alike."""

from __future__ import annotations

import torch


def exact_top(block_sim, n: int, cols: int, width: int, *, free: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``width`` largest similarities of each row and their reference indices, in order, over tiles of ``cols``
    references (a running best, merged tile by tile): exact search with torch's own blocks.

    Ties are ordered by reference index (lower first), whatever the tiling, so that tiled and whole-row evaluation
    rank alike (not in the paper, which leaves ties to its sort).

    Parameters
    ----------
    block_sim : callable
        ``block_sim(s)`` gives the similarities (B, len(s)) of the rows against the references of slice ``s``.
    n : int
        The number of references.
    cols : int
        References per tile.
    width : int
        How many to keep, ≤ n.
    free : int, default=0
        Leading ranks whose order does not matter (they are the best ``free``, in any order).

    Returns
    -------
    top, idx : torch.Tensor, each shape (B, width)

    Examples
    --------
    >>> import torch
    >>> sim = torch.tensor([[0.1, 0.9, 0.5, 0.9, 0.2]])
    >>> exact_top(lambda s: sim[:, s], 5, 2, 3)
    (tensor([[0.9000, 0.9000, 0.5000]]), tensor([[1, 3, 2]]))
    """
    keep = min(width + 1, n)  # one more: a tie across the boundary is seen
    top = idx = None
    for j in range(0, n, cols):
        sim = block_sim(slice(j, j + cols))
        ids = torch.arange(j, j + sim.shape[1], device=sim.device).expand_as(sim)
        if top is not None:
            sim, ids = torch.cat([top, sim], 1), torch.cat([idx, ids], 1)
        top, pos = sim.topk(min(keep, sim.shape[1]), dim=-1, sorted=False)
        idx = ids.gather(-1, pos)
    top, idx = _order(top, idx, free)
    return _settle_ties(
        top, idx, width, lambda r: torch.cat([block_sim(slice(j, j + cols))[r] for j in range(0, n, cols)], 1), free
    )


def _order(top, idx, free: int = 0):
    """Rows of ``top`` in descending order from position ``free`` on; the first ``free`` are the largest, unordered
    (a partial selection of the rest is cheaper than sorting a wide k)."""
    tail = top.shape[1] - free
    if free < 64 or tail < 1:
        v, o = top.sort(dim=-1, descending=True)
        return v, idx.gather(-1, o)
    tv, tp = top.topk(tail, dim=-1, largest=False, sorted=True)
    head = torch.ones_like(top, dtype=torch.bool).scatter_(-1, tp, False)
    tp = tp.flip(-1)
    return (
        torch.cat([top[head].view(len(top), free), top.gather(-1, tp)], 1),
        torch.cat([idx[head].view(len(top), free), idx.gather(-1, tp)], 1),
    )


def ramp_pairs(k: torch.Tensor, q: float, r) -> torch.Tensor:
    """Whether swapping ranks ``r`` and ``r + 1`` can change a SoftKStep weight: both weigh 1 when r + 1 ≤ k and 0
    when r ≥ k + q (Algorithm 1 line 19), so only r + 1 > k and r < k + q matter. ``k`` (B,) per query; ``r`` an int
    or a 1-d tensor of ranks.

    Parameters
    ----------
    k : torch.Tensor, shape (B,) or (B, 1)
    q : float
        SoftKStep's transition width.
    r : int or torch.Tensor of shape (P,)

    Returns
    -------
    torch.Tensor of bool, shape (B,) or (B, P)

    Examples
    --------
    >>> import torch
    >>> ramp_pairs(torch.tensor([2.0]), 1.0, torch.arange(5))
    tensor([[False, False,  True, False, False]])
    """
    k = k.reshape(-1, 1) if torch.is_tensor(r) and r.dim() else k.reshape(-1)
    r = torch.as_tensor(r, dtype=k.dtype, device=k.device)
    return (r + 1 > k) & (r < k + q)


def _settle_ties(top, idx, width: int, full_rows, free: int = 0, matters=None):
    """The best ``width`` of the ordered ``top`` (:func:`_order`; ≥ width + 1 columns where the references allow),
    ties ordered by index: a tie across the cut is settled on the whole row (``full_rows(r)``: the similarities of
    rows ``r``), by a stable sort; ties among the unordered first ``free`` change nothing. ``matters(r)``, when
    given, says per row whether a tie of ranks r and r + 1 can change a weight (:func:`ramp_pairs`); other ties
    are left in any order."""
    everywhere = lambda r: torch.ones(len(top), *torch.as_tensor(r).shape, dtype=torch.bool, device=top.device)  # noqa: E731
    matters = matters or everywhere
    if top.shape[1] > width:
        tied = ((top[:, width - 1] == top[:, width]) & matters(width - 1)).nonzero().squeeze(-1)
        if len(tied):
            v, i = full_rows(tied).sort(dim=-1, descending=True, stable=True)
            top[tied], idx[tied] = v[:, : top.shape[1]], i[:, : top.shape[1]]
    top, idx = top[:, :width], idx[:, :width]
    pairs = torch.arange(free, width - 1, device=top.device)
    inner = ((top[:, free + 1 :] == top[:, free:-1]) & matters(pairs)).any(-1)
    if 0 < free < width:  # the unordered head against the first ordered rank
        inner |= (top[:, :free].amin(-1) == top[:, free]) & matters(free - 1)
    inner = inner.nonzero().squeeze(-1)
    if len(inner):  # ties that matter: the row by (value, index)
        by_index = idx[inner].argsort(-1)
        v, i = top[inner].gather(-1, by_index), idx[inner].gather(-1, by_index)
        order = v.sort(dim=-1, descending=True, stable=True).indices
        top[inner], idx[inner] = v.gather(-1, order), i.gather(-1, order)
    return top, idx
