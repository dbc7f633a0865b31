#!/usr/bin/env python
"""Where an experiment stands on SLURM: per dataset x head, splits done, running, pending, failed, missing.

    python scripts/status.py table1 [overrides ...] [--log-dir DIR]
    python scripts/status.py table1 --resubmit [submit options]   # submit just the failed and missing jobs

Then the GPU hours of the jobs left (experiments/sweep/cost.py): from the per-epoch times of finished
result files, or from results/benchmarks/gpu.md when none of a dataset has finished (--no-estimate skips it).

done: the result file exists. running/pending: in squeue (when SLURM answers). failed: the task's latest
log ends in a non-zero exit or holds a traceback (or ended without an exit line: killed), and there is
no result; each failure's log path is printed. missing: never submitted, or lost. Logic: experiments/sweep/.
"""

from __future__ import annotations

import argparse
import sys

from experiments import sweep
from experiments.sweep.cli import exit_status, parse, plan_and_launch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--resubmit", action="store_true", help="submit the failed and missing jobs (same path as submit.py)"
    )
    p.add_argument("--no-estimate", action="store_true", help="leave out the GPU-hours estimate of the remaining jobs")
    args, overrides = parse(p, argv)

    def report_and_resubmit():
        st = sweep.status(args.experiment, overrides, log_dir=args.log_dir)
        print(sweep.format_status(st))
        if not args.no_estimate:
            from experiments.sweep.cost import estimate, format_estimate

            print()
            print(format_estimate(estimate(st.jobs, st.state)))
        if args.resubmit:
            print()
            return plan_and_launch(args, overrides)
        return None

    return exit_status(report_and_resubmit)


if __name__ == "__main__":
    sys.exit(main())
