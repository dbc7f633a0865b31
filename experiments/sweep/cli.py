"""The command line of ``scripts/submit.py`` and ``scripts/status.py``: one argument parser, one
plan-then-launch path, and one error-to-exit-status rule."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from experiments.sweep.jobs import DEFAULT_LAUNCHER, SweepError
from experiments.sweep.launchers import LAUNCHERS
from experiments.sweep.slurm import Plan, plan

RESOURCES = ("partition", "account", "qos", "timeout_min", "cpus_per_task", "mem_gb", "gres", "gpus_per_node")


def add_submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--launcher",
        metavar="{" + ",".join(LAUNCHERS) + "}",
        help="slurm: sbatch arrays (default); dry-run: print the manifest and the sbatch commands, submit "
        "nothing; local: run each line here, one after another (any other name, as before this "
        "option chose how, is taken as --launcher-config NAME)",
    )
    p.add_argument(
        "--launcher-config",
        help=f"configs/hydra/launcher/<name>.yaml to take resources from (default: {DEFAULT_LAUNCHER})",
    )
    p.add_argument("--log-dir", type=Path, help="logs, manifests and submissions.tsv (default: logs/<experiment>)")
    p.add_argument(
        "--max-array-size", type=int, help="tasks per array (default: the cluster's MaxArraySize, else 1000)"
    )
    p.add_argument("--parallel", type=int, help="at most this many tasks of an array at once (sbatch --array=...%%P)")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--qos")
    p.add_argument("--time-min", type=int, dest="timeout_min", help="time limit per task in minutes")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--mem-gb", type=int)
    p.add_argument("--gres", help="e.g. gpu:1 (sbatch --gres); 'none' drops it")
    p.add_argument("--gpus-per-node", type=int, help="sbatch --gpus-per-node (use with --gres none)")
    p.add_argument("--dry-run", action="store_true", help="the same as --launcher dry-run")
    p.add_argument(
        "--part",
        type=part_numbers,
        help="only these of the experiment's parts, numbered from 1 as listed (e.g. 7 or 1,4); a command-line "
        "override filters a part's values for a key the part names and adds itself to the others",
    )


def part_numbers(text: str) -> list[int]:
    """``--part``'s value: part numbers separated by commas (``7``, ``1,4``)."""
    try:
        return [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: part numbers separated by commas, e.g. 7 or 1,4") from None


def _choose_launcher(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Leave ``args.launcher`` a :data:`LAUNCHERS` key and ``args.launcher_config`` a launcher config name."""
    name = args.launcher
    if name is not None and name not in LAUNCHERS:  # --launcher once named the launcher config: it still does
        if args.launcher_config:
            p.error(f"--launcher {name}: choose {', '.join(LAUNCHERS)} (--launcher-config names the resources)")
        args.launcher_config, name = name, None
    if args.dry_run and name not in (None, "dry-run"):
        p.error(f"--dry-run is --launcher dry-run; it cannot go with --launcher {name}")
    args.launcher = name or ("dry-run" if args.dry_run else "slurm")
    args.launcher_config = args.launcher_config or DEFAULT_LAUNCHER


def parse(p: argparse.ArgumentParser, argv=None) -> tuple[argparse.Namespace, list[str]]:
    """The experiment, the submit options and the Hydra overrides; an unknown ``--option`` is an error."""
    p.add_argument("experiment", help="configs/experiment/<name>.yaml, e.g. table1 or tune_rsna")
    add_submit_args(p)
    args, overrides = p.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("--")]
    if bad:
        p.error(f"unknown option(s) {' '.join(bad)}")
    _choose_launcher(p, args)
    return args, overrides


def plan_and_launch(args: argparse.Namespace, overrides: list[str], out=sys.stdout) -> Plan:
    """Plan what is left to run and hand it to the chosen launcher."""
    resources = {k: getattr(args, k) for k in RESOURCES}
    if resources["gres"] == "none":
        resources["gres"] = ""
    p = plan(
        args.experiment,
        overrides,
        log_dir=args.log_dir,
        launcher=args.launcher_config,
        max_array=args.max_array_size,
        parallel=args.parallel,
        resources=resources,
        parts=args.part,
    )
    verb = "run here" if args.launcher == "local" else "submit"
    print(
        f"{args.experiment}: {len(p.jobs)} job(s) to {verb}; {p.skipped_done} already done, "
        f"{p.skipped_active} queued or running",
        file=out,
    )
    if not p.jobs:
        return p
    return LAUNCHERS[args.launcher](p, out)


def exit_status(action: Callable[[], Plan | None]) -> int:
    """Run ``action``: 0, or 2 and a one-line message for a SweepError, or 1 when a local run failed."""
    try:
        result = action()
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if isinstance(result, Plan) and result.failed() else 0
