#!/usr/bin/env python
"""Regenerate the paper's tables from result files (never from the trainer).

    python scripts/make_tables.py [--results-root results] [--out results/tables] [--compare-paper]
                                  [--metric paper|mse|rmse|mae|r2]

Writes table1.{md,tex,csv} (with --metric other than paper: table1_<metric>.{md,tex,csv}, the same table of
the test MSE, RMSE or MAE in the label's units or R²), with --compare-paper table1_vs_paper.{md,csv}, and, when the tuning
dataset has results, tuning_<head>.md and tuning.csv. Definitions (std, significance, bold) are
in experiments/report/cells.py, table1.py and tuning.py. A malformed result file or a cell mixing two configurations
stops it with a one-line message naming the files and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.metrics import TABLE_METRICS, read_paper_table1
from experiments.report.cells import MIN_PAIRS, read_hparams, select_runs
from experiments.report.fmt import mean_std
from experiments.report.names import dataset_label, dataset_sort_key, head_label, head_sort_key
from experiments.report.paper import compare_with_paper, comparison_markdown, write_comparison
from experiments.report.table1 import ALPHA, TABLE1_SPLITS, table1_cells, write_table1
from experiments.report.tuning import tuning_cells, write_tuning
from experiments.store.results import ResultError, read_results


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results-root", type=Path, default=Path("results"), help="folder holding runs/ (default: results)")
    p.add_argument("--out", type=Path, default=Path("results/tables"), help="output folder (default: results/tables)")
    p.add_argument(
        "--compare-paper", action="store_true", help="also put the paper's Table 1 beside ours, with ours/paper"
    )
    p.add_argument(
        "--paper-table",
        type=Path,
        default=Path("results/paper/table1.csv"),
        help="the paper's Table 1 as data (default: results/paper/table1.csv)",
    )
    p.add_argument(
        "--run-id",
        action="append",
        default=[],
        metavar="RUN_ID",
        help="Table 1: in a (dataset, head) cell holding this run_id keep only it (repeatable)",
    )
    p.add_argument(
        "--hparams-from",
        type=Path,
        metavar="paper|CSV",
        help="Table 1: keep only results whose hparams match their head's: 'paper' (the paper's tuned values, "
        "softstep.TUNED) or a CSV of head,similarity,embed_dim,batch_size rows",
    )
    p.add_argument(
        "--metric",
        choices=list(TABLE_METRICS),
        default="paper",
        help="Table 1's metric: paper (test MSE x 10^3 on the scaled label, the default), or the test mse, rmse or "
        "mae in the label's units, or r2; other than paper it is written to table1_<metric>.*",
    )
    p.add_argument("--tune-dataset", default="rsna", help="dataset of the appendix-A tuning grid (default: rsna)")
    p.add_argument("--no-tuning", action="store_true", help="skip the tuning tables")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        results = read_results(args.results_root, skip_bad=True)
        if not results:
            raise ResultError(
                f"no result files under {args.results_root / 'runs'}; run experiments first or pass --results-root"
            )
        hparams = read_hparams(args.hparams_from) if args.hparams_from else None
        selected = select_runs(results, args.run_id, hparams)
        if args.compare_paper and args.metric != "paper":
            raise ResultError(f"--compare-paper compares the paper's metric; drop it or --metric {args.metric}")
        cells = table1_cells(selected, args.metric)
        written = write_table1(cells, args.out, args.metric)
        datasets = sorted({c.dataset for c in cells}, key=dataset_sort_key)
        print(
            ("Table 1" if args.metric == "paper" else f"Table 1 ({TABLE_METRICS[args.metric][1]})")
            + f": {len(datasets)} datasets, {len(cells)} cells from "
            f"{len(selected)} of {len(results)} result files"
        )
        for d in datasets:
            row = [c for c in cells if c.dataset == d]
            best = ", ".join(head_label(c.head) for c in row if c.best)
            sig = ", ".join(f"{head_label(c.head)}{c.marker}" for c in row if c.significant) or "none"
            if not any(c.p_value is not None for c in row):
                sig = f"no test (no neighbour head shares {MIN_PAIRS}+ splits with linear)"
            odd = ", ".join(f"{c.head} n={c.n}" for c in row if c.n != TABLE1_SPLITS)
            print(
                f"  {dataset_label(d):12s} best: {best}; differs from linear (p<{ALPHA}): {sig}"
                + (f"; {odd}" if odd else "")
            )
        if args.compare_paper:
            rows = compare_with_paper(cells, read_paper_table1(args.paper_table))
            written += write_comparison(rows, args.out)
            ours = [r for r in rows if r["mean"] is not None]
            print()
            print(comparison_markdown(ours), end="")
            print(f"({len(rows) - len(ours)} paper cells without results of ours are in table1_vs_paper.md)\n")
        if not args.no_tuning:
            tuning = tuning_cells(results, args.tune_dataset)
            if tuning:
                written += write_tuning(tuning, args.out, args.tune_dataset)
                heads = sorted({c.head for c in tuning}, key=head_sort_key)
                print(f"Tuning ({args.tune_dataset}): {len(tuning)} grid cells over heads {', '.join(heads)}; best:")
                for c in tuning:
                    if c.best:
                        print(f"  {c.head:10s} {c.label} {mean_std(c.mean, c.std)}")
            else:
                print(f"Tuning: no results for dataset {args.tune_dataset}; no tuning tables")
    except (ResultError, OSError) as e:
        print(f"make_tables.py: error: {e}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
