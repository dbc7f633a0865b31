"""Issue 28's sealed models, each finding reproduced on a saved image model (a random ResNet-18, frozen): a JSON with
the tensors of another save or split is refused (finding 4), and the extractor a JSON names is read only from the
model's own folder or the weights cache and must have the weights the model was saved with (finding 3)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from experiments.protocol import pipeline
from experiments.protocol.compose import compose
from scripts import predict as predict_script
from tests import fixtures_data as FD

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """(run folder with splits 0 and 1 saved, folder of new images, predictions of split 0 as saved)."""
    root = tmp_path_factory.mktemp("sealed")
    files = [f"{'ab'[k % 2]}/{k}.png" for k in range(20)]
    images = FD.labelled_image_folder(root / "imgs", files, size=(16, 16))
    cfg = compose(
        [
            "dataset=image_folder",
            f"dataset.loader.root={images}",
            "dataset.loader.size=32",
            "extractor.finetune=false",
            "extractor.builder.source=random",
            "head=nca",
            "splits=[0,1]",
            "trainer.max_epochs=1",
            "trainer.workers=1",
            f"paths.results_root={root}/results",
            f"paths.cache_dir={root}/cache",
            "progress=false",
        ]
    )
    run_dir = pipeline.run(cfg).key.dir
    for k in range(3):
        FD.write_image(root / "new" / f"q{k}.png", (16, 16), "RGB", 90 + k)
    out = root / "first.csv"
    assert predict_script.main([str(run_dir), "--split", "0", "--input", str(root / "new"), "--out", str(out)]) == 0
    return run_dir, root / "new", pd.read_csv(out)


@pytest.fixture
def run_copy(image_run, tmp_path):
    """A copy of the saved run to tamper with: (run folder, new images, split 0's predictions)."""
    run_dir, new, first = image_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy, new, first


def _predict(run_dir: Path, new: Path, out: Path, capsys, split="0"):
    capsys.readouterr()
    code = predict_script.main([str(run_dir), "--split", split, "--input", str(new), "--out", str(out)])
    return code, capsys.readouterr().err.strip().splitlines()


def _edit(meta_file: Path, change) -> None:
    meta = json.loads(meta_file.read_text())
    change(meta)
    meta_file.write_text(json.dumps(meta))


def test_finding_4_the_tensors_of_another_split_are_refused(run_copy, tmp_path, capsys):
    run_dir, new, _ = run_copy
    models = run_dir / "models"
    shutil.copy(models / "model_1.safetensors", models / "model_0.safetensors")
    code, err = _predict(run_dir, new, tmp_path / "p.csv", capsys)
    assert code != 0 and len(err) == 1 and "not of one save" in err[0] and "model_0.json" in err[0], err
    assert not (tmp_path / "p.csv").exists()


def test_finding_4_a_json_moved_to_another_split_is_refused(run_copy, tmp_path, capsys):
    run_dir, new, _ = run_copy
    meta_file = run_dir / "models" / "model_0.json"
    _edit(meta_file, lambda m: m.update(split=1))  # the tensors' hash still matches; their recorded split does not
    code, err = _predict(Path(meta_file), new, tmp_path / "p.csv", capsys, split="all")
    assert code != 0 and len(err) == 1 and "saved for split '0'" in err[0], err


def test_an_unsealed_model_is_refused_and_the_seal_command_restores_it(run_copy, tmp_path, capsys):
    run_dir, new, first = run_copy
    meta_file = run_dir / "models" / "model_0.json"
    _edit(meta_file, lambda m: m.pop("tensors_sha256"))
    code, err = _predict(run_dir, new, tmp_path / "p.csv", capsys)
    assert code != 0 and len(err) == 1 and "python -m softstep.saved_seal" in err[0], err
    p = subprocess.run(
        [sys.executable, "-m", "softstep.saved_seal", str(meta_file)], cwd=REPO, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert _predict(run_dir, new, tmp_path / "p.csv", capsys)[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "p.csv"), first)


@pytest.mark.parametrize("source", ["../../../elsewhere/weights.pth", "ABSOLUTE", "~/weights.pth", "IMAGENET1K_V1"])
def test_finding_3_weights_outside_the_models_folder_are_never_read(run_copy, tmp_path, capsys, source):
    run_dir, new, _ = run_copy
    models = run_dir / "models"
    elsewhere = (models / "../../../elsewhere/weights.pth").resolve()
    elsewhere.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"not": torch.zeros(1)}, elsewhere)  # a file the tampered path names: it must not be opened
    value = str(elsewhere) if source == "ABSOLUTE" else source
    _edit(models / "model_0.json", lambda m: m["config"]["extractor"]["builder"].update(source=value))
    code, err = _predict(run_dir, new, tmp_path / "p.csv", capsys)
    assert code != 0 and len(err) == 1 and "config.extractor.builder.source" in err[0], err
    assert "weights cache" in err[0] and not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("change", [{"seed": 1}, {"_target_": "extractors.vision.resnet34"}])
def test_finding_3_another_seed_or_builder_is_refused(run_copy, tmp_path, capsys, change):
    run_dir, new, _ = run_copy
    _edit(run_dir / "models" / "model_0.json", lambda m: m["config"]["extractor"]["builder"].update(change))
    code, err = _predict(run_dir, new, tmp_path / "p.csv", capsys)
    assert code != 0 and len(err) == 1 and "SHA-256 differs from extractor_sha256" in err[0], err


def test_weights_in_the_models_folder_are_read_when_they_are_the_saved_ones(run_copy, tmp_path, capsys):
    from extractors.vision import resnet18

    run_dir, new, first = run_copy
    models = run_dir / "models"
    weights = resnet18(source="random").net.state_dict()  # the random draw the run was saved with
    torch.save(weights, models / "resnet18.pth")
    _edit(models / "model_0.json", lambda m: m["config"]["extractor"]["builder"].update(source="resnet18.pth"))
    assert _predict(run_dir, new, tmp_path / "p.csv", capsys)[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "p.csv"), first)
    weights[next(iter(weights))].add_(1.0)  # other weights under the same name
    torch.save(weights, models / "resnet18.pth")
    code, err = _predict(run_dir, new, tmp_path / "p.csv", capsys)
    assert code != 0 and len(err) == 1 and "extractor_sha256" in err[0], err


@pytest.mark.parametrize(
    "change",
    [
        {"size": 100_000},
        {"crop": 100_000},
        {"std": [0.0, 0.0, 0.0]},
        {"mean": ["a", "b", "c"]},
        {"target_column": "file"},
    ],
)
def test_finding_13_a_tampered_loader_setting_is_one_line(run_copy, tmp_path, capsys, change):
    run_dir, new, _ = run_copy
    _edit(run_dir / "models" / "model_0.json", lambda m: m["config"]["dataset"]["loader"].update(change))
    code, err = _predict(run_dir, new, tmp_path / "p.csv", capsys)
    assert code == 2 and len(err) == 1 and "config.dataset.loader" in err[0] and next(iter(change)) in err[0], err
