"""What a run tells its user: the epoch cap reached while still improving (one warning line, recorded), the epoch
progress of splits in worker processes, the splits a rerun skips, missing pretrained weights before any decoding,
and the library versions its results record."""

from __future__ import annotations

import json
import time
from importlib.metadata import version

import pandas as pd
import pytest
from omegaconf import OmegaConf

from experiments.protocol import pipeline, setup
from experiments.protocol.evaluate import convergence
from experiments.protocol.progress import EpochProgress, InFlight
from experiments.store.record import versions
from experiments.store.results import read_result
from experiments.store.run_store import split_ranges
from extractors import weights as W
from softstep.training_types import FitResult
from tests import fixtures_data as FD


# ---------------------------------------------------------------- the epoch cap
@pytest.mark.parametrize(
    "epochs_run,best_epoch,hit",
    [
        (40, 39, True),  # still improving in the last epoch
        (40, 30, True),  # best in the last 10 (patience) epochs: early stopping would not have stopped yet
        (40, 29, False),  # 10 epochs without a better one: it would have stopped at 40 anyway
        (25, 24, False),  # stopped early? no: it ran fewer epochs than the cap (e.g. a stop by patience)
    ],
)
def test_hit_epoch_cap_is_the_best_epoch_within_the_last_patience_epochs(epochs_run, best_epoch, hit, capsys):
    cfg = OmegaConf.create({"trainer": {"max_epochs": 40, "patience": 10}})
    res = FitResult(best_epoch, epochs_run, 0.1, 0.1, history=[{"epoch": 0, "val_mse": 0.1}])
    assert convergence(cfg, res, "split 3") == {"hit_epoch_cap": hit}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == hit and (not hit or ("split 3" in err[0] and "trainer.max_epochs=40" in err[0]))
    assert convergence(cfg, FitResult(39, 40, float("nan"), 0.1), "x") == {"hit_epoch_cap": False}  # no validation


def test_a_run_at_the_cap_warns_once_per_split_and_records_it(tiny, capsys):
    res = pipeline.run(tiny("head=nca", "trainer.max_epochs=2", "trainer.patience=5"))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "while still improving" in line]
    assert len(warnings) == 2 and "split 0" in warnings[0] and "split 1" in warnings[1]
    assert all(read_result(res.key.split_path(s))["hit_epoch_cap"] is True for s in (0, 1))
    assert "stopped at trainer.max_epochs while improving: split(s) 0, 1" in res.summary


# ---------------------------------------------------------------- a rerun says what it skips
def test_split_ranges():
    assert split_ranges([7, 0, 1, 2, 5, 8]) == "0-2, 5, 7-8" and split_ranges([4]) == "4"


def test_a_rerun_says_which_splits_are_done(tiny, capsys):
    pipeline.run(tiny("head=nca", "splits=[0,1]"))
    capsys.readouterr()
    res = pipeline.run(tiny("head=nca", "splits=[0,1,2]"))
    lines = [line for line in capsys.readouterr().err.splitlines() if "done already" in line]
    assert lines == [f"[softstep] splits 0-1 done already ({res.key.dir}), training 2"]
    pipeline.run(tiny("head=nca", "splits=[0,1,2]"))
    assert "nothing to train" in capsys.readouterr().err


# ---------------------------------------------------------------- progress of splits in worker processes
def test_epoch_progress_reports_to_a_file_and_in_flight_shows_it(tmp_path):
    report = InFlight.path(tmp_path, 3)
    progress = EpochProgress(200, "split 3", False, report=report)
    progress(11, {"epoch": 11, "val_mse": 0.0041}, 0.0041)
    assert json.loads(report.read_text()) == {"epoch": 12, "total": 200, "best": 0.0041}
    EpochProgress(50, "split 10", False, report=InFlight.path(tmp_path, 10))(0, None, float("inf"))
    flight = InFlight(tmp_path, interval=0.01)
    assert flight.line() == "split 3: epoch 12/200, best val 0.0041 | split 10: epoch 1/50"

    class Bar:
        postfix = ""

        def set_postfix_str(self, text):
            self.postfix = text

    bar = Bar()
    flight.start(bar)
    deadline = time.time() + 5
    while not bar.postfix and time.time() < deadline:
        time.sleep(0.01)
    flight.stop()
    assert bar.postfix.startswith("split 3: epoch 12/200")
    assert not list(tmp_path.glob(".progress-*"))  # the run's end removes them
    progress.close()
    assert not report.exists()


def test_parallel_splits_write_their_progress_and_leave_nothing(tiny, monkeypatch):
    shown = []
    monkeypatch.setattr(InFlight, "start", lambda self, bar: shown.append(self.run_dir))
    res = pipeline.run(tiny("head=nca", "trainer.workers=2", "progress=true"))
    assert shown == [res.key.dir] and sorted(res.trained) == [0, 1]
    assert not list(res.key.dir.glob(".progress-*"))


# ---------------------------------------------------------------- missing weights, before any decoding
def test_missing_offline_weights_fail_before_any_decoding(tiny, tmp_path, offline, monkeypatch):
    offline.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    offline.delenv(W.ENV_CACHE, raising=False)
    images = tmp_path / "imgs"
    for k in range(8):
        FD.write_image(images / f"{k}.png", (24, 20), "RGB", k)
    pd.DataFrame({"file": [f"{k}.png" for k in range(8)], "target": range(8)}).to_csv(images / "labels.csv")
    monkeypatch.setattr(setup, "prepare_inputs", lambda *a, **k: pytest.fail("nothing may be decoded"))
    cfg = tiny("dataset=image_folder", f"dataset.loader.root={images}", "dataset.loader.size=16", "splits=[0]")
    assert cfg.extractor.name == "resnet18" and cfg.extractor.finetune
    with pytest.raises(W.WeightsNotFound) as e:
        pipeline.run(cfg)
    assert "scripts/fetch_weights.py" in str(e.value) and "extractor.builder.source=random" in str(e.value)


def test_weights_present_looks_in_the_weights_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(W.ENV_CACHE, str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    hubert = W.hub_weight("hubert_base", "extractors.audio.hubert_base", "facebook/hubert-base-ls960")
    resnet = W.hub_weight("resnet18", "extractors.vision.resnet18", "IMAGENET1K_V1")
    assert not W.present(resnet)
    (tmp_path / "hf" / "facebook" / "hubert-base-ls960").mkdir(parents=True)
    (tmp_path / "hf" / "facebook" / "hubert-base-ls960" / "config.json").write_text("{}")
    (tmp_path / "torchvision").mkdir()
    (tmp_path / "torchvision" / "resnet18.pth").write_bytes(b"")
    assert W.present(hubert) and W.present(resnet)


# ---------------------------------------------------------------- versions
def test_results_record_the_installed_torchsort():
    v = versions()
    assert v["torchsort"] == version("torchsort") and v["torchsort"] is not None
    assert v["transformers"] == version("transformers")
