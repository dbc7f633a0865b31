#!/usr/bin/env python
"""Submit an experiment to SLURM as `sbatch --array` jobs over a manifest of run.py override lines, then exit.

    python scripts/submit.py table1                               # everything not done yet
    python scripts/submit.py table1 dataset=rsna head=nca,nca_i   # a subset: ordinary (sweep) overrides
    python scripts/submit.py tune_rsna --dry-run                  # print the manifest and sbatch commands only
    python scripts/submit.py table1 head=linear splits=0 --launcher local   # run the lines here, one by one

One line per (dataset, head, hyperparameters, split). Jobs whose result file exists, and jobs queued or
running now, are left out, so submitting again submits only what is missing. --launcher slurm (default),
dry-run (= --dry-run) or local chooses how the lines run. Resources come from the launcher config
(--launcher-config, default configs/hydra/launcher/submitit_h100.yaml + the slurm: block of
configs/local/default.yaml); the flags below override them. Logs: <log-dir>/<array job>_<task>.out.
Logic: experiments/sweep/.
"""

from __future__ import annotations

import argparse
import sys

from experiments.sweep.cli import exit_status, parse, plan_and_launch


def main(argv=None) -> int:
    args, overrides = parse(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), argv)
    return exit_status(lambda: plan_and_launch(args, overrides))


if __name__ == "__main__":
    sys.exit(main())
