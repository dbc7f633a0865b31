"""Udacity self-driving car: dashcam frame → steering angle.

Appendix B: the real-road dashcam video that Du et al. (2019) used, downsampled to 4 frames per
second (6,762 frames) → EfficientNet-B0. Udacity's steering challenge (challenge 2) training bags
(``CH2_002``: HMB_1, 2, 4, 5, 6) hold 33,808 centre-camera frames at 20 Hz; every fifth of them is
⌈33,808 / 5⌉ = 6,762, the paper's count.

Default layout: ``interpolated.csv`` as exported from the bags by udacity-driving-reader (header
``index, timestamp, width, height, frame_id, filename, angle, torque, speed, ...``; one row per
camera frame, ``frame_id`` ``left_camera`` / ``center_camera`` / ``right_camera``, ``timestamp`` in
ns, ``filename`` = ``center/<timestamp>.jpg`` relative to the CSV, ``angle`` the steering-wheel angle
in radians interpolated to the frame). ``log`` may be a glob pattern (``**/interpolated.csv``) for
one export per bag; their rows are pooled.

The Udacity simulator's ``driving_log.csv`` (no header; ``center, left, right, steering, throttle,
brake, speed``; frame times from the image names, ``center_2016_12_01_13_30_48_287.jpg``) is the
other layout: ``dataset=udacity_sim`` (not the paper's data).

4 fps (``sampling``):
- ``stride`` (default for the real data): frames in time order, every k-th kept, k = round(native
  rate / fps) with the native rate from the median frame interval (20 Hz → k = 5). On the
  challenge's 33,808 frames this gives 6,762.
- ``time``: one frame per 1/fps-second tick of a clock started at the first frame (the first frame
  at or after each tick), so jitter in the frame times does not lower the rate; after a gap the
  clock moves on to the next tick. For recordings at an irregular rate (the simulator).
``fps: null`` keeps all. Frames are resized to 224 × 224 (no crop, so the road at the frame's
edges stays) and ImageNet-normalised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd

from . import checks
from .base import DataError, RegressionData
from .media import IMAGENET_MEAN, IMAGENET_STD, ImageFile, ImageTransform, check_files

NAME = "udacity"
SIMULATOR_COLUMNS = ["center", "left", "right", "steering", "throttle", "brake", "speed"]
SAMPLING = ("stride", "time")
_STAMP = re.compile(r"(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{3})")
_TOL = 1e-6  # seconds: frame times this close to a tick count as on it


def time_from_name(name: str) -> float:
    """Seconds since the epoch from a simulator image name (``..._YYYY_MM_DD_HH_MM_SS_mmm.jpg``)."""
    m = _STAMP.search(name)
    if not m:
        raise ValueError(name)
    y, mo, d, h, mi, s, ms = map(int, m.groups())
    return datetime(y, mo, d, h, mi, s, ms * 1000).timestamp()


def subsample(times: np.ndarray, fps: float | None, sampling: str = "time") -> np.ndarray:
    """Indices (in time order) of the frames kept at ``fps`` (see the module docstring for ``sampling``)."""
    times = np.asarray(times, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    if not fps:
        return order
    if sampling not in SAMPLING:
        raise DataError(f"dataset {NAME!r}: sampling={sampling!r}; allowed: {', '.join(SAMPLING)}")
    if sampling == "stride":
        dt = np.diff(times[order])
        dt = dt[dt > _TOL]
        k = max(1, int(round(1.0 / (float(fps) * float(np.median(dt)))))) if len(dt) else 1
        return order[::k]
    period, keep, tick = 1.0 / float(fps), [], None
    for i in order:
        t = times[i]
        if tick is None or t >= tick - _TOL:
            keep.append(i)
            tick = t if tick is None else tick
            tick += period * (math.floor((t - tick + _TOL) / period) + 1)  # the first tick after t
    return np.asarray(keep, dtype=int)


def _resolve(base: Path, root: Path, raw: str) -> Path:
    """An image path from a log: as given (absolute), below the log's folder, below the root, or in ``IMG/``."""
    raw = raw.strip()
    p, name = Path(raw), PureWindowsPath(raw).name
    cands = [p] if p.is_absolute() else [base / p, root / p]
    cands += [base / "IMG" / name, root / "IMG" / name, base / name]
    for cand in cands:
        if cand.is_file():
            return cand
    return cands[0]


def _tables(root: Path, log: str) -> list[Path]:
    if any(c in log for c in "*?["):
        return [p for p in sorted(root.glob(log)) if p.is_file()]
    return [root / log] if (root / log).is_file() else []


def load(
    root: str = "data/udacity",
    log: str = "interpolated.csv",
    header: bool = True,
    columns: Sequence[str] | None = None,
    image_column: str = "filename",
    target_column: str = "angle",
    timestamp_column: str | None = "timestamp",
    timestamp_unit: float = 1e-9,
    frame_id: str | None = "center_camera",
    frame_id_column: str = "frame_id",
    fps: float | None = 4,
    sampling: str = "stride",
    size: int = 224,
    crop: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    name: str = NAME,
) -> RegressionData:
    """Frames of ``log`` at ``fps``; ``timestamp_unit`` converts ``timestamp_column`` to seconds
    (null: frame times from the image names, as the simulator writes them)."""
    root = Path(root).expanduser()
    what = {
        f"{log} (steering log: image column {image_column!r}, angle column {target_column!r}"
        + (f", {frame_id_column} == {frame_id!r}" if frame_id else "")
        + ")": root,
        "the frames it lists (e.g. center/<timestamp>.jpg)": root,
    }
    checks.require(NAME, root, what)
    tables = _tables(root, log)
    if not tables:
        raise checks.missing_data(
            NAME,
            root,
            list(what),
            problem=f"no steering log {log!r}"
            + (
                " (this is the real-road layout; the simulator's driving_log.csv is dataset=udacity_sim)"
                if log == "interpolated.csv" and (root / "driving_log.csv").is_file()
                else ""
            ),
        )
    names = None if header else list(columns or SIMULATOR_COLUMNS)
    files, ys, times, counts = [], [], [], {}
    for table in tables:
        df = checks.read_table(table, name=NAME, names=names)
        checks.check_columns(df, table, {"image_column": image_column, "target_column": target_column}, name=NAME)
        counts[f"rows in {table.name}"] = counts.get(f"rows in {table.name}", 0) + len(df)
        if frame_id:
            checks.check_columns(df, table, {"frame_id_column": frame_id_column}, name=NAME)
            df = df[df[frame_id_column].astype(str).str.strip() == frame_id]
            if len(df) == 0:
                raise DataError(f"dataset {NAME!r}: {table} has no row with {frame_id_column} == {frame_id!r}")
            counts[f"{frame_id} frames"] = counts.get(f"{frame_id} frames", 0) + len(df)
        ys.append(checks.numeric(df, target_column, table, name=NAME))
        if timestamp_column:
            checks.check_columns(df, table, {"timestamp_column": timestamp_column}, name=NAME)
            checks.numeric(df, timestamp_column, table, name=NAME, what="timestamp")
            raw = pd.to_numeric(df[timestamp_column])
            times.append(raw.to_numpy())
        else:
            t = []
            for i, img in enumerate(df[image_column].astype(str)):
                try:
                    t.append(time_from_name(PureWindowsPath(img).name))
                except ValueError:
                    raise DataError(
                        f"dataset {NAME!r}: {table}, column {image_column!r}, row {i}: no time in the file name "
                        f"{img!r} (expected ..._YYYY_MM_DD_HH_MM_SS_mmm.jpg); set timestamp_column"
                    ) from None
            times.append(np.asarray(t))
        files += [_resolve(table.parent, root, str(f)) for f in df[image_column]]
    y = np.concatenate(ys)
    raw_t = np.concatenate(times)
    # relative to the first frame before scaling: ns since 1970 do not fit a float64 to the microsecond
    t = (raw_t - raw_t.min()).astype(np.float64) * (float(timestamp_unit) if timestamp_column else 1.0)
    keep = subsample(t, fps, sampling)
    counts[f"at {fps:g} fps ({sampling})" if fps else "all frames"] = len(keep)
    files = [files[i] for i in keep]
    check_files(files, name=NAME, table=tables[0] if len(tables) == 1 else log, column=image_column, root=root)
    transform = ImageTransform(mode="RGB", size=size, crop=crop, mean=mean, std=std)
    tag = f"{log}-{image_column}-{frame_id}-fps{fps}-{sampling}-{transform.describe()}"
    return RegressionData(
        name, "image", [str(f) for f in files], y[keep], load=ImageFile(transform), preprocessing=tag, counts=counts
    )
