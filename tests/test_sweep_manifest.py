"""experiments/sweep/ without a cluster: grid expansion, dedupe, skip-if-done, chunking, sbatch flags, log verdicts,
and the dry-run and local launchers."""

from __future__ import annotations

import argparse
import io
import json
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from experiments import sweep
from experiments.store.results import RunKey
from experiments.sweep import cli
from experiments.sweep.cluster import _task_ids

REPO = Path(__file__).resolve().parents[1]


def test_table1_is_the_full_grid_one_job_per_split():
    fixed, swept = sweep.grid("table1", [])
    assert fixed == ["experiment=table1"]
    assert (
        len(swept["dataset"]) == 10
        and len(swept["head"]) == 6
        and swept["splits"] == [f"splits={i}" for i in range(10)]
    )


def test_command_line_narrows_the_grid_and_every_split_is_its_own_line(tmp_path, tiny):
    jobs = sweep.expand("table1", tiny.overrides("head=linear,nca", "splits=0,1", f"paths.results_root={tmp_path}"))
    assert [(j.head, j.split) for j in jobs] == [("linear", 0), ("linear", 1), ("nca", 0), ("nca", 1)]
    assert all(j.dataset == "synthetic-sinusoidal" and j.results_root == str(tmp_path) for j in jobs)
    line = shlex.split(jobs[0].line)
    assert line[0] == "experiment=table1" and "head=linear" in line and line[-1] == "splits=0"
    # a list of splits (no sweep) also becomes one line per split
    jobs = sweep.expand("table1", tiny.overrides("head=nca", "splits=[3,4]"))
    assert [j.split for j in jobs] == [3, 4] and jobs[0].line.endswith("splits=3")


def test_tune_rsna_linear_ignores_similarity_so_its_jobs_collapse():
    jobs = sweep.expand("tune_rsna", [])
    heads = {}
    for j in jobs:
        heads[j.head] = heads.get(j.head, 0) + 1
    assert heads == {
        "linear": 2 * 2 * 3,
        **{h: 2 * 2 * 3 * 3 for h in ("nca", "nca_g", "nca_i", "diffknn_g", "diffknn_i")},
    }
    assert len({j.key for j in jobs}) == len(jobs) and all(j.dataset == "rsna" for j in jobs)


def test_finished_splits_are_left_out(tmp_path, tiny):
    over = tiny.overrides("head=nca", "splits=0,1,2", f"paths.results_root={tmp_path}")
    jobs = sweep.expand("table1", over)
    done = jobs[1]
    path = RunKey(str(tmp_path), done.dataset, done.extractor, done.head, done.run_id).split_path(done.split)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "format_version": 1,
                "dataset": done.dataset,
                "extractor": done.extractor,
                "head": done.head,
                "split": done.split,
                "run_id": done.run_id,
                "hparams": {},
                "best_epoch": 0,
                "epochs_run": 1,
                "config": {},
                "metrics": {
                    k: 0.1
                    for k in ("test_mse", "val_mse", "test_mse_x1e3", "val_mse_x1e3", "test_mse_orig", "val_mse_orig")
                },
            }
        )
    )
    p = sweep.plan("table1", over, log_dir=tmp_path / "logs", launcher="submitit_local_test", max_array=10)
    assert [j.split for j in p.jobs] == [0, 2] and p.skipped_done == 1
    st = sweep.status("table1", over, log_dir=tmp_path / "logs")
    assert [r for r in st.table()] == [
        dict(dataset="synthetic-sinusoidal", head="nca", total=3, done=1, running=0, pending=0, failed=0, missing=2)
    ]
    assert not st.malformed and "malformed" not in sweep.format_status(st)
    # a result file that cannot be read is counted as not done, and status says so in one line naming it
    bad = path.with_name("split_2.json")
    bad.write_bytes(b"\x00\xff" * 10)
    st = sweep.status("table1", over, log_dir=tmp_path / "logs")
    assert st.table()[0]["done"] == 1 and list(st.malformed) == [bad]
    lines = [line for line in sweep.format_status(st).splitlines() if str(bad) in line]
    assert len(lines) == 1 and "not a readable JSON result file" in lines[0], sweep.format_status(st)


def test_chunks_respect_the_array_limit():
    assert sweep.chunks(2500, 1000) == [(0, 1000), (1000, 1000), (2000, 500)]
    assert sweep.chunks(3, 1000) == [(0, 3)]
    assert sweep.chunks(0, 10) == []
    with pytest.raises(sweep.SweepError):
        sweep.chunks(5, 0)


def test_sbatch_flags_come_from_the_h100_launcher_and_both_gpu_styles(tmp_path):
    s = sweep.launcher_settings("table1", [], "submitit_h100")
    assert (s["partition"], s["timeout_min"], s["gres"], s["gpus_per_node"]) == ("gpu", 2880, "gpu:1", None)
    assert any("HF_HUB_OFFLINE=1" in line and "WANDB_MODE=offline" in line for line in s["setup"])
    kw = dict(
        experiment="table1",
        manifest=tmp_path / "m.txt",
        setup=tmp_path / "s.sh",
        log_dir=tmp_path,
        offset=1000,
        count=500,
        parallel=20,
    )
    cmd = sweep.sbatch_command(s, **kw)
    assert "--gres=gpu:1" in cmd and not any(c.startswith("--gpus-per-node") for c in cmd)
    assert "--array=0-499%20" in cmd and f"--output={tmp_path}/%A_%a.out" in cmd and "--signal=B:USR1@120" in cmd
    assert "--requeue" in cmd and "--time=2880" in cmd and "--mem=64G" in cmd and cmd[-1].endswith("slurm/array.sbatch")
    assert "SOFTSTEP_OFFSET=1000" in next(c for c in cmd if c.startswith("--export="))
    other = sweep.launcher_settings(
        "table1", ["+slurm.gres=null", "+slurm.gpus_per_node=1", "+slurm.account=abc"], "submitit_h100"
    )
    cmd = sweep.sbatch_command(other, **kw)
    assert "--gpus-per-node=1" in cmd and not any(c.startswith("--gres") for c in cmd) and "--account=abc" in cmd


def test_dry_run_prints_manifest_and_commands_and_writes_nothing(tmp_path, tiny):
    out = subprocess.run(
        [
            sys.executable,
            "scripts/submit.py",
            "table1",
            *tiny.overrides("head=linear,nca", "splits=0,1", f"paths.results_root={tmp_path}/r"),
            "--log-dir",
            str(tmp_path / "logs"),
            "--dry-run",
            "--max-array-size",
            "3",
            "--parallel",
            "2",
            "--partition",
            "debug",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "4 job(s) to submit" in out.stdout and out.stdout.count("experiment=table1 dataset=synthetic") == 4
    cmds = [line for line in out.stdout.splitlines() if line.startswith("sbatch ")]
    assert (
        len(cmds) == 2 and "--array=0-2%2" in cmds[0] and "--array=0-0%1" in cmds[1] and "--partition=debug" in cmds[0]
    )
    assert not (tmp_path / "logs").exists()


def test_bad_experiment_or_override_is_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "scripts/submit.py", "table1", "head=nope", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and out.stderr.startswith("error:") and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "text,verdict",
    [
        ("[softstep] exit status 0\n", "ok"),
        ("Traceback (most recent call last):\n  ...\nRuntimeError: x\n[softstep] exit status 1\n", "failed"),
        ("[softstep] exit status 75\n[softstep] requeueing\n", "requeued"),
        (
            "[softstep] exit status 75\n...\n[softstep] exit status 0\n",
            "ok",
        ),  # requeued, then finished: last attempt wins
        ("Traceback (most recent call last):\n", "failed"),
        ("[softstep] task 1_0\n", None),
    ],
)
def test_log_verdict(text, verdict):
    assert sweep.log_verdict(text) == verdict


def test_squeue_task_ranges():
    assert _task_ids("3") == [3]
    assert _task_ids("[0-3%2]") == [0, 1, 2, 3]
    assert _task_ids("1,4-5") == [1, 4, 5]


def test_preemption_handler_sets_stop_and_exits_75(monkeypatch):
    import os
    import signal

    from experiments.protocol import preemption
    from experiments.protocol.preemption import STOP

    monkeypatch.setattr(preemption, "_previous", {})
    monkeypatch.setattr(preemption, "_caught", [])
    old = {s: signal.getsignal(s) for s in preemption.SIGNALS + preemption.INTERRUPTS}
    try:
        assert preemption.install()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert STOP.is_set()
        with pytest.raises(SystemExit) as e:
            preemption.exit_for_requeue(RuntimeError("stopped"))
        assert e.value.code == preemption.REQUEUE_EXIT  # the one exit code: task logs read it back as a requeue
        assert sweep.log_verdict(f"[softstep] exit status {preemption.REQUEUE_EXIT}\n") == "requeued"
        calls = []
        preemption._previous[signal.SIGUSR2] = lambda signum, frame: calls.append(signum)  # submitit's handler
        os.kill(os.getpid(), signal.SIGUSR2)
        with pytest.raises(SystemExit):
            preemption.exit_for_requeue(RuntimeError("stopped"))
        assert calls == [signal.SIGUSR2]
    finally:
        STOP.clear()
        for s, h in old.items():
            signal.signal(s, h)


def test_launcher_registry_and_the_old_launcher_option():
    assert set(sweep.LAUNCHERS) == {"slurm", "dry-run", "local"}

    def parse(*argv):
        return cli.parse(argparse.ArgumentParser(), ["table1", *argv])[0]

    args = parse()
    assert (args.launcher, args.launcher_config) == ("slurm", sweep.DEFAULT_LAUNCHER)
    args = parse("--dry-run", "--launcher-config", "submitit_local_test")
    assert (args.launcher, args.launcher_config) == ("dry-run", "submitit_local_test")
    args = parse("--launcher", "local")
    assert (args.launcher, args.launcher_config) == ("local", sweep.DEFAULT_LAUNCHER)
    # before the registry, --launcher named the launcher config; such a name still does
    args = parse("--launcher", "submitit_local_test")
    assert (args.launcher, args.launcher_config) == ("slurm", "submitit_local_test")
    args = parse("--launcher", "submitit_local_test", "--dry-run")
    assert (args.launcher, args.launcher_config) == ("dry-run", "submitit_local_test")
    for bad in (["--launcher", "local", "--dry-run"], ["--launcher", "x", "--launcher-config", "y"]):
        with pytest.raises(SystemExit):
            parse(*bad)


def test_dry_run_launcher_prints_the_plan_and_writes_nothing(tmp_path, tiny):
    p = sweep.plan(
        "table1",
        tiny.overrides("head=linear", "splits=0,1", f"paths.results_root={tmp_path}/r"),
        log_dir=tmp_path / "logs",
        launcher="submitit_local_test",
        max_array=1,
    )
    out = io.StringIO()
    assert sweep.LAUNCHERS["dry-run"](p, out) is p
    text = out.getvalue().splitlines()
    assert [line for line in text if line.startswith("experiment=")] == [j.line for j in p.jobs]
    assert [line for line in text if line.startswith("sbatch ")] == [shlex.join(c) for c in p.commands]
    assert len(p.commands) == 2 and "--partition=debug" in p.commands[0] and not p.submitted
    assert not (tmp_path / "logs").exists() and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_local_launcher_runs_each_line_here_and_reports_failures(tmp_path, tiny):
    # n=3 is too small to split: that line exits 2 at run time
    args = [
        sys.executable,
        "scripts/submit.py",
        "table1",
        *tiny.overrides(
            "head=linear",
            "splits=0",
            "dataset.loader.n=200,3",
            f"paths.results_root={tmp_path}/r",
            f"hydra.run.dir={tmp_path}/h",
        ),
        "--log-dir",
        str(tmp_path / "logs"),
        "--launcher",
        "local",
    ]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out.stdout + out.stderr  # one line failed; the other still ran
    assert "2 job(s) to run here" in out.stdout and "local: 1 ok, 1 failed" in out.stdout
    assert out.stdout.count("[softstep] exit status 0") == 1 and "[softstep] exit status 2" in out.stdout
    assert "at least 5 items" in out.stderr and "dataset.loader.n=3" in out.stdout.split("local:")[1]
    (ok,) = [j for j in sweep.expand("table1", args[3:-4]) if j.done()]
    assert "dataset.loader.n=200" in ok.line and not (tmp_path / "logs").exists()
    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and "1 job(s) to run here; 1 already done" in again.stdout


def local_plan(tmp_path, tiny, splits: str, **kw):
    """table1's plan of the linear and nca heads on the tiny data, for the local launcher's tests."""
    overrides = tiny.overrides("head=linear,nca", splits, f"paths.results_root={tmp_path}")
    return sweep.plan("table1", overrides, log_dir=tmp_path / "logs", launcher="submitit_local_test", **kw)


def test_local_launcher_reports_a_requeue_exit_as_failed(tmp_path, tiny, monkeypatch):
    from experiments.protocol.preemption import REQUEUE_EXIT

    p = local_plan(tmp_path, tiny, "splits=0")
    codes = iter([REQUEUE_EXIT, 0])
    ran = []

    def fake_run(cmd, cwd):
        ran.append((cmd, cwd))
        return subprocess.CompletedProcess(cmd, next(codes))

    monkeypatch.setattr("experiments.sweep.launchers.subprocess.run", fake_run)
    out = io.StringIO()
    sweep.LAUNCHERS["local"](p, out)
    lines = [j.line.replace("splits=0", "splits=[0]") for j in p.jobs]  # one configuration, its splits, a line
    assert [cmd[1:] for cmd, _ in ran] == [["run.py", *shlex.split(line)] for line in lines]
    assert all(cwd == sweep.REPO for _, cwd in ran)
    assert p.exits == {lines[0]: REQUEUE_EXIT, lines[1]: 0} and p.failed() == [lines[0]]
    text = out.getvalue()
    assert "local: 1 ok, 1 failed" in text and f"exit status {REQUEUE_EXIT}: {lines[0]}" in text


def test_local_launcher_joins_a_configurations_splits_and_runs_lines_in_parallel(tmp_path, tiny, monkeypatch):
    p = local_plan(tmp_path, tiny, "splits=[0,1,2]", parallel=2)
    running, most = [], []
    gate = threading.Barrier(2, timeout=30)  # both lines must be running at once to pass it

    def fake_run(cmd, cwd):
        running.append(cmd)
        most.append(len(running))
        gate.wait()
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr("experiments.sweep.launchers.subprocess.run", fake_run)
    sweep.LAUNCHERS["local"](p, io.StringIO())
    assert len(p.jobs) == 6 and sorted(c[-1] for c in running) == ["splits=[0,1,2]"] * 2
    assert {c[c.index("run.py") + 1 :][:-1].count("head=linear") for c in running} == {0, 1} and max(most) == 2
    assert not p.failed()


def _write_result(job, tmp_path, epoch_times, device="cuda"):
    path = RunKey(str(tmp_path), job.dataset, job.extractor, job.head, job.run_id).split_path(job.split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "format_version": 1,
                "dataset": job.dataset,
                "extractor": job.extractor,
                "head": job.head,
                "split": job.split,
                "run_id": job.run_id,
                "hparams": {},
                "best_epoch": 0,
                "epochs_run": len(epoch_times),
                "config": {},
                "runtime": {"device": device},
                "history": [{"epoch": i, "val_mse": 0.1, "epoch_time_s": t} for i, t in enumerate(epoch_times)],
                "metrics": {
                    k: 0.1
                    for k in ("test_mse", "val_mse", "test_mse_x1e3", "val_mse_x1e3", "test_mse_orig", "val_mse_orig")
                },
            }
        )
    )


def test_gpu_hours_of_the_remaining_jobs_from_finished_epoch_times(tmp_path, tiny):
    from experiments.sweep.cost import estimate, format_estimate

    over = tiny.overrides("head=nca,nca_i", "splits=0,1,2", f"paths.results_root={tmp_path}")
    jobs = sweep.expand("table1", over)
    nca = [j for j in jobs if j.head == "nca"]
    _write_result(nca[0], tmp_path, [10.0, 20.0, 30.0, 40.0])  # 25 s per epoch, 4 epochs
    st = sweep.status("table1", over, log_dir=tmp_path / "logs")
    est = estimate(st.jobs, st.state, gpu_md=tmp_path / "none.md")
    cells = {c.head: c for c in est.cells}
    assert cells["nca"].remaining == 2 and cells["nca"].hours == pytest.approx(2 * 25 * 4 / 3600)
    assert cells["nca_i"].remaining == 3 and cells["nca_i"].source.startswith("measured (")  # same dataset, other head
    assert est.hours == pytest.approx(5 * 100 / 3600)
    assert "remaining job(s)" in format_estimate(est)


def test_gpu_hours_from_the_benchmark_when_nothing_finished(tmp_path, tiny):
    from experiments.sweep.cost import estimate, format_estimate

    over = tiny.overrides("head=nca", "splits=0,1", f"paths.results_root={tmp_path}")
    st = sweep.status("table1", over, log_dir=tmp_path / "logs")
    extractor = st.jobs[0].extractor
    md = tmp_path / "gpu.md"
    throughput = json.dumps({"device": "cuda", "quick": False, "train_items_per_s": {extractor: 100.0}})
    md.write_text(f"# GPU\n<!-- throughput: {throughput} -->\n")
    est = estimate(st.jobs, st.state, gpu_md=md)
    (cell,) = est.cells
    assert cell.source.startswith("gpu.md") and cell.epoch_s > 0 and cell.hours > 0
    assert "max_epochs" in format_estimate(est)


def test_benchmark_rates_missing_from_gpu_md_come_from_its_siblings(tmp_path):
    from experiments.sweep.cost import read_benchmark

    line = '<!-- throughput: {"device": "%s", "quick": false, "train_items_per_s": %s} -->\n'
    (tmp_path / "gpu.md").write_text(line % ("cuda", '{"resnet18": 1400.0}'))
    (tmp_path / "gpu_full.md").write_text(line % ("cuda", '{"resnet18": 900.0, "whisper_tiny": 48.0}'))
    (tmp_path / "gpu_cpu.md").write_text(line % ("cpu", '{"distilbert": 5.0}'))
    rates = read_benchmark(tmp_path / "gpu.md")["train_items_per_s"]
    assert rates == {"resnet18": 1400.0, "whisper_tiny": 48.0}  # gpu.md's own rate wins; another device's is ignored


def test_an_experiments_parts_are_unioned_and_the_command_line_filters_them():
    """offline_study's parts for one dataset and split: each protocol's heads, the controls only of heads with a step,
    nona_anon's options, and no fine-tuning line (that part names another dataset)."""
    jobs = sweep.expand("offline_study", ["dataset=gapminder", "splits=[0]"])
    lines = [shlex.split(j.line) for j in jobs]
    assert {j.dataset for j in jobs} == {"gapminder"} and {j.split for j in jobs} == {0}

    def count(*items):
        return sum(all(i in line for i in items) for line in lines)

    assert count("protocol=learn") == 12 + 8 + 2  # 6 heads x 2 rates, 4 heads x 2 controls, 2 x exclude_self
    assert count("head.control=frozen_step") == count("head.control=no_step") == 4
    assert not any("head=linear" in line and any(i.startswith("head.control=") for i in line) for line in lines)
    assert count("protocol=tuned") == 6 and count("protocol=authors") == 6 + 2 + 2
    assert not any("extractor.finetune" in " ".join(line) for line in lines)
    assert len({j.run_id for j in jobs}) == len(jobs)  # every line a configuration of its own
    text = sweep.expand("offline_study", ["dataset=textblob_polarity", "head=nca_i", "splits=[1]"])
    assert sum("extractor.finetune=true" in j.line.lower() for j in text) == 2  # one pass and two passes


def test_part_keeps_only_the_parts_named_by_their_number_from_1():
    """``--part 8,9`` is the fine-tuning: its lines name extractor.finetune, the others' do not; a number the
    experiment lacks, or any number of an experiment without parts, is one line naming the file."""
    every = sweep.expand("offline_study", ["splits=[0]"])
    finetune = sweep.expand("offline_study", ["splits=[0]"], only=[8, 9])
    assert {j.key for j in finetune} == {j.key for j in every if "extractor.finetune" in j.line}
    assert len(finetune) == 3  # linear and nca_i, then nca_i with two passes
    assert {j.key for j in sweep.expand("offline_study", ["splits=[0]"], only=[1])} < {j.key for j in every}
    for experiment, part, why in (("offline_study", 10, "parts 1 to 9"), ("table1", 1, "no parts")):
        with pytest.raises(sweep.SweepError, match=f"--part {part}: configs/experiment/{experiment}.yaml has {why}"):
            sweep.expand(experiment, [], only=[part])
    out = subprocess.run(
        [sys.executable, "scripts/submit.py", "offline_study", "--part", "x", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "part numbers separated by commas" in out.stderr and "Traceback" not in out.stderr
