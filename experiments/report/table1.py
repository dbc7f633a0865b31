"""Table 1: test MSE × 10³ per dataset (rows) and head (columns), as Markdown, LaTeX and CSV; or, with ``metric``
(``make_tables --metric``), the same table of another metric (:data:`experiments.metrics.TABLE_METRICS`) in its own
files, ``table1_<metric>.*``.

Cell value, std, bold and one configuration per cell are defined in
:mod:`experiments.report.cells`, number formatting in :mod:`experiments.report.fmt`. For Table 1:

- **A cell** is a (dataset, head): all its files share one ``run_id`` (:data:`MIXED_HINT` says
  how to pick one), and it is expected to have :data:`TABLE1_SPLITS` splits ((n=k) otherwise).
- **Bold**: the lowest mean of a row, ties all bold.
- **Significance**: each neighbour head is compared with the linear head (:data:`BASELINE`) of
  the same dataset over the splits both have, by a two-sided paired Wilcoxon signed-rank test
  (:func:`~experiments.report.cells.paired_wilcoxon`). ``†`` marks p < 0.05 with a lower mean
  than linear over those splits, ``‡`` p < 0.05 with a higher one. With fewer than
  :data:`~experiments.report.cells.MIN_PAIRS` pairs no test is made (p_value empty, no mark).
- **Rows** follow the paper's dataset order, **columns** its head order (all six always shown);
  other datasets and heads follow by name (:mod:`experiments.report.names`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from experiments.metrics import TABLE_METRICS
from experiments.report.names import HEADS, dataset_label, dataset_sort_key, head_label, head_sort_key

from .cells import MIN_PAIRS, CellStats, group_by, mark_best, markdown_cell, paired_wilcoxon, split_values
from .fmt import MISSING, csv_number, csv_text, latex_escape, md_table, n_note, sig, write_texts

#: The head every other head of a dataset is compared with.
BASELINE = "linear"
TABLE1_SPLITS = 10
ALPHA = 0.05
BETTER, WORSE = "†", "‡"

NOTES = (
    "{what}: mean ± sample standard deviation "
    "(ddof = 1) over the splits of one run; 3 significant digits; (n=k) when a cell has k ≠ {expected} splits. "
    "Bold: {best} mean of the row. "
    f"{BETTER} / {WORSE}: {{cmp}} than the linear head with p < {ALPHA} "
    "(two-sided paired Wilcoxon signed-rank test over the splits both heads share; "
    f"no test with fewer than {MIN_PAIRS} pairs). {MISSING}: no results."
)

MIXED_HINT = (
    "keep one: move the other's run folder aside, pass --run-id RUN_ID to pick one, or "
    "--hparams-from paper to keep each head's tuned configuration"
)


@dataclass(frozen=True)
class Cell(CellStats):
    """One Table 1 cell: a (dataset, head) and the per-split values of its one run."""

    dataset: str
    head: str
    run_id: str
    values: dict  # split -> metric value
    p_value: float | None = None  # vs linear; None: linear itself, or too few pairs
    n_pairs: int = 0
    lower_than_linear: bool | None = None
    best: bool = False
    higher_better: bool = False  # R²: a higher mean is better

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA

    @property
    def marker(self) -> str:
        if not self.significant:
            return ""
        return BETTER if self.lower_than_linear != self.higher_better else WORSE


def table1_cells(results: list[dict], metric: str = "paper") -> list[Cell]:
    """Table 1's cells, in row (dataset) then column (head) order, with best and significance filled in;
    ``metric``: a name of :data:`experiments.metrics.TABLE_METRICS` (the paper's by default)."""
    higher = TABLE_METRICS[metric][2]
    raw: dict[tuple[str, str], Cell] = {}
    for (dataset, head), files in group_by(results, lambda r: (r["dataset"], r["head"])).items():
        what = f"Table 1 cell ({dataset}, {head})"
        raw[dataset, head] = Cell(dataset, head, *split_values(files, what, MIXED_HINT, metric), higher_better=higher)

    cells = []
    for dataset in sorted({d for d, _ in raw}, key=dataset_sort_key):
        heads = sorted({h for d, h in raw if d == dataset}, key=head_sort_key)
        row = mark_best((raw[dataset, h] for h in heads), higher)
        baseline = raw.get((dataset, BASELINE))
        for c in row:
            if baseline is not None and c.head != BASELINE:
                p, n_pairs, lower = paired_wilcoxon(c.values, baseline.values)
                c = replace(c, p_value=p, n_pairs=n_pairs, lower_than_linear=lower)
            cells.append(c)
    return cells


def _columns(cells: list[Cell]) -> list[str]:
    return sorted(set(HEADS) | {c.head for c in cells}, key=head_sort_key)


def _cell_tex(c: Cell | None, expected: int = TABLE1_SPLITS) -> str:
    if c is None:
        return "--"
    bold = (lambda s: rf"\textbf{{{s}}}") if c.best else (lambda s: s)
    text = bold(sig(c.mean)) if math.isnan(c.std) else rf"{bold(sig(c.mean))} $\pm$ {bold(sig(c.std))}"
    marker = {BETTER: r"$^{\dagger}$", WORSE: r"$^{\ddagger}$", "": ""}[c.marker]
    return text + marker + n_note(c.n, expected)


def _by_row(cells: list[Cell]) -> tuple[list[str], dict]:
    datasets = sorted({c.dataset for c in cells}, key=dataset_sort_key)
    return datasets, {(c.dataset, c.head): c for c in cells}


def notes(metric: str = "paper") -> str:
    """The table's notes for ``metric``."""
    _, what, higher = TABLE_METRICS[metric]
    return NOTES.format(
        what=what[0].upper() + what[1:],
        expected=TABLE1_SPLITS,
        best="highest" if higher else "lowest",
        cmp="higher / lower" if higher else "lower / higher",
    )


def title(metric: str = "paper") -> str:
    return "test MSE × 10³" if metric == "paper" else TABLE_METRICS[metric][1]


def table1_markdown(cells: list[Cell], metric: str = "paper") -> str:
    datasets, at = _by_row(cells)
    heads = _columns(cells)
    rows = [[dataset_label(d)] + [markdown_cell(at.get((d, h)), TABLE1_SPLITS) for h in heads] for d in datasets]
    table = md_table(["Dataset"] + [head_label(h) for h in heads], rows, ["---"] + ["---:"] * len(heads))
    return f"# Table 1: {title(metric)}\n\n" + table + "\n" + notes(metric) + "\n"


def table1_latex(cells: list[Cell], metric: str = "paper") -> str:
    datasets, at = _by_row(cells)
    heads = _columns(cells)
    notes_tex = notes(metric).replace("×", r"$\times$").replace("10³", r"10$^3$").replace("R²", r"R$^2$")
    notes_tex = notes_tex.replace("≠", r"$\neq$").replace("±", r"$\pm$").replace(BETTER, r"$^{\dagger}$")
    notes_tex = notes_tex.replace(WORSE, r"$^{\ddagger}$").replace("–", "--").replace("<", "$<$")
    lines = [
        "% Generated by scripts/make_tables.py from result files; do not edit by hand.",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{l" + "c" * len(heads) + "}",
        r"\toprule",
        "Dataset & " + " & ".join(latex_escape(head_label(h)) for h in heads) + r" \\",
        r"\midrule",
    ]
    for d in datasets:
        lines.append(
            latex_escape(dataset_label(d)) + " & " + " & ".join(_cell_tex(at.get((d, h))) for h in heads) + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{notes_tex}}}", r"\label{tab:table1}", r"\end{table}"]
    return "\n".join(lines) + "\n"


TABLE1_CSV_COLUMNS = ("dataset", "head", "n", "mean", "std", "p_value", "significant", "best", "n_pairs", "run_id")


def table1_csv(cells: list[Cell]) -> str:
    """One row per cell: mean and std (ddof=1) of the metric (test MSE × 10³), p_value vs linear (empty: no test)."""
    return csv_text(
        TABLE1_CSV_COLUMNS,
        (
            [
                c.dataset,
                c.head,
                c.n,
                csv_number(c.mean),
                csv_number(c.std),
                csv_number(c.p_value),
                c.significant,
                c.best,
                c.n_pairs if c.head != BASELINE else "",
                c.run_id,
            ]
            for c in cells
        ),
    )


def write_table1(cells: list[Cell], out_dir: str | Path, metric: str = "paper") -> list[Path]:
    """``table1.md``, ``table1.tex`` and ``table1.csv`` in ``out_dir`` (``table1_<metric>.*`` for another metric)."""
    stem = "table1" if metric == "paper" else f"table1_{metric}"
    return write_texts(
        out_dir,
        {
            f"{stem}.md": table1_markdown(cells, metric),
            f"{stem}.tex": table1_latex(cells, metric),
            f"{stem}.csv": table1_csv(cells),
        },
    )
