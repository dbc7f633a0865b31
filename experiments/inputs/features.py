"""The frozen-feature cache: a frozen extractor runs once per (dataset, preprocessing, extractor).

Later epochs, splits, heads and reruns read ``<cache_dir>/features/<key>.pt`` and build no
extractor at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from data.base import RegressionData, collate
from experiments.store.locks import FileLock
from experiments.store.results import atomic_torch_save


def cache_key(data: RegressionData, extractor_name: str, extractor_settings: str) -> str:
    raw = f"{data.name}|{data.preprocessing}|{len(data)}|{extractor_name}|{extractor_settings}"
    return f"{data.name}-{extractor_name}-{hashlib.sha1(raw.encode()).hexdigest()[:12]}"


@torch.no_grad()
def extract(
    extractor, data: RegressionData, *, batch_size: int = 64, device="cpu", progress: bool = True
) -> torch.Tensor:
    """Run ``extractor`` in eval mode over every item; returns (n, out_dim) float32 on the CPU."""
    extractor.eval().to(device)
    out = []
    ds = data.dataset(range(len(data)))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for x, _ in tqdm(loader, desc=f"extracting {data.name}", disable=not progress, leave=False):
        x = x.to(device) if torch.is_tensor(x) else x
        out.append(extractor(x).float().cpu())
    return torch.cat(out)


def cached_features(path: Path, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Load features from ``path``, or compute and store them atomically.

    One run at a time computes a given cache (``<path>.lock``; others wait, then read it). The file
    is loaded with ``weights_only=True``; an unreadable one is moved aside (``.corrupt``, one-line
    warning) and recomputed; temp files of an interrupted write are removed."""
    from experiments.store.safety import load_features, remove_temp_files

    lock = FileLock(path.with_name(path.name + ".lock"))
    try:
        lock.acquire()
    except OSError:  # a read-only shared cache: read it as it is (nothing can be written there anyway)
        if path.exists():
            feats = load_features(path)
            if feats is not None:
                return feats
        raise
    try:
        remove_temp_files(path.parent, path.name + ".")
        feats = load_features(path) if path.exists() else None
        if feats is None:
            feats = compute()
            atomic_torch_save(path, feats)
    finally:
        lock.release()
    return feats
