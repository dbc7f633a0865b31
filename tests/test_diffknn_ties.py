"""DiffKNN's evaluation ranks ties as a full sort by (similarity, index) would, also now that only ties on a row's
own ramp k … k + q are settled (issue 29 point 3): checked against a NumPy transcription of Algorithm 1's evaluation
(exact ranks, SoftKStep of lines 22–29) at a realistic size, on a coarse grid where most similarities tie."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softstep import build_head
from softstep.ties import ramp_pairs


def soft_k_step(r, k, q, t):
    """Algorithm 1 lines 22–29 (line 24's sign corrected, docs/paper-choices.md): 1 up to k, 0 from k + q."""
    a, b = np.clip(k + q - r, 0, None) ** (1 / t), np.clip(r - k, 0, None) ** (1 / t)
    return np.where(r <= k, 1.0, np.where(r >= k + q, 0.0, a / np.where(a + b > 0, a + b, 1.0)))


def reference_predict(logits: np.ndarray, k: np.ndarray, q: float, t: float, y: np.ndarray) -> np.ndarray:
    out = np.empty(len(logits))
    for i, row in enumerate(logits):
        order = np.lexsort((np.arange(len(row)), -row))  # by similarity, then by index: ties in index order
        ranks = np.empty(len(row))
        ranks[order] = np.arange(len(row))
        w = np.exp(row - row.max()) * soft_k_step(ranks, k[i], q, t)
        out[i] = (w * y).sum() / w.sum()
    return out


@pytest.mark.parametrize("head_name", ["diffknn_i", "diffknn_g"])
@pytest.mark.parametrize("max_elements", [2**22, 4_000, 40_000])  # whole rows, tiles (narrow k), wide k in blocks
def test_tied_grid_predicts_as_a_full_index_ordered_sort(head_name, max_elements):
    g = torch.Generator().manual_seed(3)
    n, b, d = 1500, 64, 3
    z_ref = torch.randint(-2, 3, (n, d), generator=g).double()  # 125 distinct points: ties in every row
    z = torch.randint(-2, 3, (b, d), generator=g).double()
    y = torch.rand(n, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    head = build_head(head_name, d, similarity="dot").double().eval()  # integer dot products: exact ties in any tiling
    with torch.no_grad():
        for p in head.kstep.parameters():
            p.copy_(3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    k = head.kstep.k(z, n).detach().numpy()
    if head_name == "diffknn_i":
        assert k.min() < 0.2 * n and k.max() > 0.8 * n  # narrow and wide neighbourhoods in one block
    with torch.no_grad():
        logits = head.logits_without_step(z, z_ref).numpy()
        got = head.predict(z, z_ref, y, max_elements=max_elements).numpy()
    want = reference_predict(logits, k, head.kstep.q, head.kstep.t, y.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_ramp_pairs_marks_only_ranks_whose_weights_differ():
    k, q, t = np.array([2.5, 7.0]), 3.0, 0.75
    r = np.arange(20)
    differ = soft_k_step(r[None], k[:, None], q, t) != soft_k_step(r[None] + 1, k[:, None], q, t)
    np.testing.assert_array_equal(ramp_pairs(torch.tensor(k), q, torch.arange(20)).numpy(), differ)
