"""What keeps a run safe when things go wrong: files loaded without running code, unreadable files
moved aside, leftovers removed, results tied to their data, and one-line errors.

- **Loading.** Checkpoints and feature caches are loaded with ``torch.load(weights_only=True)``:
  tensors and plain values only, so a planted pickle cannot run code. A file that does not load
  (truncated, empty, or holding other objects) is moved aside to ``<name>.corrupt`` with a
  one-line warning naming it; the split starts afresh, or the features are recomputed.
- **Leftovers.** A kill during an atomic write leaves ``.<name>.<random>.tmp``; a kill between a
  split's result and the removal of its checkpoint leaves a stale checkpoint. :func:`clean_split`
  removes both, under the split's lock.
- **Data.** Each result records :func:`data_digest` of the dataset it was trained on
  (``data_digest``); :func:`check_data` refuses to report results computed on other data.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import torch

from data.base import DataError, RegressionData
from experiments.store.locks import FileLock
from experiments.store.results import ResultError, RunKey, read_result

CORRUPT_SUFFIX = ".corrupt"
#: What every checkpoint written by :func:`softstep.training.fit` holds.
CHECKPOINT_KEYS = (
    "model",
    "optim",
    "best_state",
    "history",
    "epoch",
    "batch",
    "best",
    "best_epoch",
    "bad_epochs",
    "torch_rng",
)


class UnreadableFile(Exception):
    """A checkpoint or cache that does not load safely; the message names the file and why (one line)."""


class StaleResults(DataError):
    """Finished results of this configuration were computed on other data."""


def warn(message: str) -> None:
    print(f"[softstep] warning: {message}", file=sys.stderr, flush=True)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def load_tensors(path: str | Path, *, map_location="cpu", keys: tuple[str, ...] = ()):
    """``torch.load(path, weights_only=True)``; raises :class:`UnreadableFile` (one line) on any failure.

    ``keys``: the object must be a dict holding these keys."""
    import pickle

    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnreadableFile(
            f"{path} holds objects other than tensors and plain values; refused (loading it could run code)"
        ) from e
    except Exception as e:
        raise UnreadableFile(f"{path} is unreadable ({_first_line(e)})") from e
    if keys and (not isinstance(obj, dict) or not set(keys) <= set(obj)):
        raise UnreadableFile(
            f"{path} is not a checkpoint of this version (missing "
            f"{sorted(set(keys) - set(obj)) if isinstance(obj, dict) else 'everything'})"
        )
    return obj


def quarantine(path: str | Path, why: str, then: str) -> Path:
    """Move ``path`` aside to ``<path>.corrupt`` and warn in one line; returns the new path."""
    path = Path(path)
    aside = path.with_name(path.name + CORRUPT_SUFFIX)
    os.replace(path, aside)
    warn(f"{why}; moved to {aside.name}, {then}")
    return aside


def load_checkpoint(path: str | Path, map_location="cpu") -> dict | None:
    """A training checkpoint, or None (with the file moved aside) when it does not load safely."""
    try:
        return load_tensors(path, map_location=map_location, keys=CHECKPOINT_KEYS)
    except UnreadableFile as e:
        quarantine(path, str(e), "the split starts afresh")
        return None


def load_features(path: str | Path) -> torch.Tensor | None:
    """A cached feature matrix, or None (with the file moved aside) when it does not load safely."""
    try:
        feats = load_tensors(path)
        if not torch.is_tensor(feats) or feats.dim() != 2 or not feats.is_floating_point():
            raise UnreadableFile(f"{path} does not hold a 2-D float feature matrix")
        return feats
    except UnreadableFile as e:
        quarantine(path, str(e), "recomputing the features")
        return None


# ---------------------------------------------------------------- locks and leftovers


def split_lock(key: RunKey, split: int) -> FileLock:
    """The lock of one split of one configuration: ``split_<s>.lock`` beside its result."""
    return FileLock(key.dir / f"split_{split}.lock")


def remove_temp_files(folder: Path, prefix: str, older_than: float | None = None) -> None:
    """Delete ``.<prefix>*.tmp`` in ``folder`` (atomic writes that a kill interrupted)."""
    for p in Path(folder).glob(f".{prefix}*.tmp"):
        try:
            if older_than is None or p.stat().st_mtime < older_than:
                p.unlink()
        except FileNotFoundError:
            pass


def clean_split(key: RunKey, split: int, finished: bool) -> None:
    """Leftovers of one split (call with its lock held): temp files, the checkpoint of a finished split, and a
    result file that cannot be read or validated (moved aside with one line, so that the split is redone)."""
    remove_temp_files(key.dir, f"split_{split}.")
    if finished:
        key.checkpoint(split).unlink(missing_ok=True)
        return
    path = key.split_path(split)
    if path.exists():
        try:
            read_result(path)
        except ResultError as e:
            quarantine(path, str(e), "the split is trained again")


def clean_run(key: RunKey, splits, started: float) -> None:
    """At the start of a run: leftovers of every split no live run holds, and other temp files older than ``started``."""
    if not key.dir.is_dir():
        return
    done = key.finished()
    for s in splits:
        lock = split_lock(key, s)
        if lock.try_acquire():
            try:
                clean_split(key, s, s in done)
            finally:
                lock.release()
    for p in key.dir.glob(".*.tmp"):  # anything else an interrupted write left before this run began
        try:
            if not p.name.startswith(".split_") and p.stat().st_mtime < started:
                p.unlink()
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------- the data a result was computed on


def data_digest(data: RegressionData) -> str:
    """16 hex digits of the dataset's content: name, modality, preprocessing, labels and items.

    Items that are tensors or arrays are hashed by value, others (texts, file paths) by their
    text; a table loader's ``preprocessing`` already holds its file's content digest."""
    h = hashlib.sha1()
    h.update(f"{data.name}|{data.modality}|{data.preprocessing}|{len(data)}".encode())
    h.update(np.ascontiguousarray(data.labels, dtype=np.float64).tobytes())
    items = data.items
    if torch.is_tensor(items):
        h.update(items.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(items, np.ndarray) and items.dtype != object:
        h.update(np.ascontiguousarray(items).tobytes())
    else:
        for it in items:
            if torch.is_tensor(it):
                h.update(it.detach().cpu().contiguous().numpy().tobytes())
            elif isinstance(it, np.ndarray):
                h.update(np.ascontiguousarray(it).tobytes())
            else:
                h.update(str(it).encode("utf-8", "surrogatepass"))
            h.update(b"\0")
    return h.hexdigest()[:16]


def check_data(key: RunKey, digest: str) -> None:
    """Raise :class:`StaleResults` when a finished result of ``key`` records another data digest.

    Results written before digests were recorded carry none and are accepted."""
    if not key.dir.is_dir():
        return
    for p in sorted(key.dir.glob("split_*.json")):
        try:
            old = read_result(p).get("data_digest")
        except ResultError:
            continue
        if old is not None and old != digest:
            raise StaleResults(
                f"{p} was computed on other data (data digest {old}, now {digest}): the dataset "
                f"changed since; rerun with force=true to replace every split of this run, or move "
                f"{key.dir} aside"
            )
