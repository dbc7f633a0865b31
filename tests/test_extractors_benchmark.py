"""scripts/benchmark_extractors.py: its logic (extractors.benchmark) on tiny models, quickly."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from extractors.benchmark import SPECS, make_batch, run, to_markdown

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_tiny_rows_and_table():
    rows = run(["distilbert", "hubert_base", "resnet18"], ["tiny"], batch_size=2, tokens=8, min_seconds=0.0, log=lambda *_: None)
    assert [r.extractor for r in rows] == ["distilbert", "hubert_base"]  # torchvision has no tiny size
    assert all(r.samples_per_s > 0 and r.out_dim == 32 for r in rows)
    md = to_markdown(rows, batch_size=2, tokens=8, seconds=1.0)
    assert "| distilbert | tiny |" in md and "samples/s" in md
    assert set(SPECS) >= {"resnet18", "resnet34", "efficientnet_b0", "distilbert", "bert_base", "hubert_base", "whisper_tiny"}
    assert make_batch("gray224", 3).shape == (3, 1, 224, 224) and len(make_batch("text", 3)) == 3


def test_benchmark_script_writes_markdown(tmp_path):
    out = tmp_path / "x.md"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark_extractors.py"), "--only", "bert_base", "--sizes", "tiny",
                        "--batch-size", "2", "--tokens", "8", "--min-seconds", "0", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "| bert_base | tiny |" in out.read_text()
