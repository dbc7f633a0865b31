"""Shared checks and readers for loaders: missing folders, label tables, columns, numeric targets, file lists.

Every failure is a :class:`~data.base.DataError` whose message names the data root or file, the
column or field, and where to read about the expected layout.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .base import DataError

DATA_DIR = Path(__file__).resolve().parent
BYO_DOC = DATA_DIR.parent / "docs" / "datasets.md"  # "Bring your own data"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def readme(name: str) -> Path:
    """``data/<name>/README.md``: where each paper dataset documents its source and on-disk layout."""
    return DATA_DIR / name / "README.md"


def missing_data(
    name: str, root, expected: Iterable[str], *, problem: str = "data missing or incomplete", doc: Path | None = None
) -> DataError:
    """The error for a missing or incomplete dataset folder: root, expected files, README."""
    doc = doc or readme(name)
    lines = "\n".join(f"    {e}" for e in expected)
    return DataError(
        f"dataset {name!r}: {problem}.\n"
        f"  looked in data root: {Path(root).resolve()}\n"
        f"  expected there:\n{lines}\n"
        f"  where to get it and the layout: {doc}\n"
        f"  (the data root is paths.data_root/<dataset>; set paths.data_root=DIR or dataset.loader.root=DIR)"
    )


def require(name: str, root, expected: Mapping[str, Path], *, doc: Path | None = None) -> Path:
    """Check that ``root`` is a folder and that every path in ``expected`` exists.

    ``expected`` maps a description (shown in the error) to the path it describes.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise missing_data(name, root, expected, problem="the data folder does not exist", doc=doc)
    absent = [desc for desc, p in expected.items() if not Path(p).exists()]
    if absent:
        raise missing_data(name, root, expected, problem="missing " + ", ".join(absent), doc=doc)
    return root


def find_one(root: Path, filename: str) -> Path | None:
    """``root/filename`` if it exists, else the shallowest file of that name below ``root``, else None."""
    direct = root / filename
    if direct.exists():
        return direct
    hits = sorted(root.rglob(Path(filename).name), key=lambda p: (len(p.parts), str(p)))
    return hits[0] if hits else None


def index_files(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    """Every file below ``folder`` (any depth) with one of ``extensions``, keyed by its stem."""
    out: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in extensions and p.is_file():
            out.setdefault(p.stem, p)
    return out


def read_table(
    path,
    *,
    name: str,
    sheet=0,
    encoding: str | None = None,
    header="infer",
    names: Sequence[str] | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet, Excel or JSON-lines table; any failure names the file.

    CSV text is read as UTF-8 and, if that fails, as Latin-1 (several public releases are cp1252).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset {name!r}: no table at {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".xlsx", ".xlsm", ".xls"):
            try:
                return pd.read_excel(path, sheet_name=sheet)
            except ImportError as e:
                raise DataError(
                    f"dataset {name!r}: reading {path} needs openpyxl (pip install openpyxl), "
                    f"or save the sheet as CSV next to it and point the loader at the .csv"
                ) from e
        if suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=suffix == ".jsonl")
        kw = dict(
            header=None if names is not None or header is None else header,
            names=names,
            index_col=False if names is not None else None,
            sep=sep if sep is not None else ("\t" if suffix == ".tsv" else ","),
        )
        for enc in [encoding] if encoding else ["utf-8", "latin-1"]:
            try:
                df = pd.read_csv(path, encoding=enc, **kw)
            except UnicodeDecodeError:
                continue
            df.attrs["encoding"] = enc  # predict warns when the text was not UTF-8
            return df
        raise DataError(f"dataset {name!r}: {path} is neither UTF-8 nor Latin-1 text; set the loader's encoding")
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"dataset {name!r}: cannot read table {path}: {type(e).__name__}: {e}") from e


def check_columns(df: pd.DataFrame, path, columns: Mapping[str, str], *, name: str) -> None:
    """``columns`` maps the loader's config field (e.g. ``target_column``) to the column it names."""
    for field, col in columns.items():
        if col not in df.columns:
            shown = ", ".join(map(repr, list(df.columns)[:30]))
            raise DataError(
                f"dataset {name!r}: {path} has no column {col!r} (set by {field}); its columns are: {shown}"
            )


def numeric(df: pd.DataFrame, column: str, path, *, name: str, what: str = "target") -> np.ndarray:
    """Column ``column`` as float64; a non-numeric, empty, NaN or infinite cell names the file, column and row."""
    raw = df[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        cell = raw.iloc[i]
        kind = "empty or NaN" if pd.isna(cell) else ("infinite" if isinstance(cell, (int, float)) else "not a number")
        raise DataError(
            f"dataset {name!r}: {path}, column {column!r} ({what}), row {i} (label {df.index[i]!r}): "
            f"{cell!r} is {kind}; {len(bad)} such row(s) in all. Fix or drop them"
            + (" (or set dropna=true)" if what == "target" else "")
        )
    return values


#: ``log_target``'s choices: false (the target as it is), true or ``log`` (ln(target), for a positive target such
#: as a price), ``log1p`` (ln(1 + target), ours: for a target with zeros, e.g. counts).
LOG_TARGETS = (False, True, "log", "log1p")


def log_tag(how) -> str:
    """The part of a loader's ``preprocessing`` tag that names its target transform (``log0``, ``log1``, ``log1p``)."""
    return "log1p" if how == "log1p" else f"log{int(bool(how))}"


def log_target(y: np.ndarray, path, column: str, *, name: str, how=True) -> np.ndarray:
    """ln(target) of a positive target (``how`` true or ``log``), or ln(1 + target) of a target >= 0 (``log1p``); a
    value out of range names the file, column and row."""
    if how not in LOG_TARGETS or isinstance(how, int) and not isinstance(how, bool):
        raise DataError(
            f"dataset {name!r}: bad config value dataset.loader.log_target={how!r}: false, true (ln(target), for a "
            f"positive target) or log1p (ln(1 + target), for a target with zeros)"
        )
    plus1 = how == "log1p"
    bad = np.flatnonzero(y < 0 if plus1 else y <= 0)
    if len(bad):
        raise DataError(
            f"dataset {name!r}: {path}, column {column!r}, row {int(bad[0])}: {float(y[bad[0]])!r} {'< 0' if plus1 else '<= 0'} "
            f"cannot be log-scaled ({len(bad)} such row(s)); fix the rows or set log_target="
            + ("false" if plus1 else "log1p (for zeros) or false")
        )
    return np.log1p(y) if plus1 else np.log(y)


def drop_missing(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows whose ``columns`` are all present (text: non-empty after stripping)."""
    keep = np.ones(len(df), dtype=bool)
    for c in columns:
        col = df[c]
        keep &= col.notna().to_numpy()
        if col.dtype == object:
            keep &= col.astype(str).str.strip().ne("").to_numpy()
    return df[keep]


def sample_rows(df: pd.DataFrame, n: int | None, seed: int, *, name: str) -> pd.DataFrame:
    """``n`` rows drawn without replacement by ``numpy.random.default_rng(seed)``, kept in file order."""
    if n is None or n >= len(df):
        if n is not None and n > len(df):
            warnings.warn(
                f"dataset {name!r}: asked for {n} rows but only {len(df)} are usable; using all of them", stacklevel=2
            )
        return df
    idx = np.sort(np.random.default_rng(seed).choice(len(df), size=int(n), replace=False))
    return df.iloc[idx]


def file_digest(path, n: int = 10) -> str:
    """Short content hash of a file: part of ``preprocessing`` so a changed label file misses the feature cache."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


def text_column(df: pd.DataFrame, column: str) -> list[str]:
    return [" ".join(str(t).split()) for t in df[column].tolist()]
