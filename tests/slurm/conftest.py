"""A real single-node SLURM for the `-m slurm` tests (scripts/local_slurm.sh).

The session fixture uses a cluster that already answers (`sinfo`); otherwise, as root, it installs and
starts the local one (fake GPU included) and stops it at the end. Without either, the tests skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "local_slurm.sh"
PY = sys.executable
#: A quick job: the tiny run (``tiny`` in tests/conftest.py: the synthetic task on CPU) with 200 items and
#: 3 epochs, as overrides: ``tiny.overrides("head=nca", "splits=0,1", *QUICK)``.
QUICK = ("dataset.loader.n=200", "trainer.max_epochs=3", "trainer.patience=3")
#: A slow job, long enough to be signalled or killed mid-training: one nca split of 3000 items, 30 epochs.
SLOW = (
    "dataset.loader.n=3000",
    "trainer.max_epochs=30",
    "trainer.patience=30",
    "protocol=tuned",
    "head=nca",
    "splits=0",
)


def answering() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.fixture(scope="session", autouse=True)
def slurm_cluster():
    if answering():
        yield "existing"
        return
    if os.geteuid() != 0:
        pytest.skip("no SLURM cluster answers and not root to start one (scripts/local_slurm.sh start)")
    out = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        pytest.fail(f"scripts/local_slurm.sh start failed:\n{out.stdout}\n{out.stderr}")
    yield "local"
    subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


def run(cmd: list[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, timeout=timeout, **kw)


def submit(*args, timeout: float = 300) -> tuple[str, list[str]]:
    """scripts/submit.py; returns (stdout, the array job ids it submitted)."""
    out = run([PY, "scripts/submit.py", *args], timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout, re.findall(r"submitted array (\d+)", out.stdout)


def status(*args, timeout: float = 300) -> str:
    out = run([PY, "scripts/status.py", *args], timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def wait_until(predicate, timeout: float, what: str, every: float = 0.25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_gone(job_ids: list[str], timeout: float = 240) -> None:
    """Poll squeue (not `sbatch --wait`, which polls every ~10 s) until these jobs have left the queue."""

    def gone():
        out = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids)], capture_output=True, text=True, timeout=30)
        return out.returncode == 0 and not out.stdout.strip() or "Invalid job id" in out.stderr

    wait_until(gone, timeout, f"jobs {job_ids} to leave the queue")
