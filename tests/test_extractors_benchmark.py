"""benchmarks/extractors.py: every extractor config is timed, each built through the composed config; tiny models, quickly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import extractors as B

REPO = Path(__file__).resolve().parents[1]


def test_every_extractor_config_is_listed_with_its_sample_input_and_sizes(monkeypatch):
    cfgs = B.extractor_configs()
    assert sorted(cfgs) == sorted(p.stem for p in (REPO / "configs" / "extractor").glob("*.yaml"))
    batch = {name: B.sample(name, cfg.modality, 3, tokens=8)[0] for name, cfg in cfgs.items()}
    assert batch["resnet18"].shape == (3, 1, 224, 224) and batch["resnet34"].shape == (3, 3, 224, 224)  # RSNA is grey
    assert batch["hubert_base"].shape == (3, 16000) and batch["whisper_tiny"].shape == (3, 30 * 16000)
    assert batch["identity"].shape == (3, B.TABLE_FEATURES)
    assert len(batch["distilbert"]) == 3 and all(len(t.split()) == 8 for t in batch["distilbert"])
    assert {n: B.sizes_of(c) for n, c in cfgs.items() if B.sizes_of(c) == ("tiny", "full")}.keys() == {
        "distilbert",
        "bert_base",
        "hubert_base",
        "whisper_tiny",
    }  # the others have only their real size
    monkeypatch.delitem(B.SAMPLES, "table")
    with pytest.raises(ValueError, match="identity"):
        B.extractor_configs()


def test_extractors_are_built_from_the_composed_config(monkeypatch):
    class Built:  # stands in for hydra's instantiate: what build() hands it
        def __init__(self, builder, **kw):
            self.builder, self.kw = builder, kw

        def eval(self):
            return self

    monkeypatch.setattr(B, "instantiate", Built)
    cfgs = B.extractor_configs()
    with B.hydra_context():
        got = {name: B.build(cfgs[name], "full", 8) for name in ("distilbert", "minilm", "resnet18", "identity")}
    text = got["distilbert"].builder
    assert (text._target_, text.source, text.random_size, text.max_length, text.pooling) == (
        "extractors.text.distilbert",
        "random",
        "full",
        8,
        "mean",
    )
    assert got["minilm"].builder.source == "package" and got["minilm"].builder.max_length == 8  # its packaged weights
    assert got["resnet18"].builder.source == "random" and "random_size" not in got["resnet18"].builder
    assert got["distilbert"].kw == {"finetune": False, "in_dim": None}
    assert got["identity"].kw == {"finetune": False, "in_dim": B.TABLE_FEATURES}


def test_benchmark_tiny_rows_and_table():
    quiet = dict(batch_size=2, tokens=8, min_seconds=0.0, log=lambda *_: None)
    rows = B.run(["distilbert", "hubert_base", "resnet18", "identity"], ["tiny"], **quiet)
    assert [r.extractor for r in rows] == ["distilbert", "hubert_base"]  # no tiny torchvision or identity
    assert all(
        r.samples_per_s > 0 and r.out_dim == 32 and 1 <= r.batches <= 5 for r in rows
    )  # the configs' tiny: hidden 32
    (ident,) = B.run(["identity"], ["tiny", "full"], **quiet)
    assert (ident.size, ident.out_dim, ident.params_m) == ("full", B.TABLE_FEATURES, 0.0)
    md = B.to_markdown(rows + [ident], batch_size=2, tokens=8, seconds=1.0)
    assert "| distilbert | tiny | 0.04 | 32 | text of 8 tokens |" in md
    assert "| hubert_base | tiny | 0.04 | 32 | 1 s of 16 kHz audio |" in md and "| identity | full | 0.00 | 16 |" in md
    assert "| extractor | size | params (M) | out dim | one sample | samples/s |" in md and "batch 2" in md


def test_benchmark_script_writes_markdown(tmp_path):
    out = tmp_path / "x.md"
    script = [sys.executable, "-m", "benchmarks.extractors"]
    r = subprocess.run(
        [
            *script,
            "--only",
            "bert_base",
            "--sizes",
            "tiny",
            "--batch-size",
            "2",
            "--tokens",
            "8",
            "--min-seconds",
            "0",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in out.read_text().splitlines() if ln.startswith("| bert_base")]
    assert len(rows) == 1 and rows[0].startswith("| bert_base | tiny | 0.04 | 32 | text of 8 tokens |")
    r = subprocess.run(
        [*script, "--only", "vgg", "--out", str(tmp_path / "y.md")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert r.returncode == 2 and "invalid choice: 'vgg'" in r.stderr and not (tmp_path / "y.md").exists()
