"""Candidate search for DiffKNN at evaluation, whose weights are exactly 0 past rank ⌈k + q⌉ (Algorithm 1 line 19).

``"torch"`` (the default) is exact search with torch's own blocks (:func:`softstep.diffknn.exact_top`); ``"faiss"``
asks faiss's exact ``IndexFlat`` for the candidates and ``"faiss-hnsw"`` its approximate HNSW graph (its recall
against exact search: ``python -m benchmarks.heads``). faiss is optional (``pip install softstep[faiss]``). Not in
the paper.
"""

from __future__ import annotations

import torch

SEARCHES = ("torch", "faiss", "faiss-hnsw")
#: HNSW's graph degree and its search breadth per wanted candidate (faiss's ``M`` and ``efSearch``).
HNSW_M, HNSW_EF_PER_CANDIDATE = 32, 4


def _faiss():
    """The faiss module, or an ImportError of one line that says how to install it."""
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "search='faiss' needs the optional faiss package: pip install faiss-cpu (or softstep[faiss])"
        ) from None
    return faiss


def check_search(search: str) -> None:
    """Raise ValueError for an unknown ``search``, ImportError when it needs faiss and faiss is missing.

    Parameters
    ----------
    search : {"torch", "faiss", "faiss-hnsw"}

    Returns
    -------
    None

    Examples
    --------
    >>> check_search("torch")
    """
    if search not in SEARCHES:
        raise ValueError(f"unknown search {search!r}; allowed: {', '.join(SEARCHES)}")
    if search != "torch":
        _faiss()


def candidates(z: torch.Tensor, z_ref: torch.Tensor, kind: str, m: int, search: str = "faiss") -> torch.Tensor:
    """The indices (B, m) of each query's ``m`` most similar references, by faiss (float32, on the CPU).

    Parameters
    ----------
    z : torch.Tensor, shape (B, d)
    z_ref : torch.Tensor, shape (N, d)
    kind : {"l2", "cos", "rbf", "dot"}
        l2 and rbf rank by Euclidean distance, cos by the inner product of unit rows, dot by the inner product.
    m : int
        How many, ≤ N.
    search : {"faiss", "faiss-hnsw"}, default="faiss"
        Exact (``IndexFlat``) or approximate (``IndexHNSWFlat``).

    Returns
    -------
    torch.Tensor of int64, shape (B, m), on ``z``'s device

    Examples
    --------
    >>> import torch
    >>> z_ref = torch.tensor([[0.0], [1.0], [5.0]])
    >>> candidates(torch.tensor([[4.0]]), z_ref, "l2", 2).tolist()
    [[2, 1]]
    """
    faiss = _faiss()
    x = z.detach().to("cpu", torch.float32)
    r = z_ref.detach().to("cpu", torch.float32)
    if kind == "cos":
        x, r = torch.nn.functional.normalize(x, dim=-1), torch.nn.functional.normalize(r, dim=-1)
    metric = faiss.METRIC_L2 if kind in ("l2", "rbf") else faiss.METRIC_INNER_PRODUCT
    d = r.shape[1]
    if search == "faiss-hnsw":
        index = faiss.IndexHNSWFlat(d, HNSW_M, metric)
        index.hnsw.efSearch = max(64, HNSW_EF_PER_CANDIDATE * m)
    else:
        index = faiss.IndexFlat(d, metric)
    index.add(r.contiguous().numpy())
    _, idx = index.search(x.contiguous().numpy(), m)
    return torch.from_numpy(idx).to(z.device)
