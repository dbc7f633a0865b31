"""Randomly initialised transformers models (``source=random``): the same architecture, seeded, for tests and benchmarks.

``random_size`` is ``tiny`` (the sizes of a small config, overridable per key with ``tiny``) or ``full`` (the
real model's sizes: the config class's defaults or the builder's own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

RANDOM_SIZES = ("tiny", "full")


def sizes(defaults: dict, tiny: dict | None) -> dict:
    """The tiny sizes: ``defaults`` with the keys ``tiny`` sets replaced."""
    return {**defaults, **dict(tiny or {})}


def random_config(size: str, *, full: Callable[[], Any], tiny: Callable[[], Any]):
    """``full()`` or ``tiny()`` by ``size``; any other size is a ValueError naming the choices."""
    if size == "full":
        return full()
    if size != "tiny":
        raise ValueError(f"random_size must be 'tiny' or 'full'; got {size!r}")
    return tiny()


def seeded(model_cls, cfg, seed: int):
    """``model_cls(cfg)`` initialised under ``torch.manual_seed(seed)``, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_cls(cfg)
