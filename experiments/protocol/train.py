"""The pipeline's side of training (:func:`softstep.training.fit` is the loop): the trainer settings built once from
``cfg.trainer``, checkpoints on disk, the stop flag that SLURM's warning signal sets, and the per-split progress.

With a checkpoint path, the state is saved after every epoch, and mid-epoch when a stop is requested
(:data:`experiments.protocol.preemption.STOP`, set by a signal); :class:`softstep.training_types.Stopped` is then raised and
a rerun resumes there.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from experiments.protocol.device import resolve_compile, resolve_max_elements, resolve_precision
from experiments.store.results import atomic_torch_save, atomic_write_text
from experiments.store.safety import load_checkpoint, quarantine
from softstep.safe_io import UnreadableJSON, read_json
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
    and, for validated epochs, the tracker's log line. ``report``: a file the same progress is written to after each
    epoch instead (a worker process's; :class:`InFlight` shows it in the run's process)."""

    HISTORY_FIELDS = ("epoch", "val_mse", "epoch_time_s", "train_time_s")

    def __init__(self, total: int, desc: str, enabled: bool, log=None, report: Path | None = None):
        self.total, self.desc, self.enabled, self.log, self.bar = total, desc, enabled, log, None
        self.report = report

    def __call__(self, epoch: int, entry: dict | None, best: float) -> None:
        if self.report is not None:
            atomic_write_text(self.report, json.dumps({"epoch": epoch + 1, "total": self.total, "best": best}))
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
        if self.report is not None:
            self.report.unlink(missing_ok=True)


class InFlight:
    """The epoch progress of the splits that worker processes train (``trainer.workers`` > 1), shown on the run's
    splits bar: ``split 3: epoch 12/200, best val 0.0041 | split 4: ...``, refreshed every ``interval`` seconds
    from the files the workers' :class:`EpochProgress` writes (:meth:`path`)."""

    def __init__(self, run_dir: Path, interval: float = 1.0, waiting: str = ""):
        self.run_dir, self.interval, self.waiting = Path(run_dir), interval, waiting
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def path(run_dir: Path, split: int) -> Path:
        return Path(run_dir) / f".progress-{split}.json"

    def line(self) -> str:
        """The splits in flight, by split number (a file being replaced or just removed is left out)."""
        parts = []
        for p in self.run_dir.glob(".progress-*.json"):
            try:
                state, split = read_json(p), int(p.stem.removeprefix(".progress-"))
                best = f", best val {state['best']:.4g}" if state["best"] != float("inf") else ""
                parts.append((split, f"split {split}: epoch {state['epoch']}/{state['total']}{best}"))
            except (UnreadableJSON, ValueError, KeyError, TypeError):
                continue
        return " | ".join(text for _, text in sorted(parts))

    def start(self, bar) -> None:
        def watch():  # ``waiting`` (e.g. "2 worker processes starting") until a split has trained an epoch
            seen = False
            while not self._halt.wait(self.interval):
                line = self.line()
                seen = seen or bool(line)
                bar.set_postfix_str(line or ("" if seen else self.waiting))

        self._thread = threading.Thread(target=watch, name="softstep-in-flight", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
        for p in self.run_dir.glob(".progress-*.json"):  # a worker that was killed leaves its file
            p.unlink(missing_ok=True)
