"""The trainer's device knobs, resolved for the device a run is on: ``trainer.precision`` (bf16 autocasts the
extractor's forward; the MLP and the head stay float32), ``trainer.compile`` (``torch.compile`` of the training
step) and ``trainer.max_elements`` (the evaluation's memory bound, query × reference entries per block). What their
``auto`` values rest on is measured in ``results/benchmarks/gpu*.md`` and summed up in docs/performance.md
("What the device defaults rest on")."""

from __future__ import annotations

import torch

PRECISIONS = ("bf16", "32")
CPU_MAX_ELEMENTS = 2**22
BYTES_PER_ELEMENT = 32
MAX_EVAL_BYTES = 2 * 2**30


def resolve_device(name: str) -> torch.device:
    """``trainer.device``: ``auto`` → CUDA where a GPU is visible, else the CPU; any other name as given."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def resolve_precision(value, device) -> str:
    """``trainer.precision``: ``auto`` → ``32`` (docs/performance.md says why), or ``bf16`` / ``32``."""
    value = str(value)
    if value == "auto":
        return "32"
    if value not in PRECISIONS:
        raise ValueError(f"bad config value trainer.precision={value!r}: one of auto, {', '.join(PRECISIONS)}")
    return value


def resolve_compile(value, device) -> bool:
    """``trainer.compile``: ``auto`` → False (docs/performance.md says why), or true / false."""
    if value == "auto":
        return False
    if not isinstance(value, bool):
        raise ValueError(f"bad config value trainer.compile={value!r}: auto, true or false")
    return value


def resolve_max_elements(value, device, head=None) -> int:
    """``trainer.max_elements``: ``auto`` → sized from the device (docs/performance.md) and the head's
    ``predict_bytes_per_entry`` (:data:`BYTES_PER_ELEMENT` without a head, or for one that does not say),
    or an integer >= 1."""
    if value != "auto":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"bad config value trainer.max_elements={value!r}: 'auto' or an integer >= 1")
        return value
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_MAX_ELEMENTS
    free, _ = torch.cuda.mem_get_info(device)
    budget = min(free // 8, MAX_EVAL_BYTES)
    elements = max(budget // int(getattr(head, "predict_bytes_per_entry", BYTES_PER_ELEMENT)), CPU_MAX_ELEMENTS)
    return 1 << (int(elements).bit_length() - 1)


def check(trainer) -> None:
    """Raise ValueError naming the first bad device knob of a trainer config (before any work)."""
    from experiments.inputs.batches import DECODED_CACHE, resolve_num_workers

    resolve_precision(trainer.precision, "cpu")
    resolve_compile(trainer.compile, "cpu")
    if trainer.max_elements != "auto":
        resolve_max_elements(trainer.max_elements, "cpu")
    resolve_num_workers(trainer.num_workers)
    if trainer.decoded_cache not in DECODED_CACHE:
        raise ValueError(f"bad config value trainer.decoded_cache={trainer.decoded_cache!r}: auto, true or false")
