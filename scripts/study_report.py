#!/usr/bin/env python
"""The offline study's report (issue 32) from result files (never from the trainer).

    python scripts/study_report.py [--results-root results/offline_study] [--out DIR | --write]

Writes offline_study.md, offline_study.csv and figures/study_cd_*.{png,pdf}, figures/study_trajectories_*.{png,pdf}
into --out (default outputs/offline_study/, a scratch folder); --write writes them into results/, over the committed
report. Definitions: experiments/report/study/ and docs/offline-study.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from experiments.report.study.report import write_report
from experiments.store.results import ResultError

REPO = Path(__file__).resolve().parents[1]
SCRATCH = Path("outputs/offline_study")
STUDY = Path("results/offline_study")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--results-root",
        type=Path,
        default=STUDY,
        help=f"folder holding runs/ (default: {STUDY}, where configs/experiment/offline_study.yaml writes)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=SCRATCH, help=f"output folder (default: {SCRATCH})")
    where.add_argument("--write", action="store_true", help="write into results/, over the committed report")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Write the report; a result set the report cannot read exits with status 1 and one line naming the file."""
    args = parse_args(argv)
    try:
        written = write_report(args.results_root, REPO / "results" if args.write else args.out)
    except (ResultError, OSError) as e:
        sys.exit(f"study_report.py: error: {e}")
    print("wrote", *written, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
