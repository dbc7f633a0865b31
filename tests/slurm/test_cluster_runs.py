"""Cluster runs against a real local SLURM: the Hydra submitit launcher, manifest arrays, preemption and
requeue, the H100 launcher with a (fake) GPU, and failure reporting. Each job is the conftest's ``tiny`` run
at QUICK's or SLOW's size; each test has its own results root (``tiny.results``), log folder and submitit
folder under tmp_path."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import torch

from experiments.store.results import read_results

from .conftest import PY, QUICK, SLOW, run, status, submit, wait_gone, wait_until

pytestmark = pytest.mark.slurm


def log_dir(tmp_path: Path) -> tuple[Path, list[str]]:
    logs = tmp_path / "logs"
    return logs, ["--log-dir", str(logs)]


def splits_by_head(root: Path) -> Counter:
    return Counter((r["head"], r["split"]) for r in read_results(root))


def test_hydra_submitit_launcher_runs_a_multirun(tiny, tmp_path):
    root = tiny.results
    out = run(
        [
            PY,
            "run.py",
            "-m",
            "experiment=table1",
            *tiny.overrides("head=linear,nca", "splits=0,1", *QUICK),
            "hydra/launcher=submitit_local_test",
            f"hydra.sweep.dir={tmp_path}/multirun",
        ],
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert splits_by_head(root) == Counter({("linear", 0): 1, ("linear", 1): 1, ("nca", 0): 1, ("nca", 1): 1})
    logs = list((tmp_path / "multirun" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 4 and all("[softstep] GPUs:" in p.read_text() for p in logs)  # setup lines ran in each job


def test_manifest_arrays_chunked_then_resubmit_submits_nothing(tiny, tmp_path):
    root, (logs, flags) = tiny.results, log_dir(tmp_path)
    job = tiny.overrides("head=linear,nca", "splits=0,1", *QUICK)
    args = [
        "table1",
        *job,
        *flags,
        "--launcher-config",
        "submitit_local_test",
        "--max-array-size",
        "3",
    ]
    text, arrays = submit(*args)
    assert "4 job(s) to submit" in text and len(arrays) == 2, text  # 4 lines in arrays of at most 3: 3 + 1
    wait_gone(arrays)
    assert splits_by_head(root) == Counter({("linear", 0): 1, ("linear", 1): 1, ("nca", 0): 1, ("nca", 1): 1})
    task_logs = sorted(logs.glob("*_*.out"))
    assert [p.name for p in task_logs] == sorted([f"{arrays[0]}_{i}.out" for i in range(3)] + [f"{arrays[1]}_0.out"])
    assert all("[softstep] exit status 0" in p.read_text() for p in task_logs)
    text, again = submit(*args)
    assert again == [] and "0 job(s) to submit; 4 already done" in text
    st = status("table1", *job, *flags)
    assert re.search(r"^all\s+4\s+0\s+0\s+0\s+0\s+4", st, re.M), st


def checkpoint_of(root: Path) -> Path | None:
    found = list(root.rglob("split_0.ckpt.pt"))
    return found[0] if found else None


def test_preemption_signal_checkpoints_requeues_and_resumes(tiny, tmp_path):
    root, (logs, flags) = tiny.results, log_dir(tmp_path)
    args = ["table1", *tiny.overrides(*SLOW), *flags, "--launcher-config", "submitit_local_test"]
    _, (array,) = submit(*args)
    wait_until(lambda: checkpoint_of(root), 120, "the first epoch's checkpoint")
    # what SLURM does before preemption or the time limit (--signal=B:USR1@120), sent now
    subprocess.run(["scancel", "--signal=USR1", "--batch", f"{array}_0"], check=True, timeout=30)
    log = logs / f"{array}_0.out"
    wait_until(lambda: "[softstep] exit status 75" in log.read_text(), 120, "the checkpoint and exit 75")
    wait_gone([array], timeout=240)
    text = log.read_text()
    stopped = re.search(r"stopped in epoch (\d+) after batch (\d+)", text)
    resumed = re.search(r"split 0: resuming from checkpoint .* \(epoch (\d+), batch (\d+)\)", text)
    assert stopped and resumed, text
    epoch, batch = int(stopped.group(1)), int(stopped.group(2))
    assert epoch >= 1 and (int(resumed.group(1)), int(resumed.group(2))) == (epoch, batch + 1)  # mid-epoch, not epoch 0
    assert "caught SIGUSR1" in text and "requeueing job" in text and "restart 1" in text
    assert text.rstrip().endswith("[softstep] exit status 0")
    (res,) = read_results(root)  # the split exactly once
    assert res["split"] == 0 and res["epochs_run"] == 30 and len(res["history"]) == 30
    assert not list(root.rglob("*.ckpt.pt"))
    text, again = submit(*args)
    assert again == [] and "1 already done" in text


def test_killed_task_is_reported_then_resubmitted_and_resumes(tiny, tmp_path):
    root, (logs, flags) = tiny.results, log_dir(tmp_path)
    job = tiny.overrides(*SLOW)
    args = ["table1", *job, *flags, "--launcher-config", "submitit_local_test"]
    _, (array,) = submit(*args)
    ck = wait_until(lambda: checkpoint_of(root), 120, "the first epoch's checkpoint")
    wait_until(lambda: torch.load(ck, weights_only=True)["epoch"] >= 2, 120, "epoch 2's checkpoint", every=0.5)
    subprocess.run(["scancel", f"{array}_0"], check=True, timeout=30)  # killed: no warning signal, no requeue
    wait_gone([array])
    state = torch.load(ck, weights_only=True)
    assert not read_results(root) and state["epoch"] >= 2
    st = status("table1", *job, *flags)
    assert str(logs / f"{array}_0.out") in st and re.search(r"^all\s+0\s+0\s+0\s+1\s+0\s+1", st, re.M), st
    out = run(
        [PY, "scripts/status.py", "table1", *job, *flags, "--launcher-config", "submitit_local_test", "--resubmit"]
    )
    assert out.returncode == 0 and "1 job(s) to submit" in out.stdout, out.stdout + out.stderr
    (again,) = re.findall(r"submitted array (\d+)", out.stdout)
    wait_gone([again])
    text = (logs / f"{again}_0.out").read_text()
    # scancel sends SIGTERM, which checkpoints at the next batch (no requeue): the rerun resumes right there
    assert f"resuming from checkpoint {ck} (epoch {state['epoch']}, batch {state['batch']})" in text, text
    (res,) = read_results(root)
    assert res["epochs_run"] == 30


def test_h100_launcher_as_written_reaches_the_job_with_its_gpu(tiny, tmp_path):
    """The H100 launcher config, with only the per-cluster values (partition, size, time) set for this node."""
    root = tiny.results
    local = [
        "hydra.launcher.partition=debug",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=5",
    ]
    out = run(
        [
            PY,
            "run.py",
            "-m",
            "experiment=table1",
            *tiny.overrides("head=linear", "splits=0", *QUICK),
            "hydra/launcher=submitit_h100",
            *local,
            f"hydra.sweep.dir={tmp_path}/multirun",
        ],
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert len(read_results(root)) == 1
    (script,) = (tmp_path / "multirun" / ".submitit").glob("*/*_submission.sh")
    assert "#SBATCH --gres=gpu:1" in script.read_text() and "#SBATCH --signal=USR2@120" in script.read_text()
    (log,) = (tmp_path / "multirun" / ".submitit").glob("*/*_log.out")
    assert "CUDA_VISIBLE_DEVICES=0 SLURM_JOB_GPUS=0 SLURM_GPUS_ON_NODE=1" in log.read_text()
    # the manifest path takes the same launcher config; here with the other GPU flag style
    b = tiny.at(tmp_path / "b")
    logs, flags = log_dir(tmp_path / "b")
    _, (array,) = submit(
        "table1",
        *b.overrides("head=linear", "splits=0", *QUICK),
        *flags,
        "--launcher-config",
        "submitit_h100",
        "--partition",
        "debug",
        "--cpus-per-task",
        "1",
        "--mem-gb",
        "1",
        "--time-min",
        "5",
        "--gres",
        "none",
        "--gpus-per-node",
        "1",
    )
    wait_gone([array])
    text = (logs / f"{array}_0.out").read_text()
    assert "CUDA_VISIBLE_DEVICES=0 SLURM_JOB_GPUS=0 SLURM_GPUS_ON_NODE=1" in text and "exit status 0" in text, text
    assert len(read_results(b.results)) == 1


def test_failed_job_error_is_in_its_log_and_status_reports_it(tiny, tmp_path):
    root, (logs, flags) = tiny.results, log_dir(tmp_path)
    bogus = tiny.overrides("head=linear,nca", "splits=0", *QUICK, "trainer.device=bogus")  # refused in the job
    args = ["table1", *bogus, *flags]
    _, (array,) = submit(*args, "--launcher-config", "submitit_local_test")
    wait_gone([array])
    for task in (0, 1):
        text = (logs / f"{array}_{task}.out").read_text()
        assert "error: bad config value trainer.device='bogus'" in text and "[softstep] exit status 2" in text, text
    st = status(*args)
    assert re.search(r"^all\s+0\s+0\s+0\s+2\s+0\s+2", st, re.M), st
    for task in (0, 1):
        assert str(logs / f"{array}_{task}.out") in st
    assert not read_results(root)


def test_submitit_path_preemption_checkpoints_then_submitit_requeues(tiny, tmp_path):
    """Under Hydra's submitit launcher the warning signal is USR2: run.py checkpoints, then submitit requeues."""
    root = tiny.results
    proc = subprocess.Popen(
        [
            PY,
            "run.py",
            "-m",
            "experiment=table1",
            *tiny.overrides(*SLOW),
            "hydra/launcher=submitit_local_test",
            f"hydra.sweep.dir={tmp_path}/multirun",
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: checkpoint_of(root), 120, "the first epoch's checkpoint")
        (log,) = wait_until(lambda: list((tmp_path / "multirun" / ".submitit").glob("*/*_log.out")), 60, "the job log")
        folder = log.parent
        subprocess.run(["scancel", "--signal=USR2", folder.name], check=True, timeout=30)  # all steps, as SLURM does
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    text = log.read_text()
    stopped = re.search(r"stopped in epoch (\d+) after batch (\d+)", text)
    resumed = re.search(r"split 0: resuming from checkpoint .* \(epoch (\d+), batch (\d+)\)", text)
    assert stopped and resumed, text
    assert (int(resumed.group(1)), int(resumed.group(2))) == (int(stopped.group(1)), int(stopped.group(2)) + 1)
    (res,) = read_results(root)
    assert res["epochs_run"] == 30
