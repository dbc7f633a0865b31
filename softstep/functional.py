"""The functional forms of Norm, SoftStep and SoftKStep (paper sections 3.1 and 3.3; Algorithm 1 lines 22–29,
Algorithm 2 lines 13–17): row min–max normalisation and the step functions in log space.

Every function is pure and follows its inputs' device and dtype; finite inputs give finite outputs
(where they are meant to be finite) and finite gradients. The learned modules that use them are in
:mod:`softstep.step`; the similarities they normalise in :mod:`softstep.similarities`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Smallest admissible transition parameter t (so 1/t <= 1e4).
T_MIN = 1e-4


def row_minmax(sim: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Row-wise min–max normalisation to [0, 1]: Norm of Algorithm 2 line 13 (section 3.3).

    Parameters
    ----------
    sim : torch.Tensor, shape (B, N)
        Similarities.
    mask : torch.Tensor of bool, shape (B, N), optional
        True = excluded (the query itself in training): no part of the row's min and max.

    Returns
    -------
    torch.Tensor, shape (B, N)
        Normalised similarities; excluded entries are 0, a flat row is 1 everywhere
        (docs/paper-choices.md#flat-rows-and-tied-extremes).

    Examples
    --------
    >>> import torch
    >>> row_minmax(torch.tensor([[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]]))
    tensor([[0.0000, 0.5000, 1.0000],
            [1.0000, 1.0000, 1.0000]])
    >>> row_minmax(torch.tensor([[9.0, 3.0, 5.0]]), torch.tensor([[True, False, False]]))
    tensor([[0., 0., 1.]])
    """
    return scale_rows(sim, *row_bounds(sim, mask), mask)


def row_bounds(sim: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (min, max) over the entries ``mask`` does not exclude: the bounds of Norm, Algorithm 2 line 13.

    Parameters
    ----------
    sim : torch.Tensor, shape (B, N)
        Similarities.
    mask : torch.Tensor of bool, shape (B, N), optional
        True = excluded.

    Returns
    -------
    lo, hi : torch.Tensor, each shape (B, 1)
        A tied extreme passes its gradient to one entry (docs/paper-choices.md#flat-rows-and-tied-extremes).

    Examples
    --------
    >>> import torch
    >>> row_bounds(torch.tensor([[9.0, 3.0, 5.0]]), torch.tensor([[True, False, False]]))
    (tensor([[3.]]), tensor([[5.]]))
    """
    big = torch.finfo(sim.dtype).max
    lo = (sim if mask is None else sim.masked_fill(mask, big)).min(-1, keepdim=True).values
    hi = (sim if mask is None else sim.masked_fill(mask, -big)).max(-1, keepdim=True).values
    return lo, hi


#: A row whose span is within this many ulps of its largest |value| is flat: that span is rounding.
FLAT_ULPS = 64
#: A row whose span is below √(smallest normal) of its dtype is flat too: its gradient's 1/span² would overflow.
FLAT_FLOOR = {dt: torch.finfo(dt).tiny ** 0.5 for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def scale_rows(sim: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(sim − lo) / (hi − lo) with given per-row bounds: Norm of Algorithm 2 line 13, after :func:`row_bounds`.

    Parameters
    ----------
    sim : torch.Tensor, shape (B, N)
        Similarities.
    lo, hi : torch.Tensor, each shape (B, 1)
        Bounds holding every entry not excluded by ``mask`` (lo ≤ sim ≤ hi).
    mask : torch.Tensor of bool, shape (B, N), optional
        True = excluded; those entries come out 0.

    Returns
    -------
    torch.Tensor, shape (B, N)
        Values in [0, 1] without a clamp; a flat row (span within ``FLAT_ULPS`` ulps, or below ``FLAT_FLOOR``) is 1
        (docs/paper-choices.md#flat-rows-and-tied-extremes).

    Examples
    --------
    >>> import torch
    >>> scale_rows(torch.tensor([[1.0, 3.0, 5.0]]), torch.tensor([[1.0]]), torch.tensor([[5.0]]))
    tensor([[0.0000, 0.5000, 1.0000]])
    """
    span = hi - lo
    with torch.no_grad():  # max(|lo|, |hi|) = max(hi, −lo) for lo ≤ hi
        flat = span <= FLAT_ULPS * torch.finfo(span.dtype).eps * torch.maximum(hi, -lo)
        flat |= span < FLAT_FLOOR[span.dtype]  # 1/span² would overflow in the gradient
    out = ((sim - lo) / torch.where(flat, 1.0, span)).masked_fill(flat, 1.0)
    return out if mask is None else out.masked_fill(mask, 0.0)


def log_soft_step(
    s: torch.Tensor, l: torch.Tensor, u: torch.Tensor, t: torch.Tensor, power_floor: float | None = None
) -> torch.Tensor:
    """log SoftStep(s; l, u, t), the SoftStep equation of section 3.1 in log space (Algorithm 2 line 17).

    SoftStep(s) = 0 for s ≤ l, (s − l)^(1/t) / ((s − l)^(1/t) + (u − s)^(1/t)) for l < s < u, 1 for s ≥ u.

    Parameters
    ----------
    s : torch.Tensor
        Normalised similarities.
    l, u : torch.Tensor or float
        Lower and upper thresholds, broadcast against ``s``.
    t : torch.Tensor or float
        The transition's curvature, clamped at ``T_MIN``.
    power_floor : float, optional
        Floor both powers (s − l)^(1/t) and (u − s)^(1/t) at this value, as nona_anon's ``S_1`` does (1e-12);
        between l and u where both are below it the step is 1/2. None (ours, the equation): no floor.

    Returns
    -------
    torch.Tensor
        −inf exactly for s ≤ l, 0 exactly for s ≥ u; finite gradients everywhere
        (docs/paper-choices.md#softstep-in-log-space).

    Examples
    --------
    >>> import torch
    >>> log_soft_step(torch.tensor([0.1, 0.5, 0.9]), 0.2, 0.8, 1.0)
    tensor([   -inf, -0.6931,  0.0000])
    """
    return _log_step(s - l, u - s, t, power_floor)


def _log_step(above_l: torch.Tensor, below_u: torch.Tensor, t, power_floor: float | None = None) -> torch.Tensor:
    """log SoftStep from the two distances s − l and u − s (SoftKStep passes k + q − r and r − k)."""
    if isinstance(t, (int, float)):
        t = max(float(t), T_MIN)
    else:
        t = torch.as_tensor(t, dtype=above_l.dtype, device=above_l.device).clamp_min(T_MIN)
    floor = torch.finfo(above_l.dtype).tiny ** 0.5  # keeps 1/(t·(s−l)) finite next to l and u
    log_above, log_below = torch.log(above_l.clamp_min(floor)) / t, torch.log(below_u.clamp_min(floor)) / t
    if power_floor is not None:  # log max(a^(1/t), floor) = max(log(a) / t, log floor)
        log_above, log_below = (v.clamp_min(math.log(power_floor)) for v in (log_above, log_below))
    x = log_above - log_below
    # outside (l, u) the fills replace the (finite) transition value, and their gradient is exactly 0
    return F.logsigmoid(x).masked_fill(below_u <= 0, 0.0).masked_fill(above_l <= 0, -torch.inf)


def soft_step(s: torch.Tensor, l: torch.Tensor, u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SoftStep(s; l, u, t), the equation of section 3.1: exp of :func:`log_soft_step`.

    Parameters
    ----------
    s : torch.Tensor
        Normalised similarities.
    l, u : torch.Tensor or float
        Lower and upper thresholds, broadcast against ``s``.
    t : torch.Tensor or float
        The transition's curvature, clamped at ``T_MIN``.

    Returns
    -------
    torch.Tensor
        Weights in [0, 1]: exactly 0 for s ≤ l, exactly 1 for s ≥ u.

    Examples
    --------
    >>> import torch
    >>> soft_step(torch.tensor([0.1, 0.5, 0.6, 0.9]), 0.2, 0.8, 1.0)
    tensor([0.0000, 0.5000, 0.6667, 1.0000])
    """
    return torch.exp(log_soft_step(s, l, u, t))


@torch.no_grad()
def soft_step_weights(
    s: torch.Tensor, l: torch.Tensor, u: torch.Tensor, t: torch.Tensor, power_floor: float | None = None
) -> torch.Tensor:
    """SoftStep(s; l, u, t) without autograd and in fewer passes, for evaluation: 1 / (1 + ((u − s)/(s − l))^(1/t)),
    the same function as :func:`soft_step` (exactly 0 for s ≤ l, exactly 1 for s ≥ u).

    Parameters
    ----------
    s : torch.Tensor
        Normalised similarities.
    l, u, t : torch.Tensor or float
        As for :func:`soft_step`.
    power_floor : float, optional
        nona_anon's floor on both powers (an option, as in :func:`log_soft_step`); taken through the log form.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> import torch
    >>> soft_step_weights(torch.tensor([0.1, 0.5, 0.6, 0.9]), 0.2, 0.8, 1.0)
    tensor([0.0000, 0.5000, 0.6667, 1.0000])
    """
    if power_floor is not None:
        return torch.exp(log_soft_step(s, l, u, t, power_floor))
    inv_t = 1.0 / (max(float(t), T_MIN) if isinstance(t, (int, float)) else torch.as_tensor(t).clamp_min(T_MIN))
    above = torch.sub(s, l).clamp_min_(0.0)
    ratio = torch.sub(u, s).clamp_min_(0.0).div_(above)  # inf below l, 0 above u
    # 0/0 only where s = l = u (u − l below float resolution, a step learned hard): s ≤ l wins, as in log_soft_step
    return ratio.pow_(inv_t).add_(1.0).reciprocal_().nan_to_num_(nan=0.0)


def log_soft_k_step(ranks: torch.Tensor, k: torch.Tensor, q: float = 4.0, t: float = 0.75) -> torch.Tensor:
    """Log-weights of SoftKStep, Algorithm 1 lines 22–29 (with line 24's sign corrected).

    step = 1 for rank ≤ k, 0 for rank ≥ k + q, and (k + q − r)^(1/t) / ((k + q − r)^(1/t) + (r − k)^(1/t))
    between. Line 24 as printed, (k − r)^(1/t), is negative there: docs/paper-choices.md#the-heads.

    Parameters
    ----------
    ranks : torch.Tensor
        0-based ranks (0 = most similar).
    k : torch.Tensor
        The neighbourhood size, broadcast against ``ranks``.
    q : float, default=4.0
        Width of the transition, > 0.
    t : float, default=0.75
        The transition's curvature.

    Returns
    -------
    torch.Tensor
        log(step), like ``ranks``: −inf exactly where the weight is 0.

    Examples
    --------
    >>> import torch
    >>> log_soft_k_step(torch.arange(8.0), torch.tensor(2.0)).exp()
    tensor([1.0000, 1.0000, 1.0000, 0.8123, 0.5000, 0.1877, 0.0000, 0.0000])
    """
    if q <= 0:
        raise ValueError(f"SoftKStep q must be > 0; got {q}")
    return _log_step((k + q) - ranks, ranks - k, t)
