"""Preemption and time limits: checkpoint mid-epoch on SLURM's warning signal, then requeue. A split's checkpoint
file is :class:`FileCheckpoint`.

SIGTERM (``scancel``, most schedulers, ``kill``) and SIGINT (Ctrl-C) take the same path to the
same mid-epoch checkpoint, then exit with one line and code 128 + signal, without requeueing.

SLURM warns a job before it kills it (preemption, or the time limit): ``sbatch --signal=B:USR1@120``
in our array template, ``--signal=USR2@120`` under submitit. :func:`install` makes both signals set
:data:`STOP`; the training loop then saves a mid-epoch checkpoint at the next batch and raises
:class:`softstep.training_types.Stopped`. ``run.py`` hands that to :func:`exit_for_requeue`:

- under submitit (Hydra's submitit launcher), the signal's previous handler is submitit's own; it is
  called now that the checkpoint is on disk, and it pickles the job (the launcher's ``checkpoint()``
  resubmits the same overrides), runs ``scontrol requeue`` and exits;
- otherwise run.py exits with :data:`REQUEUE_EXIT` (75) and ``slurm/array.sbatch`` requeues the task.

Splits in worker processes (``trainer.workers``): the run's handler also creates a stop file that every worker
checks at each batch (:class:`WorkerStop`), so a signal to the parent alone reaches them; a worker also stops when
its parent is gone (a SIGKILL of the run), so no orphan keeps training. Handlers import nothing.

Either way the restarted job runs the same config: finished splits are skipped (their result files
exist), the interrupted split resumes from its checkpoint (:func:`resume_notes` says so in the log),
and a wandb run resumes under its deterministic id.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

from experiments.store.results import atomic_torch_save
from experiments.store.safety import load_checkpoint, quarantine

#: Set to ask the training loop to checkpoint at the next batch boundary and stop.
STOP = threading.Event()
REQUEUE_EXIT = 75
SIGNALS = tuple(getattr(signal, name) for name in ("SIGUSR1", "SIGUSR2") if hasattr(signal, name))
#: Stop requests that are not preemption (``scancel``, ``kill``, Ctrl-C): the same mid-epoch checkpoint,
#: then exit 128 + signal number with one line, and no requeue. A second one stops at once.
INTERRUPTS = (signal.SIGTERM, signal.SIGINT)
_previous: dict[int, object] = {}
_caught: list[int] = []
#: Files that tell this run's worker processes to stop (:func:`stop_workers_with`); created by the handler.
_stop_files: list[str] = []


def _request_stop() -> None:
    STOP.set()
    for path in _stop_files:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        except OSError:
            pass


def _handler(signum, frame) -> None:
    if signum in INTERRUPTS:
        if STOP.is_set() and any(s in INTERRUPTS for s in _caught):
            raise KeyboardInterrupt  # asked twice: stop now (the last epoch's checkpoint is kept)
        _caught.append(signum)
        _request_stop()
        return
    _caught.append(signum)
    print(
        f"[softstep] caught {signal.Signals(signum).name}: checkpointing at the next training step, then requeueing",
        file=sys.stderr,
        flush=True,
    )
    _request_stop()


def stop_workers_with(path) -> None:
    """Register ``path`` as the stop file of this run's workers (created on a stop request, at once if one came)."""
    _stop_files.append(str(path))
    if STOP.is_set():
        _request_stop()


def forget_stop_file(path) -> None:
    """Unregister and remove a stop file (the run's workers have ended)."""
    if str(path) in _stop_files:
        _stop_files.remove(str(path))
    try:
        os.unlink(path)
    except OSError:
        pass


class WorkerStop:
    """A worker process's stop request (the ``stop`` of :func:`softstep.training.fit`): its own signal
    (:data:`STOP`), the run's stop file, or its parent gone (then it stops too, rather than train as an orphan)."""

    def __init__(self, stop_file, parent_pid: int):
        self.stop_file, self.parent_pid, self.orphaned = str(stop_file), parent_pid, False

    def is_set(self) -> bool:
        if STOP.is_set() or os.path.exists(self.stop_file):
            return True
        if os.getppid() != self.parent_pid:
            self.orphaned = True  # the worker then exits once its checkpoint is written
            STOP.set()
            return True
        return False


def install() -> bool:
    """Route SIGUSR1/SIGUSR2 (preemption) and SIGTERM/SIGINT (a stop) to a checkpoint request; keep any
    previous handler (submitit's) for afterwards.

    Returns False where signals cannot be installed (not the main thread)."""
    try:
        for sig in SIGNALS + INTERRUPTS:
            prev = signal.getsignal(sig)
            if prev is not _handler:
                _previous[sig] = prev
                signal.signal(sig, _handler)
    except ValueError:
        return False
    return True


def exit_for_requeue(err: BaseException) -> NoReturn:
    """After a checkpoint on request: a stop (SIGTERM, SIGINT) exits 128 + signal with one line; a
    preemption lets submitit requeue (when it is the job's runner), else exits 75."""
    signum = _caught[-1] if _caught else None
    if signum in INTERRUPTS:
        print(
            f"[softstep] stopped by {signal.Signals(signum).name}: {err}; rerun the same command to resume",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(128 + signum)
    print(f"[softstep] preempted: {err}", file=sys.stderr, flush=True)
    prev = _previous.get(signum)
    if callable(prev):  # submitit's checkpoint_and_try_requeue: pickles the job, scontrol requeue, sys.exit
        prev(signum, None)
    sys.exit(REQUEUE_EXIT)


def resume_notes(cfg) -> list[str]:
    """One line per requested split that has a checkpoint to resume from (printed at start, for the log)."""
    from experiments.protocol.settings import check_config
    from experiments.store.identity import run_key
    from experiments.store.safety import UnreadableFile, load_tensors

    try:
        splits = check_config(cfg)
        key = run_key(cfg)
        splits = [0] if key.final else splits  # a final model is split 0 of its own folder
    except Exception:  # noqa: BLE001 - a bad config is reported by the run itself
        return []
    done = key.finished()
    notes = []
    for s in splits:
        ck = key.checkpoint(s)
        if s in done or not ck.exists():
            continue
        try:
            state = load_tensors(ck, keys=("epoch", "batch"))  # weights_only: a planted pickle runs nothing
        except UnreadableFile:
            continue  # the trainer moves it aside, says so in one line, and starts the split afresh
        notes.append(
            f"[softstep] split {s}: resuming from checkpoint {ck} (epoch {state['epoch']}, batch {state['batch']})"
        )
    return notes


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
