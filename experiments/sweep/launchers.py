"""How a :class:`~experiments.sweep.slurm.Plan` is run: the registry :data:`LAUNCHERS`.

Each launcher is ``launcher(plan, out=sys.stdout) -> plan``; it reports on ``out`` and records what it
did in the plan (``plan.submitted`` for SLURM arrays, ``plan.exits`` for local runs).

- ``slurm``: write the manifest and submit it as ``sbatch --array`` jobs (:func:`~experiments.sweep.slurm.submit`).
- ``dry-run``: print the manifest, the setup lines and the sbatch commands; write and submit nothing.
- ``local``: run the manifest now on this machine, ``python run.py <line>`` from the repository root, the
  splits of one configuration as one line (one process loads its data once), ``--parallel`` lines at once (default
  one), going on after a failure; each line's exit status is reported, and any non-zero one
  (:data:`~experiments.protocol.preemption.REQUEUE_EXIT` too: nothing requeues a local run) is a failure. The
  launcher config's setup lines are not run: this shell is the job's environment.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


def local_lines(jobs: list) -> list[str]:
    """The jobs' lines with each configuration's splits joined into one ``splits=[a,b,...]`` line, in job order."""
    splits: dict[str, list[int]] = {}
    for job in jobs:
        config, _, _ = job.line.rpartition(" splits=")
        splits.setdefault(config, []).append(job.split)
    return [f"{config} splits=[{','.join(map(str, s))}]" for config, s in splits.items()]


def launch_local(p: Plan, out: TextIO = sys.stdout) -> Plan:
    """Run every configuration here as ``python run.py <line>`` in the repository root, ``p.parallel`` at once;
    record each exit."""
    lines, lock = local_lines(p.jobs), threading.Lock()

    def say(text: str) -> None:
        with lock:
            print(text, file=out, flush=True)

    def run(i_line: tuple[int, str]) -> None:
        i, line = i_line
        say(f"[softstep] local job {i}/{len(lines)}: {line}")
        try:
            code = subprocess.run([sys.executable, "run.py", *shlex.split(line)], cwd=REPO).returncode
        except OSError as e:  # the interpreter could not start: a failure of this line, not of the sweep
            say(f"[softstep] cannot start run.py: {e}")
            code = 127
        p.exits[line] = code
        note = " (preempted: a local run is not requeued)" if code == REQUEUE_EXIT else ""
        say(f"[softstep] exit status {code}{note}: job {i}")

    with ThreadPoolExecutor(max_workers=max(1, p.parallel or 1)) as pool:
        list(pool.map(run, enumerate(lines, 1)))
    failed = p.failed()
    print(f"local: {len(lines) - len(failed)} ok, {len(failed)} failed", file=out)
    for line in failed:
        print(f"  exit status {p.exits[line]}: {line}", file=out)
    return p


LAUNCHERS: dict[str, Launcher] = {"slurm": launch_slurm, "dry-run": launch_dry_run, "local": launch_local}
