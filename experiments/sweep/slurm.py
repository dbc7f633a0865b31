"""A sweep as SLURM arrays: the :class:`Plan` (jobs left to run, array chunks, sbatch commands), and
:func:`submit`, which writes the manifest and runs ``sbatch --array`` over it.

- **Idempotent.** Lines whose result file exists are left out, and so are lines queued or running now
  (duplicate lines already collapsed in :func:`~experiments.sweep.jobs.expand`). Submitting twice
  submits nothing the second time.
- **Chunked.** Arrays larger than the cluster's ``MaxArraySize`` are split; each chunk reads its lines
  from the one manifest at an offset.

The sbatch template is ``slurm/array.sbatch``; preemption and requeueing: :mod:`experiments.protocol.preemption`.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from experiments.sweep.cluster import Submission, active_lines, default_log_dir, record, run_command, slurm_available
from experiments.sweep.jobs import DEFAULT_LAUNCHER, REPO, Job, SweepError, expand, launcher_settings

TEMPLATE = REPO / "slurm" / "array.sbatch"
DEFAULT_MAX_ARRAY_SIZE = 1000


def max_array_size(default: int = DEFAULT_MAX_ARRAY_SIZE) -> int:
    """Tasks one array may hold: the cluster's ``MaxArraySize`` (indices run 0..MaxArraySize-1), else ``default``."""
    if shutil.which("scontrol") is None:
        return default
    try:
        out = run_command(["scontrol", "show", "config"], timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return default
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.M)
    return int(m.group(1)) if m else default


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """(offset, count) of each array when ``n`` lines go into arrays of at most ``size`` tasks."""
    if size < 1:
        raise SweepError(f"max array size must be >= 1, got {size}")
    return [(o, min(size, n - o)) for o in range(0, n, size)]


def sbatch_command(
    settings: dict,
    *,
    experiment: str,
    manifest: Path,
    setup: Path,
    log_dir: Path,
    offset: int,
    count: int,
    parallel: int,
    python: str = sys.executable,
) -> list[str]:
    """The ``sbatch`` call for one array of ``count`` manifest lines starting at line ``offset`` (0-based)."""
    s = settings
    cmd = [
        "sbatch",
        "--parsable",
        f"--job-name=softstep-{experiment}",
        f"--array=0-{count - 1}%{parallel}",
        f"--output={log_dir}/%A_%a.out",
        "--open-mode=append",
        "--requeue",
        f"--signal=B:USR1@{s.get('signal_delay_s') or 120}",
        f"--chdir={REPO}",
        f"--time={s['timeout_min']}",
        "--nodes=1",
        "--ntasks=1",
    ]
    for key, flag in (
        ("partition", "partition"),
        ("account", "account"),
        ("qos", "qos"),
        ("constraint", "constraint"),
        ("cpus_per_task", "cpus-per-task"),
        ("gres", "gres"),
        ("gpus_per_node", "gpus-per-node"),
    ):
        if s.get(key) not in (None, ""):
            cmd.append(f"--{flag}={s[key]}")
    if s.get("mem_gb"):
        cmd.append(f"--mem={s['mem_gb']}G")
    for key, value in (s.get("additional_parameters") or {}).items():
        cmd.append(f"--{key.replace('_', '-')}" + ("" if value is True else f"={value}"))
    env = dict(SOFTSTEP_MANIFEST=manifest, SOFTSTEP_OFFSET=offset, SOFTSTEP_SETUP=setup, SOFTSTEP_PYTHON=python)
    for k, v in env.items():
        if "," in str(v):
            raise SweepError(f"{k}={v}: sbatch --export cannot carry a comma; choose another path")
    cmd.append("--export=ALL," + ",".join(f"{k}={v}" for k, v in env.items()))
    cmd.append(str(TEMPLATE))
    return cmd


@dataclass
class Plan:
    """What a launch would do (or did): the jobs left to run and the sbatch commands."""

    experiment: str
    jobs: list[Job]
    skipped_done: int
    skipped_active: int
    manifest: Path
    setup: Path
    setup_lines: list[str]
    arrays: list[tuple[int, int]] = field(default_factory=list)  # (offset, count) per sbatch command
    commands: list[list[str]] = field(default_factory=list)
    submitted: list[Submission] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)  # the command line's, for messages
    exits: dict[str, int] = field(default_factory=dict)  # manifest line → exit status (local runs)
    parallel: int | None = None  # the command line's --parallel (local runs: lines at once)

    def failed(self) -> list[str]:
        """The lines that ran here and exited non-zero."""
        return [line for line, code in self.exits.items() if code != 0]


def plan(
    experiment: str,
    overrides: list[str] = (),
    *,
    log_dir: Path | None = None,
    launcher: str = DEFAULT_LAUNCHER,
    max_array: int | None = None,
    parallel: int | None = None,
    resources: dict | None = None,
    python: str = sys.executable,
    parts: list[int] | None = None,
) -> Plan:
    """Expand, leave out done and active jobs, and build the sbatch commands (nothing is written).

    ``launcher`` names the Hydra launcher config the resources come from (``configs/hydra/launcher/``);
    how the plan is then run is :data:`experiments.sweep.launchers.LAUNCHERS`'s choice; ``parts`` keeps those
    of the experiment's parts (numbered from 1)."""
    log_dir = Path(log_dir or default_log_dir(experiment)).resolve()
    all_jobs = expand(experiment, list(overrides), parts)
    todo = [j for j in all_jobs if not j.done()]
    active = set(active_lines(log_dir, experiment)) if slurm_available() else set()
    left = [j for j in todo if j.line not in active]
    settings = launcher_settings(experiment, list(overrides), launcher)
    settings.update({k: v for k, v in (resources or {}).items() if v is not None})
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    manifest, setup = log_dir / f"manifest-{stamp}.txt", log_dir / f"setup-{stamp}.sh"
    p = Plan(
        experiment,
        left,
        len(all_jobs) - len(todo),
        len(todo) - len(left),
        manifest,
        setup,
        list(settings["setup"] or []),
        overrides=list(overrides),
        parallel=parallel,
    )
    size = max_array or max_array_size()
    par = parallel or settings.get("array_parallelism") or 64
    for offset, count in chunks(len(left), size):
        p.arrays.append((offset, count))
        p.commands.append(
            sbatch_command(
                settings,
                experiment=experiment,
                manifest=manifest,
                setup=setup,
                log_dir=log_dir,
                offset=offset,
                count=count,
                parallel=min(par, count),
                python=python,
            )
        )
    return p


def submit(p: Plan) -> Plan:
    """Write the manifest and setup file, run the sbatch commands, record each array in submissions.tsv."""
    if not p.jobs:
        return p
    if not slurm_available():
        raise SweepError("sbatch/squeue not found: submit from a SLURM login node, or use --launcher dry-run or local")
    log_dir = p.manifest.parent
    log_dir.mkdir(parents=True, exist_ok=True)
    if not (log_dir.parent / ".gitignore").exists() and log_dir.parent == REPO / "logs":
        (log_dir.parent / ".gitignore").write_text("*\n")
    p.manifest.write_text("".join(j.line + "\n" for j in p.jobs))
    p.setup.write_text(
        "# sourced by slurm/array.sbatch before each task (from the launcher config's setup lines)\n"
        + "".join(f"{line}\n" for line in p.setup_lines)
    )
    for cmd, (offset, count) in zip(p.commands, p.arrays):
        out = run_command(cmd, timeout=120)
        if out.returncode != 0:
            raise SweepError(f"sbatch failed ({out.returncode}): {out.stderr.strip()}\n  command: {shlex.join(cmd)}")
        sub = Submission(out.stdout.strip().split(";")[0], p.manifest, offset, count)
        p.submitted.append(sub)
        record(log_dir, sub)
    return p
