"""The benchmarks package (``python -m benchmarks.<name>``): where each writes its table, the GPU benchmark's CPU mode,
the operator count, the input pipeline's table. The extractors' benchmark has its own file (test_extractors_benchmark.py)."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from softstep import HEADS

REPO = Path(__file__).resolve().parents[1]
NAMES = (
    "heads",
    "gpu",
    "ops",
    "inputs",
    "extractors",
    "pipeline",
    "pipeline_tables",
    "tables",
    "precision",
    "ties",
    "k_growth",
    "adversarial",
)


def run_module(name: str, *args: str, **env) -> subprocess.CompletedProcess:
    """``python -m benchmarks.<name> args`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=300,
        cwd=REPO,
    )


@pytest.mark.parametrize("name", NAMES)
def test_output_is_scratch_by_default_and_the_committed_file_with_write(name, tmp_path):
    """A benchmark run by hand must not replace the committed numbers: its table goes to a git-ignored scratch file
    unless --write (the committed results/benchmarks/<name>.md) or --out says otherwise."""
    from benchmarks import _output

    parser = importlib.import_module(f"benchmarks.{name}").parser()
    assert _output.path(parser.parse_args([])) == REPO / "results" / "benchmarks" / "scratch" / f"{name}.md"
    committed = _output.path(parser.parse_args(["--write"]))
    assert committed == REPO / "results" / "benchmarks" / f"{name}.md" and committed.is_file()  # the file in git
    assert _output.path(parser.parse_args(["--out", str(tmp_path / "x.md")])) == tmp_path / "x.md"
    with pytest.raises(SystemExit):
        parser.parse_args(["--write", "--out", str(tmp_path / "x.md")])  # one or the other


def test_output_write_says_where_the_table_went(tmp_path, monkeypatch, capsys):
    from benchmarks import _output

    assert "results/benchmarks/scratch/" in (REPO / ".gitignore").read_text().split()
    monkeypatch.setattr(_output, "SCRATCH", tmp_path / "scratch")
    parser = _output.add_arguments(argparse.ArgumentParser(), "demo")
    out = _output.write(parser.parse_args([]), "# table\n")
    assert out == tmp_path / "scratch" / "demo.md" and out.read_text() == "# table\n"
    assert (
        f"wrote {out} (scratch, git-ignored; --write replaces the committed results/benchmarks/demo.md)"
        in capsys.readouterr().out
    )
    out = _output.write(parser.parse_args(["--out", str(tmp_path / "mine.md")]), "x")
    assert capsys.readouterr().out.strip() == f"wrote {out}" and out.read_text() == "x"


def test_output_write_keeps_a_section_another_benchmark_owns(tmp_path):
    from benchmarks import _output

    parser = _output.add_arguments(argparse.ArgumentParser(), "demo")
    args = parser.parse_args(["--out", str(tmp_path / "heads.md")])
    owned = "<!-- ranks: begin (python -m benchmarks.ranks --write) -->\n## Ranks\nrow\n<!-- ranks: end -->\n"
    (tmp_path / "heads.md").write_text("# old table\n\n" + owned)
    assert _output.write(args, "# new table\n").read_text() == "# new table\n\n" + owned
    assert _output.write(args, "# newer\n\n" + owned).read_text() == "# newer\n\n" + owned  # not twice


@pytest.mark.slow
def test_benchmark_gpu_quick_runs_on_the_cpu_and_writes_its_table(tmp_path):
    """CI runs the GPU benchmark's --quick mode: the same code on the CPU, small sizes, a deadline."""
    out = tmp_path / "gpu.md"
    proc = run_module("gpu", "--quick", "--deadline", "40", "--out", str(out), CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "CPU run" in text and "## 4. Fine-tuning throughput" in text and "<!-- throughput:" in text
    for head in ("linear", "nca_i", "diffknn_i"):
        assert f"| {head} |" in text
    assert "| resnet18 | 0 | 32 |" in text  # the first fine-tuning cell always runs
    cells = [[c.strip() for c in r.split("|")[1:-1]] for r in text.splitlines() if r.startswith("| 32 | ")]
    ops = {c[1]: int(c[2]) for c in cells if c[1] in HEADS and c[2]}
    assert ops["linear"] < ops["nca"] < ops["nca_i"]  # each head's kernels per step, counted in the same run


def test_benchmark_ops_counts_fewer_operators_on_the_cuda_path(tmp_path):
    """benchmarks/ops.py counts each head's operators per step: the CUDA training path skips the input scans,
    so it dispatches fewer than the CPU's; SoftStep adds operators to plain NCA."""
    out = tmp_path / "ops.md"
    proc = run_module("ops", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {
        r.split("|")[1].strip(): r.split("|")[3:6]
        for r in out.read_text().splitlines()
        if r.startswith("| ") and "ms" not in r
    }
    cuda, cpu = ({h: int(v[i]) for h, v in rows.items()} for i in (0, 1))
    assert set(cuda) == {"linear", "nca", "nca_g", "nca_i", "diffknn_g", "diffknn_i"}
    assert all(cuda[h] < cpu[h] for h in cuda)  # every head, the linear one too, scans its inputs only off CUDA
    assert cuda["nca"] < cuda["nca_g"] and all(float(v[2]) > 0 for v in rows.values())


def test_benchmark_inputs_writes_its_table(tmp_path):
    out = tmp_path / "inputs.md"
    proc = run_module(
        "inputs", "--n-images", "2", "--n-clips", "1", "--n-texts", "8", "--workers", "0", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert all(f"| {k} | 0 |" in text for k in ("image", "audio", "text"))


def test_rank_strength_replaces_only_its_own_section_of_heads_md():
    """benchmarks.rank_strength --write owns one marked section of heads.md; the rest (benchmarks.heads) is kept."""
    from benchmarks import rank_strength as rs

    new = f"{rs.BEGIN}\n## Rank strength\nnew\n{rs.END}\n"
    appended = rs.into_heads_md(new, "# Head benchmarks\n\n## 1. x\n")
    assert appended == "# Head benchmarks\n\n## 1. x\n\n" + new
    replaced = rs.into_heads_md(new.replace("new", "newer"), appended + "\n## 4. after\n")
    assert "newer" in replaced and "\nnew\n" not in replaced
    assert replaced.startswith("# Head benchmarks\n\n## 1. x\n") and replaced.endswith("## 4. after\n")
    committed = (REPO / "results" / "benchmarks" / "heads.md").read_text()
    assert committed.count(rs.BEGIN) == 1 and committed.count(rs.END) == 1


@pytest.mark.slow
def test_the_adversarial_cases_are_all_clear(tmp_path):
    """Issue 28's measure, end to end with fewer head calls: every hostile case is refused in one line, accepted as
    valid, or ignored; none is a traceback, silently wrong, lost or code run (the benchmark exits 1 then)."""
    out = tmp_path / "adversarial.md"
    p = run_module("adversarial", "--head-cases", "300", "--work", str(tmp_path / "work"), "--out", str(out))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    row = next(line for line in out.read_text().splitlines() if line.startswith("| **all**"))
    tried, *counts = (int(c.strip("* ").replace(",", "")) for c in row.split("|")[2:-1])
    assert tried > 5000 and counts[3:] == [0, 0, 0, 0], row
