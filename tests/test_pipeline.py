"""The experiment pipeline: configs, splits, scaling, early stopping, results, resume, caching, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.inputs.batches import Inputs
from experiments.labels import MinMaxScaler
from experiments.protocol import pipeline
from experiments.protocol.compose import compose
from experiments.protocol.setup import load_data
from experiments.protocol.splits import paper_split
from experiments.store import identity
from experiments.store.results import read_results
from softstep import HEADS as HEAD_REGISTRY
from softstep import TUNED, build_head
from softstep.model import Regressor
from softstep.training import fit
from softstep.training_types import EarlyStopping, TrainerSettings

REPO = Path(__file__).resolve().parents[1]
HEADS = list(HEAD_REGISTRY)


def make_cfg(*overrides):
    return compose(overrides)


# ---------------------------------------------------------------- configs (bad ones: tests/test_config_errors.py)
def test_dataset_picks_its_extractor_and_head_carries_tuned_hparams():
    cfg = make_cfg()
    assert (cfg.dataset.name, cfg.extractor.name, cfg.head.name) == ("vader", "minilm", "nca_i")
    assert make_cfg("dataset=synthetic").extractor.name == "identity"
    assert make_cfg("dataset=synthetic", "extractor=minilm").extractor.name == "minilm"  # command line wins
    for head, tuned in TUNED.items():
        c = make_cfg(f"head={head}")
        assert (c.model.embed_dim, c.trainer.batch_size) == (tuned["embed_dim"], tuned["batch_size"])
        if tuned["similarity"]:
            assert c.head.similarity == tuned["similarity"]
    assert make_cfg("head=nca", "model.embed_dim=7").model.embed_dim == 7


@pytest.mark.parametrize("group", ["dataset", "extractor", "head", "trainer", "logger", "model", "experiment"])
def test_every_group_option_composes(group):
    options = sorted(p.stem for p in (REPO / "configs" / group).glob("*.yaml"))
    assert options, f"no options in configs/{group}"
    for opt in options:
        cfg = make_cfg(f"{group}={opt}")
        assert cfg[group].name == opt if group in ("extractor", "head", "logger") else cfg.head.name == "nca_i"


def test_nan_label_is_a_clear_error(tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("good\t2.0\t0.5\t[2]\nbad\tnan\t0.5\t[1]\nok\t0.1\t0.5\t[0]\n")
    from data.base import DataError

    with pytest.raises(DataError, match="bad.*NaN"):
        pipeline.run(make_cfg(f"dataset.loader.path={lexicon}", f"paths.results_root={tmp_path}"))


# ---------------------------------------------------------------- protocol pieces
def test_splits_are_deterministic_disjoint_and_80_20_85_15():
    y = np.random.default_rng(0).gamma(2.0, size=1000)
    tr, va, te = paper_split(y, 3)
    assert len(set(tr) | set(va) | set(te)) == 1000 and len(tr) + len(va) + len(te) == 1000
    assert len(te) == 200 and len(va) == 120 and len(tr) == 680
    again = paper_split(y, 3)
    assert all((a == b).all() for a, b in zip((tr, va, te), again))
    assert not (paper_split(y, 4)[2] == te).all()
    # stratified on label deciles: each label quintile holds exactly its share of the test set, 40 of 200 (an
    # unstratified split of these seeds puts 34 to 47 in a quintile)
    q = np.quantile(y, [0.2, 0.4, 0.6, 0.8])
    for seed in range(5):
        counts = np.bincount(np.searchsorted(q, y[paper_split(y, seed)[2]]), minlength=5)
        assert (counts == 40).all(), (seed, counts)


def test_scaler_uses_train_only(tiny):
    cfg = tiny("head=linear", "splits=[0]")
    pipeline.run(cfg)
    (res,) = read_results(tiny.results)
    data = load_data(cfg)
    tr, _, _ = paper_split(data.labels, 0)
    assert res["label_range"] == [data.labels[tr].min(), data.labels[tr].max()]
    assert res["label_range"] != [data.labels.min(), data.labels.max()]  # the full set's range differs
    s = MinMaxScaler(data.labels[tr])
    assert np.allclose(res["metrics"]["test_mse_orig"], res["metrics"]["test_mse"] * (s.hi - s.lo) ** 2)


def test_early_stopping_keeps_the_lowest_validation_mse():
    stopper = EarlyStopping(patience=3)
    seq = [0.9, 0.5, 0.7, 0.2, 0.6, 0.8, 0.3, 0.25, 0.1]
    for epoch, v in enumerate(seq):
        if stopper.step(v, epoch):
            break
    assert (stopper.best, stopper.best_epoch) == (0.2, 3)  # a max/min mix-up would keep 0.9 or 0.8
    assert epoch == 6  # three epochs without beating 0.2


def test_fit_restores_the_best_epoch(monkeypatch):
    """A scripted validation sequence: the returned model must be the one from the lowest-MSE epoch."""
    import softstep.training as T

    seq = iter([0.5, 0.1, 0.4, 0.3, 0.45])
    weights = []

    def fake_eval(model, inputs, y, train_idx, sets, *a, **kw):
        weights.append(model.mlp[0].weight.detach().clone())
        return {k: (next(seq) if k == "val" and len(sets) == 1 else 0.0) for k in sets}

    monkeypatch.setattr(T, "evaluate", fake_eval)
    x = torch.randn(40, 3)
    model = Regressor(3, 8, 4, build_head("linear", 4))
    res = fit(
        model,
        Inputs(features=x),
        np.random.rand(40),
        np.arange(30),
        np.arange(30, 35),
        np.arange(35, 40),
        TrainerSettings(max_epochs=10, patience=3, batch_size=8, lr=1e-2),
        seed=0,
    )
    assert res.best_epoch == 1 and res.epochs_run == 5
    assert torch.equal(weights[-1], weights[1])  # final evaluation ran with epoch 1's weights


# ---------------------------------------------------------------- end to end
@pytest.mark.parametrize("head", HEADS)
def test_end_to_end_each_head(tiny, head):
    line = pipeline.run(tiny(f"head={head}")).summary
    results = read_results(tiny.results)
    assert sorted(r["split"] for r in results) == [0, 1]
    for r in results:
        assert r["head"] == head and r["dataset"] == "synthetic-sinusoidal" and r["extractor"] == "identity"
        assert r["n_train"] + r["n_val"] + r["n_test"] == tiny.n
        assert r["metrics"]["test_mse_x1e3"] == pytest.approx(1e3 * r["metrics"]["test_mse"])
        assert 0 <= r["best_epoch"] < r["epochs_run"] <= 2  # the tiny run's trainer.max_epochs
        assert r["config"]["head"]["name"] == head and r["versions"]["torch"] == torch.__version__
        assert len(r["git_commit"]) >= 7
        assert Path(r["_path"]).parent.name == identity.run_id(tiny(f"head={head}"))
    assert "over 2 split(s)" in line
    assert not list(tiny.results.rglob("*.ckpt.pt")) and not list(tiny.results.rglob("*.tmp"))


def test_rerun_skips_finished_splits_unless_forced(tiny, monkeypatch):
    cfg = tiny("head=nca")
    pipeline.run(cfg)
    calls = []
    monkeypatch.setattr(pipeline, "train_and_record", lambda *a, **k: calls.append(a[1]) or pytest.fail("should skip"))
    pipeline.run(cfg)
    assert calls == []
    monkeypatch.undo()
    before = {r["_path"]: r["finished_at"] for r in read_results(tiny.results)}
    pipeline.run(tiny("head=nca", "splits=[0,1,2]"))  # one more split, same run id
    after = read_results(tiny.results)
    assert len(after) == 3 and all(r["finished_at"] == before[r["_path"]] for r in after if r["_path"] in before)


def test_same_config_same_metrics_on_cpu(tmp_path, tiny):
    a = pipeline.run(tiny.at(tmp_path / "a")("head=diffknn_i", "splits=[1]")).summary
    b = pipeline.run(tiny.at(tmp_path / "b")("head=diffknn_i", "splits=[1]")).summary
    ra, rb = read_results(tmp_path / "a/results")[0], read_results(tmp_path / "b/results")[0]
    assert ra["metrics"] == rb["metrics"] and a.split("\n")[0] == b.split("\n")[0]


def test_resume_mid_training_from_checkpoint(tmp_path):
    """A stop request mid-epoch checkpoints; the rerun resumes there and ends as an uninterrupted run would."""
    import softstep.model as M
    from experiments.protocol.preemption import STOP, FileCheckpoint
    from softstep.training_types import Stopped

    x = torch.randn(60, 3)
    y = np.random.default_rng(0).random(60)
    idx = (np.arange(40), np.arange(40, 50), np.arange(50, 60))

    def new_model():
        torch.manual_seed(0)
        return Regressor(3, 8, 4, build_head("nca_g", 4))

    ref = fit(
        new_model(),
        Inputs(features=x),
        y,
        *idx,
        TrainerSettings(max_epochs=4, patience=10, batch_size=8, lr=1e-2),
        seed=0,
    )
    ck = tmp_path / "split.ckpt.pt"
    calls = {"n": 0}
    orig = M.Regressor.embed

    def embed_then_stop(self, x_):
        calls["n"] += 1
        if calls["n"] == 12:  # somewhere in epoch 1
            STOP.set()
        return orig(self, x_)

    M.Regressor.embed = embed_then_stop
    try:
        with pytest.raises(Stopped):
            fit(
                new_model(),
                Inputs(features=x),
                y,
                *idx,
                TrainerSettings(max_epochs=4, patience=10, batch_size=8, lr=1e-2),
                seed=0,
                checkpoint=FileCheckpoint(ck),
                stop=STOP,
            )
    finally:
        M.Regressor.embed = orig
        STOP.clear()
    state = torch.load(ck, weights_only=True)
    assert state["epoch"] == 1 and state["batch"] > 0  # resumes inside epoch 1, not at epoch 0
    resumed = fit(
        new_model(),
        Inputs(features=x),
        y,
        *idx,
        TrainerSettings(max_epochs=4, patience=10, batch_size=8, lr=1e-2),
        seed=0,
        checkpoint=FileCheckpoint(ck),
        stop=STOP,
    )
    assert resumed.val_mse == pytest.approx(ref.val_mse, rel=1e-5) and resumed.test_mse == pytest.approx(
        ref.test_mse, rel=1e-5
    )


@pytest.mark.slow
def test_killed_run_loses_nothing_and_rerun_runs_only_missing_splits(tmp_path):
    root = tmp_path / "results"
    args = [
        sys.executable,
        "run.py",
        "dataset=synthetic",
        "dataset.loader.n=400",
        "head=nca",
        "splits=[0,1,2]",
        "trainer.max_epochs=30",
        "trainer.patience=30",
        f"paths.results_root={root}",
        "progress=false",
        f"hydra.run.dir={tmp_path}/hydra",
    ]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and not list(root.rglob("split_0.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.name: p.read_bytes() for p in root.rglob("split_*.json")}
    assert "split_0.json" in first and len(first) < 3, "kill the run between its first and last split"
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert not list(root.rglob("*.tmp"))  # a write the kill cut short (a checkpoint's temp file) is cleaned up
    results = read_results(root)
    assert sorted(r["split"] for r in results) == [0, 1, 2]
    for name, blob in first.items():
        assert next(root.rglob(name)).read_bytes() == blob  # finished splits untouched


@pytest.mark.slow
def test_frozen_extractor_runs_once_then_cache(tmp_path, monkeypatch):
    from extractors.text import HFTextEncoder

    calls = {"n": 0}
    orig = HFTextEncoder.forward

    def counting(self, texts):
        calls["n"] += 1
        return orig(self, texts)

    monkeypatch.setattr(HFTextEncoder, "forward", counting)
    over = (
        "dataset.loader.limit=150",
        "splits=[0]",
        "trainer.max_epochs=2",
        f"paths.results_root={tmp_path}",
        "progress=false",
    )
    pipeline.run(make_cfg("head=nca", *over))
    assert calls["n"] > 0
    calls["n"] = 0
    pipeline.run(make_cfg("head=linear", *over))  # another head, same dataset and extractor
    pipeline.run(make_cfg("head=nca", "force=true", *over))
    assert calls["n"] == 0


@pytest.mark.slow
def test_default_run_py_end_to_end(tmp_path):
    """`python run.py` with its defaults (vader + real MiniLM + nca_i), shortened."""
    out = subprocess.run(
        [
            sys.executable,
            "run.py",
            "splits=[0]",
            "trainer.max_epochs=2",
            "dataset.loader.limit=400",
            f"paths.results_root={tmp_path}",
            f"hydra.run.dir={tmp_path}/hydra",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "vader / nca_i: test MSE x 10^3 =" in out.stdout
    (res,) = read_results(tmp_path)
    assert (res["dataset"], res["extractor"], res["head"]) == ("vader", "minilm", "nca_i")


def test_cli_errors_are_one_line_not_tracebacks(tmp_path):
    common = [f"paths.results_root={tmp_path}", f"hydra.run.dir={tmp_path}/h"]
    out = subprocess.run(
        [sys.executable, "run.py", "dataset=synthetic", "model.embed_dim=0", *common],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "model.embed_dim" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(
        [sys.executable, "run.py", "dataset=nope", *common], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode != 0 and "synthetic" in out.stderr and "vader" in out.stderr  # lists the choices


def test_wandb_offline_resumes_the_same_run_and_keeps_no_key(tmp_path, tiny, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", "secret-key-1234567890abcdef1234567890abcdef12")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny("head=nca", "splits=[0]", "logger=wandb", f"logger.dir={tmp_path}/wandb")
    from experiments.protocol.tracking import wandb_run_id

    rid = identity.run_id(cfg)
    assert rid == identity.run_id(tiny("head=nca", "splits=[0]"))  # logging does not change the run id
    pipeline.run(cfg)
    runs = list((tmp_path / "wandb").rglob(f"*-{wandb_run_id(cfg, rid, 0)}"))
    assert runs, "an offline wandb run dir named by the deterministic id"
    pipeline.run(tiny("head=nca", "splits=[0]", "logger=wandb", f"logger.dir={tmp_path}/wandb", "force=true"))
    # offline-run-<time>-<id>, and wandb adds -1 when the rerun starts within the same second
    again = {p.name.split("-")[3] for p in (tmp_path / "wandb").rglob("offline-run-*")}
    assert again == {wandb_run_id(cfg, rid, 0)}  # the rerun resumed the same id, no duplicate run
    for p in tiny.results.rglob("*.json"):
        assert "secret-key" not in p.read_text()


def test_parallel_splits_match_sequential_splits(tmp_path, tiny):
    """trainer.workers=2 trains splits in separate processes: same result files' metrics as one process."""
    pipeline.run(tiny.at(tmp_path / "seq")("head=nca_g", "trainer.workers=1"))
    pipeline.run(tiny.at(tmp_path / "par")("head=nca_g", "trainer.workers=2"))
    seq = {r["split"]: r["metrics"] for r in read_results(tmp_path / "seq/results")}
    par = {r["split"]: r["metrics"] for r in read_results(tmp_path / "par/results")}
    assert seq == par and sorted(seq) == [0, 1]


@pytest.mark.slow
def test_finetuning_trains_the_extractor_and_caches_no_features(tmp_path, monkeypatch):
    """extractor.finetune=true: the extractor is part of the model, gets its own learning rate and changes."""
    seen = {}
    orig_fit = pipeline.fit

    def spy(model, *a, **k):
        seen["before"] = {n: p.detach().clone() for n, p in model.extractor.named_parameters()}
        res = orig_fit(model, *a, **k)
        seen["model"] = model
        return res

    monkeypatch.setattr(pipeline, "fit", spy)
    cfg = make_cfg(
        "dataset.loader.limit=60",
        "extractor.builder.source=random",
        "extractor.finetune=true",
        "head=nca",
        "splits=[0]",
        "trainer.max_epochs=1",
        "trainer.extractor_lr=1e-2",
        f"paths.results_root={tmp_path}",
        "progress=false",
    )
    pipeline.run(cfg)
    (res,) = read_results(tmp_path)
    assert res["hparams"]["finetune"] is True
    after = dict(seen["model"].extractor.named_parameters())
    assert any(not torch.equal(after[n].detach(), p) for n, p in seen["before"].items()), "extractor weights unchanged"
    assert not (tmp_path / "cache" / "features").exists()  # no frozen-feature cache when fine-tuning
    assert list((tmp_path / "cache" / "decoded").glob("vader-*/shard_*.pt"))  # the decoded-sample cache instead


def test_figure3_trains_through_the_pipeline_and_returns_surfaces(tmp_path):
    """The raw setup: heads on the coordinates themselves, and a k-NN reference on the same split."""
    from sklearn.neighbors import KNeighborsRegressor

    from experiments.report import figure3

    surfaces, mse = figure3.run(
        str(tmp_path),
        setup="raw",
        n=80,
        grid_size=5,
        heads=("linear", "nca_g"),
        targets=("spiral",),
        overrides=("trainer.max_epochs=2",),
    )
    s = surfaces["spiral"]
    assert s["true"].shape == s["linear"].shape == s["nca_g"].shape == s["knn"].shape == (5, 5)
    assert np.isfinite(s["nca_g"]).all() and set(mse["spiral"]) == {"linear", "nca_g", "knn"}
    results = read_results(tmp_path)
    assert sorted(r["head"] for r in results) == ["linear", "nca_g"]
    assert all(r["config"]["model"]["arch"] == "identity" and r["config"]["model"]["embed_dim"] == 2 for r in results)
    # the k-NN row: no k on the grid has a lower validation MSE than the one whose test MSE is reported
    cfg = make_cfg("dataset=synthetic", "dataset.loader.target_name=spiral", "dataset.loader.n=80")
    data = load_data(cfg)
    train, val, test = paper_split(data.labels, 0, cfg.trainer.stratify_bins)
    y = MinMaxScaler(data.labels[train]).transform(data.labels)
    x = np.asarray([data.load(i) for i in data.items])
    err = {
        k: np.mean((KNeighborsRegressor(n_neighbors=k).fit(x[train], y[train]).predict(x[val]) - y[val]) ** 2)
        for k in figure3.KNN_KS
        if k <= len(train)
    }
    best = min(err, key=err.get)
    knn = KNeighborsRegressor(n_neighbors=best).fit(x[train], y[train])
    assert mse["spiral"]["knn"] == pytest.approx(1e3 * np.mean((knn.predict(x[test]) - y[test]) ** 2))
    line = figure3.verdict(mse, {"spiral": figure3.label_variance_x1e3("spiral", 80)})[0]
    assert "spiral" in line and "k-NN" in line and ("**yes**" in line or "**no**" in line)


def test_authors_blocks_bound_the_embedding_and_validation_starts_late():
    """protocol=authors: [BatchNorm → Linear → Tanh] × 2 keeps every embedding in (−1, 1); with
    eval_from_epoch=3 the first three epochs are trained without validation (the authors'
    start_after_epoch), and patience counts from there."""
    torch.manual_seed(0)
    model = Regressor(3, 16, 4, build_head("nca_g", 4), arch="mlp_bn_tanh")
    x = 100 * torch.randn(60, 3)
    assert model.min_batch == 2
    z = model.eval().embed(x)
    assert z.abs().max() < 1
    y = np.random.default_rng(0).random(60)
    idx = (np.arange(40), np.arange(40, 50), np.arange(50, 60))
    res = fit(
        model,
        Inputs(features=x),
        y,
        *idx,
        TrainerSettings(max_epochs=6, patience=10, batch_size=8, lr=1e-2, eval_from_epoch=3),
        seed=0,
    )
    assert [h["epoch"] for h in res.history] == [3, 4, 5] and res.best_epoch >= 3
    short = fit(
        Regressor(3, 16, 4, build_head("linear", 4), arch="linear"),
        Inputs(features=x),
        y,
        *idx,
        TrainerSettings(max_epochs=2, patience=10, batch_size=8, lr=1e-2, eval_from_epoch=5),
        seed=0,
    )
    assert [h["epoch"] for h in short.history] == [1]  # the last epoch is always validated


def test_identity_embedding_needs_the_feature_width():
    with pytest.raises(ValueError, match="model.embed_dim=3"):
        Regressor(3, 16, 4, build_head("nca", 4), arch="identity")
    assert isinstance(Regressor(3, 16, 3, build_head("nca", 3), arch="identity").mlp, torch.nn.Identity)


def test_sampled_reference_set_trains_and_is_reproducible(tmp_path, tiny):
    """trainer.reference=sample: each batch's reference set adds a random 30 % of the rest of the training
    split (seeded by split, epoch and batch), so two runs agree and differ from the batch-only protocol."""
    a = pipeline.run(tiny.at(tmp_path / "a")("head=nca_i", "splits=[0]", "trainer.reference=sample")).trained[0].record
    b = pipeline.run(tiny.at(tmp_path / "b")("head=nca_i", "splits=[0]", "trainer.reference=sample")).trained[0].record
    c = pipeline.run(tiny.at(tmp_path / "c")("head=nca_i", "splits=[0]")).trained[0].record
    assert a["metrics"] == b["metrics"] and a["metrics"] != c["metrics"]


def test_a_nan_training_loss_stops_the_fit_with_a_clear_error(monkeypatch):
    """The per-epoch loss check: on the CUDA path (simulated: the heads skip their per-step input scans there) NaN
    features reach the head unchecked, and the fit stops after the epoch, naming it. On the CPU the head refuses
    them at the first step."""
    import softstep.distances as Fn

    x = torch.randn(40, 3)
    x[5, 1] = float("nan")
    model = Regressor(3, 8, 4, build_head("linear", 4))
    with pytest.raises(ValueError, match="z contains NaN or inf"):
        model.head(model.embed(x))
    monkeypatch.setattr(Fn, "in_cuda_training", lambda z: torch.is_grad_enabled())
    with pytest.raises(FloatingPointError, match="epoch 0"):
        fit(
            model,
            Inputs(features=x),
            np.random.rand(40),
            np.arange(30),
            np.arange(30, 35),
            np.arange(35, 40),
            TrainerSettings(max_epochs=3, patience=2, batch_size=8, lr=1e-2),
            seed=0,
        )


def test_a_batch_as_large_as_the_training_split_is_said(tiny, capsys):
    """trainer.batch_size at or above the training split's size trains one step per epoch: allowed, said once a split."""
    pipeline.run(tiny("head=nca", "trainer.batch_size=100000"))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line and "max_epochs" not in line]
    assert len(warnings) == 2 and all("trainer.batch_size=100000" in w and "one batch" in w for w in warnings)


def test_a_diverged_training_says_to_lower_the_learning_rate(tiny):
    """trainer.lr=1e9 blows the embeddings up: the error names the split, what overflowed and trainer.lr."""
    with pytest.raises(ValueError, match=r"split 0: .*diverged: lower trainer\.lr \(now 1e\+09\)"):
        pipeline.run(tiny("head=nca", "trainer.lr=1e9", "splits=[0]"))
