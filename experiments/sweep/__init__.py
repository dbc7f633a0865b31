"""Sweeps that submit and exit: an experiment → a manifest of ``run.py`` override lines → a launcher.

One manifest line is one job: one (dataset, head, hyperparameters, split). Submitting twice submits
nothing the second time (finished and queued lines are left out); arrays are chunked at the cluster's
``MaxArraySize``; every task's log is findable from its line.

- :mod:`~experiments.sweep.jobs`: the experiment's grid → :class:`Job` list; the launcher config's resources.
- :mod:`~experiments.sweep.slurm`: the :class:`Plan` (chunks, sbatch commands) and :func:`submit`.
- :mod:`~experiments.sweep.cluster`: squeue, ``submissions.tsv``, and which line each task and log is.
- :mod:`~experiments.sweep.progress`: each job's state and the status table.
- :mod:`~experiments.sweep.launchers`: :data:`LAUNCHERS`, ``slurm``, ``dry-run`` or ``local``.
- :mod:`~experiments.sweep.cli`: the command line of ``scripts/submit.py`` and ``scripts/status.py``.
"""

from experiments.sweep.cluster import (
    Submission,
    active_lines,
    default_log_dir,
    latest_logs,
    queue,
    slurm_available,
    submissions,
)
from experiments.sweep.jobs import DEFAULT_LAUNCHER, REPO, Job, SweepError, expand, grid, launcher_settings
from experiments.sweep.launchers import LAUNCHERS, Launcher, launch_dry_run, launch_local, launch_slurm
from experiments.sweep.progress import RUNNING, Status, format_status, log_verdict, status
from experiments.sweep.slurm import (
    DEFAULT_MAX_ARRAY_SIZE,
    TEMPLATE,
    Plan,
    chunks,
    max_array_size,
    plan,
    sbatch_command,
    submit,
)

__all__ = [
    "DEFAULT_LAUNCHER",
    "DEFAULT_MAX_ARRAY_SIZE",
    "LAUNCHERS",
    "REPO",
    "RUNNING",
    "TEMPLATE",
    "Job",
    "Launcher",
    "Plan",
    "Status",
    "Submission",
    "SweepError",
    "active_lines",
    "chunks",
    "default_log_dir",
    "expand",
    "format_status",
    "grid",
    "latest_logs",
    "launch_dry_run",
    "launch_local",
    "launch_slurm",
    "launcher_settings",
    "log_verdict",
    "max_array_size",
    "plan",
    "queue",
    "sbatch_command",
    "slurm_available",
    "status",
    "submissions",
    "submit",
]
