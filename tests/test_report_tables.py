"""Golden tests of the paper tables: fabricated result files in the real format, expected strings by hand."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments.report.fmt import sig
from experiments.report.table1 import table1_cells
from experiments.report.tuning import tuning_cells
from experiments.store.results import ResultError, RunKey, read_results, write_result
from scripts import make_tables

ROOT = Path(__file__).resolve().parents[1]
GRID = {"similarity": "rbf", "embed_dim": 100, "batch_size": 32}


def fake_result(dataset, head, split, mse, run_id=None, hparams=None, extractor="fake"):
    """A complete, valid result dict (format_version 1) with test_mse_x1e3 = ``mse``."""
    hparams = dict(GRID if hparams is None else hparams)
    run_id = run_id or f"{head}-{hparams.get('similarity')}-e{hparams['embed_dim']}-b{hparams['batch_size']}-0000abcd"
    metrics = {
        "test_mse": mse / 1e3,
        "val_mse": mse / 1e3,
        "test_mse_x1e3": mse,
        "val_mse_x1e3": mse,
        "test_mse_orig": mse * 7.0,
        "val_mse_orig": mse * 7.0,
    }
    return {
        "format_version": 1,
        "dataset": dataset,
        "extractor": extractor,
        "head": head,
        "split": split,
        "run_id": run_id,
        "hparams": hparams,
        "metrics": metrics,
        "best_epoch": 4,
        "epochs_run": 9,
        "wall_time_s": 1.5,
        "n_train": 80,
        "n_val": 10,
        "n_test": 10,
        "config": {"dataset": {"name": dataset}, "head": {"name": head, **hparams}, "seed": split},
        "git_commit": "0" * 40,
        "versions": {"python": "3.11", "torch": "2.14.1"},
        "finished_at": "2026-01-01T00:00:00+00:00",
    }


def put(root, result, split=None):
    """Write ``result`` where the store puts it (``split`` overrides the file name's split)."""
    r = result
    path = RunKey(str(root), r["dataset"], r["extractor"], r["head"], r["run_id"]).split_path(
        r["split"] if split is None else split
    )
    write_result(path, r)
    return path


# Golden set. Table 1 expected by hand:
#   rsna linear     5.0 + 0.1 s, s = 0..9        mean 5.45, std sqrt(82.5·0.01/9) = 0.3028
#   rsna nca        linear − 1                   4.45 ± 0.303, all 10 differences < 0 → p = 2/2¹⁰ ≈ 0.00195 †, best
#   rsna nca_g      5.45 ± 0.1 alternating       5.45 ± sqrt(10·0.01/9) = 0.105; differences symmetric → p ≈ 0.95
#   rsna nca_i      5.0, 5.2, 5.4 (3 splits)     5.20 ± 0.200, only 3 pairs → no test
#   rsna diffknn_g  linear + 2                   7.45 ± 0.303, all 10 higher → p ≈ 0.00195 ‡
#   rsna diffknn_i  linear − 0.5, s = 0..5       4.75 ± sqrt(17.5·0.01/5) = 0.187, 6 pairs all lower → p = 2/2⁶ = 0.03125 †
#   books linear    2.0 + 0.02 s                 2.09 ± 0.0606, best
#   books nca       3.0, 2.0, 3.0, ... (10)      2.50 ± sqrt(10·0.25/9) = 0.527; W− = 1+2+3+4+5 = 15 > 8
#                                                (the n = 10 two-sided 5 % critical value) → not significant
#   extra_set linear  1.0 (1 split)              1.00, no std, n=1, best; sorts after the paper's datasets
def golden(root):
    for s in range(10):
        lin = 5.0 + 0.1 * s
        put(root, fake_result("rsna", "linear", s, lin, hparams={"embed_dim": 25, "batch_size": 32}))
        put(root, fake_result("rsna", "nca", s, lin - 1.0))
        put(root, fake_result("rsna", "nca_g", s, 5.45 + (0.1 if s % 2 == 0 else -0.1)))
        put(root, fake_result("rsna", "diffknn_g", s, lin + 2.0))
        if s < 3:
            put(root, fake_result("rsna", "nca_i", s, 5.0 + 0.2 * s))
        if s < 6:
            put(root, fake_result("rsna", "diffknn_i", s, lin - 0.5))
        put(root, fake_result("books", "linear", s, 2.0 + 0.02 * s))
        put(root, fake_result("books", "nca", s, 3.0 if s % 2 == 0 else 2.0))
    put(root, fake_result("extra_set", "linear", 0, 1.0))


@pytest.fixture
def golden_root(tmp_path):
    golden(tmp_path)
    return tmp_path


def make(root, *extra):
    """Run scripts/make_tables.py's main in-process; returns (returncode, stdout, stderr), out folder."""
    out = root / "tables"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = make_tables.main(
            [
                "--results-root",
                str(root),
                "--out",
                str(out),
                "--paper-table",
                str(ROOT / "results/paper/table1.csv"),
                *extra,
            ]
        )
    return SimpleNamespace(returncode=code, stdout=stdout.getvalue(), stderr=stderr.getvalue()), out


def test_sig_digits():
    assert [sig(x) for x in (0.608, 0.36, 303.4, 167, 0.006, 9.996, 12345, 0.0605530)] == [
        "0.608",
        "0.360",
        "303",
        "167",
        "0.00600",
        "10.0",
        "12300",
        "0.0606",
    ]


def test_table1_markdown_golden(golden_root):
    r, out = make(golden_root)
    assert r.returncode == 0, r.stderr
    md = (out / "table1.md").read_text()
    assert "| Dataset | Linear | NCA | NCA g | NCA i | DiffKNN g | DiffKNN i |" in md
    assert (
        "| RSNA | 5.45 ± 0.303 | **4.45 ± 0.303**† | 5.45 ± 0.105 | 5.20 ± 0.200 (n=3) | "
        "7.45 ± 0.303‡ | 4.75 ± 0.187† (n=6) |"
    ) in md
    assert "| Books | **2.09 ± 0.0606** | 2.50 ± 0.527 | – | – | – | – |" in md
    assert "| extra_set | **1.00** (n=1) | – | – | – | – | – |" in md
    lines = md.splitlines()
    assert (
        lines.index(next(l for l in lines if l.startswith("| RSNA")))
        < lines.index(next(l for l in lines if l.startswith("| Books")))
        < lines.index(next(l for l in lines if l.startswith("| extra_set")))
    )
    assert "Wilcoxon" in md and "ddof = 1" in md


def test_table1_latex_golden(golden_root):
    r, out = make(golden_root)
    assert r.returncode == 0, r.stderr
    tex = (out / "table1.tex").read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    assert r"Dataset & Linear & NCA & NCA g & NCA i & DiffKNN g & DiffKNN i \\" in tex
    assert (
        r"RSNA & 5.45 $\pm$ 0.303 & \textbf{4.45} $\pm$ \textbf{0.303}$^{\dagger}$ & 5.45 $\pm$ 0.105 & "
        r"5.20 $\pm$ 0.200 (n=3) & 7.45 $\pm$ 0.303$^{\ddagger}$ & 4.75 $\pm$ 0.187$^{\dagger}$ (n=6) \\"
    ) in tex
    assert r"Books & \textbf{2.09} $\pm$ \textbf{0.0606} & 2.50 $\pm$ 0.527 & -- & -- & -- & -- \\" in tex
    assert r"extra\_set & \textbf{1.00} (n=1) & -- & -- & -- & -- & -- \\" in tex


def test_table1_csv_golden(golden_root):
    r, out = make(golden_root)
    assert r.returncode == 0, r.stderr
    rows = {(x["dataset"], x["head"]): x for x in csv.DictReader(io.StringIO((out / "table1.csv").read_text()))}
    assert list(next(iter(rows.values())))[:8] == [
        "dataset",
        "head",
        "n",
        "mean",
        "std",
        "p_value",
        "significant",
        "best",
    ]
    assert len(rows) == 9
    expect = {  # (n, mean, std, p_value or "", significant, best)
        ("rsna", "linear"): ("10", "5.45", 0.302765, "", "False", "False"),
        ("rsna", "nca"): ("10", "4.45", 0.302765, 2 / 1024, "True", "True"),
        ("rsna", "nca_g"): ("10", "5.45", 0.105409, None, "False", "False"),
        ("rsna", "nca_i"): ("3", "5.2", 0.2, "", "False", "False"),
        ("rsna", "diffknn_g"): ("10", "7.45", 0.302765, 2 / 1024, "True", "False"),
        ("rsna", "diffknn_i"): ("6", "4.75", 0.187083, 2 / 64, "True", "False"),
        ("books", "linear"): ("10", "2.09", 0.0605530, "", "False", "True"),
        ("books", "nca"): ("10", "2.5", 0.527046, None, "False", "False"),
        ("extra_set", "linear"): ("1", "1", None, "", "False", "True"),
    }
    for key, (n, mean, std, p, significant, best) in expect.items():
        row = rows[key]
        assert (row["n"], row["mean"], row["significant"], row["best"]) == (n, mean, significant, best), key
        assert row["std"] == "" if std is None else float(row["std"]) == pytest.approx(std, abs=1e-6), key
        if p == "":
            assert row["p_value"] == "", key
        elif p is None:
            assert float(row["p_value"]) > 0.05, key
        else:
            assert float(row["p_value"]) == pytest.approx(p, rel=1e-9), key


def test_summary_and_compare_paper(golden_root):
    r, out = make(golden_root, "--compare-paper")
    assert r.returncode == 0, r.stderr
    assert "Table 1: 3 datasets, 9 cells" in r.stdout
    md = (out / "table1_vs_paper.md").read_text()
    # ours 4.45 vs the paper's 4.05 for RSNA NCA: 4.45 / 4.05 = 1.0988 → 1.10
    assert "| RSNA | NCA | 4.45 ± 0.303 | 4.05 ± 0.356 | 1.10 |" in md
    assert "| MedSegBench | Linear | – | 6.69 ± 1.29 | – |" in md
    assert "| extra_set | Linear | 1.00 (n=1) | – | – |" in md
    assert "| RSNA | NCA | 4.45 ± 0.303 | 4.05 ± 0.356 | 1.10 |" in r.stdout
    rows = {
        (x["dataset"], x["head"]): x for x in csv.DictReader(io.StringIO((out / "table1_vs_paper.csv").read_text()))
    }
    assert float(rows["rsna", "nca"]["ratio"]) == pytest.approx(4.45 / 4.05)
    assert rows["medsegbench", "linear"]["mean"] == "" and rows["medsegbench", "linear"]["paper_mean"] == "6.69"


def test_malformed_files_are_named_and_skipped(tmp_path):
    """A result file that cannot be read or validated stops read_results (naming it), while make_tables skips it
    with one warning line naming it and writes the tables from the others."""
    golden(tmp_path)
    r, out = make(tmp_path)
    assert r.returncode == 0, r.stderr
    clean = (out / "table1.md").read_text()
    bad = RunKey(str(tmp_path), "books", "fake", "nca", "bad-run").split_path(0)
    bad.parent.mkdir(parents=True)
    result = fake_result("books", "nca", 0, 1.0)
    del result["metrics"]
    cases = {
        "not json": b"{not json",
        "random bytes": bytes(range(256)) * 4,
        "deep nesting": b"[" * 100_000 + b"]" * 100_000,
        "no metrics": json.dumps(result).encode(),
    }
    for case, payload in cases.items():
        bad.write_bytes(payload)
        with pytest.raises(ResultError, match="bad-run/split_0.json"):
            read_results(tmp_path)
        r, out = make(tmp_path)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (case, r.stderr)
        warnings = [line for line in r.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1 and "bad-run/split_0.json" in warnings[0] and "skipped" in warnings[0], (
            case,
            r.stderr,
        )
        assert (out / "table1.md").read_text() == clean, case


def test_mixed_cell_names_both_files(golden_root):
    other = put(golden_root, fake_result("books", "nca", 3, 9.9, run_id="nca-other-ffff0000"))
    with pytest.raises(ResultError) as e:
        table1_cells(read_results(golden_root))
    msg = str(e.value)
    assert "(books, nca)" in msg and str(other) in msg and "nca-other-ffff0000" in msg
    assert "nca-rbf-e100-b32-0000abcd" in msg and "--run-id" in msg
    r, _ = make(golden_root)
    assert r.returncode == 1 and str(other) in r.stderr and "Traceback" not in r.stderr
    # the fix named in the message works
    r, out = make(golden_root, "--run-id", "nca-other-ffff0000")
    assert r.returncode == 0, r.stderr
    assert "| Books | **2.09 ± 0.0606** | 9.90 (n=1) |" in (out / "table1.md").read_text()


def test_a_result_is_read_only_from_its_own_place(golden_root):
    """A file whose recorded split, head or run id disagrees with where it lies is refused (it would land in another
    cell of the table): split_10.json holding split 3, a linear result in the nca folder, a negative split."""
    moved = put(golden_root, fake_result("books", "nca", 3, 2.0), split=10)
    with pytest.raises(ResultError, match=r"split_10.json: field 'split' is 3"):
        read_results(golden_root)
    moved.unlink()
    key = RunKey(str(golden_root), "books", "fake", "nca", "nca-rbf-e100-b32-0000abcd")
    path = key.split_path(4)
    path.write_text(json.dumps(fake_result("books", "linear", 4, 0.1, run_id=key.run_id)))
    with pytest.raises(ResultError, match=r"split_4.json: field 'head' is 'linear'"):
        read_results(golden_root)
    path.write_text(json.dumps(fake_result("books", "nca", -1, 0.1, run_id=key.run_id)))
    with pytest.raises(ResultError, match=r"split_4.json: field 'split' must be >= 0"):
        read_results(golden_root)
    r, out = make(golden_root)
    assert r.returncode == 0 and "split_4.json" in r.stderr and "| Books |" in (out / "table1.md").read_text()


def test_hparams_from_keeps_tuned_configuration(tmp_path):
    golden(tmp_path)
    for s in range(3):  # a tuning grid point on rsna beside the tuned run
        put(
            tmp_path,
            fake_result("rsna", "nca", s, 50.0, hparams={"similarity": "l2", "embed_dim": 25, "batch_size": 128}),
        )
    assert make(tmp_path)[0].returncode == 1
    tuned = tmp_path / "tuned.csv"
    tuned.write_text("head,similarity,embed_dim,batch_size\nlinear,,25,32\nnca,rbf,100,32\n")
    r, out = make(tmp_path, "--hparams-from", str(tuned))
    assert r.returncode == 0, r.stderr
    assert "| **4.45 ± 0.303**† |" in (out / "table1.md").read_text()


# Tuning grid on rsna, 3 splits each, expected by hand:
#   linear (embed, batch): (25, 32) 5, 6, 7 → 6.00 ± 1.00 (best); (25, 128) 7, 8, 9 → 8.00 ± 1.00;
#                          (100, 32) 6, 7, 8 → 7.00 ± 1.00;   (100, 128) 9, 10, 11 → 10.0 ± 1.00
#   nca (sim, embed, batch): l2 and rbf × 25 × 32, 128; rbf/25/32 = 3, 4, 5 → 4.00 ± 1.00 best
def tuning_grid(root):
    lin = {(25, 32): 5.0, (25, 128): 7.0, (100, 32): 6.0, (100, 128): 9.0}
    nca = {("l2", 25, 32): 5.0, ("l2", 25, 128): 6.0, ("rbf", 25, 32): 3.0, ("rbf", 25, 128): 5.5}
    for s in range(3):
        for (e, b), v in lin.items():
            put(root, fake_result("rsna", "linear", s, v + s, hparams={"embed_dim": e, "batch_size": b, "lr": 1e-3}))
        for (sim, e, b), v in nca.items():
            put(
                root, fake_result("rsna", "nca", s, v + s, hparams={"similarity": sim, "embed_dim": e, "batch_size": b})
            )


def test_tuning_tables_golden(tmp_path):
    tuning_grid(tmp_path)
    r, out = make(tmp_path, "--hparams-from", "paper")
    assert r.returncode == 0, r.stderr
    lin = (out / "tuning_linear.md").read_text()
    assert "| Embed \\ Batch | 32 | 128 |" in lin
    assert "| 25 | **6.00 ± 1.00** | 8.00 ± 1.00 |" in lin
    assert "| 100 | 7.00 ± 1.00 | 10.0 ± 1.00 |" in lin
    nca = (out / "tuning_nca.md").read_text()
    assert "| Similarity | Embed \\ Batch | 32 | 128 |" in nca
    assert "| l2 | 25 | 6.00 ± 1.00 | 7.00 ± 1.00 |" in nca
    assert "| rbf | 25 | **4.00 ± 1.00** | 6.50 ± 1.00 |" in nca
    rows = list(csv.DictReader(io.StringIO((out / "tuning.csv").read_text())))
    assert len(rows) == 8
    assert {
        (x["head"], x["similarity"], x["embed_dim"], x["batch_size"], x["n"], x["mean"], x["best"])
        for x in rows
        if x["best"] == "True"
    } == {("linear", "", "25", "32", "3", "6", "True"), ("nca", "rbf", "25", "32", "3", "4", "True")}
    assert "(rbf, 25, 32) 4.00 ± 1.00" in r.stdout


def test_tuning_cell_with_two_run_ids_is_an_error(tmp_path):
    tuning_grid(tmp_path)
    other = put(
        tmp_path,
        fake_result(
            "rsna",
            "nca",
            5,
            1.0,
            run_id="nca-rbf-other",
            hparams={"similarity": "rbf", "embed_dim": 25, "batch_size": 32},
        ),
    )
    with pytest.raises(
        ResultError, match=r"similarity=rbf, embed_dim=25, batch_size=32\) mixes two configurations"
    ) as e:
        tuning_cells(read_results(tmp_path), "rsna")
    assert str(other) in str(e.value)


def test_tuning_runs_differing_off_grid_is_an_error(tmp_path):
    tuning_grid(tmp_path)
    put(tmp_path, fake_result("rsna", "linear", 0, 1.0, hparams={"embed_dim": 50, "batch_size": 32, "lr": 1e-2}))
    with pytest.raises(ResultError, match=r"differ in hparams.lr \(not a grid setting\)"):
        tuning_cells(read_results(tmp_path), "rsna")


def test_no_results_is_a_clear_error(tmp_path):
    r, _ = make(tmp_path)
    assert r.returncode == 1 and "no result files under" in r.stderr and r.stderr.count("\n") == 1


def test_cli_error_is_one_line_without_traceback(tmp_path):
    """The real command line: a cell mixing two runs is exit status 1 and one line naming the file, no traceback;
    a malformed result file is one warning line naming it, and the tables are written."""
    golden(tmp_path)
    other = put(tmp_path, fake_result("books", "nca", 3, 9.9, run_id="nca-other-ffff0000"))
    cmd = [sys.executable, "scripts/make_tables.py", "--results-root", str(tmp_path), "--out", str(tmp_path / "tables")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1
    assert r.stderr.startswith("make_tables.py: error: ") and r.stderr.count("\n") == 1
    assert str(other) in r.stderr and "Traceback" not in r.stderr
    other.unlink()
    bad = RunKey(str(tmp_path), "books", "fake", "nca", "bad-run").split_path(0)
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert [line for line in r.stderr.splitlines() if str(bad) in line] == [r.stderr.strip()]


def test_tuning_layout_follows_the_results_similarity(tmp_path):
    """A head is laid out without a similarity column when its results say ``hparams.similarity: null``."""
    for s in range(3):
        put(
            tmp_path,
            fake_result("rsna", "ridge", s, 2.0 + s, hparams={"similarity": None, "embed_dim": 25, "batch_size": 32}),
        )
    cells = tuning_cells(read_results(tmp_path), "rsna")
    assert [(c.head, c.similarity, c.label) for c in cells] == [("ridge", None, "(25, 32)")]
    r, out = make(tmp_path)
    assert r.returncode == 0, r.stderr
    md = (out / "tuning_ridge.md").read_text()
    assert "| Embed \\ Batch | 32 |" in md and "| 25 | **3.00 ± 1.00** |" in md and "Similarity" not in md


def test_compare_protocols_reads_each_heads_demo_run_per_protocol(tmp_path):
    """scripts/compare_protocols.py: per head and protocol, the run with the demo's head module, model and protocol
    (a run with another head module is left out; a file written before `model.arch` existed still counts);
    mean ± sample std, epochs, the relative difference and the splits stopped at the epoch cap."""
    from omegaconf import OmegaConf

    from experiments.protocol.compose import compose
    from scripts import compare_protocols as cp

    roots = {"tuned": tmp_path / "tuned", "authors": tmp_path / "authors"}

    def result(protocol, split, mse, *, epochs_run=9, similarity=None, old_model=False):
        cfg = OmegaConf.to_container(compose(["experiment=demo", "head=nca", f"protocol={protocol}"]), resolve=True)
        r = fake_result(
            cfg["dataset"]["name"],
            "nca",
            split,
            mse,
            run_id=f"nca-{protocol}-{similarity}",
            extractor=cfg["extractor"]["name"],
        )
        module = {**cfg["head"]["module"], **({"similarity": similarity} if similarity else {})}
        model = {k: v for k, v in cfg["model"].items() if not (old_model and k == "arch")}
        r["config"] = {
            "dataset": cfg["dataset"],
            "head": {"name": "nca", "module": module},
            "model": model,
            "protocol": cfg["protocol"],
        }
        r["epochs_run"] = epochs_run
        return r

    for s, mse in enumerate([10.0, 12.0]):
        put(roots["tuned"], result("tuned", s, mse, old_model=True))
        put(roots["tuned"], result("tuned", s, 99.0, similarity="cos"))  # another head module: not this row
    cap = compose(["experiment=demo", "protocol=authors"]).trainer.max_epochs
    for s, mse in enumerate([13.0, 14.0, 15.0]):
        put(roots["authors"], result("authors", s, mse, epochs_run=cap if s == 0 else 50))
    factor = result("authors", 1, 11.0)
    factor["config"]["trainer"] = {"max_epochs": 200}
    factor["epochs_run"] = 200
    put(tmp_path / "factors" / "init_zero", factor)
    out = tmp_path / "protocols.md"
    cp.main(
        ["--tuned", str(roots["tuned"]), "--authors", str(roots["authors"]), "--factors", str(tmp_path / "factors")]
        + ["--out", str(out)]
    )
    lines = out.read_text().splitlines()
    row = next(line for line in lines if line.startswith("| nca |"))
    assert row == "| nca | 11.0 ± 1.41 (2) | 4 / 9 |  | 14.0 ± 1.00 (3) | 4 / 50 |  | 1 of 3 |"
    assert "| linear | not run |" in out.read_text()
    init = next(line for line in lines if line.startswith("| initialisation |"))
    assert "| nca | 11.0 (1) | 14.0 (1) | -3.0 | 4 / 200 | 1 of 1 |" in init  # against authors' split 1
    assert "| head learning rate | " in out.read_text() and "not run" in out.read_text()


def test_sparsity_table_averages_each_splits_medians_and_reads_older_files(tmp_path):
    """scripts/sparsity_table.py: per head, the per-split medians averaged over splits; a file from before
    zero_fraction gives it from nonzero (1 − nonzero/N) and has no removed mass; the run with most splits wins."""
    from experiments.report import sparsity_table as st
    from scripts import sparsity_table as script

    def block(zero, mass, n=4000, k=None):
        b = {"n_reference": 5000, "nonzero": {"median": n}, "effective": {"median": 100.0}}
        if zero is not None:
            b["zero_fraction"] = {"median": zero}
        if mass is not None:
            b["removed_mass"] = {"median": mass}
        if k is not None:
            b["k"] = {"median": k}
        return b

    root = tmp_path / "demo_faithful"
    for s, (zero, mass) in enumerate([(0.3, 0.5), (0.5, 0.7)]):
        r = fake_result("vader", "nca_i", s, 30.0 + s, run_id="a")
        r["sparsity"] = block(zero, mass)
        put(root, r)
    other = fake_result("vader", "nca_i", 0, 99.0, run_id="b")  # one split: not the run
    put(root, other)
    old = fake_result("vader", "diffknn_i", 0, 20.0, run_id="c")
    old["sparsity"] = block(None, None, n=1000, k=1200.0)
    put(root, old)
    rows = {h: st.summarise(recs) for h, recs in st.by_head(read_results(root)).items()}
    assert rows["nca_i"]["n"] == 2 and rows["nca_i"]["mse"] == 30.5
    assert rows["nca_i"]["zero_fraction"] == pytest.approx(0.4) and rows["nca_i"]["removed_mass"] == pytest.approx(0.6)
    assert rows["diffknn_i"]["zero_fraction"] == pytest.approx(0.8) and rows["diffknn_i"]["removed_mass"] is None
    text = script.report(tmp_path)
    assert "| `authors` (the paper as printed), β = 1 | nca_i | 30.5 ± 0.7 (2) | 40.0% | 0.6 | 100 |" in text
    assert "| diffknn_i | 20.0 (1) | 80.0% | — |" in text and "Not run yet" in text
