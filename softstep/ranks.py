"""Soft ranks (Blondel et al., 2020; L2 regularisation): SOFT_RANK of Algorithm 1 line 12.

:func:`soft_rank` equals ``torchsort.soft_rank(x, "l2", strength)``, forward and backward, to rounding, on
torchsort's kernels laid out for the GPU; how and why: docs/paper-choices.md#soft-rank-kernels.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

#: The dtype DiffKNN ranks float32 similarities in, per device type (float64 similarities are ranked in
#: float64); why float64: docs/paper-choices.md#soft-rank-kernels.
RANK_DTYPE = {"cpu": torch.float64, "cuda": torch.float64}

#: The isotonic-regression kernel per device type: ``"torchsort"`` (its serial kernel, the default) or ``"triton"``
#: (:mod:`softstep.isotonic`, rows up to 8,192, else torchsort; not yet timed on a GPU).
ISOTONIC = {"cpu": "torchsort", "cuda": "torchsort"}


def rank_dtype(sim: torch.Tensor) -> torch.dtype:
    """The dtype to rank ``sim`` in: float64 for float64 input, else :data:`RANK_DTYPE` of its device.

    Not in the paper; why float64: docs/paper-choices.md#soft-rank-kernels.

    Parameters
    ----------
    sim : torch.Tensor
        Similarities.

    Returns
    -------
    torch.dtype

    Examples
    --------
    >>> import torch
    >>> rank_dtype(torch.zeros(2, 2))
    torch.float64
    """
    return torch.float64 if sim.dtype == torch.float64 else RANK_DTYPE.get(sim.device.type, torch.float64)


def _arange(n: int, dtype: torch.dtype, device: torch.device, descending: bool = False) -> torch.Tensor:
    """0, 1, …, n − 1 (``descending``: n, …, 1), cached per size; built in the graph under ``torch.compile``."""
    if torch.compiler.is_compiling():
        return _new_arange(n, dtype, device, descending)
    return _cached_arange(n, dtype, device, descending)


def _new_arange(n, dtype, device, descending):
    return (
        torch.arange(n, 0, -1, dtype=dtype, device=device)
        if descending
        else torch.arange(n, dtype=dtype, device=device)
    )


_cached_arange = functools.lru_cache(maxsize=16)(_new_arange)


def _use_triton(y: torch.Tensor) -> bool:
    """Whether :data:`ISOTONIC` picks the Triton kernel for ``y``'s device and the kernel takes ``y``."""
    from . import isotonic

    return ISOTONIC.get(y.device.type) == "triton" and isotonic.available(y)


@torch.library.custom_op("softstep::isotonic_l2", mutates_args=())
def _isotonic_l2(y: torch.Tensor, triton: bool) -> torch.Tensor:
    """Non-increasing isotonic regression (L2) of each row, torchsort's kernel or the Triton one; a registered
    operator, so that ``torch.compile`` traces through it.
    """
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
    """Each entry of ``grad`` replaced by the mean over its pooled block of the isotonic solution ``dual``
    (torchsort's ``isotonic_l2_backward`` as batched tensor ops).
    """
    starts = F.pad((dual[:, 1:] - dual[:, :-1]).abs() > 1e-9, (1, 0), value=True)
    block = starts.cumsum(1)  # 1-based block ids: slot 0 of the sums stays unused
    slots = (grad.shape[0], grad.shape[1] + 1)
    sums = grad.new_zeros(slots).scatter_add_(1, block, grad)
    sizes = grad.new_zeros(slots).scatter_add_(1, block, grad.new_ones(()).expand_as(grad))
    return (sums / sizes).gather(1, block)  # unused slots hold 0/0 and are never gathered


class _SoftRank(torch.autograd.Function):
    """torchsort's ``SoftRank`` (L2): its sort and isotonic kernel forward (column-major on request), the
    backward's block means as tensor ops (:func:`_block_means`).
    """

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
    """1-based soft ranks of each row: SOFT_RANK of Algorithm 1 line 12 (section 3.2's Rank).

    Parameters
    ----------
    values : torch.Tensor, shape (B, n)
        The values to rank; the smallest gets rank ≈ 1, the largest ≈ n.
    strength : float
        torchsort's ``regularization_strength`` (→ 0: hard ranks).
    column_major : bool, optional
        Feed the forward kernel column-major; default ``values.is_cuda``
        (docs/paper-choices.md#soft-rank-kernels).

    Returns
    -------
    torch.Tensor, shape (B, n)

    Examples
    --------
    >>> import torch
    >>> soft_rank(torch.tensor([[3.0, 1.0, 2.0]]), 1e-3)
    tensor([[3., 1., 2.]])
    >>> soft_rank(torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64), 2.0)
    tensor([[2.5000, 1.5000, 2.0000]], dtype=torch.float64)
    """
    if values.dim() != 2:
        raise ValueError(f"soft_rank takes a 2-d tensor (rows × values); got shape {tuple(values.shape)}")
    return _SoftRank.apply(values, float(strength), values.is_cuda if column_major is None else bool(column_major))
