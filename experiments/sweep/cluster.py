"""What SLURM holds for an experiment, and which manifest line each array task runs.

**Findable logs.** Every task logs to ``<log_dir>/<array job>_<task>.out`` (stderr too), and
``<log_dir>/submissions.tsv`` maps each array to its manifest and offset, so a log or a queue entry can
be tied to its line: :func:`active_lines` (squeue) and :func:`latest_logs` (the task logs).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from experiments.sweep.jobs import REPO


@dataclass
class Submission:
    """One submitted array: its lines are ``count`` manifest lines from line ``offset`` (0-based)."""

    array_job_id: str
    manifest: Path
    offset: int
    count: int


def default_log_dir(experiment: str) -> Path:
    """``logs/<experiment>``: task logs, manifests and submissions.tsv."""
    return REPO / "logs" / experiment


def run_command(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def slurm_available() -> bool:
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def record(log_dir: Path, sub: Submission) -> None:
    """Append one array to ``<log_dir>/submissions.tsv``."""
    with open(Path(log_dir) / "submissions.tsv", "a") as f:
        f.write(f"{sub.array_job_id}\t{sub.manifest}\t{sub.offset}\t{sub.count}\n")


def submissions(log_dir: Path) -> list[Submission]:
    """Every array recorded in ``<log_dir>/submissions.tsv``, oldest first."""
    path = Path(log_dir) / "submissions.tsv"
    if not path.exists():
        return []
    out = []
    for row in path.read_text().splitlines():
        if row.strip():
            job_id, manifest, offset, count = row.split("\t")
            out.append(Submission(job_id, Path(manifest), int(offset), int(count)))
    return out


def _manifest_lines(path: Path, cache: dict) -> list[str]:
    if path not in cache:
        cache[path] = path.read_text().splitlines() if path.exists() else []
    return cache[path]


def _task_ids(spec: str) -> list[int]:
    """squeue's %K: ``3``, or for a pending block ``0-9%2`` / ``1,4-6``."""
    ids: list[int] = []
    for part in spec.split("%")[0].strip("[]").split(","):
        if "-" in part:
            a, b = part.split("-")
            ids.extend(range(int(a), int(b) + 1))
        elif part.isdigit():
            ids.append(int(part))
    return ids


def queue(experiment: str) -> list[tuple[str, int, str]]:
    """(array job id, task id, state) of this experiment's tasks in squeue; [] where SLURM is absent."""
    if not slurm_available():
        return []
    try:
        out = run_command(["squeue", "-h", "-r", f"--name=softstep-{experiment}", "-o", "%F|%K|%T"], timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    rows = []
    for row in out.stdout.splitlines():
        parts = row.strip().split("|")
        if len(parts) == 3 and parts[1] not in ("", "N/A"):
            rows.extend((parts[0], t, parts[2]) for t in _task_ids(parts[1]))
    return rows


def active_lines(log_dir: Path, experiment: str) -> dict[str, str]:
    """Manifest line → squeue state, for this log folder's tasks that are pending or running."""
    subs = {s.array_job_id: s for s in submissions(log_dir)}
    cache: dict = {}
    out = {}
    for array_id, task, state in queue(experiment):
        s = subs.get(array_id)
        if s is None:
            continue
        lines = _manifest_lines(s.manifest, cache)
        if s.offset + task < len(lines):
            out[lines[s.offset + task]] = state
    return out


def log_tail(path: Path, max_bytes: int = 1 << 20) -> str:
    """The last ``max_bytes`` of a task log as text; "" for anything that is not a regular file (a FIFO or device
    named like a log is never opened for a blocking read), which status counts as a log without an exit line."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return ""
        f.seek(max(0, st.st_size - max_bytes))
        return f.read(max_bytes).decode("utf-8", errors="replace")


def latest_logs(log_dir: Path) -> dict[str, Path]:
    """Manifest line → its most recent task log (later submissions win)."""
    cache: dict = {}
    out = {}
    for s in submissions(log_dir):
        lines = _manifest_lines(s.manifest, cache)
        for task in range(s.count):
            log = Path(log_dir) / f"{s.array_job_id}_{task}.out"
            if log.exists() and s.offset + task < len(lines):
                out[lines[s.offset + task]] = log
    return out
