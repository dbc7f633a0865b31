"""The pipeline's side of training (:func:`softstep.training.fit` is the loop): the trainer settings built once from
``cfg.trainer``, checkpoints on disk, the stop flag that SLURM's warning signal sets, and the per-split progress.

With a checkpoint path, the state is saved after every epoch, and mid-epoch when a stop is requested
(:data:`experiments.protocol.preemption.STOP`, set by a signal); :class:`softstep.training_types.Stopped` is then raised and
a rerun resumes there.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from experiments.protocol.device import resolve_compile, resolve_max_elements, resolve_precision
from experiments.store.results import atomic_torch_save
from experiments.store.safety import load_checkpoint, quarantine
from softstep.training_types import TrainerSettings


def trainer_settings(trainer: DictConfig, device: torch.device, head) -> TrainerSettings:
    """The settings of ``cfg.trainer`` (validated by :mod:`experiments.protocol.settings`) on ``device`` for ``head``."""
    t = trainer
    return TrainerSettings(
        max_epochs=t.max_epochs,
        patience=t.patience,
        batch_size=t.batch_size,
        lr=t.lr,
        extractor_lr=t.extractor_lr,
        head_lr=t.head_lr,
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


class FileCheckpoint:
    """A split's checkpoint file (:class:`softstep.training_types.Checkpoint`): written atomically, loaded with
    ``weights_only`` (an unreadable file is moved aside by :func:`experiments.store.safety.load_checkpoint`)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self, device) -> dict | None:
        return load_checkpoint(self.path, device) if self.path.exists() else None

    def save(self, state: dict) -> None:
        atomic_torch_save(self.path, state)

    def reject(self, why: str) -> None:
        """A checkpoint that loads but does not fit the split's model or settings: moved aside with one line."""
        quarantine(self.path, f"{self.path}: {why}", "the split starts afresh")

    def __str__(self) -> str:
        return str(self.path)


class EpochProgress:
    """``on_epoch`` for :func:`softstep.training.fit`: a progress bar over epochs (validation MSE and the best so far)
    and, for validated epochs, the tracker's log line."""

    HISTORY_FIELDS = ("epoch", "val_mse", "epoch_time_s", "train_time_s")

    def __init__(self, total: int, desc: str, enabled: bool, log=None):
        self.total, self.desc, self.enabled, self.log, self.bar = total, desc, enabled, log, None

    def __call__(self, epoch: int, entry: dict | None, best: float) -> None:
        if self.bar is None:  # a resumed split starts at its checkpoint's epoch
            self.bar = tqdm(total=self.total, initial=epoch, desc=self.desc, disable=not self.enabled, leave=False)
        if entry is not None:
            extra = {k: v for k, v in entry.items() if k not in self.HISTORY_FIELDS}
            if self.log:
                self.log({"val_mse": entry["val_mse"], "best_val_mse": best, **extra}, epoch)
            self.bar.set_postfix(val_mse=f"{entry['val_mse']:.4g}", best=f"{best:.4g}")
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
