"""The dtype a head computes in: the embeddings' own when it is float32 or float64, else float32 (a half-precision
or integer ``z``); the reference set, the labels and any parameter that meets ``z`` are cast to it, so a head
given tensors of mixed dtypes computes as if all were of ``z``'s (docs/paper-choices.md#one-dtype-per-call).

Not in the paper: without it a float64 ``z`` into a float32 head raised torch's own dtype errors, or gave NaN where
a float32 β overflowed before it met float64 similarities (issue 28, finding 8).
"""

from __future__ import annotations

import math

import torch

#: the dtypes a head computes in
COMPUTE_DTYPES = (torch.float32, torch.float64)


def compute_dtype(z: torch.Tensor) -> torch.dtype:
    """``z``'s dtype if it is float32 or float64, else float32.

    Parameters
    ----------
    z : torch.Tensor

    Returns
    -------
    torch.dtype

    Examples
    --------
    >>> compute_dtype(torch.zeros(1, dtype=torch.float64)), compute_dtype(torch.zeros(1, dtype=torch.float16))
    (torch.float64, torch.float32)
    """
    return z.dtype if z.dtype in COMPUTE_DTYPES else torch.float32


def in_compute_dtype(z: torch.Tensor, *others):
    """``z`` and each of ``others`` (tensors or None) in :func:`compute_dtype` of ``z``; a tensor already of that
    dtype is returned as it is, one passed twice is cast once (so ``z_ref is z`` stays true, and a half-precision
    batch's two gradients are summed in the compute dtype), and gradients flow through the casts.

    Parameters
    ----------
    z : torch.Tensor
    *others : torch.Tensor or None

    Returns
    -------
    tuple of torch.Tensor or None
        ``z`` first, then ``others`` in order.

    Examples
    --------
    >>> z, r, y = in_compute_dtype(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(4, 3), None)
    >>> r.dtype, y
    (torch.float64, None)
    """
    dtype, cast = compute_dtype(z), {}
    for t in (z, *others):  # one cast per tensor: a batch that is its own reference set stays one tensor
        if t is not None and id(t) not in cast:
            cast[id(t)] = t if t.dtype == dtype else t.to(dtype)
    return tuple(None if t is None else cast[id(t)] for t in (z, *others))


def label_bound(dtype: torch.dtype) -> float:
    """The largest |y_ref| a head takes in ``dtype``: √(the dtype's largest value), 1.8e19 in float32. Beyond it
    the softmax's gradient w (y − ŷ) times β and the similarity's gradient overflows, and an overflow meets a zero
    weight as NaN (docs/paper-choices.md#one-dtype-per-call).

    Parameters
    ----------
    dtype : torch.dtype

    Returns
    -------
    float

    Examples
    --------
    >>> f"{label_bound(torch.float32):.2g}"
    '1.8e+19'
    """
    return math.sqrt(torch.finfo(dtype).max)
