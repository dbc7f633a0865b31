"""Learned SoftStep parameters, global or instance-wise (section 3.1; Algorithm 1 lines 2–5, 13–18; Algorithm 2 lines 2–10, 14–17)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .functional import log_soft_k_step, log_soft_step

PARAM_MODES = ("global", "instance")


def renamed_step_argument(step, softstep, head: str, default=None):
    """A head's ``step`` (the parameter mode of its SoftStep or SoftKStep), given as ``step`` or under its old name
    ``softstep`` (deprecated: a ``DeprecationWarning``; it goes in a later release).

    Parameters
    ----------
    step : str or None
        The value of ``step``.
    softstep : str, None or Ellipsis
        The value of the old keyword, ``...`` when it was not given.
    head : str
        The head's class name, for the messages.
    default : str or None, default=None
        ``step``'s default (a ``step`` other than it, and other than ``softstep``, is a conflict).

    Returns
    -------
    str or None
        The mode to use.

    Examples
    --------
    >>> renamed_step_argument("global", ..., "NCAHead")
    'global'
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     renamed_step_argument(None, "instance", "NCAHead"), seen[0].category.__name__
    ('instance', 'DeprecationWarning')
    """
    if softstep is ...:
        return step
    warnings.warn(
        f"{head}(softstep=...) is now {head}(step=...); the old name goes in a later release",
        DeprecationWarning,
        stacklevel=3,
    )
    if step != default and step != softstep:
        raise TypeError(f"{head} got step={step!r} and its old name softstep={softstep!r}; give step only")
    return softstep


#: How the parameters start (``SigmoidParams(init=...)``): ``"zero"`` (ours: θ = 0, W = 0, b = 0, so σ = 0.5) or
#: ``"authors"`` (nona_anon similarity.py: θ ~ randn, a default-initialised ``nn.Linear``; from torch's seeded RNG).
PARAM_INITS = ("zero", "authors")


class SigmoidParams(nn.Module):
    """``n`` learned parameters in (0, 1): σ(θ) (``"global"``) or σ(W z + b) (``"instance"``).

    The ``params`` of Algorithm 2 lines 2–10 and ``k_param`` of Algorithm 1 lines 2–5; (l, u, t) = σ(W_ss z + b_ss)
    in section 3.1. ``init="zero"`` (ours) starts both modes at σ(0) = 0.5; ``init="authors"`` as the authors'
    SoftStep code (nona_anon similarity.py): θ = randn(n), or ``nn.Linear``'s default initialisation
    (docs/paper-choices.md#the-heads, "Initialisation").

    Parameters
    ----------
    n : int
        How many parameters per query.
    param_mode : {"global", "instance"}, default="global"
        One set for the model, or a linear layer of the query's embedding.
    embed_dim : int, optional
        The embedding width; required for ``"instance"``.
    init : {"zero", "authors"}, default="zero"
        See above.

    Examples
    --------
    >>> import torch
    >>> SigmoidParams(3, param_mode="instance", embed_dim=4)(torch.randn(2, 4))
    tensor([[0.5000, 0.5000, 0.5000],
            [0.5000, 0.5000, 0.5000]], grad_fn=<SigmoidBackward0>)
    """

    def __init__(self, n: int, *, param_mode: str = "global", embed_dim: int | None = None, init: str = "zero"):
        super().__init__()
        if param_mode not in PARAM_MODES:
            raise ValueError(f"unknown param_mode {param_mode!r}; allowed: {', '.join(PARAM_MODES)}")
        if init not in PARAM_INITS:
            raise ValueError(f"unknown init {init!r}; allowed: {', '.join(PARAM_INITS)}")
        self.param_mode = param_mode
        if param_mode == "instance":
            if not embed_dim or embed_dim < 1:
                raise ValueError(f"param_mode='instance' needs embed_dim >= 1; got {embed_dim}")
            self.linear = nn.Linear(embed_dim, n)  # "authors": nn.Linear's own initialisation, as nona_anon
            if init == "zero":
                nn.init.zeros_(self.linear.weight)
                nn.init.zeros_(self.linear.bias)
        else:
            self.theta = nn.Parameter(torch.randn(n) if init == "authors" else torch.zeros(n))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The parameters for queries ``z`` (B, d).

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)

        Returns
        -------
        torch.Tensor, shape (B, n)
        """
        if self.param_mode == "instance":
            w, b = self.linear.weight, self.linear.bias  # met in z's dtype (softstep.dtypes)
            return torch.sigmoid(nn.functional.linear(z, w.to(z.dtype), b.to(z.dtype)))
        return torch.sigmoid(self.theta).to(z.dtype).expand(z.shape[0], -1)


class SoftStep(nn.Module):
    """SoftStep on row-normalised similarities: Algorithm 2 lines 7–17.

    (l₀, u₀, t) = σ(·) per query; l = min(l₀, top) − ε (line 15); u = l + u₀(1 − l) (line 16); the result,
    log SoftStep(s_norm; l, u, t), is what line 17 adds to the raw similarities. How ``top`` and the
    normalisation interact: docs/paper-choices.md#the-heads ("Row min–max normalisation"); ε's floor:
    docs/paper-choices.md#softstep-in-log-space.

    Parameters
    ----------
    param_mode : {"global", "instance"}, default="global"
        Model-level or per-query (l₀, u₀, t).
    embed_dim : int, optional
        The embedding width; required for ``"instance"``.
    eps : float, default=1e-4
        ε of line 15, in (0, 1).
    init : {"zero", "authors"}, default="zero"
        How (l₀, u₀, t) start (:class:`SigmoidParams`).
    power_floor : float, optional
        nona_anon's ``S_1`` floor of both powers (1e-12; :func:`softstep.functional.log_soft_step`); None: the
        equation as printed.

    Examples
    --------
    >>> import torch
    >>> step = SoftStep()  # starts at l₀ = u₀ = t = 0.5: l ≈ 0.5, u ≈ 0.75
    >>> step(torch.tensor([[0.25, 0.625, 1.0]]), torch.zeros(1, 4)).exp()
    tensor([[0.0000, 0.5006, 1.0000]], grad_fn=<ExpBackward0>)
    """

    def __init__(
        self,
        *,
        param_mode: str = "global",
        embed_dim: int | None = None,
        eps: float = 1e-4,
        init: str = "zero",
        power_floor: float | None = None,
    ):
        super().__init__()
        if not (isinstance(eps, (int, float)) and 0 < eps < 1):
            raise ValueError(f"eps must be a number in (0, 1); got {eps!r}")
        if power_floor is not None and not (isinstance(power_floor, (int, float)) and 0 < power_floor < 1):
            raise ValueError(f"power_floor must be None or a number in (0, 1); got {power_floor!r}")
        self.params = SigmoidParams(3, param_mode=param_mode, embed_dim=embed_dim, init=init)
        self.eps = eps
        self.power_floor = power_floor

    def forward(self, s_norm: torch.Tensor, z: torch.Tensor, top: torch.Tensor | None = None) -> torch.Tensor:
        """Log-weights for normalised similarities ``s_norm`` of queries ``z`` (Algorithm 2 lines 7–17).

        Parameters
        ----------
        s_norm : torch.Tensor, shape (B, N)
            Row-normalised similarities (line 13).
        z : torch.Tensor, shape (B, d)
            The queries, for instance-wise parameters.
        top : torch.Tensor, shape (B, 1), optional
            Line 14's largest normalised similarity of the other items; None means 1.

        Returns
        -------
        torch.Tensor, shape (B, N)
            log SoftStep, in [−inf, 0].
        """
        return log_soft_step(s_norm, *self.thresholds(z, s_norm.dtype, top), self.power_floor)

    def thresholds(self, z: torch.Tensor, dtype: torch.dtype, top: torch.Tensor | None = None):
        """(l, u, t), each (B, 1), of queries ``z``: Algorithm 2 lines 14–16 (``top`` as in :meth:`forward`).

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        dtype : torch.dtype
            The normalised similarities' dtype (ε's floor).
        top : torch.Tensor, shape (B, 1), optional

        Returns
        -------
        l, u, t : torch.Tensor
        """
        l0, u0, t = (p.unsqueeze(-1) for p in self.params(z).unbind(-1))
        eps = max(self.eps, 8 * torch.finfo(dtype).eps)
        if top is not None:  # min(l₀, top) by a where (why: docs/performance.md)
            top = top.to(l0.dtype)
            l0 = torch.where(top < l0, top, l0)
        l = l0 - eps
        u = l + u0 * (1 - l)
        return l, u, t


class SoftKStep(nn.Module):
    """The learned neighbourhood size k and its step: Algorithm 1 lines 2–5 and 13–19.

    k = max(σ(·)(N − 1), 1) with N = |Z_N| (line 9), a learned fraction of the reference set; σ is applied
    once (docs/paper-choices.md#the-heads, "k"). q and t are fixed, as in line 19.

    Parameters
    ----------
    param_mode : {"global", "instance"}, default="global"
        Model-level or per-query k.
    embed_dim : int, optional
        The embedding width; required for ``"instance"``.
    q : float, default=4.0
        Width of the step's transition, in ranks.
    t : float, default=0.75
        The transition's curvature.
    init : {"zero", "authors"}, default="zero"
        How k's fraction starts (:class:`SigmoidParams`; nona_anon has no SoftKStep: "authors" starts it as
        its SoftStep parameters, randn or a default ``nn.Linear``).

    Examples
    --------
    >>> import torch
    >>> kstep = SoftKStep()
    >>> kstep.k(torch.zeros(1, 4), n_ref=9)  # σ(0) = 0.5 of the 8 candidates
    tensor([[4.]], grad_fn=<ClampMinBackward0>)
    >>> kstep(torch.arange(9.0).unsqueeze(0), torch.zeros(1, 4), n_ref=9).exp()
    tensor([[1.0000, 1.0000, 1.0000, 1.0000, 1.0000, 0.8123, 0.5000, 0.1877, 0.0000]],
           grad_fn=<ExpBackward0>)
    """

    def __init__(
        self,
        *,
        param_mode: str = "global",
        embed_dim: int | None = None,
        q: float = 4.0,
        t: float = 0.75,
        init: str = "zero",
    ):
        super().__init__()
        self.params = SigmoidParams(1, param_mode=param_mode, embed_dim=embed_dim, init=init)
        self.q, self.t = q, t

    def k(self, z: torch.Tensor, n_ref: int) -> torch.Tensor:
        """Per-query k = max(σ(·)(n_ref − 1), 1): Algorithm 1 lines 13–18.

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        n_ref : int
            N, the size of the reference set (line 9).

        Returns
        -------
        torch.Tensor, shape (B, 1)
        """
        return (self.params(z) * (n_ref - 1)).clamp_min(1.0)

    def forward(
        self, ranks: torch.Tensor, z: torch.Tensor, n_ref: int, *, k_floor: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Log-weights SoftKStep(ranks, k, q, t) for 0-based ``ranks``: Algorithm 1 line 19.

        Parameters
        ----------
        ranks : torch.Tensor, shape (B, N)
            0-based ranks (0 = most similar).
        z : torch.Tensor, shape (B, d)
        n_ref : int
            N, the size of the reference set.
        k_floor : torch.Tensor, shape (B, 1), optional
            A per-query lower bound on k (docs/paper-choices.md#the-heads, "The k floor").

        Returns
        -------
        torch.Tensor, shape (B, N)
        """
        k = self.k(z, n_ref)
        if k_floor is not None:  # max(k, floor) by a where (why: docs/performance.md)
            k_floor = k_floor.to(k.dtype)
            k = torch.where(k_floor > k, k_floor, k)
        return log_soft_k_step(ranks, k, self.q, self.t)
