"""Word lexicons that packages ship → text :class:`~data.base.RegressionData` (token → human rating or frequency).

Each token is a text item for a frozen text encoder (``extractor=minilm``). The files are read from the
installed packages (:func:`data.packaged.package_file`); nothing is fetched. ``path`` overrides the packaged
file (same format); ``limit`` keeps the first n tokens (tests).

- ``afinn``: AFINN-165 (``afinn/data/AFINN-en-165.txt``), 3,382 English words with an integer valence −5 … +5;
- ``textblob``: the subjectivity lexicon of adjectives in TextBlob (``textblob/en/en-sentiment.xml``, from
  Pattern), per word sense; the label is a word's mean ``polarity`` (−1 … +1) or ``subjectivity`` (0 … 1)
  over its senses;
- ``wordfreq``: the ``n`` most frequent English words in wordfreq's packaged lists, label = the word's
  frequency on the Zipf scale (log10 of occurrences per billion words), ``sample`` of them drawn with ``seed``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

import numpy as np

from .base import DataError, RegressionData
from .packaged import package_file, package_version


def lexicon(name: str, tokens, values, *, limit: int | None, preprocessing: str) -> RegressionData:
    """(token, value) pairs as a text dataset; ``limit`` keeps the first n."""
    tokens, values = list(tokens), list(values)
    if limit:
        tokens, values = tokens[:limit], values[:limit]
    return RegressionData(name, "text", tokens, np.array(values, dtype=np.float64), preprocessing=preprocessing)


def read_pairs(path, *, what: str) -> tuple[list[str], list[float]]:
    """Tab-separated lines ``token<TAB>value[<TAB>...]``; lines with fewer than two fields are skipped."""
    tokens, values = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                continue
            try:
                values.append(float(fields[1]))
            except ValueError as e:
                raise DataError(f"{path}, line {lineno}: column 2 ({what}) is not a number: {fields[1]!r}") from e
            tokens.append(fields[0])
    return tokens, values


def afinn(path: str | None = None, limit: int | None = None) -> RegressionData:
    """AFINN-165: word → integer valence (−5 … +5)."""
    path = path or package_file("afinn", "afinn", "data/AFINN-en-165.txt")
    tokens, values = read_pairs(path, what="valence")
    return lexicon("afinn", tokens, values, limit=limit, preprocessing="raw-token")


TEXTBLOB_LABELS = ("polarity", "subjectivity")


def textblob(label: str = "polarity", path: str | None = None, limit: int | None = None) -> RegressionData:
    """TextBlob's adjective lexicon: word → mean ``label`` over its senses, words in the file's order."""
    if label not in TEXTBLOB_LABELS:
        raise DataError(f"dataset 'textblob': label must be one of {', '.join(TEXTBLOB_LABELS)}; got {label!r}")
    name = f"textblob_{label}"
    path = path or package_file(name, "textblob", "en/en-sentiment.xml")
    try:
        words = ET.parse(path).getroot().iter("word")
        senses: dict[str, list[float]] = defaultdict(list)
        for w in words:
            senses[w.attrib["form"]].append(float(w.attrib[label]))
    except (ET.ParseError, KeyError, ValueError) as e:
        raise DataError(f"dataset {name!r}: cannot read {path}: {type(e).__name__}: {e}") from e
    if not senses:
        raise DataError(f"dataset {name!r}: {path} has no <word> entries")
    means = [float(np.mean(v)) for v in senses.values()]
    return lexicon(name, senses, means, limit=limit, preprocessing="raw-token-mean-over-senses")


def wordfreq(n: int = 20000, sample: int | None = 5000, seed: int = 0, limit: int | None = None) -> RegressionData:
    """The ``n`` most frequent English words (wordfreq's ``top_n_list``) → Zipf frequency; ``sample`` drawn with
    ``numpy.random.default_rng(seed)``, kept in rank order (all ``n`` when None)."""
    package_file("wordfreq", "wordfreq", "data/large_en.msgpack.gz")  # the pinned install hint when it is absent
    import wordfreq as wf

    words = wf.top_n_list("en", int(n))
    if sample is not None and sample < len(words):
        keep = np.sort(np.random.default_rng(seed).choice(len(words), size=int(sample), replace=False))
        words = [words[i] for i in keep]
    zipf = [wf.zipf_frequency(w, "en") for w in words]
    tag = f"wordfreq=={package_version('wordfreq')}-top{n}" + (f"-sample{len(words)}-seed{seed}" if sample else "")
    return lexicon("wordfreq", words, zipf, limit=limit, preprocessing=tag)
