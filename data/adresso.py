"""ADReSSo 2021 (DementiaBank / TalkBank): transcript of a Cookie Theft picture description → MMSE.

Appendix B: 237 recordings (166 training + 71 test) labelled with the Mini-Mental State Exam
score (0–30); their transcripts → DistilBERT-base-uncased.

ADReSSo is speech only: the training release (``ADReSSo21-diagnosis-train``) holds the WAVs
(``diagnosis/train/audio/{ad,cn}/adrso024.wav``), segmentation CSVs and the labels
``adresso-train-mmse-scores.csv`` (columns ``adressfname``, ``mmse``, ``dx``); the test release
(``ADReSSo21-diagnosis-test``: ``diagnosis/test-dist/audio/adrsdt*.wav``) came without labels,
which were published after the challenge as two small tables: task 1 (``ID``, ``Dx``) and task 2
(``ID``, ``MMSE``). The task-2 table is the one read here; its file name differs between copies
(``task2.csv``, ``test_results_task2_groundtruth.csv``, ``adresso-test-mmse-scores.csv`` are in
use), so ``labels`` lists the names to look for.

Transcripts are made from the audio (e.g. with an ASR model) and placed below ``transcripts/`` as
``<id>.txt`` (plain text) or ``<id>.cha`` (CHAT, as DementiaBank's manual transcripts are: the
participant's ``*PAR:`` tiers are kept, CHAT codes removed).

``labels`` lists label tables. Each entry is a path or glob pattern below the root (``**``
allowed; the columns are ``id_column`` / ``target_column``) or a mapping ``{name, path,
id_column, target_column}`` whose ``path`` may list alternative patterns (the first that matches
is used). Every entry must match a file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import checks
from .base import DataError, RegressionData

NAME = "adresso"
_CHAT_CODES = [
    (re.compile(r"\x15[^\x15]*\x15"), " "),  # media time marks
    (re.compile(r"\[[^\]]*\]"), " "),  # [: target] [*] [//] [+ exc] ...
    (re.compile(r"<|>"), " "),  # retracing brackets
    (re.compile(r"&[=\-+~]?\S+"), " "),  # &=laughs, &uh fillers, &-um
    (re.compile(r"\b(xxx|yyy|www)\b"), " "),  # unintelligible
    (re.compile(r"\(\.+\)|\+[./!?\"<,]+|@\S+"), " "),  # pauses (.), utterance links +..., special forms @o
    (re.compile(r"[()]"), ""),  # omitted-sound parentheses: (be)cause → because
    (re.compile(r"_"), " "),
]


def chat_text(raw: str, speakers: Sequence[str] = ("PAR",)) -> str:
    """The words of ``speakers``' main tiers of a CHAT transcript, CHAT codes removed."""
    tiers, current = [], None
    for line in raw.splitlines():
        if line.startswith("*"):
            spk, _, text = line[1:].partition(":")
            current = spk.strip() in speakers
            if current:
                tiers.append(text)
        elif line.startswith(("\t", " ")) and current:
            tiers[-1] += " " + line
        else:
            current = False if line.startswith(("%", "@")) else current
    text = " ".join(tiers)
    for pattern, repl in _CHAT_CODES:
        text = pattern.sub(repl, text)
    return " ".join(text.split())


#: The default label tables: the 166 training and the 71 test recordings (237 in all).
TRAIN_LABELS = {
    "name": "train",
    "path": ["**/adresso-train-mmse-scores.csv"],
    "id_column": "adressfname",
    "target_column": "mmse",
}
TEST_LABELS = {
    "name": "test",
    "path": ["**/task2.csv", "**/test_results_task2_groundtruth.csv", "**/adresso-test-mmse-scores.csv"],
    "id_column": "ID",
    "target_column": "MMSE",
}


def _entries(labels, id_column: str, target_column: str) -> list[dict]:
    """``labels`` as a list of {name, patterns, id_column, target_column}."""
    if isinstance(labels, (str, Mapping)):
        labels = [labels]
    out = []
    for k, entry in enumerate(labels):
        if not isinstance(entry, Mapping):
            entry = {"path": str(entry)}
        path = entry.get("path")
        patterns = [path] if isinstance(path, str) else list(path or [])
        if not patterns:
            raise DataError(
                f"dataset {NAME!r}: labels entry {k} has no path; give a path or glob pattern below the root"
            )
        out.append(
            {
                "name": entry.get("name") or f"table{k}",
                "patterns": [str(p) for p in patterns],
                "id_column": entry.get("id_column") or id_column,
                "target_column": entry.get("target_column") or target_column,
            }
        )
    return out


def _match(root: Path, patterns: Sequence[str]) -> tuple[str, list[Path]]:
    """The first of ``patterns`` that matches a file below ``root``, and its files."""
    for pattern in patterns:
        hits = sorted(root.glob(pattern)) if any(c in pattern for c in "*?[") else [root / pattern]
        hits = [h for h in hits if h.is_file()]
        if hits:
            return pattern, hits
    return "", []


def load(
    root: str = "data/adresso",
    labels: Sequence = (TRAIN_LABELS, TEST_LABELS),
    id_column: str = "adressfname",
    target_column: str = "mmse",
    transcripts: str = "transcripts",
    speakers: Sequence[str] = ("PAR",),
) -> RegressionData:
    root = Path(root).expanduser()
    tdir = root / transcripts
    entries = _entries(labels, id_column, target_column)
    descs = [
        f"{e['name']} labels: {' or '.join(e['patterns'])} (columns {e['id_column']!r}, {e['target_column']!r})"
        for e in entries
    ]
    expected = [*descs, f"{transcripts}/<id>.txt or .cha"]
    checks.require(NAME, root, {"; ".join(descs): root, f"{transcripts}/<id>.txt or .cha": tdir})
    frames, counts, used = [], {}, []
    for e in entries:
        pattern, hits = _match(root, e["patterns"])
        if not hits:
            hint = (
                " The test labels (ID, MMSE) were published after the challenge; without them 166 training "
                "recordings load: set dataset.loader.labels to the training entry alone"
                if e["name"] == "test"
                else ""
            )
            raise checks.missing_data(
                NAME,
                root,
                expected,
                problem=f"no {e['name']} label table matches {' or '.join(map(repr, e['patterns']))}.{hint}",
            )
        for table in hits:
            df = checks.read_table(table, name=NAME)
            df.columns = [str(c).strip() for c in df.columns]
            checks.check_columns(
                df, table, {"id_column": e["id_column"], "target_column": e["target_column"]}, name=NAME
            )
            y = checks.numeric(df, e["target_column"], table, name=NAME)
            frames.append(
                pd.DataFrame({"id": df[e["id_column"]].astype(str).str.strip().to_numpy(), "y": y, "table": str(table)})
            )
            counts[f"{e['name']} ({table.name})"] = counts.get(f"{e['name']} ({table.name})", 0) + len(df)
            used.append(table.name)
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.drop_duplicates(["id", "y"])  # the same table copied to two places
    dup = rows["id"].duplicated(keep=False)
    if dup.any():
        clash = rows[dup].sort_values("id").head(2)
        raise DataError(
            f"dataset {NAME!r}: recording {clash['id'].iloc[0]!r} has two different labels "
            f"({clash['y'].tolist()}) in the label tables {sorted(set(clash['table']))}"
        )
    found = checks.index_files(tdir, (".txt", ".cha"))
    absent = [i for i in rows["id"] if i not in found]
    if absent:
        raise DataError(
            f"dataset {NAME!r}: {len(absent)} of {len(rows)} labelled recordings have no transcript "
            f"{tdir}/<id>.txt or .cha, e.g. {absent[:5]}; see {checks.readme(NAME)}"
        )
    texts = []
    for i in rows["id"]:
        p = found[i]
        try:
            raw = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raw = p.read_text(encoding="latin-1")
        text = chat_text(raw, speakers) if p.suffix == ".cha" else " ".join(raw.split())
        if not text:
            raise DataError(
                f"dataset {NAME!r}: transcript {p} is empty"
                + (f" (no *{'/'.join(speakers)}: tier)" if p.suffix == ".cha" else "")
            )
        texts.append(text)
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:10]
    tag = f"{'+'.join(sorted(set(used)))}-{len(rows)}-{'+'.join(speakers)}-transcripts{digest}"
    return RegressionData(NAME, "text", texts, np.asarray(rows["y"]), preprocessing=tag, counts=counts)
