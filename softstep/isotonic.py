"""Isotonic regression of each row with all of a row's pooling in parallel (a Triton kernel), opt-in.

The isotonic step of SOFT_RANK (Algorithm 1 line 12), as torchsort's ``isotonic_l2`` computes it; the
algorithm and its status: docs/paper-choices.md#soft-rank-kernels.
"""

from __future__ import annotations

import torch

#: The longest row the kernel takes (one program holds the row); longer rows go to torchsort's kernel.
MAX_N = 8192

try:  # Triton comes with CUDA builds of torch; without it, only torchsort's kernels are used
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None


if triton is not None:

    @triton.jit
    def _add_in_block(v1, c1, f1, v2, c2, f2):
        """Segmented prefix sums: the right operand starts a new block where its flag is set."""
        return tl.where(f2 != 0, v2, v1 + v2), tl.where(f2 != 0, c2, c1 + c2), f1 | f2

    @triton.jit
    def _last_flagged(v1, c1, f1, v2, c2, f2):
        """The most recent flagged value (scanning the flipped row: the end of each element's block)."""
        return tl.where(f2 != 0, v2, v1), tl.where(f2 != 0, c2, c1), f1 | f2

    @triton.jit
    def _isotonic_rows(y_ptr, out_ptr, starts_ptr, n, BLOCK: tl.constexpr):
        """One program per row: pool adjacent violating blocks in rounds until none is left."""
        row = tl.program_id(0).to(tl.int64)
        idx = tl.arange(0, BLOCK)
        valid = idx < n
        y = tl.load(y_ptr + row * n + idx, mask=valid, other=0.0)
        ones = tl.full([BLOCK], 1.0, y.dtype)
        zeros = tl.zeros([BLOCK], y.dtype)
        start = tl.full([BLOCK], 1, tl.int32)  # every element starts a block; padding (idx ≥ n) always does
        starts, out = starts_ptr + row * BLOCK, out_ptr + row * n
        mean = y
        todo = 1
        while todo > 0:
            # a block ends where the next element starts one (the last element always ends one)
            tl.store(starts + idx, start)
            tl.debug_barrier()
            end = tl.where(idx >= n - 1, 1, tl.load(starts + idx + 1, mask=idx + 1 < BLOCK, other=1))
            tl.debug_barrier()
            total, count, _ = tl.associative_scan((y, ones, start), 0, _add_in_block)  # prefix sums within blocks
            # each block's total sits at its end: carry it back over the block by scanning the flipped row
            total, count, _ = tl.associative_scan(
                (
                    tl.flip(tl.where(end != 0, total, zeros), 0),
                    tl.flip(tl.where(end != 0, count, zeros), 0),
                    tl.flip(end, 0),
                ),
                0,
                _last_flagged,
            )
            mean = tl.flip(total, 0) / tl.flip(count, 0)
            tl.store(out + idx, mean, mask=valid)
            tl.debug_barrier()
            before = tl.load(out + idx - 1, mask=valid & (idx > 0), other=float("inf"))  # the previous block's mean
            tl.debug_barrier()
            merge = (start != 0) & valid & (idx > 0) & (before < mean)  # a violated boundary: pool the two blocks
            start = tl.where(merge, 0, start)
            todo = tl.sum(merge.to(tl.int32), 0)
        tl.store(out + idx, mean, mask=valid)


def available(y: torch.Tensor) -> bool:
    """Whether :func:`isotonic_rows` can take ``y``.

    Not in the paper (docs/paper-choices.md#soft-rank-kernels).

    Parameters
    ----------
    y : torch.Tensor
        Rows to regress.

    Returns
    -------
    bool
        True for float32/float64 (B, n ≤ :data:`MAX_N`) rows with Triton installed.

    Examples
    --------
    >>> import torch
    >>> available(torch.zeros(2, 3, dtype=torch.int64))
    False
    """
    return triton is not None and y.dim() == 2 and 0 < y.shape[1] <= MAX_N and y.dtype in (torch.float32, torch.float64)


def isotonic_rows(y: torch.Tensor) -> torch.Tensor:
    """Non-increasing isotonic regression (L2) of each row, torchsort's ``isotonic_l2`` in parallel per row.

    Solves argmin ‖v − y‖² subject to v₁ ≥ … ≥ vₙ for each row: the isotonic step of SOFT_RANK
    (Algorithm 1 line 12).

    Parameters
    ----------
    y : torch.Tensor, shape (B, n)
        float32 or float64 rows, n ≤ :data:`MAX_N`, on a CUDA device (or under ``TRITON_INTERPRET=1``).

    Returns
    -------
    torch.Tensor, shape (B, n)

    Examples
    --------
    >>> import torch
    >>> isotonic_rows(torch.tensor([[1.0, 3.0, 2.0]], device="cuda"))  # doctest: +SKIP
    tensor([[2., 2., 2.]], device='cuda:0')
    """
    if not available(y):
        raise ValueError(
            f"isotonic_rows takes (B, n ≤ {MAX_N}) float32/float64 rows with Triton installed; "
            f"got {tuple(y.shape)} {y.dtype}"
        )
    y = y.contiguous()
    b, n = y.shape
    block = max(2, triton.next_power_of_2(n))
    out = torch.empty_like(y)
    starts = torch.empty(b, block, dtype=torch.int32, device=y.device)
    if b:
        _isotonic_rows[(b,)](
            y, out, starts, n, BLOCK=block, num_warps=4 if block <= 1024 else 8 if block <= 4096 else 16
        )
    return out
