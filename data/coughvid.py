"""CoughVid (Orlandic et al. 2021, Zenodo record 4498364): cough recording → age in years.

The release holds ``metadata_compiled.csv`` (one row per recording: ``uuid``, ``cough_detected``,
``age``, ``gender``, ``status``, ...) next to the recordings ``<uuid>.webm`` / ``<uuid>.ogg``.
libsndfile reads the ``.ogg`` files but not ``.webm``: convert those to WAV first (the release's
own ``convert_files.py``, or ``ffmpeg -i X.webm X.wav``); the loader takes, per uuid, the first of
``<uuid>.wav``, ``.flac``, ``.ogg`` found next to the metadata.

Appendix B: 1 s of cough audio at 16 kHz → HuBERT (LibriSpeech), mean-pooled over time. The
second is the loudest 1 s window of the recording by default (``window: loudest``; ``first``
and ``center`` are the alternatives); clips shorter than 1 s are zero-padded. Rows without an
age are left out (they are unlabelled); ``min_cough_detected`` (e.g. 0.8, the threshold the
CoughVid authors recommend) optionally keeps only recordings their classifier calls coughs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from . import checks
from .base import DataError, RegressionData
from .media import AudioFile

NAME = "coughvid"


def load(root: str = "data/coughvid", metadata: str = "metadata_compiled.csv", id_column: str = "uuid",
         target_column: str = "age", min_cough_detected: float | None = None, extensions: Sequence[str] = (".wav", ".flac", ".ogg"),
         sample_rate: int = 16000, seconds: float = 1.0, window: str = "loudest") -> RegressionData:
    root = Path(root).expanduser()
    checks.require(NAME, root, {f"{metadata} (columns {id_column!r}, {target_column!r}, cough_detected)": root,
                            "<uuid>.wav / .flac / .ogg recordings beside it (.webm converted to WAV)": root})
    table = checks.find_one(root, metadata)
    if table is None:
        raise checks.missing_data(NAME, root, [f"{metadata} (columns {id_column!r}, {target_column!r}, cough_detected)",
                                           "<uuid>.wav / .flac / .ogg recordings beside it"], problem=f"no {metadata} at any depth")
    df = checks.read_table(table, name=NAME)
    checks.check_columns(df, table, {"id_column": id_column, "target_column": target_column}, name=NAME)
    df = df[df[target_column].notna()]
    if min_cough_detected is not None:
        checks.check_columns(df, table, {"min_cough_detected": "cough_detected"}, name=NAME)
        df = df[checks.numeric(df, "cough_detected", table, name=NAME, what="cough_detected") >= float(min_cough_detected)]
    if len(df) == 0:
        raise DataError(f"dataset {NAME!r}: {table} has no recording with an {target_column!r} value (after filters)")
    y = checks.numeric(df, target_column, table, name=NAME)
    exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    found: dict[str, Path] = {}
    for p in sorted(table.parent.iterdir(), key=lambda p: (exts.index(p.suffix.lower()) if p.suffix.lower() in exts else 99, p.name)):
        if p.suffix.lower() in exts:
            found.setdefault(p.stem, p)
    ids = [str(u).strip() for u in df[id_column]]
    absent = [u for u in ids if u not in found]
    if absent:
        webm = sum((table.parent / f"{u}.webm").exists() for u in absent)
        raise DataError(f"dataset {NAME!r}: {len(absent)} of {len(ids)} recordings with an age listed in {table} have no "
                        f"{'/'.join(exts)} file in {table.parent}, e.g. {absent[:3]}"
                        + (f"; {webm} of them are .webm: convert to WAV (ffmpeg -i X.webm X.wav)" if webm else "")
                        + f". See {checks.readme(NAME)}")
    audio = AudioFile(sample_rate=int(sample_rate), seconds=seconds, window=window)
    tag = f"{metadata}-{checks.file_digest(table)}-cough{min_cough_detected}-{audio.describe()}"
    return RegressionData(NAME, "audio", [str(found[u]) for u in ids], np.asarray(y), load=audio, preprocessing=tag)
