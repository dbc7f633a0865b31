"""NCA with optional SoftStep: section 3.3 and Algorithm 2."""

from __future__ import annotations

import torch

from . import functional as Fn
from . import similarities as Sim
from .neighbors import NeighborHead
from .step import SoftStep, renamed_step_argument

NORMS = ("paper", "exclude_self")
#: State-dict key prefixes of an NCAHead renamed since weights were saved (old → new): its SoftStep was ``softstep``.
RENAMED_KEYS = {"softstep.": "step."}


def current_key(key: str, head_prefix: str = "") -> str:
    """``key`` of a state dict saved before an NCAHead's submodule was renamed (:data:`RENAMED_KEYS`), under its
    name now; any other key unchanged.

    Parameters
    ----------
    key : str
    head_prefix : str, default=""
        Where the head sits in the state dict (``"head."`` in a Regressor's, ``"model.head."`` in a saved model).

    Returns
    -------
    str

    Examples
    --------
    >>> current_key("head.softstep.params.theta", "head.")
    'head.step.params.theta'
    >>> current_key("mlp.0.weight", "head.")
    'mlp.0.weight'
    """
    for old, new in RENAMED_KEYS.items():
        if key.startswith(head_prefix + old):
            return head_prefix + new + key[len(head_prefix + old) :]
    return key


def _rename_saved_keys(state_dict, prefix, *args) -> None:
    """``load_state_dict``'s pre-hook: the weights of an NCAHead saved under its old names load under the new."""
    for key in [k for k in state_dict if current_key(k, prefix) != k]:
        state_dict[current_key(key, prefix)] = state_dict.pop(key)


class NCAHead(NeighborHead):
    """Neighbourhood component analysis, optionally with SoftStep: section 3.3 and Algorithm 2.

    ``step=None``: logits = Sim (plain NCA; the query's own entry weight 0). ``"global"`` or
    ``"instance"``: logits = Sim + log SoftStep(Norm(Sim)), Norm the row min–max of line 13. What
    ``norm`` changes: docs/paper-choices.md#the-heads ("Row min–max normalisation").

    Parameters
    ----------
    embed_dim : int
        The embedding width d.
    similarity : {"l2", "cos", "rbf", "dot"}, default="l2"
    step : {None, "global", "instance"}, default=None
        SoftStep's parameter mode, or none. Its old name ``softstep`` still works, with a ``DeprecationWarning``.
    gamma, learn_scale, scale_init, init_perplexity
        As for :class:`NeighborHead`.
    norm : {"paper", "exclude_self"}, default="paper"
        Line 13 as printed (the query's own similarity in the row's min–max) or without it.
    param_init : {"zero", "authors"}, default="zero"
        How SoftStep's parameters start (:class:`softstep.step.SigmoidParams`).
    power_floor : float, optional
        nona_anon's floor of SoftStep's two powers (1e-12 there; :class:`softstep.step.SoftStep`); None (default):
        Algorithm 2 as printed.

    Examples
    --------
    >>> import torch
    >>> head = NCAHead(2, step="global", learn_scale=False)
    >>> z_ref = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [9.0, 0.0]])
    >>> head.neighbor_weights(torch.zeros(1, 2), z_ref)  # the farthest gets weight exactly 0
    tensor([[0.6652, 0.2447, 0.0900, 0.0000]], grad_fn=<SoftmaxBackward0>)
    """

    def __init__(
        self,
        embed_dim: int,
        similarity: str = "l2",
        step: str | None = None,
        *,
        gamma=None,
        norm: str = "paper",
        learn_scale: bool = True,
        scale_init: str = "perplexity",
        init_perplexity: float = 5.0,
        param_init: str = "zero",
        power_floor: float | None = None,
        softstep=...,
    ):
        super().__init__(
            embed_dim,
            similarity,
            gamma=gamma,
            learn_scale=learn_scale,
            scale_init=scale_init,
            init_perplexity=init_perplexity,
        )
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)}")
        self.norm = norm
        step = renamed_step_argument(step, softstep, "NCAHead")
        self.step = (
            None
            if step is None
            else SoftStep(param_mode=step, embed_dim=embed_dim, init=param_init, power_floor=power_floor)
        )
        self._register_load_state_dict_pre_hook(_rename_saved_keys)

    @property
    def predict_bytes_per_entry(self) -> int:
        """Plain NCA's predict keeps fewer temporaries (docs/paper-choices.md#prediction-memory)."""
        return 16 if self.step is None else 32

    def logits(self, z, z_ref, mask=None, fr: Sim.Frame | None = None):
        """β·Sim, or β·Sim + log SoftStep(Norm(Sim)): Algorithm 2 lines 11–17; excluded entries −inf.

        Parameters
        ----------
        z : torch.Tensor, shape (B, d)
        z_ref : torch.Tensor, shape (N, d)
        mask : torch.Tensor of bool, shape (B, N), optional
            True = the query itself.
        fr : Frame, optional
            The call's frame (:meth:`frame`); None: this call's.

        Returns
        -------
        torch.Tensor, shape (B, N)
            Shifted by a per-row constant (softmax's weights are unchanged by it).
        """
        sim = self._raw_sim(z, z_ref, mask, fr)
        if self.step is None:
            return self._logits_from_sim(sim, z, None, None, mask)
        whole_row = self.norm == "paper" and mask is not None  # line 13: the query's own similarity included
        return self._logits_from_sim(sim, z, *Fn.row_bounds(sim, None if whole_row else mask), mask, whole_row)

    def _logits_from_sim(self, sim, z, lo, hi, mask=None, top_from_row=False):
        """Algorithm 2 lines 13–17 from Sim and the row bounds (``top_from_row``: line 14's top from the row): β·(Sim −
        hi) + log SoftStep(Norm(Sim)). Norm is scale-free, so it reads Sim without β."""
        logit = self._scaled(sim, self._row_max(sim, mask) if mask is not None or hi is None else hi.detach())
        if self.step is not None:
            s_norm = Fn.scale_rows(sim, lo, hi, mask)  # the query's own entry 0
            # line 14: the largest normalised similarity of the other items (None: 1, the row's maximum is one of them)
            top = s_norm.masked_fill(mask, -torch.inf).max(-1, keepdim=True).values if top_from_row else None
            logit = logit + self.step(s_norm, z, top)
        return logit if mask is None else logit.masked_fill(mask, -torch.inf)

    def _predict(self, fr, z, z_ref, y2, max_elements):
        """Tiles of references, each prepared once: an online softmax for plain NCA; with SoftStep one pass for each
        row's min and max (Norm, line 13), then one for the weights."""
        queries = Sim.side(fr, z)
        acc = torch.zeros(len(z), y2.shape[1], dtype=z.dtype, device=z.device)
        denom = torch.zeros(len(z), 1, dtype=z.dtype, device=z.device)
        if self.step is not None:
            return self._predict_softstep(fr, queries, z, z_ref, y2, max_elements, acc, denom)
        run_max = torch.full_like(denom, -torch.inf)
        for _, i, j, sim in self._blocks(fr, queries, z_ref, max_elements):
            new_max = torch.maximum(run_max[i], sim.amax(-1, keepdim=True))
            rescale = torch.exp(self._scaled(run_max[i], new_max)).masked_fill(torch.isinf(run_max[i]), 0.0)
            p = torch.exp_(self._scaled(sim, new_max))
            denom[i] = denom[i] * rescale + p.sum(-1, keepdim=True)
            acc[i] = acc[i] * rescale + p @ y2[j]
            run_max[i] = new_max
        return acc / denom

    def _predict_softstep(self, fr, queries, z, z_ref, y2, max_elements, acc, denom):
        """Algorithm 2 lines 13–17 in probability space: weights exp(β·(Sim − hi)) · SoftStep(Norm(Sim)) ≤ 1, the row's
        most similar reference weighing exactly 1 (Norm = 1 ≥ u), so that plain sums need no running maximum."""
        lo = torch.full_like(denom, torch.inf)
        hi = torch.full_like(denom, -torch.inf)
        l, u, t = self.step.thresholds(z, z.dtype)
        for p, i, j, sim in self._blocks(fr, queries, z_ref, max_elements, passes=2, first=Sim.similarity_bounds):
            if p == 0:  # the block's row bounds, without its Sim
                lo[i], hi[i] = torch.minimum(lo[i], sim[0]), torch.maximum(hi[i], sim[1])
                continue
            s_norm = Fn.scale_rows(sim, lo[i], hi[i])
            step = Fn.soft_step_weights(s_norm, l[i], u[i], t[i], self.step.power_floor)
            w = torch.exp_(self._scaled(sim, hi[i])).mul_(step)
            denom[i] += w.sum(-1, keepdim=True)
            acc[i] += w @ y2[j]
        return acc / denom
