"""How sparse the learned neighbourhoods are: the ``sparsity`` block of a neighbour head's result file.

For each query (the test split at the end, a sample of the validation split per epoch) against the
whole training split as the reference set, in eval mode:

- ``nonzero``: the number of neighbours with a weight > 0 (SoftStep and SoftKStep give exact zeros);
- ``effective``: 1 / Σ w², the effective neighbourhood size (N for uniform weights, 1 for one neighbour);
- ``zero_fraction``: the fraction of the reference set with a weight exactly 0 (the sparsity the paper's title means);
- ``removed_mass``: the softmax mass the step removes, 1 − Σⱼ pⱼ mⱼ with p = softmax(β·Sim) and m ∈ [0, 1] the step
  (logits = β·Sim + log m), = 1 − exp(LSE(logits) − LSE(β·Sim)): 0 when the step changes nothing (plain NCA), the
  mass it takes from the entries it zeroes or shrinks otherwise;
- NCA + SoftStep heads: the learned ``l``, ``u`` (l = l₀ − ε, u = l + u₀(1 − l); at evaluation the row's
  top is 1) and ``t``; DiffKNN heads: the learned ``k`` in neighbours of the training split.

Each is summarised over queries as ``{"p10", "median", "p90"}``.
"""

from __future__ import annotations

import numpy as np
import torch


def percentiles(values) -> dict[str, float]:
    v = np.asarray(values, dtype=float).reshape(-1)
    p10, med, p90 = np.percentile(v, [10, 50, 90])
    return {"p10": float(p10), "median": float(med), "p90": float(p90)}


@torch.no_grad()
def head_sparsity(
    head, z: torch.Tensor, z_ref: torch.Tensor, *, max_elements: int = 2**22, mass: bool = True
) -> dict | None:
    """The sparsity block of queries ``z`` (B, d) against reference embeddings ``z_ref`` (N, d); None for a
    head without neighbours (``needs_reference`` False). ``mass=False`` leaves out ``removed_mass`` (two more passes
    over the reference set; the per-epoch logs skip it)."""
    if not getattr(head, "needs_reference", False) or len(z) == 0:
        return None
    was_training = head.training
    head.eval()
    try:
        rows = max(1, max_elements // max(1, z_ref.shape[0]))
        nonzero, effective, removed = [], [], []
        for i in range(0, len(z), rows):
            w = head.neighbor_weights(z[i : i + rows], z_ref).double()
            nonzero.append((w > 0).sum(-1).cpu())
            effective.append((1.0 / (w * w).sum(-1)).cpu())
            if mass:
                removed.append(removed_mass(head, z[i : i + rows], z_ref).cpu())
        nonzero = torch.cat(nonzero).double()
        out = {
            "n_queries": int(len(z)),
            "n_reference": int(z_ref.shape[0]),
            "nonzero": percentiles(nonzero.numpy()),
            "effective": percentiles(torch.cat(effective).numpy()),
            "zero_fraction": percentiles((1.0 - nonzero / z_ref.shape[0]).numpy()),
        }
        if mass:
            out["removed_mass"] = percentiles(torch.cat(removed).numpy())
        out.update(learned_parameters(head, z, z_ref.shape[0]))
        return out
    finally:
        head.train(was_training)


def removed_mass(head, z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    """Per query, 1 − exp(LSE(logits) − LSE(β·Sim)): the mass of softmax(β·Sim) the step removes (module docstring)."""
    with_step = torch.logsumexp(head.logits(z, z_ref).double(), -1)
    without = torch.logsumexp(head.logits_without_step(z, z_ref).double(), -1)
    return (-torch.expm1(with_step - without)).clamp(0.0, 1.0) + 0.0  # + 0.0: no −0.0


def learned_parameters(head, z: torch.Tensor, n_ref: int) -> dict:
    """Summaries of the learned SoftStep (l, u, t) or SoftKStep (k) parameters of queries ``z``; {} for plain NCA."""
    step = getattr(head, "step", None)
    if step is not None:
        l0, u0, t = step.params(z).double().unbind(-1)
        eps = max(step.eps, 8 * torch.finfo(z.dtype).eps)
        l = l0 - eps
        u = l + u0 * (1 - l)
        return {"l": percentiles(l.cpu()), "u": percentiles(u.cpu()), "t": percentiles(t.cpu())}
    kstep = getattr(head, "kstep", None)
    if kstep is not None:
        return {"k": percentiles(kstep.k(z, n_ref).double().cpu())}
    return {}


def flat(block: dict | None, prefix: str = "sparsity") -> dict[str, float]:
    """A sparsity block as flat metrics for per-epoch logs: each quantity's median and spread over queries
    (``sparsity/effective_median``, ``sparsity/l_p10``, ``sparsity/l_p90``, …)."""
    if not block:
        return {}
    return {
        f"{prefix}/{name}_{stat}": v[stat]
        for name, v in block.items()
        if isinstance(v, dict)
        for stat in ("median", "p10", "p90")
    }
