"""Your own data: per-split table preprocessing, sparsity blocks, saved models and scripts/predict.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from experiments.inputs.tabular import TablePreprocessor
from experiments.models import saved
from experiments.models.predict import PredictError, predict
from experiments.protocol import pipeline, progress
from experiments.protocol.compose import compose
from experiments.protocol.sparsity import head_sparsity
from experiments.protocol.splits import paper_split
from experiments.store import identity
from experiments.store.results import read_result, read_results
from softstep import build_head
from tests import fixtures_data as FD

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def flats(path: Path, n=90, seed=0) -> pd.DataFrame:
    """A table with numeric, string and bool columns and a target that depends on all three."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "area": rng.uniform(20, 200, n),
            "rooms": rng.integers(1, 6, n),
            "city": rng.choice(["oslo", "bergen", "tromso"], n),
            "lift": rng.random(n) > 0.5,
            "id": [f"flat{i}" for i in range(n)],
        }
    )
    df["price"] = 1e3 * df["area"] + 5e4 * (df["city"] == "oslo") + 2e4 * df["lift"] + rng.normal(0, 5e3, n)
    df.to_csv(path, index=False)
    return df


@pytest.fixture
def table_cfg(tiny, tmp_path):
    """The tiny run (tests/conftest.py) on the flats table at ``tmp_path / "f.csv"`` (written by :func:`flats`)."""
    return lambda *overrides: tiny(
        "dataset=table",
        f"dataset.loader.path={tmp_path / 'f.csv'}",
        "dataset.loader.target=price",
        "dataset.loader.features=all",
        "dataset.name=flats",
        *overrides,
    )


# ---------------------------------------------------------------- preprocessing
def test_preprocessor_fits_on_train_only_and_ignores_unseen_categories():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 100.0], "c": ["x", "y", "x", "z"]})
    prep = TablePreprocessor(["a"], ["c"]).fit(frame.iloc[:3])
    x = prep.transform(frame)
    assert x.shape == (4, 3) and prep.width == 3  # a, c=x, c=y: 'z' was not in the training rows
    np.testing.assert_allclose(x[:3, 0].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(x[:3, 0].std(), 1, rtol=1e-6)
    assert x[3, 0] > 50 and (x[3, 1:] == 0).all()  # an unseen category: all zeros
    state = json.loads(json.dumps(prep.state()))  # JSON round trip, no pickle
    np.testing.assert_allclose(TablePreprocessor.from_state(state).transform(frame), x, rtol=1e-12, atol=1e-12)


def test_features_all_takes_numeric_and_categorical_and_logs_them(tmp_path, caplog):
    from data.table import load

    flats(tmp_path / "f.csv")
    with caplog.at_level("INFO", logger="softstep"):
        data = load(str(tmp_path / "f.csv"), target="price", features="all")
    assert data.columns["numeric"] == ["area", "rooms"] and data.columns["categorical"] == ["city", "lift"]
    assert "numeric ['area', 'rooms']" in caplog.text and "categorical (one-hot) ['city', 'lift']" in caplog.text
    assert "skipped ['id']" in caplog.text  # one distinct string per row: an identifier, not a category


def test_pipeline_standardises_per_split(tmp_path, table_cfg):
    flats(tmp_path / "f.csv")
    res = pipeline.run(table_cfg("head=linear", "splits=[0]"), keep_models=True)
    t = res.trained[0]
    feats = t.inputs.features.numpy()
    assert feats.shape[1] == 2 + 3 + 2  # area, rooms, three cities, lift True/False
    np.testing.assert_allclose(feats[t.idx[0], :2].mean(0), 0, atol=1e-5)  # fitted on the training split
    assert t.record["features"] == {"numeric": ["area", "rooms"], "categorical": ["city", "lift"], "width": 7}


# ---------------------------------------------------------------- sparsity
def test_head_sparsity_counts_and_learned_parameters():
    torch.manual_seed(0)
    z, z_ref = torch.randn(20, 8), torch.randn(50, 8)
    nca = build_head("nca", 8)
    same = head_sparsity(nca, torch.zeros(3, 8), torch.zeros(50, 8))  # every neighbour ties: uniform weights
    assert same["effective"]["median"] == pytest.approx(50) and same["nonzero"]["median"] == 50 and "l" not in same
    knn = build_head("diffknn_g", 8).eval()
    block = head_sparsity(knn, z, z_ref, max_elements=100)  # chunked
    k = float(knn.kstep.k(z[:1], 50).detach())
    assert block["k"]["median"] == pytest.approx(k)
    assert (
        block["nonzero"]["p90"] <= np.ceil(k + knn.kstep.q)
        and 1 <= block["effective"]["median"] <= block["nonzero"]["median"]
    )
    step = head_sparsity(build_head("nca_i", 8), z, z_ref)
    assert step["l"]["median"] == pytest.approx(0.5 - 1e-4) and step["u"]["median"] == pytest.approx(0.75, abs=1e-3)
    assert step["t"]["median"] == pytest.approx(0.5)
    assert head_sparsity(build_head("linear", 8), z, z_ref) is None


def test_zero_fraction_and_removed_mass_against_numpy():
    """The paper's sparsity: the fraction of exact zero weights, and the mass of softmax(Sim) the step takes away,
    1 − Σ p·m, against a numpy SoftStep at evaluation (whole-row min–max, top 1); plain NCA removes nothing."""
    from softstep import NCAHead

    g = torch.Generator().manual_seed(1)
    z, z_ref = (
        torch.randn(30, 8, generator=g, dtype=torch.float64),
        torch.randn(400, 8, generator=g, dtype=torch.float64),
    )
    head = NCAHead(8, "l2", step="global", learn_scale=False).double()
    with torch.no_grad():
        head.step.params.theta.copy_(torch.tensor([0.6, -0.4, 0.2], dtype=torch.float64))
    block = head_sparsity(head, z, z_ref, max_elements=1000)  # chunked
    sim = -np.sqrt(((z.numpy()[:, None] - z_ref.numpy()[None]) ** 2).sum(-1))
    s = (sim - sim.min(1, keepdims=True)) / (sim.max(1, keepdims=True) - sim.min(1, keepdims=True))
    l0, u0, t = 1 / (1 + np.exp(-np.array([0.6, -0.4, 0.2])))
    lo = l0 - 1e-4
    u = lo + u0 * (1 - lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        a, c = np.clip(s - lo, 0, None) ** (1 / t), np.clip(u - s, 0, None) ** (1 / t)
        m = np.where(s <= lo, 0.0, np.where(s >= u, 1.0, a / (a + c)))
    p = np.exp(sim - sim.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    removed, zeros = 1 - (p * m).sum(1), (m == 0).mean(1)
    assert block["removed_mass"]["median"] == pytest.approx(np.median(removed), rel=1e-9)
    assert block["zero_fraction"]["median"] == pytest.approx(np.median(zeros))
    assert 0.05 < np.median(zeros) < 0.95 and np.median(removed) > 0.01
    plain = head_sparsity(NCAHead(8, "l2", learn_scale=False), z.float(), z_ref.float())
    assert plain["removed_mass"]["p90"] == pytest.approx(0.0, abs=1e-6) and plain["zero_fraction"]["p90"] == 0.0


def test_result_files_have_sparsity_and_per_epoch_logs(tmp_path, table_cfg, monkeypatch):
    logged = []

    class Recorder:
        def log(self, metrics, step):
            logged.append(metrics)

        def finish(self):
            pass

    monkeypatch.setattr(progress, "make_tracker", lambda *a: Recorder())
    flats(tmp_path / "f.csv")
    for head in ("nca_g", "diffknn_i", "linear"):
        pipeline.run(table_cfg(f"head={head}", "splits=[0]"))
    by_head = {r["head"]: r for r in read_results(tmp_path / "results")}
    sp = by_head["nca_g"]["sparsity"]
    assert sp["n_reference"] == by_head["nca_g"]["n_train"] and sp["n_queries"] == by_head["nca_g"]["n_test"]
    assert set(sp) >= {"nonzero", "effective", "l", "u", "t"} and set(sp["effective"]) == {"p10", "median", "p90"}
    assert "k" in by_head["diffknn_i"]["sparsity"] and "sparsity" not in by_head["linear"]
    assert all("sparsity/effective_median" in h for h in by_head["nca_g"]["history"])
    assert sum("sparsity/k_median" in m for m in logged) == by_head["diffknn_i"]["epochs_run"]


# ---------------------------------------------------------------- saved models and predict.py
def run_predict(*args):
    return subprocess.run(
        [sys.executable, "scripts/predict.py", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )


def test_saved_model_predicts_what_the_run_measured(tmp_path, table_cfg):
    df = flats(tmp_path / "f.csv")
    res = pipeline.run(table_cfg("head=nca_i"))
    run_dir = res.key.dir
    assert saved.saved_splits(run_dir) == [0, 1]  # auto: the identity extractor is frozen
    rec = read_result(res.key.split_path(0))
    assert rec["saved_model"]["bytes"] == sum(
        (run_dir / rec["saved_model"][f]).stat().st_size for f in ("weights", "meta")
    )
    out = tmp_path / "pred.csv"
    r = run_predict(run_dir, "--split", 0, "--input", tmp_path / "f.csv", "--out", out, "--explain", 3)
    assert r.returncode == 0, r.stderr
    pred = pd.read_csv(out)
    assert list(pred.columns) == ["row", "prediction", "weight_share", "effective_neighbors"] + [
        f"{c}_{k}" for k in (1, 2, 3) for c in ("neighbor", "target", "weight")
    ]
    _, _, test_idx = paper_split(df["price"].to_numpy(), 0, 10)
    mse = np.mean((pred["prediction"].to_numpy()[test_idx] - df["price"].to_numpy()[test_idx]) ** 2)
    assert mse == pytest.approx(rec["metrics"]["test_mse_orig"], rel=1e-4)  # same model, same test rows
    train_idx = set(paper_split(df["price"].to_numpy(), 0, 10)[0])
    assert set(pred["neighbor_1"]) <= train_idx  # neighbours are training rows of the file
    w = pred[["weight_1", "weight_2", "weight_3"]].to_numpy()
    assert (np.diff(w, axis=1) <= 0).all() and (w.sum(1) <= 1 + 1e-6).all()

    both = predict(run_dir, tmp_path / "f.csv", split="all", explain=2)
    single = [predict(run_dir, tmp_path / "f.csv", split=s)["prediction"].to_numpy() for s in (0, 1)]
    np.testing.assert_allclose(both["prediction"], np.mean(single, axis=0), rtol=1e-9)
    assert set(both["neighbor_1"]) <= set(range(len(df)))

    new = df.drop(columns=["price"]).head(4).copy()
    new.loc[0, "city"] = "paris"  # an unseen category is ignored, not an error
    new.to_parquet(tmp_path / "new.parquet")
    assert len(predict(run_dir, tmp_path / "new.parquet", split=1)) == 4


@pytest.mark.slow
def test_predict_errors_are_one_line(tmp_path, table_cfg, capsys):
    df = flats(tmp_path / "f.csv")
    res = pipeline.run(table_cfg("head=nca", "splits=[0]"))
    df.drop(columns=["rooms"]).to_csv(tmp_path / "no_rooms.csv", index=False)
    (tmp_path / "f.txt").write_text("area rooms\n")
    cases = {
        "no column 'rooms'": (res.key.dir, "--input", tmp_path / "no_rooms.csv"),
        "unsupported file type '.txt'": (res.key.dir, "--input", tmp_path / "f.txt"),
        "no saved model for split 3; saved splits: 0": (res.key.dir, "--split", 3, "--input", tmp_path / "f.csv"),
    }
    nosave = pipeline.run(
        table_cfg("head=nca", "splits=[0]", "save_model=false", "paths.results_root=" + str(tmp_path / "other"))
    )
    assert not (nosave.key.dir / "models").exists()
    cases["has no saved model"] = (nosave.key.dir, "--input", tmp_path / "f.csv")
    for message, args in cases.items():
        r = run_predict(*args, "--out", tmp_path / "p.csv")
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, (message, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    lin = pipeline.run(table_cfg("head=linear", "splits=[0]"))
    plain = predict(lin.key.dir, tmp_path / "f.csv", split=0)
    capsys.readouterr()
    explained = predict(lin.key.dir, tmp_path / "f.csv", split=0, explain=2)  # issue 29: a note, not an exit
    assert "without neighbours" in capsys.readouterr().err and len(plain) == len(df)
    pd.testing.assert_frame_equal(explained, plain)


def test_save_model_setting(tmp_path, table_cfg):
    # a bad value (save_model=sometimes) is in tests/test_config_errors.py
    flats(tmp_path / "f.csv")
    assert saved.wanted(table_cfg())  # auto + frozen
    assert not saved.wanted(compose(["dataset=image_folder"]))  # auto + fine-tuned resnet18: not saved
    assert saved.wanted(compose(["dataset=image_folder", "save_model=true"]))
    # save_model does not change a result: same run id
    assert identity.run_id(table_cfg("save_model=false")) == identity.run_id(table_cfg())


def test_image_folder_run_predicts_a_folder(tmp_path):
    root = FD.labelled_image_folder(tmp_path / "imgs", [f"a/{k}.png" for k in range(24)])
    cfg = compose(
        [
            "dataset=image_folder",
            f"dataset.loader.root={root}",
            "dataset.loader.size=32",
            "extractor.finetune=false",
            "extractor.builder.source=random",
            "head=nca",
            "splits=[0]",
            "trainer.max_epochs=2",
            "trainer.workers=1",
            f"paths.results_root={tmp_path}/results",
            f"paths.cache_dir={tmp_path}/cache",
            "progress=false",
        ]
    )
    res = pipeline.run(cfg)
    new = tmp_path / "new"
    for k in range(3):
        FD.write_image(new / f"q{k}.jpg", (20, 20), "RGB", 100 + k)
    out = predict(res.key.dir, new, split=0, explain=2)
    assert list(out["file"]) == ["q0.jpg", "q1.jpg", "q2.jpg"] and out["prediction"].between(0, 23).all()
    assert set(out["neighbor_1"]) <= {f"a/{k}.png" for k in range(24)}  # training files, relative to the root
    with pytest.raises(PredictError, match="folder of image files"):
        predict(res.key.dir, new / "q0.jpg", split=0)


@pytest.mark.slow
def test_fine_tuned_extractor_is_saved_only_when_asked(tmp_path):
    root = FD.labelled_image_folder(tmp_path / "imgs", [f"{k}.png" for k in range(16)])
    common = [
        "dataset=image_folder",
        f"dataset.loader.root={root}",
        "dataset.loader.size=32",
        "extractor.builder.source=random",
        "head=nca_g",
        "splits=[0]",
        "trainer.max_epochs=1",
        "trainer.workers=1",
        "progress=false",
    ]
    auto = pipeline.run(compose(common + [f"paths.results_root={tmp_path}/a"]))
    assert saved.saved_splits(auto.key.dir) == []  # auto: a fine-tuned extractor is not saved
    res = pipeline.run(compose(common + [f"paths.results_root={tmp_path}/b", "save_model=true"]))
    model = saved.load_model(res.key.dir, 0)
    assert model.meta["extractor_saved"] and model.model.extractor is not None
    out = predict(res.key.dir, root, split=0)
    assert len(out) == 16 and np.isfinite(out["prediction"]).all()


def test_text_table_run_predicts_a_text_file(tmp_path):
    words = ["good", "bad", "fine", "awful", "great", "meh", "superb", "poor"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, 3)) for _ in range(40)]
    pd.DataFrame(
        {"review": texts, "stars": [sum(t.count(w) for w in ("good", "great", "superb")) for t in texts]}
    ).to_csv(tmp_path / "reviews.csv", index=False)
    cfg = compose(
        [
            "dataset=table",
            f"dataset.loader.path={tmp_path}/reviews.csv",
            "dataset.loader.target=stars",
            "dataset.loader.text_column=review",
            "extractor=distilbert",
            "extractor.builder.source=random",
            "extractor.finetune=false",
            "head=diffknn_g",
            "splits=[0]",
            "trainer.max_epochs=2",
            "trainer.workers=1",
            f"paths.results_root={tmp_path}/results",
            f"paths.cache_dir={tmp_path}/cache",
            "progress=false",
        ]
    )
    res = pipeline.run(cfg)
    pd.DataFrame({"review": ["good good", "awful"]}).to_csv(tmp_path / "new.csv", index=False)
    out = predict(res.key.dir, tmp_path / "new.csv", split=0, explain=1)
    assert list(out["row"]) == [0, 1] and np.isfinite(out["prediction"]).all()
    assert set(out["neighbor_1"]) <= set(range(40))
    pd.DataFrame({"text": ["good"]}).to_csv(tmp_path / "wrong.csv", index=False)
    with pytest.raises(PredictError, match="no column 'review'"):
        predict(res.key.dir, tmp_path / "wrong.csv", split=0)
