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
    for f in (
        lambda v: torchsort.soft_rank(v, regularization="l2", regularization_strength=strength),
        lambda v: soft_rank(v, strength, column_major=column_major),
    ):
        v = x.clone().requires_grad_(True)
        r = f(v)
        (r * grad).sum().backward()
        out.append((r.detach(), v.grad))
    return out


@given(
    rows=st.integers(1, 6),
    n=st.integers(1, 40),
    levels=st.integers(1, 5),
    strength=st.sampled_from([1e-3, 0.1, 1.0, 10.0]),
    column_major=st.booleans(),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_soft_rank_equals_torchsort_with_ties(rows, n, levels, strength, column_major, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels, (rows, n), generator=g).double() + 1e-3 * torch.randn(
        rows, n, generator=g, dtype=torch.float64
    ) * (seed % 2)
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


TRITON_CHECK = r"""
import torch, torchsort
from torchsort.ops import isotonic_l2
from softstep import ranks as R
from softstep.isotonic import isotonic_rows

g = torch.Generator().manual_seed(7)
def check(y):
    want, got = isotonic_l2["cpu"](y.clone()), isotonic_rows(y)
    tol = 1e-12 if y.dtype == torch.float64 else 1e-4
    assert torch.allclose(got, want, rtol=0, atol=tol * max(1.0, float(y.abs().max()))), (tuple(y.shape), float((got - want).abs().max()))

for dtype in (torch.float64, torch.float32):
    for n in (1, 2, 3, 31):
        check(torch.randn(8, n, generator=g, dtype=torch.float64).to(dtype))           # unsorted: long pooling chains
        check(torch.randint(0, 3, (4, n), generator=g).to(dtype))                      # ties
    ramp = torch.arange(128, 0, -1, dtype=torch.float64)
    for scale in (0.3, 40.0):  # what soft_rank passes: values sorted descending, less the ramp n, ..., 1
        s, _ = torch.sort(torch.randn(4, 128, generator=g, dtype=torch.float64) * scale, dim=1, descending=True)
        check(torch.cat([s - ramp, torch.round(s) - ramp]).to(dtype))
    check(torch.stack([torch.arange(128.0), -torch.arange(128.0), torch.zeros(128)]).to(dtype))  # one block, none, flat

R.ISOTONIC["cpu"] = "triton"
x = torch.randint(0, 6, (8, 100), generator=g).double() * 3 + torch.randn(8, 100, generator=g, dtype=torch.float64)
cot = torch.randn(8, 100, generator=g, dtype=torch.float64)
a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
ra, rb = R.soft_rank(a, 0.1), torchsort.soft_rank(b, regularization_strength=0.1)
(ra * cot).sum().backward(); (rb * cot).sum().backward()
assert torch.allclose(ra, rb, rtol=0, atol=1e-10) and torch.allclose(a.grad, b.grad, rtol=0, atol=1e-10)
print("ok")
"""


@pytest.mark.slow
def test_triton_isotonic_kernel_equals_torchsort_in_triton_interpreter(tmp_path):
    """softstep.isotonic's parallel kernel (pooling in rounds) against torchsort's serial PAV: unsorted rows, ties,
    the sorted-minus-ramp rows soft_rank passes, one block, none; and soft_rank on it, forward and backward. Run by
    Triton's interpreter on the CPU (in a subprocess: the interpreter is chosen when a kernel is defined); the
    ``gpu`` tests run it compiled."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("triton")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", TRITON_CHECK],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=repo,
        env={**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(repo)},
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_isotonic_rows_says_what_it_takes():
    from softstep import isotonic

    pytest.importorskip("triton")
    with pytest.raises(ValueError, match="8192"):
        isotonic.isotonic_rows(torch.zeros(2, isotonic.MAX_N + 1))
    with pytest.raises(ValueError, match="float32/float64"):
        isotonic.isotonic_rows(torch.zeros(2, 5, dtype=torch.int64))


@pytest.mark.slow
@pytest.mark.parametrize("capability,block,warps", [(80, 32, 4), (90, 1024, 4), (90, 8192, 16)])
def test_triton_isotonic_kernel_compiles_for_a100_and_h100(capability, block, warps):
    """Triton's real compiler (not its interpreter) builds the kernel to a cubin for sm_80 / sm_90, from the smallest
    block to the largest row it takes, float64 and float32: no GPU is needed to compile."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from softstep.isotonic import _isotonic_rows

    for dtype in ("*fp64", "*fp32"):
        src = ASTSource(
            fn=_isotonic_rows,
            constexprs={"BLOCK": block},
            signature={"y_ptr": dtype, "out_ptr": dtype, "starts_ptr": "*i32", "n": "i32", "BLOCK": "constexpr"},
        )
        kernel = triton.compile(src, target=GPUTarget("cuda", capability, 32), options={"num_warps": warps})
        assert len(kernel.asm["cubin"]) > 1000
