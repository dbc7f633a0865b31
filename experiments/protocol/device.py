"""The trainer's device knobs, resolved for the device a run is on: precision, compile, max_elements.

``auto`` picks from what was measured (on an H100 for issue 11; ``results/benchmarks/gpu.md``):

- ``trainer.precision``: ``bf16`` autocasts the extractor's forward (and so its backward) on CUDA
  (on the CPU too, where it is rarely faster). The MLP and the head always run in float32:
  the extractor's output is cast back before the MLP, so similarities, softmax and ranks stay
  float32 (DiffKNN ranks in float64). ``auto`` is ``32`` everywhere: end to end on an H100
  (``results/benchmarks/gpu_full.md``) bf16 made a resnet18 epoch 26 % faster with 0 workers and
  12 % slower with 8, and an efficientnet_b0 epoch 13 % slower; at the paper's batch size of 32 the GPU alone trained
  resnet18 at 3,616 images/s in float32 (TF32 convolutions) against 2,527 with bf16 (the step is
  bound by kernel launches). No single default wins; set it per extractor.
- ``trainer.compile``: ``torch.compile`` (default mode) of the training step's forward and loss.
  ``auto`` is off: on an H100 compiling took 5–21 s per head, and the compiled step at B = 32 was
  3–33 % faster for nca_g, nca_i and the DiffKNN heads but 34 % slower for nca; on the CPU its
  compile time outweighs what it saves in a job.
- ``trainer.max_elements``: the evaluation's memory bound (query × reference entries per block).
  ``auto`` is 2²² on the CPU; on CUDA, the largest power of two whose blocks take at most
  min(1/8 of the free memory, 2 GiB), at the head's ``predict_bytes_per_entry``: the similarity
  block and the temporaries of the same shape that its predict makes. Measured on an H100 as peak
  extra memory per entry: nca 15 bytes at 2²⁷ entries per block (1.9 GiB, predict 1.5× dense at
  N = 10⁶), nca_i 21 and diffknn_i 26–32 (``results/benchmarks/gpu*.md``); so 16 bytes for plain
  NCA (2²⁷ entries), 32 for nca_g/nca_i (2²⁶) and 33 for DiffKNN (2²⁵: at 2²⁶ it peaked at 2,050 MiB, just
  over 2 GiB) on a GPU with ≥ 16 GiB free.
"""

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
    """``trainer.precision``: ``auto`` → ``32`` (see the module docstring), or ``bf16`` / ``32``."""
    value = str(value)
    if value == "auto":
        return "32"
    if value not in PRECISIONS:
        raise ValueError(f"bad config value trainer.precision={value!r}: one of auto, {', '.join(PRECISIONS)}")
    return value


def resolve_compile(value, device) -> bool:
    """``trainer.compile``: ``auto`` → False (see the module docstring), or true / false."""
    if value == "auto":
        return False
    if not isinstance(value, bool):
        raise ValueError(f"bad config value trainer.compile={value!r}: auto, true or false")
    return value


def resolve_max_elements(value, device, head=None) -> int:
    """``trainer.max_elements``: ``auto`` → sized from the device (see the module docstring) and the head's
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
