"""How a :class:`~experiments.sweep.slurm.Plan` is run: the registry :data:`LAUNCHERS`.

Each launcher is ``launcher(plan, out=sys.stdout) -> plan``; it reports on ``out`` and records what it
did in the plan (``plan.submitted`` for SLURM arrays, ``plan.exits`` for local runs).

- ``slurm``: write the manifest and submit it as ``sbatch --array`` jobs (:func:`~experiments.sweep.slurm.submit`).
- ``dry-run``: print the manifest, the setup lines and the sbatch commands; write and submit nothing.
- ``local``: run each manifest line now on this machine, ``python run.py <line>`` from the repository
  root, one after another, going on after a failure; each line's exit status is reported, and any
  non-zero one (:data:`~experiments.protocol.preemption.REQUEUE_EXIT` too: nothing requeues a local run) is a
  failure. The launcher config's setup lines are not run: this shell is the job's environment.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from typing import TextIO

from experiments.protocol.preemption import REQUEUE_EXIT
from experiments.sweep.jobs import REPO
from experiments.sweep.slurm import Plan, submit

Launcher = Callable[[Plan, TextIO], Plan]


def launch_slurm(p: Plan, out: TextIO = sys.stdout) -> Plan:
    """Submit the plan's arrays and say where their logs and status are."""
    submit(p)
    for s in p.submitted:
        print(
            f"submitted array {s.array_job_id}: manifest lines {s.offset + 1}-{s.offset + s.count} of {s.manifest}",
            file=out,
        )
    print(
        f"logs: {p.manifest.parent}/<array job>_<task>.out   status: python scripts/status.py {p.experiment} "
        + " ".join(shlex.quote(o) for o in p.overrides),
        file=out,
    )
    return p


def launch_dry_run(p: Plan, out: TextIO = sys.stdout) -> Plan:
    """Print the manifest, the setup lines and the sbatch commands; write and submit nothing."""
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


def launch_local(p: Plan, out: TextIO = sys.stdout) -> Plan:
    """Run every line here, one after another, as ``python run.py <line>`` in the repository root; record each exit."""
    for i, job in enumerate(p.jobs, 1):
        print(f"[softstep] local job {i}/{len(p.jobs)}: {job.line}", file=out, flush=True)
        try:
            code = subprocess.run([sys.executable, "run.py", *shlex.split(job.line)], cwd=REPO).returncode
        except OSError as e:  # the interpreter could not start: a failure of this line, not of the sweep
            print(f"[softstep] cannot start run.py: {e}", file=out)
            code = 127
        p.exits[job.line] = code
        note = "" if code == 0 else " (preempted: a local run is not requeued)" if code == REQUEUE_EXIT else ""
        print(f"[softstep] exit status {code}{note}", file=out, flush=True)
    failed = p.failed()
    print(f"local: {len(p.jobs) - len(failed)} ok, {len(failed)} failed", file=out)
    for line in failed:
        print(f"  exit status {p.exits[line]}: {line}", file=out)
    return p


LAUNCHERS: dict[str, Launcher] = {"slurm": launch_slurm, "dry-run": launch_dry_run, "local": launch_local}
