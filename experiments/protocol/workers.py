"""Splits in parallel worker processes (``trainer.workers`` > 1), and the splits bar both paths share.

A stop request reaches the workers through a stop file (:class:`experiments.protocol.preemption.WorkerStop`);
:class:`Stopped` is raised once every split in flight has saved its checkpoint. In a worker the per-epoch bars are
off; the run's splits bar shows the workers' epochs instead (:class:`experiments.protocol.progress.InFlight`)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from experiments.protocol import preemption
from experiments.protocol.progress import InFlight
from softstep.training_types import Stopped

if TYPE_CHECKING:
    from experiments.protocol.setup import RunContext


@dataclass
class StoppedSplit:
    """A split that stopped on request (in a worker process, after saving its checkpoint) or before it started."""

    split: int
    message: str


def in_parallel(ctx: RunContext, todo: list[int], run_split: Callable, bar: dict) -> dict:
    """``run_split(ctx, split)`` of each split of ``todo`` in ``ctx.workers`` processes; what :func:`collect` returns."""
    from joblib import Parallel, delayed

    stop_file = ctx.store.key.dir / f".stop-{os.getpid()}.tmp"
    preemption.stop_workers_with(stop_file)
    worker = (str(stop_file), os.getpid())
    try:
        jobs = Parallel(n_jobs=ctx.workers, return_as="generator_unordered")(
            delayed(in_worker)(run_split, ctx, s, worker) for s in todo
        )
        waiting = f"{ctx.workers} worker processes starting"
        return collect(jobs, bar, InFlight(ctx.store.key.dir, waiting=waiting) if ctx.cfg.progress else None)
    except Stopped:
        raise
    except Exception as e:  # a worker ended by the same signal before its handler was installed
        if not preemption.STOP.is_set():
            raise
        raise Stopped(
            f"a worker process ended ({type(e).__name__}); finished splits and checkpoints are kept"
        ) from None
    finally:
        preemption.forget_stop_file(stop_file)


def in_worker(run_split: Callable, ctx: RunContext, split: int, worker: tuple[str, int]):
    """``run_split`` in a worker process: its signals, the run's stop file (``worker``: its path and the run's
    process id) and the run's end stop it; a stop request returns a :class:`StoppedSplit`."""
    preemption.install()
    stop = preemption.WorkerStop(*worker)
    report = InFlight.path(ctx.store.key.dir, split) if ctx.cfg.progress else None
    cfg = ctx.cfg.copy()
    cfg.progress = False
    try:
        return run_split(replace(ctx, cfg=cfg, stop=stop, report=report), split)
    except Stopped as e:
        return StoppedSplit(split, str(e))
    finally:
        if getattr(stop, "orphaned", False):  # the run was killed: its checkpoint is written, nobody waits for more
            os._exit(128 + signal.SIGTERM)


def collect(jobs, bar: dict, in_flight: InFlight | None = None) -> dict:
    """The trained splits of ``jobs`` by split; raises :class:`Stopped` after the last one when any of them stopped.
    ``in_flight``: the worker processes' epoch progress, shown on the splits' bar while they train."""
    trained, stopped = {}, []
    with tqdm(total=bar["total"], desc=bar["desc"], disable=bar["disable"]) as pbar:
        if in_flight is not None:
            in_flight.start(pbar)
        try:
            for t in jobs:
                pbar.update(1)
                if isinstance(t, StoppedSplit):
                    stopped.append(f"split {t.split}: {t.message}")
                elif t is not None:
                    trained[t.record["split"]] = t
        finally:
            if in_flight is not None:
                in_flight.stop()
    if stopped:
        raise Stopped("; ".join(sorted(stopped)))
    return trained
