"""The offline study's report (issue 32) from fabricated result files in the real format: its statistics against
scipy computed here on the same arrays, wins/ties/losses, the choice on validation, verdicts that follow the data,
and missing protocols or controls."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import friedmanchisquare, rankdata, wilcoxon

from experiments.report.fmt import MISSING
from experiments.report.study import variants as V
from experiments.report.study.grid import study_cells
from experiments.report.study.mechanism import movement
from experiments.report.study.ranking import rankings
from experiments.report.study.report import study
from experiments.store.results import read_results
from scripts import study_report
from tests.test_report_tables import fake_result, put

ROOT = Path(__file__).resolve().parents[1]
HEADS4 = ("linear", "nca", "nca_i", "diffknn_i")


def result(dataset, head, split, test, *, val=None, protocol="tuned", run="a", head_cfg=None, **extra):
    """A valid result with test (and val) MSE × 10³, ``config.protocol.name`` and ``config.head`` flags."""
    hparams = (
        {"embed_dim": 25, "batch_size": 32}
        if head == "linear"
        else {"similarity": "l2", "embed_dim": 50, "batch_size": 32}
    )
    r = fake_result(dataset, head, split, test, run_id=f"{head}-{protocol}-{run}-0000abcd", hparams=hparams)
    r["metrics"]["val_mse_x1e3"] = test if val is None else val
    r["metrics"]["val_mse"] = r["metrics"]["val_mse_x1e3"] / 1e3
    r["config"]["protocol"] = {"name": protocol}
    r["config"]["head"].update(head_cfg or {})
    r.update(extra)
    return r


def write_cell(root, dataset, head, mean, *, splits=6, shift=0.0, **kw):
    """``splits`` files whose values are mean ± 0.1 alternating, plus ``shift`` × split (0: the mean is exact)."""
    for s in range(splits):
        put(root, result(dataset, head, s, mean + (0.1 if s % 2 else -0.1) + shift * s, **kw))


def grid(root, means: dict, **kw):
    """``means``: head -> per-dataset means; datasets d0, d1, …"""
    for head, row in means.items():
        for i, m in enumerate(row):
            write_cell(root, f"d{i}", head, m, **kw)


def test_ranks_friedman_and_holm_match_scipy(tmp_path):
    rng = np.random.default_rng(3)
    means = {h: np.round(rng.uniform(5, 10, size=8), 3) for h in HEADS4}
    means["nca_i"] = means["linear"] - rng.uniform(0.5, 1.5, size=8)  # clearly lower than linear everywhere
    grid(tmp_path, means)
    (r,) = rankings(study_cells(read_results(tmp_path)))
    X = np.column_stack([means[h] for h in r.heads])
    assert r.heads == list(HEADS4) and r.datasets == [f"d{i}" for i in range(8)]
    np.testing.assert_allclose(r.means, X, rtol=1e-12)
    expected_ranks = np.vstack([rankdata(row) for row in X]).mean(axis=0)
    np.testing.assert_allclose([r.mean_ranks[h] for h in r.heads], expected_ranks)
    f = friedmanchisquare(*X.T)
    assert r.friedman == pytest.approx((f.statistic, f.pvalue))
    raw = [wilcoxon(X[:, j], X[:, 0]).pvalue for j in (1, 2, 3)]
    order = np.argsort(raw)  # Holm by hand: (m − i) p_(i), running maximum, at most 1
    adjusted, running = np.empty(3), 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (3 - i) * raw[j]))
        adjusted[j] = running
    for j, h in enumerate(("nca", "nca_i", "diffknn_i")):
        p, p_holm, n, lower = r.holm[h]
        assert (p, p_holm, n) == (pytest.approx(raw[j]), pytest.approx(adjusted[j]), 8)
    assert r.holm["nca_i"][3] is True
    assert set(r.nemenyi.index) == set(HEADS4)


def test_wins_ties_losses_per_dataset(tmp_path):
    for s in range(10):
        put(tmp_path, result("win", "linear", s, 5.0 + 0.1 * s))
        put(tmp_path, result("win", "nca", s, 4.0 + 0.1 * s))
        put(tmp_path, result("tie", "linear", s, 5.0 + 0.1 * s))
        put(tmp_path, result("tie", "nca", s, 5.0 + 0.1 * s + (0.3 if s % 2 else -0.3)))
        put(tmp_path, result("loss", "linear", s, 5.0 + 0.1 * s))
        put(tmp_path, result("loss", "nca", s, 6.0 + 0.1 * s))
        put(tmp_path, result("few", "linear", s, 5.0))
        if s < 3:
            put(tmp_path, result("few", "nca", s, 1.0))
    (r,) = rankings(study_cells(read_results(tmp_path)))
    assert r.wtl["nca"] == Counter(win=1, tie=1, loss=1, untested=1)


def test_best_linear_is_chosen_on_validation_not_test(tmp_path):
    for s in range(6):
        put(tmp_path, result("d", "linear", s, 9.0 + 0.1 * s, val=1.0, run="lowval"))  # worse on test
        put(tmp_path, result("d", "linear", s, 2.0 + 0.1 * s, val=3.0, run="lowtest"))  # better on test
        put(tmp_path, result("d", "nca", s, 5.0 + 0.1 * s))
    cells = {c.head: c for c in study_cells(read_results(tmp_path))}
    assert cells["linear"].run_id == "linear-tuned-lowval-0000abcd" and cells["linear"].candidates == 2
    test = cells["nca"].tests["linear"]
    assert test.reference_mean == pytest.approx(9.25) and test.lower is True and test.p_value < 0.05


def test_variants_are_read_from_the_config():
    r = result("d", "nca_i_frozen", 0, 1.0, head_cfg={"control": "frozen_step"})
    assert V.base_head("nca_i_frozen") == "nca_i" and V.base_head("nca_i") == "nca_i" and V.base_head("mine") == "mine"
    assert V.variant_of(r) == V.Variant((), V.FROZEN)
    assert V.variant_of(result("d", "diffknn_i", 0, 1.0, head_cfg={"control": "no_step"})) == V.Variant((), V.NO_STEP)
    normed = result("d", "nca_i", 0, 1.0, head_cfg={"module": {"norm": "exclude_self"}})
    assert V.variant_of(normed).label == "norm=exclude_self"
    assert V.variant_of(result("d", "nca_i", 0, 1.0, head_cfg={"module": {"norm": "paper"}})) == V.Variant()
    nona = result("d", "nca_i", 0, 1.0, head_cfg={"module": {"power_floor": 1e-12}})
    nona["config"]["trainer"] = {"embed_passes": 2}
    assert V.variant_of(nona).label == "power_floor=1e-12, embed_passes=2"  # nona_anon's options, each a setting
    nona["config"]["trainer"] = {"embed_passes": 1}
    nona["config"]["head"]["module"]["power_floor"] = None
    assert V.variant_of(nona) == V.Variant()  # their defaults: the plain run
    assert [h for h in ("linear", "nca", "nca_g", "nca_i", "diffknn_g", "diffknn_i", "mine") if V.has_step(h)] == [
        "nca_g",
        "nca_i",
        "diffknn_g",
        "diffknn_i",
    ]
    assert (
        V.stepless_head("nca_i"),
        V.stepless_head("nca_g"),
        V.stepless_head("diffknn_i"),
        V.stepless_head("nca"),
    ) == (
        "nca",
        "nca",
        None,
        None,
    )


def test_controls_and_settings_find_their_references(tmp_path):
    for s in range(6):
        put(tmp_path, result("d", "linear", s, 8.0 + 0.1 * s))
        put(tmp_path, result("d", "nca", s, 7.0 + 0.1 * s))
        put(tmp_path, result("d", "nca_i", s, 5.0 + 0.1 * s))
        put(tmp_path, result("d", "nca_i_frozen", s, 6.0 + 0.1 * s, head_cfg={"control": "frozen_step"}))
        put(tmp_path, result("d", "nca_i", s, 4.0 + 0.1 * s, run="x", head_cfg={"module": {"norm": "exclude_self"}}))
        put(tmp_path, result("d", "diffknn_i", s, 5.0 + 0.1 * s))
        put(tmp_path, result("d", "diffknn_i", s, 5.5 + 0.1 * s, run="nostep", head_cfg={"control": "no_step"}))
    cells = {(c.head, c.variant.label): c for c in study_cells(read_results(tmp_path))}
    plain = cells["nca_i", ""]
    assert plain.tests["stepless"].reference == "nca" and plain.tests["frozen"].reference == "nca_i frozen step"
    assert cells["nca_i", "norm=exclude_self"].tests["stepless"] is None  # no nca with that norm
    assert cells["diffknn_i", ""].tests["stepless"].reference == "diffknn_i no step"
    assert cells["diffknn_i", ""].tests["frozen"] is None
    blocks = {r.name: r.heads for r in rankings(list(cells.values()))}
    assert blocks == {"tuned": ["linear", "nca", "nca_i", "diffknn_i"], "tuned, norm=exclude_self": ["linear", "nca_i"]}


def _verdict(root, letter):
    return next(v for v in study(read_results(root)).verdicts if v.startswith(f"({letter})"))


@pytest.mark.parametrize("better", [True, False])
def test_verdicts_a_and_b_follow_the_data(tmp_path, better):
    sign = -1 if better else 1
    lin = np.linspace(10, 17, 8)
    grid(tmp_path, {"linear": lin, "nca": lin + sign * 1.0, "nca_i": lin + sign * 2.0, "nca_g": lin + sign * 1.5})
    grid(tmp_path, {"nca_i_frozen": lin + sign * 1.2}, head_cfg={"control": "frozen_step"})
    a, b = _verdict(tmp_path, "a"), _verdict(tmp_path, "b")
    assert ("**yes**" in a) is better and ("**no**" in a) is not better
    assert "Of 3 (protocol, head) pairs" in a and ("3 better" if better else "3 worse") in a
    assert ("**yes**" in b) is better and ("**no**" in b) is not better
    assert "Of 2 (protocol, head) pairs" in b and f"against the frozen step: {'8/0/0' if better else '0/0/8'}" in b
    assert f"against the frozen step: {int(better)} better, 0 no difference, {int(not better)} worse (0 untested" in b


def _sparse_cell(root, dataset, zeros, mass, moved):
    start = {p: {"p10": 0.45, "median": 0.5, "p90": 0.55} for p in "lut"}
    end = 0.9 if moved else 0.51
    for s in range(6):
        block = {
            "zero_fraction": {"p10": 0, "median": zeros, "p90": zeros},
            "removed_mass": {"p10": 0, "median": mass, "p90": mass},
        }
        block.update({p: {"p10": end, "median": end, "p90": end} for p in "lut"})
        put(root, result(dataset, "nca_i", s, 5.0, sparsity=block, step_start=start if moved is not None else None))


@pytest.mark.parametrize(
    "zeros, mass, moved, word",
    [
        (0.4, 0.5, True, "yes"),
        (0.0, 0.5, True, "no"),
        (0.4, 0.01, True, "no"),
        (0.4, 0.5, False, "no"),
        (0.4, 0.5, None, "undecided"),
    ],
)
def test_verdict_c_follows_the_data(tmp_path, zeros, mass, moved, word):
    for d in ("d0", "d1", "d2"):
        _sparse_cell(tmp_path, d, zeros, mass, moved)
    c = _verdict(tmp_path, "c")
    assert f"**{word}**" in c
    if moved is None:
        assert "in 0 of 0 that record `step_start` (3 do not record it)" in c


def test_movement_counts_only_moves_beyond_the_initial_spread():
    start = {"l": {"p10": 0.3, "median": 0.5, "p90": 0.7}, "k": {"p10": 100, "median": 100, "p90": 100}}
    records = [
        {"step_start": start, "sparsity": {"l": {"median": 0.6}, "k": {"median": 102}}},  # inside l's spread; k > 1 %
        {"step_start": start, "sparsity": {"l": {"median": 0.95}, "k": {"median": 100.5}}},  # l beyond; k within 1 %
    ]
    m = movement(records)
    assert m["l"]["moved"] == 0.5 and m["k"]["moved"] == 0.5 and m["l"]["delta"] == pytest.approx(0.275)
    assert movement([{"sparsity": {"l": {"median": 0.6}}}]) == {}


def test_report_is_written_from_result_files_only(tmp_path):
    history = [
        {"epoch": e, "val_mse": 0.01, "train_time_s": 100.0, "sparsity/l_median": 0.5 - 0.05 * e}
        | {"sparsity/zero_fraction_median": 0.1 * e}
        for e in range(4)
    ]
    lin = np.linspace(10, 17, 8)
    grid(tmp_path, {"linear": lin, "nca": lin - 1, "nca_i": lin - 2}, runtime={"device": "cpu"}, history=history)
    out = tmp_path / "out"
    code = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from scripts import study_report as s; rc = s.main(sys.argv[1:]); "
            "assert not [m for m in sys.modules if m.startswith(('experiments.protocol', 'softstep.training'))]; sys.exit(rc)",
            "--results-root",
            str(tmp_path),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert code.returncode == 0, code.stderr
    md = (out / "offline_study.md").read_text()
    rows = list(csv.DictReader((out / "offline_study.csv").open()))
    assert len(rows) == 24 and {r["protocol"] for r in rows} == {"tuned"}
    assert "(a) Neighbour heads beat the linear head: **yes**" in md
    assert "figures/study_cd_tuned.png" in md and (out / "figures/study_cd_tuned.png").stat().st_size > 0
    assert (out / "figures/study_trajectories_tuned.png").exists()
    # 3 heads × 6 splits of 1.5 s on the CPU: 0.0075 h; training 18 × 4 epochs × 100 s = 2 h
    assert "| d0 | `tuned` |  | 18 | 0.01 | 0.00 | 0.00 | 2.00 |" in md
    nca_i = next(r for r in rows if r["head"] == "nca_i" and r["dataset"] == "d0")
    assert float(nca_i["l_drift"]) == pytest.approx(-0.15)  # best epoch 4: the last logged, epoch 3, minus epoch 0


def test_missing_protocols_and_controls_leave_cells_empty(tmp_path):
    for s in range(3):
        r = result("d", "nca_i", s, 5.0)
        del r["config"]["protocol"]
        put(tmp_path, r)
    out = tmp_path / "out"
    assert study_report.main(["--results-root", str(tmp_path), "--out", str(out)]) == 0
    md = (out / "offline_study.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| `(none)` | d | NCA i"))
    assert row.count(f" {MISSING} ") >= 3  # vs linear, vs no step, vs frozen step
    assert "no reference cell for nca_i (`(none)`)" in md
    assert "**undecided**" in md and "`step_start`" in md
    csv_row = next(csv.DictReader((out / "offline_study.csv").open()))
    assert csv_row["linear_p"] == "" and csv_row["zero_fraction"] == ""


def test_scratch_by_default_and_write_is_explicit():
    assert study_report.parse_args([]).out == study_report.SCRATCH and not study_report.parse_args([]).write
    with pytest.raises(SystemExit):
        study_report.parse_args(["--write", "--out", "x"])


def test_unreadable_file_is_skipped(tmp_path):
    write_cell(tmp_path, "d", "linear", 5.0)
    bad = tmp_path / "runs/d/fake/nca/r/split_0.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"format_version": 1}))
    assert study_report.main(["--results-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 0


def test_make_figures_draws_the_step_trajectories(tmp_path):
    from scripts import make_figures

    start = {"l": {"p10": 0.5, "median": 0.5, "p90": 0.5}}
    history = [{"epoch": e, "val_mse": 0.01, "sparsity/l_median": 0.5 - 0.1 * e, "sparsity/l_p10": 0.3 - 0.1 * e,
                "sparsity/l_p90": 0.6 - 0.1 * e} for e in range(3)]  # fmt: skip
    write_cell(tmp_path, "d", "nca_i", 5.0, history=history, step_start=start)
    write_cell(tmp_path, "d", "nca_i_frozen", 5.0, history=history, head_cfg={"control": "frozen_step"})
    assert make_figures.main(["--results-root", str(tmp_path), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs/study_trajectories_tuned.png").stat().st_size > 0


def test_protocol_and_variant_from_a_real_resolved_config():
    from omegaconf import OmegaConf

    from experiments.protocol.compose import compose

    overrides = ["dataset=synthetic", "head=nca_i", "protocol=authors", "head.module.norm=exclude_self"]
    cfg = OmegaConf.to_container(compose([*overrides, "head.control=frozen_step"]), resolve=True)
    r = {"config": cfg, "head": "nca_i"}
    assert V.protocol_of(r) == "authors" and V.variant_of(r) == V.Variant(("norm=exclude_self",), V.FROZEN)
    plain = {"config": OmegaConf.to_container(compose(["head=diffknn_i"]), resolve=True), "head": "diffknn_i"}
    assert V.protocol_of(plain) == "tuned" and V.variant_of(plain) == V.Variant()


def test_compute_is_summed_per_part_and_dataset_from_each_files_times(tmp_path):
    """Hours per (protocol, variant) over datasets, and per dataset: sums of the files' wall_time_s by device and of
    their epochs' train_time_s, counted here from the same numbers."""
    times = {("d0", "learn", None): (3600.0, 1800.0), ("d1", "learn", None): (7200.0, 900.0)}
    times[("d0", "learn", "frozen_step")] = (1800.0, 900.0)
    times[("d1", "tuned", None)] = (360.0, 36.0)
    for (dataset, protocol, control), (wall, train) in times.items():
        head_cfg = {"control": control} if control else None
        put(
            tmp_path,
            result(
                dataset,
                "nca_i",
                0,
                5.0,
                protocol=protocol,
                head_cfg=head_cfg,
                run=control or "plain",
                wall_time_s=wall,
                runtime={"device": "cpu"},
                history=[{"epoch": 0, "train_time_s": train / 2}, {"epoch": 1, "train_time_s": train / 2}],
            ),
        )
    assert study_report.main(["--results-root", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "offline_study.md").read_text()
    compute = text.split("## Compute")[1].split("## Missing")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in compute.splitlines() if line.startswith("| ")]
    by_part = {(r[0], r[1]): r[2:] for r in rows if len(r) == 7}
    assert by_part[("`learn`", "")] == ["2", "3.00", "0.00", "0.00", "0.75"]  # d0 1 h + d1 2 h; 0.5 h + 0.25 h
    assert by_part[("`learn`", "frozen step")] == ["1", "0.50", "0.00", "0.00", "0.25"]
    assert by_part[("`tuned`", "")] == ["1", "0.10", "0.00", "0.00", "0.01"]
    assert by_part[("all", "")] == ["4", "3.60", "0.00", "0.00", "1.01"]
    per_dataset = {(r[0], r[1], r[2]): r[3:] for r in rows if len(r) == 8}
    assert per_dataset[("d0", "`learn`", "frozen step")][:2] == ["1", "0.50"]
