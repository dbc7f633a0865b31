"""``offline_study.md`` and ``offline_study.csv``: the verdicts, the comparison over datasets, one row per cell, the
compute the files record, and what is missing. Numbers as in :mod:`experiments.report.fmt` (3 significant digits;
CSV 12; :data:`~experiments.report.fmt.MISSING` for a cell or test without results)."""

from __future__ import annotations

import math

from experiments.report.cells import MIN_PAIRS
from experiments.report.fmt import MISSING, csv_number, csv_text, md_table, mean_std, sig
from experiments.report.names import HEADS, NEIGHBOUR_HEADS, dataset_label, head_label

from .grid import StudyCell, Test
from .mechanism import MOVE_TOL, PARAMS
from .ranking import Ranking
from .variants import NO_PROTOCOL

TESTS = (("linear", "vs linear"), ("stepless", "vs no step"), ("frozen", "vs frozen step"))
#: What the report reads from each result file, beyond the test MSE (docs/offline-study.md).
READ_FIELDS = (
    "`config.protocol.name`: the protocol (files without it are grouped under " + f"`{NO_PROTOCOL}`)",
    "`config.head.control`: `frozen_step` (the step frozen at its initial draw) or `no_step` (the same head "
    "without it); absent or `none` in the plain run",
    "`step_start`: `{l, u, t}` or `{k}`, each `{p10, median, p90}` over the test queries, before the first "
    "training step (the column *moved*)",
    "`sparsity`: exact zeros, mass removed and the parameters after training, on the same queries",
    "`history[i]['sparsity/<p>_median']`, `['sparsity/<p>_p10']`, `['sparsity/<p>_p90']`: per validated epoch, "
    "drawn as the trajectory figures' lines and bands",
)


def test_text(t: Test | None, applies: bool = True) -> str:
    if not applies:
        return ""
    if t is None:
        return MISSING
    if t.p_value is None:
        return f"untested ({t.n_pairs} pairs)"
    return f"{'lower' if t.lower else 'higher'}, p = {sig(t.p_value, 2)} ({t.n_pairs})"


def _pct(x: float | None) -> str:
    return MISSING if x is None else f"{100 * x:.1f} %"


def _num(x: float | None) -> str:
    return MISSING if x is None else (sig(x) if x == 0 or abs(x) >= 1e-3 else f"{x:.2g}")


def _params(m: dict) -> str:
    return ", ".join(f"{p} {sig(m[p])}" for p in PARAMS if m[p] is not None) or MISSING


def _moved(m: dict) -> str:
    if not m["movement"]:
        return ""
    return ", ".join(f"{p} {v['moved']:.0%}" for p, v in m["movement"].items())


def _drift(m: dict) -> str:
    return ", ".join(f"{p} {v:+.2g}" for p, v in m["drift"].items())


def cell_rows(cells: list[StudyCell]) -> list[list[str]]:
    rows = []
    for c in cells:
        m = c.mechanism
        neighbours = [
            _pct(m["zero_fraction"]),
            _num(m["removed_mass"]),
            _params(m),
            _moved(m),
            _drift(m),
        ]
        rows.append(
            [
                f"`{c.protocol}`",
                dataset_label(c.dataset),
                head_label(c.head),
                c.variant.label,
                f"{mean_std(c.mean, c.std)} ({c.n})",
                sig(c.val_mean),
                str(c.candidates),
                *(test_text(c.tests.get(name), name in c.tests) for name, _ in TESTS),
                *(neighbours if c.head in NEIGHBOUR_HEADS or c.head not in HEADS else [""] * 5),
            ]
        )
    return rows


def ranking_section(r: Ranking, figure: str | None) -> list[str]:
    lines = [f"### `{r.name}`", ""]
    if not r.datasets:
        return [*lines, "No dataset has a cell of every head; nothing ranked.", *_dropped(r), ""]
    ranks = r.mean_ranks
    if r.friedman:
        stat, p = r.friedman
        lines.append(
            f"Friedman χ² = {sig(stat)}, p = {sig(p, 2)} over {len(r.datasets)} datasets and {len(r.heads)} heads."
        )
    else:
        lines.append(f"No Friedman test ({len(r.heads)} heads, {len(r.datasets)} datasets: it needs 3 and 2).")
    if figure:
        lines += ["", f"![critical-difference diagram, {r.name}]({figure})"]
    rows = []
    for j, h in enumerate(r.heads):
        p, p_holm, n, lower = r.holm.get(h, (None, None, 0, None))
        vs = "" if h not in r.holm else (f"untested ({n})" if p is None else f"{'lower' if lower else 'higher'}, ")
        if p is not None:
            vs += f"p = {sig(p, 2)}, Holm {sig(p_holm, 2)} ({n})"
        w = r.wtl.get(h)
        wtl = (
            ""
            if w is None
            else f"{w['win']}/{w['tie']}/{w['loss']}" + (f" ({w['untested']}?)" if w["untested"] else "")
        )
        rows.append([head_label(h), sig(ranks[h]), sig(float(r.means[:, j].mean())), vs, wtl])
    lines += [
        "",
        md_table(
            ["head", "mean rank", "mean test MSE × 10³", "vs linear over datasets", "wins/ties/losses vs linear"],
            rows,
            ["---", "---:", "---:", "---", "---:"],
        ).rstrip("\n"),
        *_dropped(r),
        "",
    ]
    return lines


def _dropped(r: Ranking) -> list[str]:
    return ["", "Left out of the ranking: " + "; ".join(r.dropped) + "."] if r.dropped else []


def _hours_text(h: dict) -> list[str]:
    device = h["device"]
    other = sum(v for k, v in device.items() if k not in ("cpu", "cuda"))
    return [str(h["files"])] + [f"{x:.2f}" for x in (device.get("cpu", 0), device.get("cuda", 0), other, h["train"])]


def hours_rows(hours: dict) -> list[list[str]]:
    """One row per (dataset, protocol, variant) of ``hours``."""
    return [[dataset_label(d), f"`{p}`", v, *_hours_text(h)] for (d, p, v), h in hours.items()]


def part_hours_rows(part_hours: dict) -> list[list[str]]:
    """One row per (protocol, variant) summed over datasets, roughly a part of the study, then ``all``."""
    return [[p if p == "all" else f"`{p}`", v, *_hours_text(h)] for (p, v), h in part_hours.items()]


def missing_notes(cells: list[StudyCell]) -> list[str]:
    out = []
    for name, label in TESTS:
        lacking = sorted(
            {(c.protocol, c.head, c.variant.label) for c in cells if name in c.tests and c.tests[name] is None}
        )
        if lacking:
            where = ", ".join(f"{h}{' ' + v if v else ''} (`{p}`)" for p, h, v in lacking)
            out.append(f"- {label}: no reference cell for {where} on some datasets; those cells show {MISSING}.")
    return out


def markdown(cells, rankings, verdicts, hours, part_hours, *, root: str, n_files: int, figures: dict) -> str:
    datasets = sorted({c.dataset for c in cells})
    protocols = sorted({c.protocol for c in cells})
    header = ["protocol", "dataset", "head", "variant", "test MSE × 10³ (n)", "val", "runs"]
    header += [label for _, label in TESTS] + ["exact zeros", "mass removed", "learned", "moved", "drift"]
    lines = [
        "# The offline study: does SoftStep learn sparse similarity, and does it help?",
        "",
        f"Written by `python scripts/study_report.py` from {n_files} result files under `{root}` ({len(datasets)} "
        f"datasets, protocols {', '.join(f'`{p}`' for p in protocols) or 'none'}); docs/offline-study.md says how to "
        "regenerate it. Do not edit by hand.",
        "",
        "## Verdicts",
        "",
        *(f"- {v}" for v in verdicts),
        "",
        "## Over datasets",
        "",
        "One observation per dataset (a cell's mean over its splits); ranks 1 = lowest test MSE, ties averaged; "
        "Friedman test; each head against linear by a two-sided Wilcoxon signed-rank test over datasets, "
        f"Holm-adjusted (no test under {MIN_PAIRS} datasets); wins/ties/losses per dataset from the paired test over "
        "its splits (tie: p ≥ 0.05; `?`: too few shared splits). The critical-difference diagrams join heads the "
        "Nemenyi test does not separate (p ≥ 0.05).",
        "",
    ]
    for r in rankings:
        lines += ranking_section(r, figures.get(r.name))
    lines += [
        "## Per dataset",
        "",
        "One row per dataset × head × variant × protocol. **test MSE × 10³**: mean ± sample std (n splits) of the run "
        "with the lowest mean validation MSE × 10³ (**val**) among the cell's **runs** (chosen on validation, never "
        f"on test). **vs …**: two-sided paired Wilcoxon over shared splits, lower/higher mean of this cell; {MISSING}: "
        "no reference cell. **exact zeros**, **mass removed**, **learned** (l, u, t or k): medians over test queries, "
        "averaged over splits. **moved**: the share of splits where a parameter left its initial spread (needs "
        f"`step_start`; at least {MOVE_TOL} × max(1, |start|)). **drift**: best epoch minus the first logged epoch of "
        "each per-epoch median.",
        "",
        md_table(header, cell_rows(cells), ["---"] * 4 + ["---:"] * 3 + ["---"] * 3 + ["---:"] * 2 + ["---"] * 3),
        "## Compute",
        "",
        "Hours of `wall_time_s` (each split's training and evaluation; cached feature extraction not included), "
        "summed over every result file, including runs not chosen on validation, by `runtime.device` (unknown: "
        "files without `runtime`); **training**: the epochs' `train_time_s` alone, on any device. First by protocol "
        "and variant (a part of the study, or a control within one), then per dataset.",
        "",
        md_table(
            ["protocol", "variant", "files", "CPU h", "GPU h", "unknown h", "training h"],
            part_hours_rows(part_hours),
            ["---", "---", "---:", "---:", "---:", "---:", "---:"],
        ),
        "",
        md_table(
            ["dataset", "protocol", "variant", "files", "CPU h", "GPU h", "unknown h", "training h"],
            hours_rows(hours),
            ["---", "---", "---", "---:", "---:", "---:", "---:", "---:"],
        ),
        "## Missing",
        "",
        *(missing_notes(cells) or ["- Every cell has its references."]),
        "",
        "Fields the report reads from each result file:",
        "",
        *(f"- {f}" for f in READ_FIELDS),
        "",
    ]
    return "\n".join(lines)


CSV_HEADER = (
    ["protocol", "dataset", "head", "variant", "run_id", "runs", "n", "test_mse_x1e3_mean", "test_mse_x1e3_std"]
    + ["val_mse_x1e3_mean"]
    + [f"{name}_{k}" for name, _ in TESTS for k in ("reference", "p", "pairs", "lower")]
    + ["zero_fraction", "removed_mass", *PARAMS]
    + [f"{p}_{k}" for p in PARAMS for k in ("delta", "start_spread", "moved", "drift")]
)


def csv_rows(cells: list[StudyCell]) -> str:
    rows = []
    for c in cells:
        m = c.mechanism
        row = [c.protocol, c.dataset, c.head, c.variant.label, c.run_id, c.candidates, c.n]
        row += [csv_number(c.mean), csv_number(c.std if not math.isnan(c.std) else None), csv_number(c.val_mean)]
        for name, _ in TESTS:
            t = c.tests.get(name)
            row += ["", "", "", ""] if t is None else [t.reference, csv_number(t.p_value), t.n_pairs, t.lower]
        row += [csv_number(m[k]) for k in ("zero_fraction", "removed_mass", *PARAMS)]
        for p in PARAMS:
            mv = m["movement"].get(p, {})
            row += [csv_number(mv.get("delta")), csv_number(mv.get("spread")), csv_number(mv.get("moved"))]
            row.append(csv_number(m["drift"].get(p)))
        rows.append(row)
    return csv_text(CSV_HEADER, rows)
