"""Tiny copies of each dataset in its public release's own format, for tests.

``WRITERS[name](root)`` writes a few items of dataset ``name`` into ``root`` (= ``<data_root>/<name>``)
with the real file names, column names and file formats, and returns the number of items the
loader should yield with its default settings. ``FAST`` holds loader overrides that keep the
images small so tests stay quick.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 0


def _rng(salt: int = 0):
    return np.random.default_rng(SEED + salt)


def write_image(path: Path, size=(40, 32), mode="L", salt=0):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    shape = (h, w) if mode == "L" else (h, w, 3)
    Image.fromarray(_rng(salt).integers(0, 256, size=shape, dtype=np.uint8), mode=mode).save(path)


def labelled_image_folder(root: Path, files: list[str], size=(20, 20)) -> Path:
    """An image folder as dataset=image_folder reads it: the PNGs and labels.csv (file, target = the file's index)."""
    for k, f in enumerate(files):
        write_image(root / f, size, "RGB", k)
    pd.DataFrame({"file": files, "target": np.arange(float(len(files)))}).to_csv(root / "labels.csv", index=False)
    return root


def write_audio(path: Path, seconds=1.5, sr=16000, salt=0, fmt=None):
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    rng = _rng(salt)
    wave = 0.1 * np.sin(2 * np.pi * (200 + 50 * salt) * t) + 0.01 * rng.standard_normal(len(t))
    wave[len(t) // 2 : len(t) // 2 + sr // 4] *= 5  # a loud burst
    sf.write(str(path), wave.astype(np.float32), sr, format=fmt)


def rsna(root: Path, n_train=5, n_val=3) -> int:
    root.mkdir(parents=True, exist_ok=True)
    ids = list(range(1377, 1377 + n_train))
    pd.DataFrame(
        {"id": ids, "boneage": np.linspace(30, 200, n_train).round(), "male": [k % 2 == 0 for k in range(n_train)]}
    ).to_csv(root / "boneage-training-dataset.csv", index=False)
    for k, i in enumerate(ids):  # Kaggle's copy nests the folder in itself
        write_image(root / "boneage-training-dataset" / "boneage-training-dataset" / f"{i}.png", (48, 60), "L", k)
    vids = list(range(1386, 1386 + n_val))
    val = root / "Bone Age Validation Set"
    val.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"Image ID": vids, "male": [True] * n_val, "Bone Age (months)": np.linspace(20, 150, n_val)}).to_csv(
        val / "Validation Dataset.csv", index=False
    )
    for k, i in enumerate(vids):
        write_image(val / f"boneage-validation-dataset-{1 + k % 2}" / f"{i}.png", (50, 64), "L", 10 + k)
    return n_train + n_val


def medsegbench(root: Path, sizes=(4, 2, 3), hw=32) -> int:
    root.mkdir(parents=True, exist_ok=True)
    rng = _rng(1)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=(n, hw, hw), dtype=np.uint8)
        masks = np.zeros((n, hw, hw), dtype=np.uint8)
        for i in range(n):
            masks[i, : 2 * (i + 1), :] = 1  # 2(i+1) full rows of foreground
        arrays[f"{split}_label"] = masks
    np.savez_compressed(root / "brifiseg_256.npz", **arrays)
    return sum(sizes)


def adresso(root: Path, n=6, n_test=3) -> int:
    """Training labels (``adressfname``, ``mmse``, ``dx``; pandas index column first, as released) and the
    test labels published after the challenge (task 2: ``ID``, ``MMSE``; task 1: ``ID``, ``Dx``, not read)."""
    ids = [f"adrso{24 + i:03d}" for i in range(n)]
    lab = root / "ADReSSo21" / "diagnosis" / "train"
    lab.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "adressfname": ids,
            "mmse": [28, 17, 30, 12, 25, 21][:n] + [20] * max(0, n - 6),
            "dx": ["cn", "ad"] * (n // 2) + ["cn"] * (n % 2),
        }
    ).to_csv(lab / "adresso-train-mmse-scores.csv")
    test_ids = [f"adrsdt{i + 1}" for i in range(n_test)]
    test = root / "ADReSSo21" / "diagnosis" / "test-dist"
    test.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"ID": test_ids, "MMSE": [29, 14, 23][:n_test] + [26] * max(0, n_test - 3)}).to_csv(
        test / "task2.csv", index=False
    )
    pd.DataFrame(
        {"ID": test_ids, "Dx": ["Control", "ProbableAD", "Control"][:n_test] + ["Control"] * max(0, n_test - 3)}
    ).to_csv(test / "task1.csv", index=False)
    tdir = root / "transcripts"
    tdir.mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(ids + test_ids):
        if k % 2:
            (tdir / f"{i}.cha").write_text(
                "@UTF8\n@Begin\n@Participants:\tPAR Participant, INV Investigator\n"
                "*INV:\ttell me what you see .\n"
                f"*PAR:\tthe boy is &uh taking [//] stealing cookies (.) from the jar . \x15100_2000\x15\n"
                "\tand the stool is tipping over .\n%mor:\tdet|the n|boy\n"
                f"*PAR:\tthe mother is drying dishes number {k} .\n@End\n",
                encoding="utf-8",
            )
        else:
            (tdir / f"{i}.txt").write_text(f"the boy is taking cookies while the mother washes dishes, recording {k}\n")
    return n + n_test


#: CoughVid fixture rows: (age, cough_detected, status); the default keeps an age with cough_detected >= 0.8
COUGHVID_ROWS = [
    (34.0, 0.9, "healthy"),
    (21.0, 0.95, "symptomatic"),
    (np.nan, 0.99, np.nan),
    (57.0, 0.31, "healthy"),
    (45.0, 0.88, "COVID-19"),
    (19.0, 0.8, np.nan),
    (np.nan, 0.02, np.nan),
    (63.0, 0.97, "healthy"),
    (28.0, 0.0, "healthy"),
    (71.0, 0.85, "symptomatic"),
]


def coughvid(root: Path, n=10) -> int:
    """``metadata_compiled.csv`` (pandas index first, one row per recording) with ``.wav`` (converted from
    ``.webm``) and ``.ogg`` recordings at 48 kHz beside it. Rows without an age, and rows whose
    ``cough_detected`` is below 0.8, are left out by default: 6 of the 10 rows are kept."""
    folder = root / "public_dataset"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (age, cough, status) in enumerate(COUGHVID_ROWS[:n]):
        u = f"00{k}9c8a2-7b1e-4c3d-9a5f-1e2d3c4b5a6{k}"
        rows.append(
            {
                "uuid": u,
                "datetime": "2020-04-13T21:30:59.801831+00:00",
                "cough_detected": cough,
                "SNR": 12.3,
                "latitude": 31.3,
                "longitude": 34.8,
                "age": age,
                "gender": "female" if k % 2 else "male",
                "respiratory_condition": False,
                "fever_muscle_pain": False,
                "status": status,
            }
        )
        if k % 2:
            write_audio(folder / f"{u}.ogg", 1.6, 48000, k, fmt="OGG")
        else:
            write_audio(folder / f"{u}.wav", 0.7 if k == 0 else 2.2, 48000, k)
        (folder / f"{u}.json").write_text(
            json.dumps({"datetime": rows[-1]["datetime"], "age": None if np.isnan(age) else age})
        )
    pd.DataFrame(rows).to_csv(folder / "metadata_compiled.csv")
    return sum(1 for age, cough, _ in COUGHVID_ROWS[:n] if np.isfinite(age) and cough >= 0.8)


def nosemic(root: Path, n=4) -> int:
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        f = f"audio/P{k:02d}/{['sitting', 'walking', 'running', 'speaking'][k % 4]}.wav"
        write_audio(root / f, 2.0 + k, [16000, 44100][k % 2], k)
        files.append(f)
    pd.DataFrame({"file": files, "hr": [62.0, 88.5, 121.0, 95.0][:n] + [70.0] * max(0, n - 4)}).to_csv(
        root / "labels.csv", index=False
    )
    return n


def udacity(root: Path, n=23) -> int:
    """The real-road layout: ``interpolated.csv`` as udacity-driving-reader exports Udacity's challenge-2 bags,
    one row per camera frame (left and centre here), 20 Hz with a few ms of clock jitter, ``timestamp`` in ns,
    ``filename`` relative to the CSV. 4 fps keeps every 5th centre frame: 0, 5, 10, 15, 20."""
    root.mkdir(parents=True, exist_ok=True)
    t0 = 1479425441182877835
    jitter_ns = [0, 3, -2, 1, -3, 2, 0, -1, 3, -2] * 10  # ms
    rows = []
    for k in range(n):
        for cam in ("left_camera", "center_camera"):
            ts = t0 + k * 50_000_000 + jitter_ns[k] * 1_000_000 + (7_000 if cam == "left_camera" else 0)
            name = f"{cam.split('_')[0]}/{ts}.jpg"
            write_image(root / name, (32, 24), "RGB", 2 * k + (cam == "left_camera"))
            rows.append(
                {
                    "index": len(rows),
                    "timestamp": ts,
                    "width": 640,
                    "height": 480,
                    "frame_id": cam,
                    "filename": name,
                    "angle": round(float(np.sin(k / 4) * 0.4), 5),
                    "torque": 0.05,
                    "speed": 12.3,
                    "lat": 37.4,
                    "long": -122.1,
                    "alt": -20.1,
                }
            )
    pd.DataFrame(rows).to_csv(root / "interpolated.csv", index=False)
    return len(range(0, n, 5))


def udacity_sim(root: Path, n=20) -> int:
    """The simulator layout (``dataset=udacity_sim``): frames every 70 ms (about 14 fps); 4 fps keeps the first
    frame at or after each 250 ms tick: frames 0, 4, 8, 11, 15, 18 (0, 280, 560, 770, 1050, 1260 ms)."""
    t0 = datetime(2016, 12, 1, 13, 30, 48, 287000)
    rows = []
    for k in range(n):
        t = t0 + timedelta(milliseconds=70 * k)
        stamp = t.strftime("%Y_%m_%d_%H_%M_%S_") + f"{t.microsecond // 1000:03d}"
        names = [f"{cam}_{stamp}.jpg" for cam in ("center", "left", "right")]
        for c, name in enumerate(names):
            write_image(root / "IMG" / name, (32, 16), "RGB", k * 3 + c)
        # the simulator writes the recording machine's absolute paths
        rows.append(
            [
                f"/home/driver/sim/IMG/{names[0]}",
                f" /home/driver/sim/IMG/{names[1]}",
                f" /home/driver/sim/IMG/{names[2]}",
                round(np.sin(k / 3) * 0.3, 4),
                0.5,
                0.0,
                30.1,
            ]
        )
    pd.DataFrame(rows).to_csv(root / "driving_log.csv", header=False, index=False)
    return len([k for k in (0, 4, 8, 11, 15, 18) if k < n])


def pitchfork(root: Path, n=8) -> int:
    root.mkdir(parents=True, exist_ok=True)
    rng = _rng(3)
    df = pd.DataFrame(
        {
            "artist": [f"artist {k}" for k in range(n)],
            "album": [f"album {k}" for k in range(n)],
            "reviewauthor": "critic",
            "score": rng.integers(0, 101, n) / 10,
            "releaseyear": 2010,
            "reviewdate": "January 1 2011",
            "recordlabel": "label",
            "genre": "rock",
            "danceability": rng.random(n),
            "energy": rng.random(n),
            "key": 5,
            "loudness": -7.0,
            "review": [
                f"This record {'soars' if k % 2 else 'drags'} through {k + 3} songs of café noise." for k in range(n)
            ],
        }
    )
    df.loc[n - 1, "review"] = np.nan  # a review without text is dropped
    df.to_csv(root / "P4KxSpotify.csv", index=False, encoding="latin-1")
    return n - 1


def houses(root: Path, n=5) -> int:
    folder = root / "Houses Dataset"  # a clone of the authors' repository
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{3 + k % 2} {2.0 + k / 2} {2000 + 100 * k} 85255 {500000 + 25000 * k}" for k in range(n)]
    (folder / "HousesInfo.txt").write_text("\n".join(lines) + "\n")
    for i in range(1, n + 1):
        for k, view in enumerate(("frontal", "bathroom", "bedroom", "kitchen")):
            write_image(folder / f"{i}_{view}.jpg", (40, 40), "RGB", 4 * i + k)
    return n


def books(root: Path, n=6) -> int:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "Title": [f"Book {k}" for k in range(n)],
            "Author": "A. Writer",
            "Edition": "Paperback,– 2016",
            "Reviews": "4.0 out of 5 stars",
            "Ratings": "8 customer reviews",
            "Synopsis": [f"A gripping tale number {k} about a detective." for k in range(n)],
            "Genre": "Crime, Thriller & Mystery (Books)",
            "BookCategory": "Crime, Thriller & Mystery",
            "Price": [220.0, 202.93, 299.0, 180.0, 965.62, 90.0][:n] + [100.0] * max(0, n - 6),
        }
    ).to_csv(root / "Data_Train.csv", index=False)  # the .xlsx saved as CSV
    return n


def austin(root: Path, n=6) -> int:
    root.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(
        {
            "zpid": range(111373431, 111373431 + n),
            "city": "pflugerville",
            "streetAddress": [f"{k} Main St" for k in range(n)],
            "zipcode": 78660,
            "description": [f"Beautiful {3 + k}-bedroom home near parks." for k in range(n)],
            "latitude": 30.43,
            "longitude": -97.66,
            "propertyTaxRate": 1.98,
            "garageSpaces": 2,
            "hasAssociation": True,
            "latestPrice": [305000.0, 295000.0, 256125.0, 240000.0, 239900.0, 309900.0][:n]
            + [250000.0] * max(0, n - 6),
            "numOfBedrooms": 4,
            "numOfBathrooms": 3.0,
            "homeImage": "111373431_ffce26843283d3365c11d81b8e6bdc6f-p_f.jpg",
        }
    )
    df.loc[n - 1, "description"] = ""  # an empty description is dropped
    df.to_csv(root / "austinHousingData.csv", index=False)
    return n - 1


WRITERS = {
    "rsna": rsna,
    "medsegbench": medsegbench,
    "adresso": adresso,
    "coughvid": coughvid,
    "nosemic": nosemic,
    "udacity": udacity,
    "pitchfork": pitchfork,
    "houses": houses,
    "books": books,
    "austin": austin,
}

#: loader overrides that keep tests quick (small images, a sample the fixture can satisfy)
FAST = {
    "rsna": {"size": 32},
    "medsegbench": {"size": 32},
    "udacity": {"size": 32},
    "houses": {"size": 40, "crop": 32},
    "pitchfork": {"n": 5},
}
#: what each loader should yield with FAST: (modality, number of items)
MODALITY = {
    "rsna": "image",
    "medsegbench": "image",
    "udacity": "image",
    "houses": "image",
    "coughvid": "audio",
    "nosemic": "audio",
    "adresso": "text",
    "pitchfork": "text",
    "books": "text",
    "austin": "text",
}


def write(name: str, data_root: Path) -> int:
    """Write dataset ``name`` under ``data_root/name``; return the item count with FAST settings."""
    n = WRITERS[name](Path(data_root) / name)
    return min(n, FAST.get(name, {}).get("n", n))
