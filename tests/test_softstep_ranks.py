"""softstep.ranks.soft_rank against its reference, torchsort.soft_rank (L2): same values, same gradients,
in both memory layouts, for ties, single columns and rows at training size."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from softstep.ranks import soft_rank

torchsort = pytest.importorskip("torchsort")


def both(x: torch.Tensor, strength: float, column_major: bool, grad: torch.Tensor):
    """(ranks, input gradient for the cotangent ``grad``) from torchsort and from soft_rank."""
    out = []
    for f in (lambda v: torchsort.soft_rank(v, regularization="l2", regularization_strength=strength),
              lambda v: soft_rank(v, strength, column_major=column_major)):
        v = x.clone().requires_grad_(True)
        r = f(v)
        (r * grad).sum().backward()
        out.append((r.detach(), v.grad))
    return out


@given(rows=st.integers(1, 6), n=st.integers(1, 40), levels=st.integers(1, 5), strength=st.sampled_from([1e-3, 0.1, 1.0, 10.0]),
       column_major=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_soft_rank_equals_torchsort_with_ties(rows, n, levels, strength, column_major, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels, (rows, n), generator=g).double() + 1e-3 * torch.randn(rows, n, generator=g, dtype=torch.float64) * (seed % 2)
    cot = torch.randn(rows, n, generator=g, dtype=torch.float64)
    (r_ref, g_ref), (r, gr) = both(x, strength, column_major, cot)
    torch.testing.assert_close(r, r_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(gr, g_ref, rtol=0, atol=1e-12)
    assert torch.isfinite(r).all() and torch.isfinite(gr).all()


@pytest.mark.parametrize("column_major", [False, True])
def test_soft_rank_equals_torchsort_at_training_size(column_major):
    torch.manual_seed(0)
    x, cot = torch.randn(512, 1024, dtype=torch.float64) * 1000, torch.randn(512, 1024, dtype=torch.float64)
    (r_ref, g_ref), (r, gr) = both(x, 0.1, column_major, cot)
    torch.testing.assert_close(r, r_ref, rtol=0, atol=1e-9)
    torch.testing.assert_close(gr, g_ref, rtol=0, atol=1e-9)
    hard = x.argsort(1).argsort(1).double() + 1
    assert (r - hard).abs().mean() < 0.5  # gaps ≫ strength: near the hard ranks


def test_soft_rank_rejects_a_vector():
    with pytest.raises(ValueError, match="2-d"):
        soft_rank(torch.randn(5), 0.1)
