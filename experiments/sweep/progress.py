"""Where a sweep stands: each job done, running, pending, failed or missing, from the result files, the
queue (when SLURM answers) and the task logs; :func:`format_status` prints it per dataset x head.

A task log ends in ``[softstep] exit status N`` (``slurm/array.sbatch``); :func:`log_verdict` reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from experiments.protocol.preemption import REQUEUE_EXIT
from experiments.sweep.cluster import active_lines, default_log_dir, latest_logs, log_tail
from experiments.sweep.jobs import Job, expand

EXIT_LINE = re.compile(r"^\[softstep\] exit status (-?\d+)", re.M)
#: squeue states that count as running (the others of a queued task: pending).
RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}


def log_verdict(text: str) -> str | None:
    """'failed', 'ok', 'requeued' from a task log, or None when it has not ended."""
    codes = EXIT_LINE.findall(text)
    if codes:
        code = int(codes[-1])
        return "ok" if code == 0 else "requeued" if code == REQUEUE_EXIT else "failed"
    return "failed" if "Traceback (most recent call last)" in text else None


@dataclass
class Status:
    jobs: list[Job]
    state: dict[tuple, str]  # job key → done | running | pending | failed | missing
    failures: dict[tuple, Path]  # job key → its log
    malformed: dict[Path, str] = field(default_factory=dict)  # result file that cannot be read → why

    def table(self) -> list[dict]:
        rows: dict[tuple, dict] = {}
        for j in self.jobs:
            r = rows.setdefault(
                (j.dataset, j.head),
                dict(dataset=j.dataset, head=j.head, total=0, done=0, running=0, pending=0, failed=0, missing=0),
            )
            r["total"] += 1
            r[self.state[j.key]] += 1
        return list(rows.values())

    def missing(self) -> list[Job]:
        return [j for j in self.jobs if self.state[j.key] in ("failed", "missing")]


def status(experiment: str, overrides: list[str] = (), *, log_dir: Path | None = None) -> Status:
    """Each job's state from the result files, the queue (when SLURM answers) and the task logs."""
    log_dir = Path(log_dir or default_log_dir(experiment)).resolve()
    jobs = expand(experiment, list(overrides))
    active = active_lines(log_dir, experiment)
    logs = latest_logs(log_dir)
    state, failures = {}, {}
    for j in jobs:
        if j.done():
            state[j.key] = "done"
        elif j.line in active:
            state[j.key] = "running" if active[j.line] in RUNNING else "pending"
        elif j.line in logs and log_verdict(log_tail(logs[j.line])) in ("failed", None):
            # ended with an error, or ended without saying so (killed, out of memory, time limit)
            state[j.key], failures[j.key] = "failed", logs[j.line]
        else:
            state[j.key] = "missing"
    malformed = {}
    for run_key in {j.run_key for j in jobs}:
        malformed.update(run_key.scan()[1])
    return Status(jobs, state, failures, malformed)


def format_status(st: Status) -> str:
    cols = ("dataset", "head", "done", "running", "pending", "failed", "missing", "total")
    rows = st.table()
    width = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in cols}
    out = ["  ".join(c.ljust(width[c]) for c in cols)]
    out += ["  ".join(str(r[c]).ljust(width[c]) for c in cols) for r in rows]
    tot = {c: sum(r[c] for r in rows) for c in cols[2:]}
    out.append(
        "  ".join(
            ["all".ljust(width["dataset"]), "".ljust(width["head"])] + [str(tot[c]).ljust(width[c]) for c in cols[2:]]
        )
    )
    if st.failures:
        out.append("\nfailed (log, then the job's overrides):")
        by_key = {j.key: j for j in st.jobs}
        for key, log in st.failures.items():
            out.append(f"  {log}\n      {by_key[key].line}")
    if st.malformed:
        out.append(
            "\nmalformed result files, counted as not done (the next run moves each aside to .corrupt and trains "
            "its split again):"
        )
        out += [f"  {why}" if str(path) in why else f"  {path}: {why}" for path, why in sorted(st.malformed.items())]
    return "\n".join(out)
