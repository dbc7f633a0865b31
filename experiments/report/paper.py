"""Table 1 beside the paper's: our mean ± std next to the paper's, and the ratio of the means.

The paper's Table 1 is data, ``results/paper/table1.csv`` (``dataset,head,mse_x1e3_mean,mse_x1e3_std``).
Every (dataset, head) in ours or the paper's is a row, in Table 1's order; **ours / paper** is our
mean over the paper's (< 1: lower MSE than the paper), missing where either side has no number.
"""

from __future__ import annotations

from pathlib import Path

from experiments.report.names import dataset_label, dataset_sort_key, head_label, head_sort_key

from .fmt import MISSING, csv_number, csv_text, md_table, mean_std, n_note, sig, write_texts
from .table1 import TABLE1_SPLITS, Cell

COMPARISON_CSV_COLUMNS = ("dataset", "head", "n", "mean", "std", "paper_mean", "paper_std", "ratio")


def compare_with_paper(cells: list[Cell], paper: dict) -> list[dict]:
    """Every (dataset, head) in ours or the paper's: our n, mean, std, the paper's mean, std, and ours/paper."""
    ours = {(c.dataset, c.head): c for c in cells}
    keys = sorted(set(ours) | set(paper), key=lambda k: (dataset_sort_key(k[0]), head_sort_key(k[1])))
    rows = []
    for d, h in keys:
        c, p = ours.get((d, h)), paper.get((d, h))
        rows.append(
            {
                "dataset": d,
                "head": h,
                "n": c.n if c else None,
                "mean": c.mean if c else None,
                "std": c.std if c else None,
                "paper_mean": p[0] if p else None,
                "paper_std": p[1] if p else None,
                "ratio": c.mean / p[0] if c and p and p[0] else None,
            }
        )
    return rows


def comparison_markdown(rows: list[dict]) -> str:
    body = []
    for r in rows:
        ours = MISSING if r["mean"] is None else mean_std(r["mean"], r["std"]) + n_note(r["n"], TABLE1_SPLITS)
        paper = MISSING if r["paper_mean"] is None else mean_std(r["paper_mean"], r["paper_std"])
        ratio = MISSING if r["ratio"] is None else sig(r["ratio"])
        body.append([dataset_label(r["dataset"]), head_label(r["head"]), ours, paper, ratio])
    table = md_table(["Dataset", "Head", "ours", "paper", "ours / paper"], body, ["---", "---", "---:", "---:", "---:"])
    return (
        "# Table 1: ours beside the paper (test MSE × 10³)\n\n"
        + table
        + "\nours: mean ± sample std (ddof = 1) over our splits; paper: its Table 1. "
        "ours / paper: ratio of the means (< 1: lower MSE than the paper).\n"
    )


def comparison_csv(rows: list[dict]) -> str:
    cols = COMPARISON_CSV_COLUMNS
    return csv_text(
        cols,
        (
            [r["dataset"], r["head"], "" if r["n"] is None else r["n"]] + [csv_number(r[k]) for k in cols[3:]]
            for r in rows
        ),
    )


def write_comparison(rows: list[dict], out_dir: str | Path) -> list[Path]:
    """``table1_vs_paper.md`` and ``table1_vs_paper.csv`` in ``out_dir``."""
    return write_texts(
        out_dir, {"table1_vs_paper.md": comparison_markdown(rows), "table1_vs_paper.csv": comparison_csv(rows)}
    )
