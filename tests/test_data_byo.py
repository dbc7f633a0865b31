"""Bring your own data: table (numeric or text), image folder, audio folder — loader + extractor end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from data import audio_folder, image_folder, table
from data.base import DataError, collate
from tests import fixtures_data as F


def features(data, extractor, batch_size=4):
    """What the pipeline does: collate items, run the frozen extractor."""
    loader = torch.utils.data.DataLoader(data.dataset(range(len(data))), batch_size=batch_size, collate_fn=collate)
    with torch.no_grad():
        return torch.cat([extractor.eval()(x) for x, _ in loader])


def _numeric_csv(path: Path, n=12):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "rooms": rng.integers(1, 6, n),
            "area": rng.uniform(30, 200, n),
            "city": ["a", "b"] * (n // 2),
            "price": rng.uniform(1e5, 5e5, n),
        }
    )
    if path.suffix == ".parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return df


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".tsv"])
def test_table_numeric_end_to_end(tmp_path, suffix):
    from experiments.inputs.tabular import TablePreprocessor

    path = tmp_path / f"houses{suffix}"
    df = _numeric_csv(path.with_suffix(".csv") if suffix == ".tsv" else path)
    if suffix == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    data = table.load(str(path), target="price", features=["rooms", "area"], log_target=True)
    assert data.modality == "table" and len(data) == 12
    np.testing.assert_allclose(np.exp(data.labels), df["price"])
    assert list(data.items) == list(range(12))  # items are the rows' numbers in the file
    cols = data.columns
    assert (cols["numeric"], cols["categorical"]) == (["rooms", "area"], [])
    x = TablePreprocessor(cols["numeric"], cols["categorical"]).fit(cols["frame"]).transform(cols["frame"])
    assert x.shape == (12, 2) and np.allclose(x.mean(0), 0, atol=1e-6)
    every = table.load(str(path), target="price", features="all")  # 'city' is a string column: one-hot encoded
    assert (every.columns["numeric"], every.columns["categorical"]) == (["rooms", "area"], ["city"])


def test_table_text_end_to_end(tmp_path):
    from extractors.text import distilbert

    path = tmp_path / "reviews.csv"
    pd.DataFrame({"text": ["great", "awful", "fine, really", "meh"], "stars": [5, 1, 4, 2]}).to_csv(path, index=False)
    data = table.load(str(path), target="stars", text_column="text")
    assert data.modality == "text" and data.items[2] == "fine, really"
    ext = distilbert(source="random")
    assert features(data, ext).shape == (4, ext.out_dim)


def test_table_errors(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": [1.0, 2.0, "oops", 4.0], "y": [1.0, np.nan, 3.0, 4.0]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="no file at"):
        table.load(str(tmp_path / "nope.csv"), target="y", features=["x"])
    with pytest.raises(DataError, match="exactly one of"):
        table.load(str(path), target="y")
    with pytest.raises(DataError, match="exactly one of"):
        table.load(str(path), target="y", features=["x"], text_column="x")
    with pytest.raises(DataError, match=r"no column 'z' \(set by features\[0\]\)"):
        table.load(str(path), target="y", features=["z"])
    with pytest.raises(DataError, match=r"no column 'target' \(set by target\)"):
        table.load(str(path), target="target", features=["x"])
    with pytest.raises(DataError) as e:  # NaN target
        table.load(str(path), target="y", features=["x"])
    assert "t.csv" in str(e.value) and "'y'" in str(e.value) and "row 1" in str(e.value)
    with pytest.raises(DataError) as e:  # non-numeric feature (row 1's NaN target dropped first)
        table.load(str(path), target="y", features=["x"], dropna=True)
    assert "'x'" in str(e.value) and "'oops'" in str(e.value) and "not a number" in str(e.value)


def test_image_folder_end_to_end(tmp_path):
    from extractors.vision import resnet18

    for k in range(5):
        F.write_image(tmp_path / "imgs" / f"sub/{k}.{'png' if k % 2 else 'jpg'}", (30, 20), "RGB", k)
    pd.DataFrame(
        {"file": [f"imgs/sub/{k}.{'png' if k % 2 else 'jpg'}" for k in range(5)], "age": [1, 2, 3, 4, 5]}
    ).to_csv(tmp_path / "labels.csv", index=False)
    data = image_folder.load(str(tmp_path), target_column="age", size=32)
    assert data.modality == "image" and data.labels.tolist() == [1, 2, 3, 4, 5]
    ext = resnet18(source="random")
    assert features(data, ext).shape == (5, 512)
    grey = image_folder.load(str(tmp_path), target_column="age", size=32, mode="L", mean=[0.5], std=[0.5])
    assert grey.load(grey.items[0]).shape == (1, 32, 32) and features(grey, ext).shape == (5, 512)


def test_image_folder_errors(tmp_path):
    F.write_image(tmp_path / "a.png")
    pd.DataFrame({"file": ["a.png", "missing.png"], "target": [1.0, 2.0]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match="missing.png") as e:
        image_folder.load(str(tmp_path))
    assert "'file'" in str(e.value) and "labels.csv" in str(e.value)
    with pytest.raises(DataError, match="no column 'path'"):
        image_folder.load(str(tmp_path), file_column="path")
    with pytest.raises(DataError, match="does not exist"):
        image_folder.load(str(tmp_path / "nope"))
    (tmp_path / "missing.png").write_bytes(b"not an image")
    data = image_folder.load(str(tmp_path))
    with pytest.raises(DataError, match="missing.png"):
        data.load(data.items[1])


def test_audio_folder_end_to_end(tmp_path):
    from extractors.audio import hubert_base

    files = []
    for k, sr in enumerate([16000, 22050, 8000]):
        F.write_audio(
            tmp_path / f"clips/{k}.{'flac' if k == 1 else 'wav'}", 0.5 + 0.3 * k, sr, k, fmt="FLAC" if k == 1 else None
        )
        files.append(f"clips/{k}.{'flac' if k == 1 else 'wav'}")
    pd.DataFrame({"file": files, "target": [0.1, 0.5, 0.9]}).to_csv(tmp_path / "labels.csv", index=False)
    whole = audio_folder.load(str(tmp_path))
    assert [whole.load(i).shape[0] for i in whole.items] == [8000, 12800, 17600]  # resampled to 16 kHz
    ext = hubert_base(source="random")
    assert features(whole, ext, batch_size=3).shape == (3, ext.out_dim)  # unequal lengths: padded by collate
    fixed = audio_folder.load(str(tmp_path), seconds=1.0, window="loudest")
    assert {fixed.load(i).shape[0] for i in fixed.items} == {16000}
    assert whole.preprocessing != fixed.preprocessing


def test_audio_folder_errors(tmp_path):
    F.write_audio(tmp_path / "a.wav")
    (tmp_path / "b.wav").write_bytes(b"RIFF....WAVEfmt broken")
    pd.DataFrame({"file": ["a.wav", "b.wav"], "target": ["1.5", "x"]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match="'x' is not a number"):
        audio_folder.load(str(tmp_path))
    pd.DataFrame({"file": ["a.wav", "b.wav"], "target": [1.5, 2.0]}).to_csv(tmp_path / "labels.csv", index=False)
    data = audio_folder.load(str(tmp_path))
    with pytest.raises(DataError, match="b.wav"):
        data.load(data.items[1])
    with pytest.raises(DataError, match="window"):
        audio_folder.load(str(tmp_path), seconds=1, window="middle")
