"""CoughVid (Orlandic et al. 2021, Zenodo record 4498364): cough recording → age in years.

The release holds ``metadata_compiled.csv`` (one row per recording: ``uuid``, ``cough_detected``,
``age``, ``gender``, ``status``, ...) next to the recordings ``<uuid>.webm`` / ``<uuid>.ogg``.
libsndfile reads the ``.ogg`` files but not ``.webm``: convert those to WAV first (the release's
own ``convert_files.py``, or ``ffmpeg -i X.webm X.wav``); the loader takes, per uuid, the first of
``<uuid>.wav``, ``.flac``, ``.ogg`` found next to the metadata.

Appendix B: "over 25,000 crowdsourced cough recordings, with 6,250 recordings labeled with
participant age"; 1 s of cough audio at 16 kHz → HuBERT (LibriSpeech), mean-pooled over time.

Which recordings (the paper does not say; see data/coughvid/README.md for the reasoning): rows
with an age, and whose ``cough_detected`` score (the release's cough classifier) is at least
``min_cough_detected`` = 0.8, the threshold the CoughVid authors recommend for keeping coughs.
``require`` lists further columns that must be filled (e.g. ``[status]``). ``filter_counts`` (or
``python -m data.coughvid <folder>``) tabulates the count of each candidate filter on your copy.

The second is the loudest 1 s window of the recording by default (``window: loudest``; ``first``
and ``center`` are the alternatives); clips shorter than 1 s are zero-padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .base import DataError, RegressionData
from .media import AudioFile

NAME = "coughvid"


PAPER_COUNT = 6250


def _filled(col: pd.Series) -> np.ndarray:
    """Cells that hold a value (not NaN, not an empty or blank string)."""
    keep = col.notna().to_numpy()
    if col.dtype == object:
        keep &= col.astype(str).str.strip().ne("").to_numpy()
    return keep


def select(
    df: pd.DataFrame,
    table,
    *,
    target_column: str = "age",
    min_cough_detected: float | None = 0.8,
    cough_column: str = "cough_detected",
    require: Sequence[str] = (),
) -> tuple[pd.DataFrame, dict]:
    """The rows the loader keeps, and the count after each filter, in order."""
    counts = {f"rows in {Path(table).name}": len(df)}
    df = df[_filled(df[target_column])]
    counts[f"with an {target_column}"] = len(df)
    if min_cough_detected is not None:
        checks.check_columns(df, table, {"cough_column": cough_column}, name=NAME)
        score = pd.to_numeric(df[cough_column], errors="coerce").to_numpy(dtype=float)
        df = df[np.nan_to_num(score, nan=-1.0) >= float(min_cough_detected)]
        counts[f"{cough_column} >= {min_cough_detected:g}"] = len(df)
    for col in require:
        checks.check_columns(df, table, {"require": col}, name=NAME)
        df = df[_filled(df[col])]
        counts[f"with a {col}"] = len(df)
    return df, counts


def filter_counts(
    metadata,
    thresholds: Sequence[float | None] = (None, 0.5, 0.6, 0.7, 0.8, 0.9),
    requires: Sequence[Sequence[str]] = ((), ("status",), ("gender",), ("status", "gender")),
    target_column: str = "age",
    cough_column: str = "cough_detected",
) -> pd.DataFrame:
    """Recordings kept by each candidate filter (an age, ``cough_detected`` >= threshold, columns filled),
    closest to the paper's 6,250 first. ``metadata``: the CSV, or a folder holding it at any depth."""
    path = Path(metadata)
    if path.is_dir():
        path = checks.find_one(path, "metadata_compiled.csv") or path / "metadata_compiled.csv"
    df = checks.read_table(path, name=NAME)
    rows = []
    for thr in thresholds:
        for req in requires:
            if any(c not in df.columns for c in req) or (thr is not None and cough_column not in df.columns):
                continue
            kept, _ = select(
                df, path, target_column=target_column, min_cough_detected=thr, cough_column=cough_column, require=req
            )
            rows.append(
                {
                    "min_cough_detected": thr,
                    "require": "+".join(req) or "-",
                    "n": len(kept),
                    "minus_paper": len(kept) - PAPER_COUNT,
                }
            )
    out = pd.DataFrame(rows)
    return out.iloc[np.argsort(np.abs(out["minus_paper"].to_numpy()), kind="stable")].reset_index(drop=True)


def load(
    root: str = "data/coughvid",
    metadata: str = "metadata_compiled.csv",
    id_column: str = "uuid",
    target_column: str = "age",
    min_cough_detected: float | None = 0.8,
    cough_column: str = "cough_detected",
    require: Sequence[str] = (),
    extensions: Sequence[str] = (".wav", ".flac", ".ogg"),
    sample_rate: int = 16000,
    seconds: float = 1.0,
    window: str = "loudest",
) -> RegressionData:
    root = Path(root).expanduser()
    checks.require(
        NAME,
        root,
        {
            f"{metadata} (columns {id_column!r}, {target_column!r}, {cough_column})": root,
            "<uuid>.wav / .flac / .ogg recordings beside it (.webm converted to WAV)": root,
        },
    )
    table = checks.find_one(root, metadata)
    if table is None:
        raise checks.missing_data(
            NAME,
            root,
            [
                f"{metadata} (columns {id_column!r}, {target_column!r}, {cough_column})",
                "<uuid>.wav / .flac / .ogg recordings beside it",
            ],
            problem=f"no {metadata} at any depth",
        )
    df = checks.read_table(table, name=NAME)
    checks.check_columns(df, table, {"id_column": id_column, "target_column": target_column}, name=NAME)
    require = [str(c) for c in (require or [])]
    df, counts = select(
        df,
        table,
        target_column=target_column,
        min_cough_detected=min_cough_detected,
        cough_column=cough_column,
        require=require,
    )
    if len(df) == 0:
        raise DataError(
            f"dataset {NAME!r}: {table} has no recording with an {target_column!r} value after the filters "
            f"({'; '.join(f'{k} {v}' for k, v in counts.items())})"
        )
    y = checks.numeric(df, target_column, table, name=NAME)
    exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    found: dict[str, Path] = {}
    for p in sorted(
        table.parent.iterdir(), key=lambda p: (exts.index(p.suffix.lower()) if p.suffix.lower() in exts else 99, p.name)
    ):
        if p.suffix.lower() in exts:
            found.setdefault(p.stem, p)
    ids = [str(u).strip() for u in df[id_column]]
    absent = [u for u in ids if u not in found]
    if absent:
        webm = sum((table.parent / f"{u}.webm").exists() for u in absent)
        raise DataError(
            f"dataset {NAME!r}: {len(absent)} of {len(ids)} recordings with an age listed in {table} have no "
            f"{'/'.join(exts)} file in {table.parent}, e.g. {absent[:3]}"
            + (f"; {webm} of them are .webm: convert to WAV (ffmpeg -i X.webm X.wav)" if webm else "")
            + f". See {checks.readme(NAME)}"
        )
    audio = AudioFile(sample_rate=int(sample_rate), seconds=seconds, window=window)
    tag = (
        f"{metadata}-{checks.file_digest(table)}-cough{min_cough_detected}"
        + "".join(f"-req{c}" for c in require)
        + f"-{audio.describe()}"
    )
    return RegressionData(
        NAME, "audio", [str(found[u]) for u in ids], np.asarray(y), load=audio, preprocessing=tag, counts=counts
    )


if __name__ == "__main__":  # python -m data.coughvid data/coughvid
    import sys

    print(filter_counts(sys.argv[1] if len(sys.argv) > 1 else "data/coughvid").to_string(index=False))
