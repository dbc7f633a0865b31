"""Soft ranks (Blondel et al., 2020; L2 regularisation) on torchsort's kernels, laid out for the GPU.

``soft_rank(x, strength)`` equals ``torchsort.soft_rank(x, "l2", strength)``, forward and backward:
the same sort, the same isotonic-regression kernels, the same arithmetic. Only the memory layout of
the kernels' buffers differs. torchsort's CUDA kernels (0.1.10) run one thread per row and index
``[row][i]``: with rows stored one after another, the 32 threads of a warp read 32 addresses a whole
row apart, and at B = 1,024 rows one thread block walks 1,024-long rows that way, which dominated
DiffKNN's training step on an H100. The kernels allocate their work buffers with ``zeros_like``,
which keeps the strides of the input, so a column-major input makes every buffer column-major and
each warp's 32 reads one contiguous chunk. The layout is used on CUDA only (on a CPU one thread
walks one row, and row-major is the cache-friendly order there); ``column_major=True`` forces it,
which the tests use to check the two layouts agree on any machine.
"""
from __future__ import annotations

import torch


def _column_major(x: torch.Tensor) -> torch.Tensor:
    """The same values, stored column by column (strides (1, rows))."""
    return x.t().contiguous().t()


class _SoftRank(torch.autograd.Function):
    """torchsort's ``SoftRank`` (L2 branch), with the isotonic kernels fed column-major tensors on request."""

    @staticmethod
    def forward(ctx, values, strength: float, column_major: bool):
        from torchsort.ops import isotonic_l2  # the compiled extension, imported on first use

        layout = _column_major if column_major else (lambda t: t)
        n = values.shape[1]
        w = torch.arange(n, 0, -1, dtype=values.dtype, device=values.device)  # n, n − 1, …, 1
        s, perm = torch.sort(values * (1.0 / strength), dim=1, descending=True)
        inv = torch.empty_like(perm).scatter_(1, perm, torch.arange(n, device=perm.device).expand_as(perm))
        dual = isotonic_l2[s.device.type](layout(s - w))
        ctx.save_for_backward(dual, perm, inv)
        ctx.strength, ctx.layout = strength, layout
        return (s - dual).gather(1, inv)

    @staticmethod
    def backward(ctx, grad_out):
        from torchsort.ops import isotonic_l2_backward

        dual, perm, inv = ctx.saved_tensors
        pooled = isotonic_l2_backward[dual.device.type](dual, dual, ctx.layout(grad_out.gather(1, perm)))
        return (grad_out - pooled.gather(1, inv)) * (1.0 / ctx.strength), None, None


def soft_rank(values: torch.Tensor, strength: float, column_major: bool | None = None) -> torch.Tensor:
    """1-based soft ranks of each row of ``values`` (B × n): the smallest value ≈ 1, the largest ≈ n; see the module docstring.

    ``strength`` is torchsort's ``regularization_strength`` (→ 0: hard ranks). ``column_major`` defaults to
    ``values.is_cuda``."""
    if values.dim() != 2:
        raise ValueError(f"soft_rank takes a 2-d tensor (rows × values); got shape {tuple(values.shape)}")
    return _SoftRank.apply(values, float(strength), values.is_cuda if column_major is None else bool(column_major))
