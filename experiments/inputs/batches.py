"""The input pipeline: model inputs by index, as batches on the device, and the decoded-sample cache.

Three sources, fastest first:

- **cached features** of a frozen extractor (``experiments/inputs/features.py``): rows of one matrix,
  copied to the device once;
- **the decoded-sample cache** (fine-tuning): every item decoded and preprocessed once per
  dataset and preprocessing, stored under ``<cache_dir>/decoded/<key>/`` in shards that are
  memory-mapped when read. Images are kept as uint8 after resizing (the loader's ``decode``);
  the float conversion and normalisation (its ``finish``) run per batch on the device. Audio is
  kept as the resampled (denoised) window, text as the loaded string (the text extractor memoises
  its token ids per text, ``extractors/text.py``). Epochs, splits, heads and reruns then decode no
  file again;
- **raw items** decoded per batch by one DataLoader that lives as long as the :class:`Inputs`
  (a batch sampler that each epoch refills, persistent workers), so workers start once, not
  once per batch.

No augmentation: the paper uses none, so an item's preprocessed tensor is the same every epoch,
which is what makes it cacheable.

Several jobs may share one cache: each shard is written atomically (a temporary file, then a
rename), and a job claims the shard it decodes with a lock file. A job that finds a shard locked
decodes the others and then waits for it; a lock whose job has died (same host, process gone) or
that is older than ``stale_s`` is taken over.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.base import RegressionData, collate
from softstep.safe_io import atomic_write_bytes

#: modalities whose items the decoded-sample cache holds under ``trainer.decoded_cache=auto``
CACHED_MODALITIES = ("image", "audio", "text")
#: values of ``trainer.decoded_cache``
DECODED_CACHE = ("auto", True, False)


def auto_num_workers() -> int:
    """DataLoader workers for ``trainer.num_workers=auto``: the SLURM job's CPUs, else this machine's cores, less one
    for the training process."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE")
    if slurm and slurm.strip().isdigit():
        cores = int(slurm)
    else:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
    return max(cores - 1, 0)


def resolve_num_workers(value) -> int:
    """``trainer.num_workers``: ``auto`` (:func:`auto_num_workers`) or an integer >= 0."""
    if value == "auto":
        return auto_num_workers()
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"bad config value trainer.num_workers={value!r}: 'auto' or an integer >= 0")
    return value


def _decoder(data: RegressionData):
    """(decode, finish): what the cache stores per item, and what makes a batch of it model-ready (None: nothing)."""
    load = data.load
    if callable(getattr(load, "decode", None)) and callable(getattr(load, "finish", None)):
        return load.decode, load.finish
    return load, None


def _read_ahead(make: Callable[[Any], Any], chunks: Sequence[Any], depth: int = 2) -> Iterator[Any]:
    """``make(c)`` for each chunk in order, computed up to ``depth`` chunks ahead by one background thread, so the
    training loop's thread only queues work on the GPU. Used for the decoded-sample cache on CUDA, whose batches are
    collated and pinned there: reading one (an mmap copy, a pinned copy) would otherwise stall the loop's thread."""
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        pending = deque(pool.submit(make, c) for c in chunks[:depth])
        for c in chunks[depth:]:
            ready = pending.popleft().result()
            pending.append(pool.submit(make, c))
            yield ready
        while pending:
            yield pending.popleft().result()


def _pinned(x):
    """A collated batch in page-locked memory (a tensor; other batches, e.g. lists of texts, as they are)."""
    return x.pin_memory() if torch.is_tensor(x) and not x.is_pinned() else x


def _to_device(x, device, finish=None):
    """A collated batch → the device (pinned and copied without blocking on CUDA), then ``finish`` there."""
    if torch.is_tensor(x):
        device = torch.device(device)
        if device.type == "cuda":
            x = _pinned(x).to(device, non_blocking=True)
        else:
            x = x.to(device)
    return finish(x) if finish is not None else x


class DecodedCache:
    """Each item's decoded, preprocessed input, computed once per (dataset, preprocessing, items).

    ``<root>/<key>/shard_<i>.pt`` holds items ``i·shard_size … (i+1)·shard_size − 1`` (a stacked
    tensor when they share one shape, else a list), written atomically; read with ``mmap=True``.
    Call :meth:`build` once, then :meth:`get`.

    Attributes
    ----------
    decodes : how many items this process decoded (0 when the cache was complete): tests and benchmarks count it.
    """

    def __init__(
        self,
        root: str | Path,
        data: RegressionData,
        *,
        shard_size: int = 256,
        stale_s: float = 1800.0,
        poll_s: float = 0.5,
    ):
        self.data, self.shard_size, self.stale_s, self.poll_s = data, int(shard_size), float(stale_s), float(poll_s)
        self.dir = Path(root) / self.key(data)
        self.n_shards = -(-len(data) // self.shard_size)
        self.decode, self.finish = _decoder(data)
        self._shards: dict[int, Any] = {}
        self.decodes = 0

    @staticmethod
    def key(data: RegressionData) -> str:
        """``<dataset>-<hash>``: the hash covers the preprocessing and the item list (so a changed sample is a new cache)."""
        items = hashlib.sha1("\n".join(map(str, data.items)).encode()).hexdigest()
        raw = f"{data.name}|{data.modality}|{data.preprocessing}|{len(data)}|{items}"
        return f"{data.name}-{hashlib.sha1(raw.encode()).hexdigest()[:12]}"

    def shard_path(self, s: int) -> Path:
        return self.dir / f"shard_{s:05d}.pt"

    def shard_items(self, s: int) -> range:
        return range(s * self.shard_size, min((s + 1) * self.shard_size, len(self.data)))

    def complete(self) -> bool:
        return all(self.shard_path(s).exists() for s in range(self.n_shards))

    # ------------------------------------------------------------------ building
    def _lock(self, s: int) -> Path:
        return self.dir / f"shard_{s:05d}.lock"

    def _claim(self, s: int) -> bool:
        """Take shard ``s``'s lock (True), or leave it to the live job that holds it (False)."""
        lock = self._lock(s)
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale(lock):
                    return False
                lock.unlink(missing_ok=True)  # its job died: take it over
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{socket.gethostname()} {os.getpid()}\n")
            return True
        return False

    def _stale(self, lock: Path) -> bool:
        try:
            host, pid = lock.read_text().split()
            age = time.time() - lock.stat().st_mtime
        except (OSError, ValueError):
            return False  # being written or just removed: look again later
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
        return age > self.stale_s

    def _write(self, s: int, xs: list) -> None:
        same = all(torch.is_tensor(x) for x in xs) and len({(tuple(x.shape), x.dtype) for x in xs}) == 1
        buf = io.BytesIO()
        torch.save({"x": torch.stack(xs) if same else list(xs)}, buf)
        atomic_write_bytes(self.shard_path(s), buf.getvalue())

    def build(self, *, num_workers: int = 0, progress: bool = False) -> DecodedCache:
        """Decode every item not yet cached (``num_workers`` DataLoader workers), writing shard by shard; wait for
        shards another job is writing. Returns self."""
        if self.complete():
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        held: set[int] = set()
        skipped: list[int] = []

        def claims() -> Iterator[list[int]]:  # runs in this process, ahead of the workers
            for s in range(self.n_shards):
                if self.shard_path(s).exists():
                    continue
                if self._claim(s):
                    if self.shard_path(s).exists():  # written by another job between the look and the claim
                        self._lock(s).unlink(missing_ok=True)
                        continue
                    held.add(s)
                    yield list(self.shard_items(s))
                else:
                    skipped.append(s)

        try:
            self._decode_shards(claims(), num_workers, progress)
            while skipped:  # shards another job is decoding: wait for them, or take over a dead job's
                s = skipped.pop(0)
                if self.shard_path(s).exists():
                    continue
                if self._claim(s):
                    held.add(s)
                    if not self.shard_path(s).exists():
                        self._decode_shards(iter([list(self.shard_items(s))]), 0, False)
                else:
                    skipped.append(s)
                    time.sleep(self.poll_s)
        finally:
            for s in held:
                self._lock(s).unlink(missing_ok=True)
        return self

    def _decode_shards(self, shards: Iterator[list[int]], num_workers: int, progress: bool) -> None:
        from tqdm.auto import tqdm

        ds = _DecodeDataset(self.data, self.decode)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=_Once(shards), collate_fn=list, num_workers=num_workers)
        bar = tqdm(desc=f"decoding {self.data.name}", total=len(self.data), disable=not progress, leave=False)
        for items in loader:
            idx = [i for i, _ in items]
            self._write(idx[0] // self.shard_size, [x for _, x in items])
            self.decodes += len(items)
            bar.update(len(items))
        bar.close()

    def __getstate__(self):  # memory maps are reopened, not copied, in another process
        state = dict(self.__dict__)
        state["_shards"] = {}
        return state

    # ------------------------------------------------------------------ reading
    def _shard(self, s: int):
        if s not in self._shards:
            self._shards[s] = torch.load(self.shard_path(s), mmap=True, weights_only=True)["x"]
        return self._shards[s]

    def get(self, i: int):
        """Item ``i`` as decoded (before ``finish``)."""
        i = int(i)
        return self._shard(i // self.shard_size)[i % self.shard_size]

    def batch(self, idx: Sequence[int]):
        """The items ``idx`` collated (stacked, zero-padded or a list of strings), before ``finish``."""
        return collate([(self.get(i), 0.0) for i in idx])[0]


def decoded_cache(
    root: str | Path, data: RegressionData, setting="auto", *, num_workers: int = 0, progress: bool = False
) -> DecodedCache | None:
    """The built decoded-sample cache of ``data`` under ``root`` (``trainer.decoded_cache``: ``auto`` = for
    :data:`CACHED_MODALITIES`, true, false), or None when it is off."""
    if setting not in DECODED_CACHE:
        raise ValueError(f"bad config value trainer.decoded_cache={setting!r}: auto, true or false")
    if setting is False or (setting == "auto" and data.modality not in CACHED_MODALITIES):
        return None
    return DecodedCache(root, data).build(num_workers=num_workers, progress=progress)


class _DecodeDataset(torch.utils.data.Dataset):
    def __init__(self, data: RegressionData, decode):
        self.data, self.decode = data, decode

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return i, self.decode(self.data.items[i])


class _Once:
    """A batch sampler over an iterator of index lists (iterated once)."""

    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return self.it


class _Refillable:
    """A batch sampler whose batches are set before each pass, so one DataLoader (and its workers) serves every epoch."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


class Inputs:
    """Model inputs by index: rows of a cached feature matrix, items of a decoded-sample cache, or raw items decoded by
    one persistent DataLoader (see the module docstring)."""

    def __init__(
        self,
        features: torch.Tensor | None = None,
        data: RegressionData | None = None,
        num_workers: int = 0,
        cache: DecodedCache | None = None,
    ):
        self.features, self.data, self.cache = features, data, cache
        self.num_workers = resolve_num_workers(num_workers)
        self._loader = self._sampler = self._device_features = None

    def batches(self, idx: Sequence[int], batch_size: int, device) -> Iterator[Any]:
        """``idx`` in order, ``batch_size`` at a time, each batch model-ready on ``device``."""
        idx = np.asarray(idx)
        if self.features is not None:
            feats = self._features_on(device)
            rows = torch.as_tensor(idx, device=feats.device)  # one copy of the indices, then slices of it
            for i in range(0, len(idx), batch_size):
                yield feats[rows[i : i + batch_size]]
            return
        chunks = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
        if self.cache is not None:
            on_gpu = torch.device(device).type == "cuda"
            collated = (
                _read_ahead(lambda c: _pinned(self.cache.batch(c)), chunks) if on_gpu else map(self.cache.batch, chunks)
            )
            for x in collated:
                yield _to_device(x, device, self.cache.finish)
        else:
            loader = self._persistent_loader(device)
            self._sampler.batches = [c.tolist() for c in chunks]
            for x, _ in loader:
                yield _to_device(x, device)

    def _features_on(self, device) -> torch.Tensor:
        """The feature matrix on ``device``, copied there once (a frozen extractor's features are small)."""
        device = torch.device(device)
        if self.features.device.type == device.type:
            return self.features
        if self._device_features is None or self._device_features.device.type != device.type:
            self._device_features = self.features.to(device)
        return self._device_features

    def _persistent_loader(self, device):
        if self._loader is None:
            self._sampler = _Refillable()
            w = self.num_workers
            self._loader = torch.utils.data.DataLoader(
                self.data.dataset(np.arange(len(self.data))),
                batch_sampler=self._sampler,
                collate_fn=collate,
                num_workers=w,
                persistent_workers=w > 0,
                pin_memory=torch.device(device).type == "cuda",
            )
        return self._loader

    def __getstate__(self):  # a DataLoader with live workers does not pickle (joblib, saved models)
        state = dict(self.__dict__)
        state["_loader"] = state["_sampler"] = state["_device_features"] = None
        return state
