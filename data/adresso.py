"""ADReSSo 2021 (DementiaBank / TalkBank): transcript of a Cookie Theft picture description → MMSE.

Appendix B: 237 recordings (166 training + 71 test) labelled with the Mini-Mental State Exam
score (0–30); their transcripts → DistilBERT-base-uncased.

ADReSSo is speech only: the release (``ADReSSo21-diagnosis-train``, ``-test``) holds the WAVs
(``audio/{ad,cn}/adrso024.wav``), segmentation CSVs and the labels
``adresso-train-mmse-scores.csv`` (columns ``adressfname``, ``mmse``, ``dx``). Transcripts are
made from the audio (e.g. with an ASR model) and placed below ``transcripts/`` as
``<adressfname>.txt`` (plain text) or ``<adressfname>.cha`` (CHAT, as DementiaBank's manual
transcripts are: the participant's ``*PAR:`` tiers are kept, CHAT codes removed).

``labels`` lists label tables (paths or glob patterns below the root, ``**`` allowed; each must
match); add the test labels' table to reach 237. ``id_column`` and ``target_column`` name the
columns in every table.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import checks
from .base import DataError, RegressionData

NAME = "adresso"
_CHAT_CODES = [
    (re.compile(r"\x15[^\x15]*\x15"), " "),     # media time marks
    (re.compile(r"\[[^\]]*\]"), " "),           # [: target] [*] [//] [+ exc] ...
    (re.compile(r"<|>"), " "),                  # retracing brackets
    (re.compile(r"&[=\-+~]?\S+"), " "),         # &=laughs, &uh fillers, &-um
    (re.compile(r"\b(xxx|yyy|www)\b"), " "),    # unintelligible
    (re.compile(r"\(\.+\)|\+[./!?\"<,]+|@\S+"), " "),  # pauses (.), utterance links +..., special forms @o
    (re.compile(r"[()]"), ""),                  # omitted-sound parentheses: (be)cause → because
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


def load(root: str = "data/adresso", labels: Sequence[str] = ("**/adresso-train-mmse-scores.csv",),
         id_column: str = "adressfname", target_column: str = "mmse", transcripts: str = "transcripts",
         speakers: Sequence[str] = ("PAR",)) -> RegressionData:
    root = Path(root).expanduser()
    tdir = root / transcripts
    label_desc = f"label table(s) {', '.join(labels)} (columns {id_column!r}, {target_column!r})"
    checks.require(NAME, root, {label_desc: root, f"{transcripts}/<{id_column}>.txt or .cha": tdir})
    frames = []
    for pattern in labels:
        hits = sorted(root.glob(pattern)) if any(c in pattern for c in "*?[") else [root / pattern]
        hits = [h for h in hits if h.is_file()]
        if not hits:
            raise checks.missing_data(NAME, root, [label_desc, f"{transcripts}/<{id_column}>.txt or .cha"],
                                  problem=f"no label table matches {pattern!r}")
        for table in hits:
            df = checks.read_table(table, name=NAME)
            checks.check_columns(df, table, {"id_column": id_column, "target_column": target_column}, name=NAME)
            y = checks.numeric(df, target_column, table, name=NAME)
            frames.append(pd.DataFrame({"id": df[id_column].astype(str).str.strip().to_numpy(), "y": y, "table": str(table)}))
    rows = pd.concat(frames, ignore_index=True)
    dup = rows["id"].duplicated()
    if dup.any():
        raise DataError(f"dataset {NAME!r}: recording {rows['id'][dup].iloc[0]!r} appears twice in the label tables {sorted(set(rows['table']))}")
    found = checks.index_files(tdir, (".txt", ".cha"))
    absent = [i for i in rows["id"] if i not in found]
    if absent:
        raise DataError(f"dataset {NAME!r}: {len(absent)} of {len(rows)} labelled recordings have no transcript "
                        f"{tdir}/<id>.txt or .cha, e.g. {absent[:5]}; see {checks.readme(NAME)}")
    texts = []
    for i in rows["id"]:
        p = found[i]
        try:
            raw = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raw = p.read_text(encoding="latin-1")
        text = chat_text(raw, speakers) if p.suffix == ".cha" else " ".join(raw.split())
        if not text:
            raise DataError(f"dataset {NAME!r}: transcript {p} is empty" + (f" (no *{'/'.join(speakers)}: tier)" if p.suffix == ".cha" else ""))
        texts.append(text)
    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:10]
    tag = f"{'+'.join(labels)}-{len(rows)}-{'+'.join(speakers)}-transcripts{digest}"
    return RegressionData(NAME, "text", texts, np.asarray(rows["y"]), preprocessing=tag)
