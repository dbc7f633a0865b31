"""Udacity self-driving car: dashcam frame → steering angle.

Appendix B: dashcam video downsampled to 4 frames per second (6,762 frames) → EfficientNet-B0.

Default layout: the Udacity simulator's ``driving_log.csv`` (no header; columns ``center, left,
right, steering, throttle, brake, speed``; image paths as recorded, often absolute paths of the
recording machine, resolved below ``root`` as given, then as ``IMG/<file name>``). Frame times
come from the image names (``center_2016_12_01_13_30_48_287.jpg`` → 13:30:48.287).

The real-road Udacity challenge data, exported by udacity-dataset-reader as ``interpolated.csv``
(header ``index, timestamp, width, height, frame_id, filename, angle, ...``; ``timestamp`` in ns),
loads with ``log=interpolated.csv header=true image_column=filename target_column=angle
timestamp_column=timestamp frame_id=center_camera``.

4 fps: frames are sorted by time and a frame is kept when at least 1/fps s has passed since the
last kept frame (a new recording session starts at its first frame). ``fps: null`` keeps all.
Frames are resized to 224 × 224 (no crop, so the road at the frame's edges stays) and
ImageNet-normalised.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path, PureWindowsPath
from typing import Sequence

import numpy as np

from . import checks
from .base import DataError, RegressionData
from .media import IMAGENET_MEAN, IMAGENET_STD, ImageFile, ImageTransform, check_files

NAME = "udacity"
SIMULATOR_COLUMNS = ["center", "left", "right", "steering", "throttle", "brake", "speed"]
_STAMP = re.compile(r"(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{3})")


def time_from_name(name: str) -> float:
    """Seconds since the epoch from a simulator image name (``..._YYYY_MM_DD_HH_MM_SS_mmm.jpg``)."""
    m = _STAMP.search(name)
    if not m:
        raise ValueError(name)
    y, mo, d, h, mi, s, ms = map(int, m.groups())
    return datetime(y, mo, d, h, mi, s, ms * 1000).timestamp()


def subsample(times: np.ndarray, fps: float | None) -> np.ndarray:
    """Indices (in time order) of the frames kept at ``fps``: one whenever 1/fps s has passed."""
    order = np.argsort(times, kind="stable")
    if not fps:
        return order
    keep, next_t = [], -np.inf
    for i in order:
        if times[i] >= next_t - 1e-9:
            keep.append(i)
            next_t = times[i] + 1.0 / fps
    return np.asarray(keep, dtype=int)


def _resolve(root: Path, raw: str) -> Path:
    raw = raw.strip()
    p = Path(raw)
    for cand in (p if p.is_absolute() else root / p, root / "IMG" / PureWindowsPath(raw).name, root / PureWindowsPath(raw).name):
        if cand.is_file():
            return cand
    return p if p.is_absolute() else root / p


def load(root: str = "data/udacity", log: str = "driving_log.csv", header: bool = False,
         columns: Sequence[str] | None = tuple(SIMULATOR_COLUMNS), image_column: str = "center",
         target_column: str = "steering", timestamp_column: str | None = None, timestamp_unit: float = 1e-9,
         frame_id: str | None = None, frame_id_column: str = "frame_id", fps: float | None = 4, size: int = 224,
         crop: int | None = None, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> RegressionData:
    """Frames of ``log`` at ``fps``; ``timestamp_unit`` converts ``timestamp_column`` to seconds."""
    root = Path(root).expanduser()
    table = root / log
    checks.require(NAME, root, {f"{log} (steering log: image column {image_column!r}, angle column {target_column!r})": table,
                            "the frames it lists (e.g. IMG/center_*.jpg)": root})
    df = checks.read_table(table, name=NAME, names=None if header else list(columns or SIMULATOR_COLUMNS))
    checks.check_columns(df, table, {"image_column": image_column, "target_column": target_column}, name=NAME)
    if frame_id:
        checks.check_columns(df, table, {"frame_id_column": frame_id_column}, name=NAME)
        df = df[df[frame_id_column].astype(str) == frame_id]
        if len(df) == 0:
            raise DataError(f"dataset {NAME!r}: {table} has no row with {frame_id_column} == {frame_id!r}")
    y = checks.numeric(df, target_column, table, name=NAME)
    if timestamp_column:
        checks.check_columns(df, table, {"timestamp_column": timestamp_column}, name=NAME)
        times = checks.numeric(df, timestamp_column, table, name=NAME, what="timestamp") * float(timestamp_unit)
    else:
        times = []
        for i, raw in enumerate(df[image_column].astype(str)):
            try:
                times.append(time_from_name(PureWindowsPath(raw).name))
            except ValueError:
                raise DataError(f"dataset {NAME!r}: {table}, column {image_column!r}, row {i}: no time in the file name "
                                f"{raw!r} (expected ..._YYYY_MM_DD_HH_MM_SS_mmm.jpg); set timestamp_column") from None
        times = np.asarray(times)
    keep = subsample(times, fps)
    files = [_resolve(root, str(df[image_column].iloc[i])) for i in keep]
    check_files(files, name=NAME, table=table, column=image_column, root=root)
    transform = ImageTransform(mode="RGB", size=size, crop=crop, mean=mean, std=std)
    tag = f"{log}-{image_column}-{frame_id}-fps{fps}-{transform.describe()}"
    return RegressionData(NAME, "image", [str(f) for f in files], y[keep], load=ImageFile(transform), preprocessing=tag)
