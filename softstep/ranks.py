"""Soft ranks (Blondel et al., 2020; L2 regularisation) on torchsort's kernels, laid out for the GPU.

``soft_rank(x, strength)`` equals ``torchsort.soft_rank(x, "l2", strength)``, forward and backward
(to rounding): the same sort and the same isotonic-regression kernel forward, two changes for speed.

**Backward as tensor ops.** The backward of isotonic regression replaces each gradient entry by the
mean over its pooled block. torchsort runs that as one serial thread per row; here it is a cumulative
sum and two ``scatter_add`` (:func:`_block_means`), with torchsort's own block rule.

**Column-major forward on CUDA.** Only the memory layout of the forward kernel's buffers differs. torchsort's CUDA kernels (0.1.10) run one thread per row and index
``[row][i]``: with rows stored one after another, the 32 threads of a warp read 32 addresses a whole
row apart, and at B = 1,024 rows one thread block walks 1,024-long rows that way, which dominated
DiffKNN's training step on an H100. The kernels allocate their work buffers with ``zeros_like``,
which keeps the strides of the input, so a column-major input makes every buffer column-major and
each warp's 32 reads one contiguous chunk. The layout is used on CUDA only (on a CPU one thread
walks one row, and row-major is the cache-friendly order there); ``column_major=True`` forces it,
which the tests use to check the two layouts agree on any machine.

Measured on an H100 (``results/benchmarks/gpu.md``), forward + backward of a 1,024 × 1,024 float64
matrix: torchsort 12.6 ms, this 2.7 ms (column-major forward alone: 4.9 ms).

**A parallel kernel, opt-in.** ``ISOTONIC["cuda"] = "triton"`` replaces torchsort's serial forward kernel by
:mod:`softstep.isotonic` (each row's pooling in parallel rounds, row-major); equal to it to rounding, not yet timed.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


#: The dtype DiffKNN ranks float32 similarities in, per device type (float64 similarities are ranked in
#: float64). On an H100 float32 took soft ranks at B = 1,024 from 2.7 to 1.8 ms but changed DiffKNN's whole
#: step by −8 % to +19 % (noise; ``results/benchmarks/gpu.md``), and on rows of 1,024 its rounding changes which
#: entries pool together in the backward (gradients off by up to 15 where they reach 36, on the CPU), so
#: float64 stays: its isotonic sums keep their digits for rows of any length.
RANK_DTYPE = {"cpu": torch.float64, "cuda": torch.float64}

#: The isotonic-regression kernel per device type: ``"torchsort"`` (its serial kernel, one thread per row) or
#: ``"triton"`` (:mod:`softstep.isotonic`, every row's pooling in parallel; rows up to 8,192, else torchsort).
#: torchsort stays the default until the Triton kernel is timed on a GPU (``scripts/benchmark_gpu.py``).
ISOTONIC = {"cpu": "torchsort", "cuda": "torchsort"}


def rank_dtype(sim: torch.Tensor) -> torch.dtype:
    """The dtype to rank ``sim`` in (:data:`RANK_DTYPE`)."""
    return torch.float64 if sim.dtype == torch.float64 else RANK_DTYPE.get(sim.device.type, torch.float64)


def _arange(n: int, dtype: torch.dtype, device: torch.device, descending: bool = False) -> torch.Tensor:
    """0, 1, …, n − 1 (``descending``: n, n − 1, …, 1), built once per size: a constant of every training step
    (read, never written). Inside ``torch.compile`` it is built in the graph (the compiler cannot trace a cache)."""
    if torch.compiler.is_compiling():
        return _new_arange(n, dtype, device, descending)
    return _cached_arange(n, dtype, device, descending)


def _new_arange(n, dtype, device, descending):
    return torch.arange(n, 0, -1, dtype=dtype, device=device) if descending else torch.arange(n, dtype=dtype, device=device)


_cached_arange = functools.lru_cache(maxsize=16)(_new_arange)


def _use_triton(y: torch.Tensor) -> bool:
    """Whether :data:`ISOTONIC` picks the Triton kernel for ``y``'s device and the kernel takes ``y``."""
    from . import isotonic

    return ISOTONIC.get(y.device.type) == "triton" and isotonic.available(y)


@torch.library.custom_op("softstep::isotonic_l2", mutates_args=())
def _isotonic_l2(y: torch.Tensor, triton: bool) -> torch.Tensor:
    """Non-increasing isotonic regression (L2) of each row: torchsort's kernel, or the Triton one (``triton``, as
    :func:`_use_triton` decides); a registered operator, so that a ``torch.compile``d training step traces through
    it instead of breaking there."""
    if triton:
        from .isotonic import isotonic_rows

        return isotonic_rows(y)
    from torchsort.ops import isotonic_l2  # the compiled extension, imported on first use

    return isotonic_l2[y.device.type](y)


@_isotonic_l2.register_fake
def _(y: torch.Tensor, triton: bool) -> torch.Tensor:
    return torch.empty_like(y)  # the kernel's output keeps the input's layout (zeros_like)


def _column_major(x: torch.Tensor) -> torch.Tensor:
    """The same values, stored column by column (strides (1, rows))."""
    return x.t().contiguous().t()


def _block_means(dual: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Each entry of ``grad`` replaced by the mean over its pooled block of the isotonic solution ``dual``.

    The backward of isotonic regression, as torchsort's ``isotonic_l2_backward`` computes it (a new
    block wherever consecutive entries of ``dual`` differ by more than 1e-9), with batched tensor ops
    instead of one serial thread per row."""
    starts = F.pad((dual[:, 1:] - dual[:, :-1]).abs() > 1e-9, (1, 0), value=True)
    block = starts.cumsum(1)  # 1-based block ids: slot 0 of the sums stays unused
    slots = (grad.shape[0], grad.shape[1] + 1)
    sums = grad.new_zeros(slots).scatter_add_(1, block, grad)
    sizes = grad.new_zeros(slots).scatter_add_(1, block, grad.new_ones(()).expand_as(grad))
    return (sums / sizes).gather(1, block)  # unused slots hold 0/0 and are never gathered


class _SoftRank(torch.autograd.Function):
    """torchsort's ``SoftRank`` (L2 branch): its sort and isotonic-regression kernel forward, fed
    column-major on request; the backward's block means as batched tensor ops (:func:`_block_means`)."""

    @staticmethod
    def forward(ctx, values, strength: float, column_major: bool):
        n = values.shape[1]
        w = _arange(n, values.dtype, values.device, descending=True)  # n, n − 1, …, 1
        s, perm = torch.sort(values * (1.0 / strength), dim=1, descending=True)
        inv = torch.empty_like(perm).scatter_(1, perm, _arange(n, perm.dtype, perm.device).expand_as(perm))
        y = s - w
        triton = _use_triton(y)
        dual = _isotonic_l2(_column_major(y) if column_major and not triton else y, triton)  # Triton reads rows
        ctx.save_for_backward(dual, perm, inv)
        ctx.strength = strength
        return (s - dual).gather(1, inv)

    @staticmethod
    def backward(ctx, grad_out):
        dual, perm, inv = ctx.saved_tensors
        pooled = _block_means(dual, grad_out.gather(1, perm))
        return (grad_out - pooled.gather(1, inv)) * (1.0 / ctx.strength), None, None


def soft_rank(values: torch.Tensor, strength: float, column_major: bool | None = None) -> torch.Tensor:
    """1-based soft ranks of each row of ``values`` (B × n): the smallest value ≈ 1, the largest ≈ n; see the module docstring.

    ``strength`` is torchsort's ``regularization_strength`` (→ 0: hard ranks). ``column_major`` defaults to
    ``values.is_cuda``."""
    if values.dim() != 2:
        raise ValueError(f"soft_rank takes a 2-d tensor (rows × values); got shape {tuple(values.shape)}")
    return _SoftRank.apply(values, float(strength), values.is_cuda if column_major is None else bool(column_major))
