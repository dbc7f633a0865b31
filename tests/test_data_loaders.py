"""The ten paper datasets: each loader on a tiny copy in its public release's format, and its errors."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from data.base import DataError
from data.media import select_window
from tests import fixtures_data as F

NAMES = list(F.WRITERS)


def _load(name, root, **kw):
    return importlib.import_module(f"data.{name}").load(root=str(root), **{**F.FAST.get(name, {}), **kw})


@pytest.mark.parametrize("name", NAMES)
def test_loader_reads_release_format(name, tmp_path):
    n = F.write(name, tmp_path)
    data = _load(name, tmp_path / name)
    assert data.name == name and data.modality == F.MODALITY[name]
    assert len(data) == n and np.isfinite(data.labels).all()
    assert data.preprocessing
    x = data.load(data.items[0])
    if data.modality == "text":
        assert isinstance(x, str) and x
    elif data.modality == "image":
        assert x.dtype == torch.float32 and x.dim() == 3 and x.shape[0] in (1, 3)
    else:
        assert x.dtype == torch.float32 and x.dim() == 1


@pytest.mark.parametrize("name", NAMES)
def test_missing_folder_names_root_files_and_readme(name, tmp_path):
    root = tmp_path / "nowhere" / name
    with pytest.raises(DataError) as e:
        _load(name, root)
    msg = str(e.value)
    assert str(root.resolve()) in msg
    assert f"data/{name}/README.md".replace("/", "/") in msg.replace("\\", "/")
    assert "expected" in msg
    assert Path(__file__).resolve().parents[1].joinpath("data", name, "README.md").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_empty_folder_is_incomplete(name, tmp_path):
    root = tmp_path / name
    root.mkdir()
    with pytest.raises(DataError) as e:
        _load(name, root)
    assert "README.md" in str(e.value)


def test_rsna_labels_and_grey_normalisation(tmp_path):
    F.write("rsna", tmp_path)
    data = _load("rsna", tmp_path / "rsna")
    assert (
        data.labels[:5].tolist() == pd.read_csv(tmp_path / "rsna" / "boneage-training-dataset.csv")["boneage"].tolist()
    )
    x = data.load(data.items[0])
    assert x.shape == (1, 32, 32) and x.min() >= -1 and x.max() <= 1  # mean = std = 0.5 on [0, 1]
    assert len(_load("rsna", tmp_path / "rsna", include_validation=False)) == 5


def test_rsna_missing_image_and_validation(tmp_path):
    F.write("rsna", tmp_path)
    root = tmp_path / "rsna"
    next((root / "boneage-training-dataset").rglob("1379.png")).unlink()
    with pytest.raises(DataError, match="1379"):
        _load("rsna", root)
    F.write("rsna", tmp_path)
    (root / "Bone Age Validation Set" / "Validation Dataset.csv").unlink()
    with pytest.raises(DataError, match="include_validation=false"):
        _load("rsna", root)


@pytest.mark.parametrize(
    "name,item,payload,message",
    [
        ("rsna", 2, b"\x89PNG\r\n\x1a\n not really a png", "cannot read image"),
        ("coughvid", 1, b"RIFF\x00\x00garbage", "cannot read audio"),
    ],
)
def test_corrupt_file_names_the_file(tmp_path, name, item, payload, message):
    F.write(name, tmp_path)
    data = _load(name, tmp_path / name)
    bad = Path(data.items[item])
    bad.write_bytes(payload)
    with pytest.raises(DataError, match=message) as e:
        data.load(data.items[item])
    assert str(bad) in str(e.value)


def test_medsegbench_target_is_mask_fraction(tmp_path):
    F.write("medsegbench", tmp_path)
    data = _load("medsegbench", tmp_path / "medsegbench")
    # fixture: mask i of each split has 2(i+1) of 32 rows set
    expect = [2 * (i + 1) / 32 for n in (4, 2, 3) for i in range(n)]
    np.testing.assert_allclose(data.labels, expect)
    counts = _load("medsegbench", tmp_path / "medsegbench", target="pixels").labels
    np.testing.assert_allclose(counts, np.array(expect) * 32 * 32)
    assert data.load(data.items[0]).shape == (3, 32, 32)
    assert len(_load("medsegbench", tmp_path / "medsegbench", splits=["val"])) == 2


def test_medsegbench_corrupt_or_wrong_archive(tmp_path):
    root = tmp_path / "medsegbench"
    root.mkdir()
    (root / "brifiseg_256.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="brifiseg_256.npz"):
        _load("medsegbench", root)
    np.savez(root / "brifiseg_256.npz", train_images=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match="train_label"):
        _load("medsegbench", root)


def test_houses_log_price_and_crop(tmp_path):
    F.write("houses", tmp_path)
    data = _load("houses", tmp_path / "houses")
    np.testing.assert_allclose(np.exp(data.labels), [500000 + 25000 * k for k in range(5)])
    assert data.items[0].endswith("1_frontal.jpg")
    assert data.load(data.items[0]).shape == (3, 32, 32)
    assert _load("houses", tmp_path / "houses", view="kitchen").items[1].endswith("2_kitchen.jpg")


def test_udacity_real_dashcam_is_the_default_at_4_fps(tmp_path):
    """The default reads interpolated.csv (the real-road challenge data the paper cites), centre camera only,
    every 5th frame of the 20 Hz stream in time order (33,808 / 5 → 6,762 on the release)."""
    n = F.write("udacity", tmp_path)
    root = tmp_path / "udacity"
    data = _load("udacity", root)
    log = pd.read_csv(root / "interpolated.csv")
    centre = log[log.frame_id == "center_camera"]
    assert len(data) == n == 5
    np.testing.assert_allclose(data.labels, centre["angle"].to_numpy()[::5])
    assert all(Path(p).parent.name == "center" and Path(p).is_file() for p in data.items)
    assert data.counts == {"rows in interpolated.csv": 46, "center_camera frames": 23, "at 4 fps (stride)": 5}
    assert data.load(data.items[0]).shape == (3, 32, 32)
    # the clock-tick alternative agrees on a steady 20 Hz stream despite the jitter; fps=null keeps all 23
    assert _load("udacity", root, sampling="time").labels.tolist() == data.labels.tolist()
    assert len(_load("udacity", root, fps=None)) == 23
    with pytest.raises(DataError, match="sampling='every'"):
        _load("udacity", root, sampling="every")


def test_udacity_one_export_per_bag_is_pooled(tmp_path):
    root = tmp_path / "udacity"
    F.udacity(root / "HMB_1", n=12)
    F.udacity(root / "HMB_2", n=8)
    for k, bag in enumerate(("HMB_1", "HMB_2")):  # the second bag was recorded an hour later
        df = pd.read_csv(root / bag / "interpolated.csv")
        df["timestamp"] += k * 3_600_000_000_000
        df.to_csv(root / bag / "interpolated.csv", index=False)
    data = _load("udacity", root, log="**/interpolated.csv")
    assert len(data) == 4  # frames 0, 5, 10 of the first bag, then 15 (= the second bag's 3rd frame)
    assert data.counts["center_camera frames"] == 20
    assert all(Path(p).is_file() for p in data.items)
    with pytest.raises(DataError, match="no steering log"):
        _load("udacity", root)  # no interpolated.csv at the top


def test_udacity_simulator_layout(tmp_path):
    """dataset=udacity_sim: the simulator's driving_log.csv (no header, absolute image paths of the recording
    machine, frame time in the image name) at 4 fps on a clock: one frame per 250 ms tick."""
    root = tmp_path / "udacity_sim"
    n = F.udacity_sim(root)
    sim = dict(
        log="driving_log.csv",
        header=False,
        image_column="center",
        target_column="steering",
        timestamp_column=None,
        frame_id=None,
        sampling="time",
        size=32,
    )
    data = _load("udacity", root, **sim)
    log = pd.read_csv(root / "driving_log.csv", header=None)
    assert len(data) == n == 6
    np.testing.assert_allclose(data.labels, log[3].to_numpy()[[0, 4, 8, 11, 15, 18]])
    assert all(Path(p).parent.name == "IMG" and Path(p).is_file() for p in data.items)
    assert len(_load("udacity", root, **{**sim, "fps": None})) == 20
    assert len(_load("udacity", root, **{**sim, "sampling": "stride"})) == 5  # every 4th of ~14 fps: 20 / 4
    with pytest.raises(DataError, match="udacity_sim"):
        _load("udacity", root)  # the real-road default names the other layout


def test_udacity_subsample_clock_keeps_the_rate_under_jitter():
    """At 20 Hz with a few ms of jitter, a 'gap of at least 250 ms since the last kept frame' rule would often
    need 6 frames (about 3.4 fps); the clock keeps 4 fps, like the stride."""
    from data.udacity import subsample

    rng = np.random.default_rng(0)
    t = np.arange(2000) * 0.05 + rng.uniform(-0.003, 0.003, 2000)
    for sampling in ("time", "stride"):
        kept = subsample(t, 4, sampling)
        assert abs(len(kept) - 400) <= 1 and np.all(np.diff(t[kept]) > 0.18)
    gap = np.concatenate([np.arange(10) * 0.05, 100 + np.arange(10) * 0.05])
    assert subsample(gap, 4, "time").tolist() == [0, 5, 10, 15]


def test_coughvid_second_and_unlabelled_rows(tmp_path):
    F.write("coughvid", tmp_path)
    data = _load("coughvid", tmp_path / "coughvid")
    assert {Path(p).suffix for p in data.items} == {".wav", ".ogg"}
    for item in data.items[:3]:
        assert data.load(item).shape == (16000,)  # 1 s at 16 kHz (48 kHz resampled, short clip padded)


def test_coughvid_default_filter_age_and_cough_detected(tmp_path):
    """The default keeps recordings with an age whose cough_detected is at least 0.8 (0.8 itself kept);
    the counts after each filter are reported; require adds columns that must be filled."""
    n = F.write("coughvid", tmp_path)
    root = tmp_path / "coughvid"
    data = _load("coughvid", root)
    assert len(data) == n == 6
    assert data.labels.tolist() == [34.0, 21.0, 45.0, 19.0, 63.0, 71.0]
    assert data.counts == {"rows in metadata_compiled.csv": 10, "with an age": 8, "cough_detected >= 0.8": 6}
    everyone = _load("coughvid", root, min_cough_detected=None)  # every row with an age
    assert everyone.labels.tolist() == [34.0, 21.0, 57.0, 45.0, 19.0, 63.0, 28.0, 71.0]
    assert everyone.preprocessing != data.preprocessing
    with_status = _load("coughvid", root, require=["status"])
    assert with_status.labels.tolist() == [34.0, 21.0, 45.0, 63.0, 71.0]
    assert list(with_status.counts.values())[-1] == 5 and "reqstatus" in with_status.preprocessing
    assert len(_load("coughvid", root, min_cough_detected=0.9)) == 3
    with pytest.raises(DataError, match="no recording with an 'age' value after the filters"):
        _load("coughvid", root, min_cough_detected=1.5)
    with pytest.raises(DataError, match="no column 'cough_prob'"):
        _load("coughvid", root, cough_column="cough_prob")


def test_coughvid_filter_counts_table(tmp_path):
    """filter_counts (python -m data.coughvid DIR) tabulates each candidate filter, closest to 6,250 first."""
    from data.coughvid import filter_counts

    F.write("coughvid", tmp_path)
    table = filter_counts(tmp_path / "coughvid")
    assert list(table.columns) == ["min_cough_detected", "require", "n", "minus_paper"]
    row = table[(table.min_cough_detected == 0.8) & (table.require == "-")]
    assert row.n.tolist() == [6] and row.minus_paper.tolist() == [6 - 6250]
    assert table[table.min_cough_detected.isna() & (table.require == "-")].n.tolist() == [8]
    assert table[(table.min_cough_detected == 0.8) & (table.require == "status")].n.tolist() == [5]
    assert (table.minus_paper.abs().diff().dropna() >= 0).all()  # sorted by distance to the paper's count


def test_coughvid_webm_only_recording(tmp_path):
    F.write("coughvid", tmp_path)
    folder = tmp_path / "coughvid" / "public_dataset"
    wav = sorted(folder.glob("*.wav"))[0]
    wav.rename(wav.with_suffix(".webm"))
    with pytest.raises(DataError, match="webm"):
        _load("coughvid", tmp_path / "coughvid")


def test_nosemic_resampled_denoised_30s(tmp_path):
    F.write("nosemic", tmp_path)
    data = _load("nosemic", tmp_path / "nosemic")
    assert data.labels.tolist() == [62.0, 88.5, 121.0, 95.0]
    x = data.load(data.items[1])  # a 44.1 kHz file
    assert x.shape == (30 * 16000,) and torch.isfinite(x).all()
    raw = _load("nosemic", tmp_path / "nosemic", denoise=False).load(data.items[1])
    assert not torch.allclose(x, raw)  # the denoiser changed the signal
    assert "denoise1" in data.preprocessing


def test_adresso_txt_and_chat_transcripts(tmp_path):
    F.write("adresso", tmp_path)
    data = _load("adresso", tmp_path / "adresso")
    assert data.labels.tolist()[:6] == [28, 17, 30, 12, 25, 21]
    chat = data.items[1]
    assert "stealing cookies" in chat and "tipping over" in chat and "drying dishes" in chat
    assert "tell me" not in chat and "&uh" not in chat and "[//]" not in chat and "\x15" not in chat
    (tmp_path / "adresso" / "transcripts" / "adrso026.txt").unlink()
    with pytest.raises(DataError, match="adrso026"):
        _load("adresso", tmp_path / "adresso")


def test_adresso_reads_training_and_test_labels(tmp_path):
    """The default reads both tables (166 + 71 = 237 in the release): the training table's adressfname/mmse
    and the test table's ID/MMSE, each with its own column names; the task-1 table (ID, Dx) is not read."""
    n = F.write("adresso", tmp_path)
    root = tmp_path / "adresso"
    data = _load("adresso", root)
    assert len(data) == n == 9
    assert data.labels.tolist() == [28, 17, 30, 12, 25, 21, 29, 14, 23]
    assert data.counts == {"train (adresso-train-mmse-scores.csv)": 6, "test (task2.csv)": 3}
    assert "drying dishes number 7" in data.items[7]  # adrsdt2's CHAT transcript
    # another copy's file name for the same test table
    test = root / "ADReSSo21" / "diagnosis" / "test-dist"
    (test / "task2.csv").rename(test / "test_results_task2_groundtruth.csv")
    assert _load("adresso", root).labels.tolist() == data.labels.tolist()
    # the same table in two places loads once; a conflicting label is an error naming both tables
    import shutil

    shutil.copy(test / "test_results_task2_groundtruth.csv", root / "test_results_task2_groundtruth.csv")
    assert len(_load("adresso", root)) == 9
    df = pd.read_csv(root / "test_results_task2_groundtruth.csv")
    df.loc[0, "MMSE"] = 5
    df.to_csv(root / "test_results_task2_groundtruth.csv", index=False)
    with pytest.raises(DataError, match="adrsdt1.*two different labels"):
        _load("adresso", root)


def test_adresso_missing_test_labels_say_how_to_load_training_only(tmp_path):
    F.write("adresso", tmp_path)
    root = tmp_path / "adresso"
    (root / "ADReSSo21" / "diagnosis" / "test-dist" / "task2.csv").unlink()
    with pytest.raises(DataError, match="no test label table matches.*166 training") as e:
        _load("adresso", root)
    assert "task2.csv" in str(e.value) and "README.md" in str(e.value)
    train_only = _load("adresso", root, labels=["**/adresso-train-mmse-scores.csv"])
    assert len(train_only) == 6 and train_only.counts == {"table0 (adresso-train-mmse-scores.csv)": 6}


def test_adresso_label_pattern_must_match(tmp_path):
    F.write("adresso", tmp_path)
    with pytest.raises(DataError, match="no table0 label table matches"):
        _load("adresso", tmp_path / "adresso", labels=["**/test-mmse.csv"])
    with pytest.raises(
        DataError, match="task2.csv has no column 'adressfname'"
    ):  # a table with other column names needs its own entry
        _load("adresso", tmp_path / "adresso", labels=["**/adresso-train-mmse-scores.csv", "**/task2.csv"])


def test_pitchfork_sample_is_fixed_by_seed(tmp_path):
    F.write("pitchfork", tmp_path)
    a = _load("pitchfork", tmp_path / "pitchfork", n=4, seed=0)
    b = _load("pitchfork", tmp_path / "pitchfork", n=4, seed=0)
    c = _load("pitchfork", tmp_path / "pitchfork", n=4, seed=1)
    assert a.items == b.items and a.items != c.items and a.preprocessing != c.preprocessing
    assert all(0 <= y <= 10 for y in a.labels)
    assert any("café" in t for t in _load("pitchfork", tmp_path / "pitchfork", n=None).items)  # Latin-1 file


def test_books_reads_csv_export_and_logs_price(tmp_path):
    F.write("books", tmp_path)
    data = _load("books", tmp_path / "books")
    np.testing.assert_allclose(np.exp(data.labels), [220.0, 202.93, 299.0, 180.0, 965.62, 90.0])


def test_bad_column_names_file_and_column(tmp_path):
    F.write("books", tmp_path)
    with pytest.raises(DataError) as e:
        _load("books", tmp_path / "books", text_column="Blurb")
    assert "'Blurb'" in str(e.value) and "Data_Train.csv" in str(e.value) and "Synopsis" in str(e.value)


def test_nan_target_names_file_column_and_row(tmp_path):
    F.write("books", tmp_path)
    path = tmp_path / "books" / "Data_Train.csv"
    df = pd.read_csv(path)
    df.loc[3, "Price"] = np.nan
    df.to_csv(path, index=False)
    with pytest.raises(DataError) as e:
        _load("books", tmp_path / "books")
    assert "Data_Train.csv" in str(e.value) and "'Price'" in str(e.value) and "row 3" in str(e.value)


def test_austin_drops_empty_descriptions_and_rejects_bad_price(tmp_path):
    F.write("austin", tmp_path)
    path = tmp_path / "austin" / "austinHousingData.csv"
    assert len(_load("austin", tmp_path / "austin")) == 5
    df = pd.read_csv(path)
    df.loc[1, "latestPrice"] = 0
    df.to_csv(path, index=False)
    with pytest.raises(DataError, match="cannot be log-scaled"):
        _load("austin", tmp_path / "austin")


def test_select_window():
    wave = np.zeros(1000, dtype=np.float32)
    wave[600:700] = 1.0
    loud = select_window(wave, 200, "loudest", hop=10)
    assert loud.sum() == 100
    assert select_window(wave, 200, "first", hop=10).sum() == 0
    assert select_window(wave[:50], 200, "loudest").shape == (200,)
    assert select_window(np.arange(10.0), 4, "center").tolist() == [3, 4, 5, 6]
