"""The paper's heads by name: one registry (Table 1's columns, appendix A's tuned values) that everything reads.

Every head has one call signature, ``head(z, z_ref, y_ref, exclude_self=False)`` (paper sections 3.2–3.3): ``z``
(B, d) are the queries, ``z_ref`` (N, d) and ``y_ref`` (N,) or (N, m) the reference set, the batch in training
(``exclude_self=True``: the first B references are the queries), the training split at evaluation.

A head is its class, its ``configs/head/<name>.yaml`` and one :data:`HEAD_SPECS` entry; :data:`HEADS` (the
factories), :data:`TUNED` (``configs/head/*.yaml`` read it through ``${paper_tuned:<head>,<key>}``), the classes a
saved model may build (:func:`head_classes`), the report's labels and the benchmarks all come from it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import partial

from torch import nn

from .diffknn import DiffKNNHead
from .linear import LinearHead
from .nca import NCAHead


@dataclass(frozen=True)
class HeadSpec:
    """One head of the registry: how it is built, how tables name it, and the paper's tuned settings for it.

    Parameters
    ----------
    cls : type
        The head class (:class:`LinearHead`, :class:`~softstep.NCAHead` or :class:`~softstep.DiffKNNHead`).
    keywords : dict
        The class's fixed arguments that make it this head.
    label : str
        Its name in tables and figures.
    tuned : dict
        The paper's tuned ``similarity``, ``embed_dim`` and ``batch_size`` (appendix A).

    Examples
    --------
    >>> HEAD_SPECS["nca_i"].label, HEAD_SPECS["nca_i"].needs_reference
    ('NCA i', True)
    """

    cls: type
    keywords: dict = field(default_factory=dict)
    label: str = ""
    tuned: dict = field(default_factory=dict)

    @property
    def needs_reference(self) -> bool:
        """Whether the head predicts from a reference set (a neighbour head)."""
        return bool(self.cls.needs_reference)


def _tuned(similarity: str | None, embed_dim: int) -> dict:
    return {"similarity": similarity, "embed_dim": embed_dim, "batch_size": 32}


#: The paper's six heads by name, in Table 1's order: the one registry.
HEAD_SPECS = {
    "linear": HeadSpec(LinearHead, {}, "Linear", _tuned(None, 25)),
    "nca": HeadSpec(NCAHead, {"step": None}, "NCA", _tuned("rbf", 100)),
    "nca_g": HeadSpec(NCAHead, {"step": "global"}, "NCA g", _tuned("l2", 100)),
    "nca_i": HeadSpec(NCAHead, {"step": "instance"}, "NCA i", _tuned("rbf", 100)),
    "diffknn_g": HeadSpec(DiffKNNHead, {"step": "global"}, "DiffKNN g", _tuned("rbf", 25)),
    "diffknn_i": HeadSpec(DiffKNNHead, {"step": "instance"}, "DiffKNN i", _tuned("l2", 25)),
}

#: The paper's tuned hyper-parameters per head (appendix A), from :data:`HEAD_SPECS`: ``configs/head/*.yaml`` read
#: them (``${paper_tuned:<head>,<key>}``), :class:`~softstep.SoftStepRegressor` defaults to them, and
#: ``scripts/make_tables.py --hparams-from paper`` keeps the results that match them.
TUNED = {name: spec.tuned for name, spec in HEAD_SPECS.items()}

#: Each head of :data:`HEAD_SPECS` as a factory: its class with its fixed arguments.
HEADS = {name: partial(spec.cls, **spec.keywords) for name, spec in HEAD_SPECS.items()}


def build_head(name: str, embed_dim: int, **kwargs) -> nn.Module:
    """One of the paper's six heads by name (Table 1's columns; :data:`HEADS`).

    Parameters
    ----------
    name : {"linear", "nca", "nca_g", "nca_i", "diffknn_g", "diffknn_i"}
    embed_dim : int
        The embedding width d.
    **kwargs
        Passed to a neighbour head (``similarity``, ``gamma``, and for k-NN ``q``, ``t``, ``rank_strength``);
        the linear head ignores them.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> head = build_head("nca_i", 25, similarity="rbf")
    >>> z = torch.randn(8, 25); head(z, z, torch.rand(8), exclude_self=True).shape
    torch.Size([8])
    """
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; allowed: {', '.join(HEADS)}")
    factory = HEADS[name]
    return factory(embed_dim, **(kwargs if factory.func.needs_reference else {}))


def head_classes() -> dict:
    """The only head classes a saved model can build: the registry's, under their two public paths.

    Returns
    -------
    dict of str to type
        config ``_target_`` → head class.

    Examples
    --------
    >>> sorted(head_classes())[:2]
    ['softstep.DiffKNNHead', 'softstep.LinearHead']
    """
    classes = dict.fromkeys(spec.cls for spec in HEAD_SPECS.values())
    return {f"{mod}.{cls.__name__}": cls for cls in classes for mod in ("softstep", "softstep.heads")}


def head_module(name: str, embed_dim: int, similarity: str | None) -> dict:
    """The ``config.head.module`` that builds the head :func:`build_head` gives for these arguments.

    Parameters
    ----------
    name : str
        One of :data:`HEADS`.
    embed_dim : int
    similarity : str or None
        Ignored by the linear head.

    Returns
    -------
    dict

    Examples
    --------
    >>> head_module("nca_i", 100, "rbf")
    {'_target_': 'softstep.NCAHead', 'embed_dim': 100, 'step': 'instance', 'similarity': 'rbf', 'gamma': None}
    """
    spec = HEAD_SPECS[name]
    node = {"_target_": f"softstep.{spec.cls.__name__}", "embed_dim": int(embed_dim), **spec.keywords}
    if spec.needs_reference and similarity is not None:
        node["similarity"], node["gamma"] = similarity, None  # γ None: 1/d (rbf), named so a file states it
    return node


def stepless_module(module) -> dict:
    """A neighbour head's ``config.head.module`` without its step: an NCA head (Algorithm 2 without lines 7–17)
    with the same similarity, embedding and β; a DiffKNN head without SoftKStep weighs every reference by
    softmax(β·Sim), which is this NCA head. The control ``head.control=no_step`` of the pipeline builds it.

    Parameters
    ----------
    module : mapping
        A ``config.head.module`` of :class:`NCAHead` or :class:`DiffKNNHead`.

    Returns
    -------
    dict

    Examples
    --------
    >>> stepless_module({"_target_": "softstep.DiffKNNHead", "embed_dim": 25, "step": "instance", "q": 4.0})
    {'_target_': 'softstep.NCAHead', 'embed_dim': 25, 'step': None}
    """
    accepted = set(inspect.signature(NCAHead).parameters) - {"step", "softstep"}
    kept = {k: v for k, v in dict(module).items() if k in accepted}
    return {"_target_": "softstep.NCAHead", **kept, "step": None}
