#!/usr/bin/env python
"""Submit an experiment to SLURM as `sbatch --array` jobs over a manifest of run.py override lines, then exit.

    python scripts/submit.py table1                               # everything not done yet
    python scripts/submit.py table1 dataset=rsna head=nca,nca_i   # a subset: ordinary (sweep) overrides
    python scripts/submit.py tune_rsna --dry-run                  # print the manifest and sbatch commands only

One line per (dataset, head, hyperparameters, split). Jobs whose result file exists, and jobs queued or
running now, are left out, so submitting again submits only what is missing. Resources come from the
launcher config (configs/hydra/launcher/submitit_h100.yaml + the slurm: block of configs/local/default.yaml);
the flags below override them. Logs: <log-dir>/<array job>_<task>.out. Logic: experiments/sweep/.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import sweep  # noqa: E402


def add_submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-dir", type=Path, help="logs, manifests and submissions.tsv (default: logs/<experiment>)")
    p.add_argument("--launcher", default=sweep.DEFAULT_LAUNCHER, help="configs/hydra/launcher/<name>.yaml to take resources from")
    p.add_argument("--max-array-size", type=int, help="tasks per array (default: the cluster's MaxArraySize, else 1000)")
    p.add_argument("--parallel", type=int, help="at most this many tasks of an array at once (sbatch --array=...%%P)")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--qos")
    p.add_argument("--time-min", type=int, dest="timeout_min", help="time limit per task in minutes")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--mem-gb", type=int)
    p.add_argument("--gres", help="e.g. gpu:1 (sbatch --gres); 'none' drops it")
    p.add_argument("--gpus-per-node", type=int, help="sbatch --gpus-per-node (use with --gres none)")
    p.add_argument("--dry-run", action="store_true", help="print the manifest and the sbatch commands; submit nothing")


def plan_and_submit(args, overrides: list[str], out=sys.stdout) -> sweep.Plan:
    keys = ("partition", "account", "qos", "timeout_min", "cpus_per_task", "mem_gb", "gres", "gpus_per_node")
    resources = {k: getattr(args, k) for k in keys}
    if resources["gres"] == "none":
        resources["gres"] = ""
    p = sweep.plan(args.experiment, overrides, log_dir=args.log_dir, launcher=args.launcher,
                   max_array=args.max_array_size, parallel=args.parallel, resources=resources)
    print(f"{args.experiment}: {len(p.jobs)} job(s) to submit; {p.skipped_done} already done, "
          f"{p.skipped_active} queued or running", file=out)
    if not p.jobs:
        return p
    if args.dry_run:
        print(f"# manifest ({p.manifest}, not written):", file=out)
        for j in p.jobs:
            print(j.line, file=out)
        print(f"# setup ({p.setup}, not written):", file=out)
        for line in p.setup_lines:
            print(line, file=out)
        print("# sbatch commands:", file=out)
        for cmd in p.commands:
            print(shlex.join(cmd), file=out)
        return p
    sweep.submit(p)
    for s in p.submitted:
        print(f"submitted array {s.array_job_id}: manifest lines {s.offset + 1}-{s.offset + s.count} of {s.manifest}", file=out)
    print(f"logs: {p.manifest.parent}/<array job>_<task>.out   status: python scripts/status.py {args.experiment} "
          + " ".join(shlex.quote(o) for o in overrides), file=out)
    return p


def parse(p: argparse.ArgumentParser, argv=None) -> tuple[argparse.Namespace, list[str]]:
    """The experiment, the submit options and the Hydra overrides; an unknown ``--option`` is an error."""
    p.add_argument("experiment", help="configs/experiment/<name>.yaml, e.g. table1 or tune_rsna")
    add_submit_args(p)
    args, overrides = p.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("--")]
    if bad:
        p.error(f"unknown option(s) {' '.join(bad)}")
    return args, overrides


def exit_status(action) -> int:
    """Run ``action``; a SweepError becomes a one-line message and exit status 2."""
    try:
        action()
    except sweep.SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    args, overrides = parse(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), argv)
    return exit_status(lambda: plan_and_submit(args, overrides))


if __name__ == "__main__":
    sys.exit(main())
