"""The functional core: similarities, row normalisation, SoftStep and SoftKStep.

Every function here is pure, follows the device and dtype of its inputs and is
safe for gradients: no NaN or inf appears in outputs that are meant to be
finite, nor in any gradient, for any finite input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SIMILARITIES = ("l2", "cos", "rbf", "dot")

#: Smallest admissible transition parameter t (so 1/t <= 1e4).
T_MIN = 1e-4
#: Squared distances are clamped below at this value before the square root.
_SQDIST_FLOOR = 1e-12


def _sqdist(z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances, ||z_i||² + ||r_j||² − 2 z_i·r_j ≥ 0."""
    norms = (z * z).sum(-1, keepdim=True) + (z_ref * z_ref).sum(-1)
    return torch.addmm(norms, z, z_ref.T, alpha=-2.0).clamp_min(0.0)  # one fused pass instead of three


def similarity(z: torch.Tensor, z_ref: torch.Tensor, kind: str = "l2", *, gamma: float | None = None) -> torch.Tensor:
    """Similarity matrix ``Sim(Z, Z_N)`` of shape (B, N).

    Parameters
    ----------
    z : (B, d) queries.
    z_ref : (N, d) reference embeddings.
    kind : ``"l2"``: −‖z − r‖ (negative Euclidean distance; the squared distance is
        floored at 1e-12 before the root so the gradient stays finite for duplicates);
        ``"cos"``: cosine similarity; ``"rbf"``: log k(z, r) = −γ‖z − r‖², the log of the RBF
        kernel; ``"dot"``: z·r.
    gamma : RBF bandwidth γ. ``None`` means γ = 1/d, scikit-learn's ``rbf_kernel``
        default. Paper: "radial basis function (RBF) kernel", bandwidth unstated.

    Every head puts similarities through a softmax, so ``rbf`` returns the log-kernel:
    softmax(log k) = k / Σ k, the weights of RBF kernel regression. Returning k itself
    (values in (0, 1]) would cap the ratio of any two weights at e, so no training could
    make NCA's neighbourhoods sharper than that. SoftStep's row min–max normalisation of
    −γ‖z − r‖² is monotone in the kernel value, so the step sees the same ordering.
    """
    if kind not in SIMILARITIES:
        raise ValueError(f"unknown similarity {kind!r}; allowed: {', '.join(SIMILARITIES)}")
    if z.dim() != 2 or z_ref.dim() != 2 or z.shape[1] != z_ref.shape[1]:
        raise ValueError(
            f"embeddings must be (B, d) and (N, d) with the same d; got {tuple(z.shape)} and {tuple(z_ref.shape)}"
        )
    if kind == "dot":
        return z @ z_ref.T
    if kind == "cos":
        return F.normalize(z, dim=-1) @ F.normalize(z_ref, dim=-1).T
    sq = _sqdist(z, z_ref)
    if kind == "l2":
        return -sq.clamp_min(_SQDIST_FLOOR).sqrt()
    g = 1.0 / z.shape[1] if gamma is None else float(gamma)
    if g <= 0:
        raise ValueError(f"rbf gamma must be > 0; got {g}")
    return -g * sq


def row_minmax(sim: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Row-wise min–max normalisation to [0, 1] (the paper's ``Norm`` in Algorithm 2, line 13).

    ``mask`` (B, N), True = excluded (the query itself during training): excluded
    entries take no part in the row's min and max, so a training row is scaled the
    same way as an evaluation row, where the query is not in the reference set.
    A constant row (max = min, e.g. a single neighbour) maps to 1 everywhere: all
    its neighbours tie for the top. Excluded entries are returned as 0.
    """
    return scale_rows(sim, *row_bounds(sim, mask), mask)


def row_bounds(sim: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (min, max) of ``sim`` over the entries not excluded by ``mask``; each (B, 1)."""
    big = torch.finfo(sim.dtype).max
    lo = (sim if mask is None else sim.masked_fill(mask, big)).amin(-1, keepdim=True)
    hi = (sim if mask is None else sim.masked_fill(mask, -big)).amax(-1, keepdim=True)
    return lo, hi


def scale_rows(sim: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(sim − lo) / (hi − lo) with given per-row bounds; constant rows → 1 (see :func:`row_minmax`)."""
    span = hi - lo
    flat = span <= 0
    out = ((sim - lo) / torch.where(flat, torch.ones_like(span), span)).clamp(0.0, 1.0).masked_fill(flat, 1.0)
    return out if mask is None else out.masked_fill(mask, 0.0)


def log_soft_step(s: torch.Tensor, l: torch.Tensor, u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log SoftStep(s; l, u, t), section 3.1:

        SoftStep(s) = 0                                        s ≤ l
                    = (s−l)^(1/t) / ((s−l)^(1/t) + (u−s)^(1/t))  l < s < u
                    = 1                                        s ≥ u

    Computed as logsigmoid((log(s−l) − log(u−s)) / t) on the transition, which is
    the same quantity without overflow for small t. Returns −inf exactly for
    s ≤ l and 0 exactly for s ≥ u. Gradients are finite everywhere (zero outside
    the transition, including at s = l and s = u). ``t`` is clamped to ≥ ``T_MIN``.
    """
    t = torch.as_tensor(t, dtype=s.dtype, device=s.device).clamp_min(T_MIN)
    floor = torch.finfo(s.dtype).tiny ** 0.5  # keeps 1/(t·(s−l)) finite next to l and u
    x = (torch.log((s - l).clamp_min(floor)) - torch.log((u - s).clamp_min(floor))) / t
    # outside (l, u) the fills replace the (finite) transition value, and their gradient is exactly 0
    return F.logsigmoid(x).masked_fill(s >= u, 0.0).masked_fill(s <= l, -torch.inf)


def soft_step(s: torch.Tensor, l: torch.Tensor, u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SoftStep(s; l, u, t) of section 3.1: exactly 0 for s ≤ l, exactly 1 for s ≥ u."""
    return torch.exp(log_soft_step(s, l, u, t))


def soft_k_step(ranks: torch.Tensor, k: torch.Tensor, q: float = 4.0, t: float = 0.75) -> torch.Tensor:
    """Log-weights of SoftKStep, Algorithm 1 lines 22–29.

    step = 1 for rank ≤ k, 0 for rank ≥ k + q, and on the transition

        step = (k + q − r)^(1/t) / ((k + q − r)^(1/t) + (r − k)^(1/t)).

    Line 24 as printed reads (k − r)^(1/t), which is negative on k < r < k + q;
    we use (r − k)^(1/t), the form consistent with the SoftStep equation, so the
    step falls from 1 at rank k to 0 at rank k + q. This is SoftStep applied to
    −r with l = −(k + q), u = −k. Ranks are 0-based (0 = most similar).
    Returns log(step): −inf exactly where the weight is 0.
    """
    if q <= 0:
        raise ValueError(f"SoftKStep q must be > 0; got {q}")
    return log_soft_step(-ranks, -(k + q), -k, t)
