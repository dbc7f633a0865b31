"""Each paper dataset through its Hydra config: ``dataset=<name>`` picks the right extractor, the loader
reads the tiny fixture, and the extractor (random weights of the same architecture) makes features
of the right shape. Slow tests run the lead's pipeline for two epochs per dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from data.base import DataError, RegressionData, collate
from experiments.protocol.compose import compose
from extractors.base import Extractor
from tests import fixtures_data as F

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXTRACTOR = {
    "rsna": "resnet18",
    "houses": "resnet34",
    "medsegbench": "efficientnet_b0",
    "udacity": "efficientnet_b0",
    "coughvid": "hubert_base",
    "nosemic": "whisper_tiny",
    "adresso": "distilbert",
    "books": "distilbert",
    "austin": "distilbert",
    "pitchfork": "bert_base",
}


def make_cfg(*overrides):
    return compose(overrides)


def fast_overrides(name):
    return [f"dataset.loader.{k}={v}" for k, v in F.FAST.get(name, {}).items()]


@pytest.mark.parametrize("name", list(F.WRITERS))
def test_dataset_config_loader_and_extractor(name, tmp_path):
    n = F.write(name, tmp_path)
    cfg = make_cfg(
        f"dataset={name}", f"paths.data_root={tmp_path}", "extractor.builder.source=random", *fast_overrides(name)
    )
    assert cfg.dataset.name == name and cfg.extractor.name == DEFAULT_EXTRACTOR[name]
    data = instantiate(cfg.dataset.loader)
    assert isinstance(data, RegressionData) and len(data) == n
    assert cfg.extractor.modality == data.modality  # the cheap check, before any model is built
    ext = instantiate(cfg.extractor.builder, finetune=cfg.extractor.finetune, in_dim=None)
    assert isinstance(ext, Extractor) and ext.modality == data.modality and ext.cache_key
    loader = torch.utils.data.DataLoader(data.dataset(range(len(data))), batch_size=4, collate_fn=collate)
    with torch.no_grad():
        feats = torch.cat([ext.eval()(x) for x, _ in loader])
    assert feats.shape == (n, ext.out_dim) and torch.isfinite(feats).all()


@pytest.mark.parametrize("name", list(F.WRITERS))
def test_dataset_config_missing_data_fails_before_any_model(name, tmp_path):
    cfg = make_cfg(f"dataset={name}", f"paths.data_root={tmp_path}")
    with pytest.raises((DataError, InstantiationException)) as e:
        instantiate(cfg.dataset.loader)
    err = e.value if isinstance(e.value, DataError) else e.value.__cause__
    assert isinstance(err, DataError)
    assert str((tmp_path / name).resolve()) in str(err) and f"{name}/README.md" in str(err)


#: appendix B's counts (medsegbench: none given; austin: only "over 15000")
PAPER_COUNTS = {
    "rsna": 14036,
    "medsegbench": None,
    "adresso": 237,
    "coughvid": 6250,
    "nosemic": 1297,
    "udacity": 6762,
    "pitchfork": 1500,
    "houses": 535,
    "books": 6237,
    "austin": None,
}


def test_each_paper_dataset_config_carries_the_papers_count():
    assert set(PAPER_COUNTS) == set(F.WRITERS)
    for name, n in PAPER_COUNTS.items():
        cfg = make_cfg(f"dataset={name}")
        assert OmegaConf.select(cfg, "dataset.expected_n") == n, name
        assert (OmegaConf.select(cfg, "dataset.expected_n_note") is not None) == (n is not None), name
        assert (f"{n:,}" if n else "Expected count") in (REPO / "data" / name / "README.md").read_text(), name
    for name in ("udacity_sim", "table", "image_folder", "audio_folder", "synthetic"):
        assert OmegaConf.select(make_cfg(f"dataset={name}"), "dataset.expected_n") is None, name
    # vader and the other sets that packages ship carry their pinned release's count (tests/test_data_packaged.py)
    assert make_cfg("dataset=vader").dataset.expected_n == 7520


def test_udacity_sim_config_reads_the_simulator_layout(tmp_path):
    """dataset=udacity_sim keeps the simulator's driving_log.csv as an option: its own name and folder, no
    paper count; dataset=udacity on the same folder says where the simulator layout went."""
    n = F.udacity_sim(tmp_path / "udacity_sim")
    cfg = make_cfg("dataset=udacity_sim", f"paths.data_root={tmp_path}", "dataset.loader.size=32")
    assert cfg.extractor.name == "efficientnet_b0" and cfg.dataset.expected_n is None
    data = instantiate(cfg.dataset.loader)
    assert data.name == "udacity_sim" and len(data) == n and data.modality == "image"
    real = make_cfg("dataset=udacity", f"paths.data_root={tmp_path}", f"dataset.loader.root={tmp_path}/udacity_sim")
    with pytest.raises((DataError, InstantiationException)) as e:
        instantiate(real.dataset.loader)
    err = e.value if isinstance(e.value, DataError) else e.value.__cause__
    assert "dataset=udacity_sim" in str(err) and "udacity/README.md" in str(err)


def test_count_unlike_the_papers_prints_one_warning_line(tmp_path, capsys):
    """The fixture has 9 ADReSSo recordings, the paper 237: one line on stderr naming both counts, the likely
    cause and the rows each label table gave. Not an error. Equal counts or no expected_n: silent."""
    from experiments.protocol.setup import check_expected_count, load_data

    n = F.write("adresso", tmp_path)
    cfg = make_cfg("dataset=adresso", f"paths.data_root={tmp_path}")
    assert cfg.dataset.expected_n == 237
    data = load_data(cfg)
    assert len(data) == n
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert "warning" in line and "loaded 9 items" in line and "paper counts 237" in line
    assert "166 = training labels only" in line and "task2.csv" in line and "data/adresso/README.md" in line
    for override in (f"dataset.expected_n={n}", "dataset.expected_n=null"):
        load_data(make_cfg("dataset=adresso", f"paths.data_root={tmp_path}", override))
        assert capsys.readouterr().err == ""
    # without a dataset note the direction names the usual causes
    cfg = make_cfg(
        "dataset=adresso", f"paths.data_root={tmp_path}", "dataset.expected_n_note=null", "dataset.expected_n=5"
    )
    assert "newer or different release" in check_expected_count(cfg, data)
    cfg = make_cfg("dataset=adresso", f"paths.data_root={tmp_path}", "dataset.expected_n_note=null")
    assert "a filter, missing files or only part of the release" in check_expected_count(cfg, data)
    assert check_expected_count(make_cfg("dataset=synthetic"), data) is None  # no expected_n


@pytest.mark.parametrize("name", ["table", "image_folder", "audio_folder", "synthetic", "vader"])
def test_other_dataset_configs_compose(name):
    cfg = make_cfg(f"dataset={name}")
    assert cfg.dataset.loader._target_.startswith("data.")
    assert cfg.extractor.modality in ("image", "audio", "text", "table")


def test_byo_table_config_end_to_end(tmp_path):
    import pandas as pd

    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.0, 1.0, 0.0, 1.0], "y": [1.0, 2.0, 3.0, 4.0]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    cfg = make_cfg(
        "dataset=table",
        f"dataset.loader.path={tmp_path}/t.csv",
        "dataset.loader.target=y",
        "dataset.loader.features=all",
        "dataset.name=mytable",
    )
    data = instantiate(cfg.dataset.loader)
    assert data.name == "mytable" and data.modality == cfg.extractor.modality == "table"
    assert data.columns["numeric"] == ["a", "b"] and len(data.columns["frame"]) == 4  # preprocessed per split


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "configs" / "extractor").glob("*.yaml")))
def test_extractor_config_fields(name):
    cfg = OmegaConf.load(REPO / "configs" / "extractor" / f"{name}.yaml")
    assert cfg.name == name and cfg.modality in ("image", "audio", "text", "table")
    # the paper fine-tunes its pretrained extractors; the demo's MiniLM and identity stay frozen
    assert cfg.finetune is (name not in ("minilm", "identity"))
    assert cfg.builder._target_.startswith("extractors.")


# ------------------------------------------------------------------ the lead's pipeline, 2 epochs
PIPELINE_SIZES = {"nosemic": {"n": 6}, "udacity": {"n": 40}, "houses": {"n": 8}, "austin": {"n": 8}}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(F.WRITERS))
def test_short_training_run_per_dataset(name, tmp_path):
    from experiments.protocol import pipeline

    F.WRITERS[name](tmp_path / name, **PIPELINE_SIZES.get(name, {}))  # the paper's split needs >= 5 items
    # the fixtures are tiny: one label bin, batches of 2
    cfg = make_cfg(
        f"dataset={name}",
        f"paths.data_root={tmp_path}",
        "extractor.builder.source=random",
        "splits=[0]",
        "trainer.max_epochs=2",
        f"paths.results_root={tmp_path}/res",
        "trainer.stratify_bins=1",
        "progress=false",
        "trainer.batch_size=2",
        *fast_overrides(name),
    )
    summary = pipeline.run(cfg).summary
    assert name in summary
    assert list((tmp_path / "res" / "runs" / name).rglob("split_0.json"))
