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


def in_cuda_training(z: torch.Tensor) -> bool:
    """True for a CUDA tensor under autograd (a training step). There the heads skip the input scans
    that read a value back to the host (finiteness, magnitude): each would stall the CPU until the GPU
    catches up, once per step. The trainer checks the loss once per epoch instead."""
    return z.is_cuda and torch.is_grad_enabled()


def max_magnitude(dtype: torch.dtype, d: int, gamma: float | None = None) -> float:
    """The largest |entry| of an embedding whose similarities ``dtype`` can hold for dimension ``d``.

    Squared distances of entries up to M are at most 4·M²·d; this bound keeps 16·M²·d (and, for
    rbf with γ > 1/d, γ·16·M²·d²) below the dtype's largest value, with room for the head's scaling:
    about 4.6e17 for float32 at d = 100."""
    return (torch.finfo(dtype).max / (16.0 * d * max(1.0, (gamma or 0.0) * d))) ** 0.5


def _sqdist(z: torch.Tensor, z_ref: torch.Tensor, dense_refine: bool | None = None) -> torch.Tensor:
    """Pairwise squared Euclidean distances ≥ 0, exact for duplicates and stable at large scale.

    The fast expanded form ‖a‖² + ‖b‖² − 2a·b loses every digit of a small distance between large
    vectors (duplicates at |z| ≈ 1e6 came out about 1,400 apart in float32). So: (1) both sets are
    centred on the reference set's mean and divided by their largest entry (a common offset cancels
    before anything is squared, and nothing overflows); (2) the expanded form gives every pair;
    (3) a pair whose value is within its rounding bound, 8·(d + 2)·eps·(‖a‖² + ‖b‖²), is recomputed
    directly as Σ(a − b)², so duplicates come out exactly 0 and near pairs keep their digits.
    Centre and scale are constants (the distance does not depend on them), so gradients are exact.
    Step (3) finds the pairs with ``nonzero``, which waits for the GPU; with ``dense_refine`` (the
    default in a CUDA training step, :func:`in_cuda_training`) every pair's direct form comes from
    ``torch.cdist`` without the matrix-product shortcut and ``torch.where`` keeps it for the near
    pairs: no host sync, B·N·d more work. There the correction is a constant (no backward through
    ``cdist``: 12 fewer kernels a step, and 0.8 ms at B = 1,024 on an H100), so a near pair's gradient
    is the expanded form's, 2(a − b) up to a rounding of eps·|a|: finite, and zero for l2 duplicates,
    whose distance is below the square root's floor.
    """
    d, same = z.shape[1], z is z_ref  # same: a training batch as its own reference set (computed once)
    with torch.no_grad():
        c = z_ref.mean(0)
        if not (z.numel() and z_ref.numel()):
            s = c.new_ones(())
        else:
            s = (z_ref - c).abs().amax() if same else torch.maximum((z - c).abs().amax(), (z_ref - c).abs().amax())
        s = s.clamp_min(torch.finfo(s.dtype).tiny)  # 0 when every entry is the same: then a = b = 0
    b = (z_ref - c) / s
    a = b if same else (z - c) / s
    nb = (b * b).sum(-1)
    norms = nb.unsqueeze(-1) + nb if same else (a * a).sum(-1, keepdim=True) + nb
    sq = torch.addmm(norms, a, b.T, alpha=-2.0)  # one fused pass instead of three; < 0 only for near pairs, refined below
    with torch.no_grad():
        near = sq <= 8 * (d + 2) * torch.finfo(sq.dtype).eps * norms
    if in_cuda_training(z) if dense_refine is None else dense_refine:
        with torch.no_grad():  # a constant correction: the near pairs' values, the expanded form's gradient
            exact = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist") ** 2
            fix = torch.where(near, exact - sq, 0.0)
        return (sq + fix) * (s * s)
    i, j = near.nonzero(as_tuple=True)
    if len(i):
        step = max(1, 2**22 // max(d, 1))  # bounded memory for the direct differences
        exact = torch.cat([((a[i[k : k + step]] - b[j[k : k + step]]) ** 2).sum(-1) for k in range(0, len(i), step)])
        sq = sq.index_put((i, j), exact)
    return sq * (s * s)


def _check_magnitude(z: torch.Tensor, z_ref: torch.Tensor, gamma: float | None) -> None:
    if not z.dtype.is_floating_point or z.numel() + z_ref.numel() == 0 or in_cuda_training(z):
        return
    limit = max_magnitude(z.dtype, z.shape[1], gamma)
    m = max(float(z.detach().abs().amax()) if z.numel() else 0.0, float(z_ref.detach().abs().amax()) if z_ref.numel() else 0.0)
    if m > limit:
        raise ValueError(f"embeddings with entries of magnitude {m:.3g} overflow {z.dtype} similarities at d={z.shape[1]} "
                         f"(at most {limit:.3g}); normalise the embeddings or use float64")


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

    Raises ``ValueError`` for entries beyond :func:`max_magnitude` (about 4.6e17 in float32 at
    d = 100), where the similarities of that dtype would overflow; every finite input below it
    gives finite similarities. l2 and rbf distances are exact for duplicates (see ``_sqdist``).

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
    _check_magnitude(z, z_ref, gamma if kind == "rbf" else None)
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
    its neighbours tie for the top; so does a row whose span is rounding (``FLAT_ULPS``).
    Excluded entries are returned as 0.
    """
    return scale_rows(sim, *row_bounds(sim, mask), mask)


def row_bounds(sim: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (min, max) of ``sim`` over the entries not excluded by ``mask``; each (B, 1).

    Where several entries tie for a row's min (max), its gradient goes to one of them (``torch.min``), not
    split among them (``amin``): a valid subgradient, with two kernels in the backward instead of four."""
    big = torch.finfo(sim.dtype).max
    lo = (sim if mask is None else sim.masked_fill(mask, big)).min(-1, keepdim=True).values
    hi = (sim if mask is None else sim.masked_fill(mask, -big)).max(-1, keepdim=True).values
    return lo, hi


#: A row whose span is within this many ulps of its largest |value| is flat: that span is rounding.
FLAT_ULPS = 64


def scale_rows(sim: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(sim − lo) / (hi − lo) with given per-row bounds; flat rows → 1 (see :func:`row_minmax`).

    The bounds must hold every entry not excluded by ``mask`` (lo ≤ sim ≤ hi): the result is then in [0, 1]
    without a clamp, since rounding is monotone (fl(sim − lo) ≤ fl(hi − lo), and so the quotient ≤ 1).

    A row is flat when its span is at most ``FLAT_ULPS``·eps·max(|lo|, |hi|): a span of 1e-15 among
    cosines of 1 is rounding, and stretching it to [0, 1] would make SoftStep cut on noise (and
    make ``predict`` differ from ``forward``, whose rounding differs)."""
    span = hi - lo
    with torch.no_grad():  # max(|lo|, |hi|) = max(hi, −lo) for lo ≤ hi
        flat = span <= FLAT_ULPS * torch.finfo(span.dtype).eps * torch.maximum(hi, -lo)
    out = ((sim - lo) / torch.where(flat, 1.0, span)).masked_fill(flat, 1.0)
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
    return _log_step(s - l, u - s, t)


def _log_step(above_l: torch.Tensor, below_u: torch.Tensor, t) -> torch.Tensor:
    """log SoftStep from the two distances s − l and u − s (SoftKStep passes k + q − r and r − k directly)."""
    if isinstance(t, (int, float)):
        t = max(float(t), T_MIN)
    else:
        t = torch.as_tensor(t, dtype=above_l.dtype, device=above_l.device).clamp_min(T_MIN)
    floor = torch.finfo(above_l.dtype).tiny ** 0.5  # keeps 1/(t·(s−l)) finite next to l and u
    x = (torch.log(above_l.clamp_min(floor)) - torch.log(below_u.clamp_min(floor))) / t
    # outside (l, u) the fills replace the (finite) transition value, and their gradient is exactly 0
    return F.logsigmoid(x).masked_fill(below_u <= 0, 0.0).masked_fill(above_l <= 0, -torch.inf)


def soft_step(s: torch.Tensor, l: torch.Tensor, u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SoftStep(s; l, u, t) of section 3.1: exactly 0 for s ≤ l, exactly 1 for s ≥ u."""
    return torch.exp(log_soft_step(s, l, u, t))


def log_soft_k_step(ranks: torch.Tensor, k: torch.Tensor, q: float = 4.0, t: float = 0.75) -> torch.Tensor:
    """Log-weights of SoftKStep, Algorithm 1 lines 22–29.

    step = 1 for rank ≤ k, 0 for rank ≥ k + q, and on the transition

        step = (k + q − r)^(1/t) / ((k + q − r)^(1/t) + (r − k)^(1/t)).

    Line 24 as printed reads (k − r)^(1/t), which is negative on k < r < k + q;
    we use (r − k)^(1/t), the form consistent with the SoftStep equation, so the
    step falls from 1 at rank k to 0 at rank k + q. This is SoftStep applied to
    −r with l = −(k + q), u = −k (so s − l = k + q − r and u − s = r − k, passed as such).
    Ranks are 0-based (0 = most similar). Returns log(step): −inf exactly where the weight is 0.
    """
    if q <= 0:
        raise ValueError(f"SoftKStep q must be > 0; got {q}")
    return _log_step((k + q) - ranks, ranks - k, t)
