#!/usr/bin/env python
"""Regenerate the paper's figures from result files (never from the trainer).

    python scripts/make_figures.py [--results-root results] [--out results/figures] [--figure3-from surfaces.npz]

Figure 2 (SoftStep) always; Figures 4 and 5 when the tuning dataset has results of their heads;
the effective neighbourhood size per dataset × head when result files have a ``sparsity`` block; the step's
parameters and sparsity over epochs per protocol (study_trajectories_*) when their histories log them;
Figure 3 from a surfaces file (format: experiments.report.surfaces.load_surfaces), with a table of
each head's MSE against the true surface on the grid. PNG and PDF, into --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from experiments.report import figures
from experiments.report.study.figures import plot_step_trajectories
from experiments.report.surfaces import load_surfaces, plot_figure3, surface_mse, write_figure3_table
from experiments.report.tuning import tuning_cells
from experiments.store.results import ResultError, read_results


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results-root", type=Path, default=Path("results"), help="folder holding runs/ (default: results)")
    p.add_argument("--out", type=Path, default=Path("results/figures"), help="output folder (default: results/figures)")
    p.add_argument("--tune-dataset", default="rsna", help="dataset of the appendix-A tuning grid (default: rsna)")
    p.add_argument(
        "--figure3-from",
        type=Path,
        metavar="FILE",
        help="surfaces file (.npz with keys <target>/<name>, or .json) for Figure 3",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    written: list[Path] = []
    try:
        written += figures.plot_figure2(args.out)
        results = read_results(args.results_root, skip_bad=True)
        cells = tuning_cells(results, args.tune_dataset)
        for number, plot, heads in (
            (4, figures.plot_figure4, figures.FIGURE4_HEADS),
            (5, figures.plot_figure5, figures.FIGURE5_HEADS),
        ):
            paths = plot(cells, args.out, args.tune_dataset)
            if paths:
                written += paths
            else:
                print(
                    f"Figure {number}: no results of {', '.join(heads)} on dataset {args.tune_dataset} "
                    f"under {args.results_root / 'runs'}; skipped"
                )
        paths = figures.plot_sparsity(results, args.out)
        if paths:
            written += paths
        else:
            print(f"Sparsity: no result under {args.results_root / 'runs'} has a sparsity block; skipped")
        written += plot_step_trajectories(results, args.out)  # the offline study's, where files log the step per epoch
        if args.figure3_from:
            surfaces = load_surfaces(args.figure3_from)
            mse = surface_mse(surfaces)
            written += plot_figure3(surfaces, args.out, mse=mse, mse_label="grid MSE")
            written.append(
                write_figure3_table(
                    mse,
                    args.out / "figure3_mse.md",
                    note=f"Mean squared difference between each head's surface and the true target on the grid of {args.figure3_from.name}.",
                )
            )
        else:
            print("Figure 3: no --figure3-from surfaces file; skipped")
    except (ResultError, ValueError, OSError) as e:
        print(f"make_figures.py: error: {e}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
