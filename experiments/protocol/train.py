"""Training and evaluation of one split: Adam, early stopping on validation MSE, resumable.

- Neighbour heads use each training batch as their own reference set (``exclude_self=True``);
  the batch order is reshuffled every epoch from (seed, epoch), so a resumed run sees the
  same batches.
- Evaluation embeds the whole training split in eval mode as the reference set and predicts
  through the head's memory-bounded ``predict``.
- Early stopping keeps the epoch with the LOWEST validation MSE and restores its weights.
- With a checkpoint path, the state is saved after every epoch, and mid-epoch when a stop is
  requested (``STOP.set()``, e.g. from SLURM's pre-termination signal); a rerun resumes there.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from experiments.inputs.batches import Inputs
from experiments.metrics import mse
from experiments.protocol.device import autocast_dtype, resolve_compile, resolve_max_elements, resolve_precision
from experiments.protocol.model import Regressor, embed_rows
from experiments.store.results import atomic_torch_save
from experiments.store.safety import load_checkpoint

#: Set to ask the training loop to checkpoint at the next batch boundary and raise :class:`Preempted`.
STOP = threading.Event()


class Preempted(Exception):
    """Training stopped on request after saving a checkpoint; rerun to resume."""


@dataclass(frozen=True)
class TrainerSettings:
    """How :func:`fit` trains one split: the fields of ``configs/trainer/`` it reads, resolved for the device.

    ``reference="batch"``: a neighbour head's reference set in training is the batch itself (the paper);
    ``"sample"``: the batch followed by a fresh random ``reference_fraction`` of the rest of the training split
    for every batch (as ModernNCA samples its candidates). The first ``eval_from_epoch`` epochs train without
    validation (the authors' ``start_after_epoch``). ``precision`` (``32`` | ``bf16``: the extractor's autocast)
    and ``compile`` (``torch.compile`` of the step) come resolved by :mod:`experiments.protocol.device`; ``channels_last``
    stores a fine-tuned extractor's convolution weights in NHWC on CUDA (off in the pipeline: docs/performance.md)."""

    max_epochs: int
    patience: int
    batch_size: int
    lr: float
    extractor_lr: float = 1e-5
    weight_decay: float = 0.0
    eval_batch_size: int = 512
    max_elements: int = 2**22
    device: str = "cpu"
    precision: str = "32"
    compile: bool = False
    eval_from_epoch: int = 0
    reference: str = "batch"
    reference_fraction: float = 0.3
    channels_last: bool = False

    @classmethod
    def from_config(cls, trainer: DictConfig, device: torch.device, head) -> TrainerSettings:
        """The settings of ``cfg.trainer`` (validated by :mod:`experiments.protocol.settings`) on ``device`` for ``head``."""
        t = trainer
        return cls(
            max_epochs=t.max_epochs,
            patience=t.patience,
            batch_size=t.batch_size,
            lr=t.lr,
            extractor_lr=t.extractor_lr,
            weight_decay=t.weight_decay,
            eval_batch_size=t.eval_batch_size,
            max_elements=resolve_max_elements(t.max_elements, device, head),
            device=str(device),
            precision=resolve_precision(t.precision, device),
            compile=resolve_compile(t.compile, device),
            eval_from_epoch=t.eval_from_epoch,
            reference=t.reference,
            reference_fraction=t.reference_fraction,
        )


@dataclass
class FitResult:
    best_epoch: int
    epochs_run: int
    val_mse: float
    test_mse: float
    history: list = field(default_factory=list)
    wall_time_s: float = 0.0
    runtime: dict = field(default_factory=dict)  # how it ran: device, precision, compile (recorded in the result file)


class EarlyStopping:
    """Keeps the lowest validation MSE seen; ``step`` returns True when patience has run out."""

    def __init__(self, patience: int):
        self.patience, self.best, self.best_epoch, self.bad_epochs = patience, float("inf"), -1, 0

    def step(self, val_mse: float, epoch: int) -> bool:
        if val_mse < self.best:
            self.best, self.best_epoch, self.bad_epochs = val_mse, epoch, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    @property
    def improved(self) -> bool:
        return self.bad_epochs == 0


@dataclass
class TrainState:
    """Where training stands (what a checkpoint holds besides the weights): the next epoch and batch, the early
    stopper, the best epoch's weights and the validation history."""

    stopper: EarlyStopping
    best_state: dict | None = None
    history: list = field(default_factory=list)
    epoch: int = 0
    first_batch: int = 0

    def finished(self, max_epochs: int) -> bool:
        return self.epoch >= max_epochs or (bool(self.history) and self.stopper.bad_epochs >= self.stopper.patience)


def fit(
    model: Regressor,
    inputs: Inputs,
    y_scaled: np.ndarray,
    train_idx,
    val_idx,
    test_idx,
    settings: TrainerSettings,
    *,
    seed: int,
    checkpoint: Path | None = None,
    progress: bool = True,
    log: Callable[[dict, int], None] | None = None,
    desc: str = "",
    epoch_metrics: Callable[[Regressor], dict] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_idx`` with early stopping on ``val_idx``; return val and test MSE of the best epoch.

    ``epoch_metrics(model)``, optional: more numbers to record after each epoch's validation (in the history and
    the tracker). Each history entry records its time (``epoch_time_s``: training plus validation; ``train_time_s``)."""
    s, start = settings, time.time()
    y = torch.as_tensor(y_scaled, dtype=torch.float32)
    y_dev = y.to(s.device)  # copied once: a per-batch copy from pageable memory can wait for the GPU
    place_model(model, s)
    step_loss = training_step(model, s.compile)
    opt = optimizer(model, s)
    state = TrainState(EarlyStopping(s.patience))
    resume(checkpoint, model, opt, state, s.device)
    bar = tqdm(total=s.max_epochs, initial=state.epoch, desc=desc or "epochs", disable=not progress, leave=False)
    while not state.finished(s.max_epochs):
        epoch_start = time.time()
        train_epoch(model, inputs, y_dev, train_idx, step_loss, opt, s, seed, state, checkpoint)
        train_time = time.time() - epoch_start
        if not (
            state.epoch < s.eval_from_epoch and state.epoch < s.max_epochs - 1
        ):  # the last epoch is always validated
            val = evaluate(model, inputs, y, train_idx, {"val": val_idx}, s)["val"]
            state.stopper.step(val, state.epoch)
            if state.stopper.improved:
                state.best_state = copy.deepcopy(model.state_dict())
            extra = epoch_metrics(model) if epoch_metrics else {}
            state.history.append(
                {
                    "epoch": state.epoch,
                    "val_mse": val,
                    "epoch_time_s": round(time.time() - epoch_start, 4),
                    "train_time_s": round(train_time, 4),
                    **extra,
                }
            )
            if log:
                log({"val_mse": val, "best_val_mse": state.stopper.best, **extra}, state.epoch)
            bar.set_postfix(val_mse=f"{val:.4g}", best=f"{state.stopper.best:.4g}")
        state.epoch += 1
        bar.update(1)
        save_checkpoint(checkpoint, model, opt, state)
    bar.close()
    model.load_state_dict(state.best_state)
    final = evaluate(model, inputs, y, train_idx, {"val": val_idx, "test": test_idx}, s)
    device = torch.device(s.device)
    runtime = {
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "precision": s.precision,
        "compile": bool(s.compile),
        "max_elements": int(s.max_elements),
    }
    return FitResult(
        state.stopper.best_epoch, state.epoch, final["val"], final["test"], state.history, time.time() - start, runtime
    )


def place_model(model: Regressor, s: TrainerSettings) -> None:
    """The model on the device, with the extractor's autocast dtype, cuDNN's autotuner and memory format."""
    model.to(s.device)
    model.extractor_dtype = autocast_dtype(s.precision)
    if torch.device(s.device).type == "cuda" and model.extractor is not None:
        torch.backends.cudnn.benchmark = True  # fixed-size inputs: cuDNN picks its fastest kernels once
        if s.channels_last:  # 2-d convolutions in NHWC (tensor-core friendly); other weights are unaffected
            model.extractor.to(memory_format=torch.channels_last)


def training_step(model: Regressor, compile: bool) -> Callable:
    """The loss of one batch: the batch (and a sampled reference set) as the head's reference set, each item
    excluded from its own neighbours; compiled with ``torch.compile`` when asked."""

    def batch_loss(x, yb, y_ref):
        z_ref = model.embed(x)
        z = z_ref if len(z_ref) == len(yb) else z_ref[: len(yb)]  # the same tensor: the head computes it once
        return mse(model.head(z, z_ref, y_ref, exclude_self=True), yb)

    return torch.compile(batch_loss) if compile else batch_loss


def adam_kernels(device) -> dict:
    """Adam's implementation: ``fused`` on CUDA (one kernel per parameter group and step), ``foreach`` elsewhere."""
    return {"fused": True} if torch.device(device).type == "cuda" else {"foreach": True}


def optimizer(model: Regressor, s: TrainerSettings) -> torch.optim.Adam:
    """Adam over the MLP and head (``lr``) and a fine-tuned extractor (``extractor_lr``)."""
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.startswith("extractor.") and p.requires_grad],
            "lr": s.lr,
        }
    ]
    ext = [p for p in model.extractor.parameters() if p.requires_grad] if model.extractor is not None else []
    if ext:
        groups.append({"params": ext, "lr": s.extractor_lr})
    return torch.optim.Adam(groups, weight_decay=s.weight_decay, **adam_kernels(s.device))


def train_epoch(
    model,
    inputs: Inputs,
    y_dev: torch.Tensor,
    train_idx,
    step_loss,
    opt,
    s: TrainerSettings,
    seed: int,
    state: TrainState,
    checkpoint: Path | None,
) -> None:
    """One pass over the training split in the order (seed, epoch) fixes, from ``state.first_batch``; checks the
    summed loss once at the end (a CUDA step reads nothing back), and stops with a checkpoint when asked."""
    model.train()
    g = torch.Generator().manual_seed(seed * 100_003 + state.epoch)
    perm = np.asarray(train_idx)[torch.randperm(len(train_idx), generator=g).numpy()]
    y_epoch = y_dev[torch.as_tensor(perm).to(s.device)]  # this epoch's targets in batch order: one copy, then slices
    loss_sum = torch.zeros((), device=s.device)
    for b, x, y_ref in training_batches(model, inputs, y_dev, perm, train_idx, s, seed, state):
        yb = y_epoch[b * s.batch_size : (b + 1) * s.batch_size]
        loss = step_loss(x, yb, yb if y_ref is None else y_ref)
        loss_sum += loss.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if STOP.is_set():
            save_checkpoint(checkpoint, model, opt, state, next_batch=b + 1)
            raise Preempted(f"stopped in epoch {state.epoch} after batch {b}; checkpoint {checkpoint}")
    state.first_batch = 0
    if not math.isfinite(float(loss_sum)):  # the heads skip their per-step input scans on CUDA
        raise FloatingPointError(
            f"the training loss became NaN or inf in epoch {state.epoch}: the inputs contain NaN/inf "
            "or training diverged; check the data, or lower trainer.lr"
        )


def training_batches(
    model: Regressor, inputs: Inputs, y_dev, perm, train_idx, s: TrainerSettings, seed: int, state: TrainState
):
    """``(b, x, y_ref)`` per batch ``b`` of ``perm`` from ``state.first_batch``: ``y_ref`` None where the batch is its
    own reference set; with ``reference="sample"`` (neighbour heads) ``x`` is the batch followed by its sampled
    references and ``y_ref`` their labels. Batches smaller than ``model.min_batch`` are skipped."""
    bs, sample = s.batch_size, s.reference == "sample" and model.uses_reference
    xs = (
        None if sample else inputs.batches(perm[state.first_batch * bs :], bs, s.device)
    )  # one pass of the input pipeline
    for b in range(state.first_batch, math.ceil(len(perm) / bs)):
        idx = perm[b * bs : (b + 1) * bs]
        x = None if sample else next(xs)
        if len(idx) < model.min_batch:
            continue  # a neighbour head needs another item in the batch, BatchNorm a batch statistic
        if not sample:
            yield b, x, None
            continue
        rng = np.random.default_rng([seed, state.epoch, b])
        rest = np.setdiff1d(train_idx, idx)
        ref = np.concatenate([idx, rng.choice(rest, round(s.reference_fraction * len(rest)), replace=False)])
        yield b, next(inputs.batches(ref, len(ref), s.device)), y_dev[torch.as_tensor(ref).to(s.device)]


@torch.no_grad()
def evaluate(
    model: Regressor, inputs: Inputs, y: torch.Tensor, train_idx, query_sets: dict, s: TrainerSettings
) -> dict[str, float]:
    """MSE of each query set, with the whole training split (embedded in eval mode) as the reference set."""
    model.eval()
    z_ref = embed_rows(model, inputs, train_idx, s.eval_batch_size, s.device) if model.uses_reference else None
    y_ref = y[torch.as_tensor(train_idx)].to(s.device)
    out = {}
    for name, idx in query_sets.items():
        zq = embed_rows(model, inputs, idx, s.eval_batch_size, s.device)
        pred = model.head.predict(zq, z_ref, y_ref, max_elements=s.max_elements)
        out[name] = float(mse(pred, y[torch.as_tensor(idx)].to(s.device)))
    return out


def save_checkpoint(path: Path | None, model: Regressor, opt, state: TrainState, next_batch: int = 0) -> None:
    """The training state after ``next_batch`` batches of ``state.epoch`` (atomically; nothing without a path)."""
    if path is not None:
        atomic_torch_save(
            path,
            dict(
                model=model.state_dict(),
                optim=opt.state_dict(),
                best_state=state.best_state,
                history=state.history,
                epoch=state.epoch,
                batch=next_batch,
                best=state.stopper.best,
                best_epoch=state.stopper.best_epoch,
                bad_epochs=state.stopper.bad_epochs,
                torch_rng=torch.get_rng_state(),
            ),
        )


def resume(path: Path | None, model: Regressor, opt, state: TrainState, device) -> None:
    """Restore a checkpoint written by :func:`save_checkpoint`, if there is one (tensors and plain values only;
    an unreadable file was moved aside by :func:`experiments.store.safety.load_checkpoint`)."""
    ck = load_checkpoint(path, device) if path is not None and path.exists() else None
    if ck is None:
        return
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optim"])
    state.best_state, state.history, state.epoch, state.first_batch = (
        ck["best_state"],
        ck["history"],
        ck["epoch"],
        ck["batch"],
    )
    state.stopper.best, state.stopper.best_epoch, state.stopper.bad_epochs = (
        ck["best"],
        ck["best_epoch"],
        ck["bad_epochs"],
    )
    torch.set_rng_state(ck["torch_rng"])
