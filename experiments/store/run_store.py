"""One configuration's folder in the store, and every chore a run does there, behind one object (:class:`RunStore`):
results of other data refused, finished splits whose saved model no longer loads set aside, leftovers of
interrupted runs removed, one split at a time under its lock, and a split's result written atomically with its
checkpoint dropped. The pipeline calls it and nothing else of the store; what each chore does is in
:mod:`experiments.store.safety` and :mod:`experiments.store.locks`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from experiments.store import safety
from experiments.store.results import RunKey, write_result


class RunStore:
    """The chores of one run on ``key``'s folder. ``force``: finished splits are trained again (their results
    replaced), and the results' data digests are not checked."""

    def __init__(self, key: RunKey, *, force: bool = False):
        self.key, self.force = key, force
        self.done_before: set[int] = set()
        self.digest: str | None = None

    def open(
        self, data, splits: list[int], why_broken: Callable[[Path, int], tuple[list[Path], str] | None] | None = None
    ) -> list[int]:
        """At the start of a run: refuse results computed on other data (``data``, by its
        :func:`~experiments.store.safety.data_digest`, kept as ``digest`` for the results), set aside the finished
        splits whose saved model is broken (``why_broken(run_dir, split)``: its files and why it does not load, None when
        it loads;
        see :meth:`set_aside_broken`), and say which requested splits are done already. Returns the splits to train."""
        self.digest = safety.data_digest(data)
        if not self.force:
            safety.check_data(self.key, self.digest)
            if why_broken is not None:
                self.set_aside_broken(splits, why_broken)  # a finished split whose model no longer loads: again
        self.done_before = self.key.finished()
        todo = splits if self.force else [s for s in splits if s not in self.done_before]
        if not self.force and set(splits) & self.done_before:
            print(skipped_line(self.key, splits, self.done_before, todo), file=sys.stderr, flush=True)
        return todo

    def prepare(self, splits: list[int], started: float, results_root: str) -> None:
        """Before the first split trains: the folder is writable (an OSError naming ``results_root`` otherwise), and
        the leftovers of every split no live run holds, and temp files older than ``started``, are removed."""
        try:
            self.key.dir.mkdir(parents=True, exist_ok=True)
            probe = self.key.dir / f".write-test-{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise OSError(
                e.errno,
                f"cannot write results under paths.results_root={results_root} ({e.strerror or e})",
                str(e.filename or self.key.dir),
            ) from None
        safety.clean_run(self.key, splits, started)

    @contextmanager
    def claim(self, split: int) -> Iterator[bool]:
        """Hold ``split``'s lock (``split_<s>.lock``) while the body trains it; yields False, and says why, when another
        live run holds it or finished it meanwhile (a result that existed when this run started is replaced only with
        ``force``). The split's leftovers (temp files, a finished split's checkpoint) are removed first."""
        lock = safety.split_lock(self.key, split)
        if not lock.try_acquire():
            say(f"split {split}: another run ({lock.describe()}) is training it; skipped here")
            yield False
            return
        try:
            done = split in self.key.finished()
            safety.clean_split(self.key, split, done)
            replace = self.force and split in self.done_before
            if done and not replace:
                say(f"split {split}: finished by another run meanwhile; skipped here")
            yield not done or replace
        finally:
            lock.release()

    def write(self, split: int, record: dict) -> None:
        """``split``'s result file, written atomically; then its checkpoint is dropped."""
        write_result(self.key.split_path(split), record)
        self.key.checkpoint(split).unlink(missing_ok=True)

    def set_aside_broken(self, splits, why_broken: Callable[[Path, int], tuple[list[Path], str] | None]) -> list[int]:
        """Finished splits of ``splits`` whose saved model is present but does not load (truncated, tampered, a shape
        or field changed; ``why_broken``): each one's model files and result file are moved aside to ``.corrupt``
        with one warning line, so that the rerun trains the split again and saves its model anew. Returns those
        splits. A split another run holds (its lock) is left alone."""
        key, broken = self.key, []
        for split in sorted(key.finished() & set(splits)):
            lock = safety.split_lock(key, split)
            if not lock.try_acquire():
                continue
            try:
                broken_model = why_broken(key.dir, split)
                if broken_model is None:
                    continue
                files, why = broken_model
                files.append(key.split_path(split))
                for p in files:
                    os.replace(p, p.with_name(p.name + safety.CORRUPT_SUFFIX))
                safety.warn(
                    f"{why.splitlines()[0]}; moved to {', '.join(p.name + safety.CORRUPT_SUFFIX for p in files)}, "
                    f"split {split} is trained again"
                )
                broken.append(split)
            finally:
                lock.release()
        return broken


def say(line: str) -> None:
    print(f"[softstep] {line}", file=sys.stderr, flush=True)


def skipped_line(key: RunKey, splits, done: set, todo) -> str:
    """One line saying which requested splits a rerun skips because their result files exist, and what it trains."""
    if key.final:
        return f"[softstep] the final model is done already ({key.dir}); force=true retrains it"
    skipped = [s for s in splits if s in done]
    plural = "s" if len(skipped) > 1 else ""
    then = f"training {split_ranges(todo)}" if todo else "nothing to train (force=true retrains)"
    return f"[softstep] split{plural} {split_ranges(skipped)} done already ({key.dir}), {then}"


def split_ranges(splits) -> str:
    """Split seeds as ranges: [0, 1, 2, 5, 7, 8] → ``0-2, 5, 7-8``."""
    out, group = [], []
    for s in sorted(splits):
        if group and s != group[-1] + 1:
            out.append(group)
            group = []
        group.append(s)
    if group:
        out.append(group)
    return ", ".join(str(g[0]) if len(g) == 1 else f"{g[0]}-{g[-1]}" for g in out)
