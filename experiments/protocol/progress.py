"""What a split's training loop reports to and is stopped by (:func:`loop_hooks`): its epoch bar (validation MSE and
the best so far, and the tracker's log line), its checkpoint file, the stop request and the per-epoch sparsity; and,
with ``trainer.workers`` > 1, the worker processes' epochs on the run's splits bar (:class:`InFlight`)."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from experiments.protocol import preemption
from experiments.protocol.evaluate import epoch_sparsity
from experiments.protocol.tracking import make_tracker
from experiments.store.results import atomic_write_text
from softstep.safe_io import UnreadableJSON, read_json

if TYPE_CHECKING:
    from experiments.protocol.setup import RunContext


@contextmanager
def loop_hooks(ctx: RunContext, split: int, model, inputs, idx: tuple, settings):
    """The keyword arguments of :func:`softstep.training.fit` that connect one split's loop to the run: ``on_epoch``
    (its :class:`EpochProgress` and tracker, closed when the body ends), ``checkpoint`` (its file, with
    ``trainer.checkpoint``), ``stop`` (the run's stop request) and ``epoch_metrics`` (a neighbour head's sparsity)."""
    cfg, key = ctx.cfg, ctx.store.key
    tracker = make_tracker(cfg, key.run_id, split)
    what = "final model (all labelled rows)" if key.final else f"split {split}"  # the bar says which it trains
    progress = EpochProgress(settings.max_epochs, f"{what}, at most", cfg.progress, tracker.log, report=ctx.report)
    try:
        yield dict(
            checkpoint=preemption.FileCheckpoint(key.checkpoint(split)) if cfg.trainer.checkpoint else None,
            stop=ctx.stop_request(),
            on_epoch=progress,
            epoch_metrics=epoch_sparsity(cfg, model, inputs, idx[0], idx[1], settings),
        )
    finally:
        progress.close()
        tracker.finish()


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
