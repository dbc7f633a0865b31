"""The repository tried as a hostile environment would try it (issue 14): kills at random points,
two runs on one folder, a planted pickle, corrupt files, changed data, and a table of bad inputs.

Subprocesses run ``run.py`` through DRIVER, which only adds a line to stderr each time a split
starts training (so a test can count trainings) and can simulate a full disk or a read-only folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.protocol import pipeline
from experiments.protocol.compose import compose
from experiments.store import identity
from experiments.store.results import ResultError, check_result, read_result, read_results

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
DRIVER = r"""
import signal, sys
for s in (signal.SIGTERM, signal.SIGINT):  # run.py does the same first thing; the driver imports before it
    signal.signal(s, lambda n, f: (print(f"[softstep] stopped by {signal.Signals(n).name} while starting", file=sys.stderr), sys.exit(128 + n)))
import errno, os, pathlib, runpy, tempfile
import experiments.protocol.pipeline as P

orig = P.train_and_record  # called with the split's lock held
def counting(*a, **k):
    print(f"[test] training split {a[1]}", file=sys.stderr, flush=True)
    return orig(*a, **k)
P.train_and_record = counting

fault = os.environ.get("FAULT", "")
if fault == "enospc":
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    os.fsync = full
if fault.startswith("readonly:"):  # what a read-only folder does, for runs as root (where chmod does not stop writes)
    root = fault.split(":", 1)[1]
    def guard(f):
        def g(self, *a, **k):
            if str(self).startswith(root):
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return f(self, *a, **k)
        return g
    pathlib.Path.mkdir = guard(pathlib.Path.mkdir)
    pathlib.Path.write_bytes = guard(pathlib.Path.write_bytes)
    orig_mkstemp = tempfile.mkstemp
    def mkstemp(*a, dir=None, **k):
        if dir is not None and str(dir).startswith(root):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return orig_mkstemp(*a, dir=dir, **k)
    tempfile.mkstemp = mkstemp
sys.argv = ["run.py", *sys.argv[1:]]
runpy.run_path("run.py", run_name="__main__")
"""


def load_run_module():
    return importlib.import_module("run")


RUN = load_run_module()


#: the tiny run (tests/conftest.py) at the size these tests were tuned for: enough training for kills at random
#: points, small enough for many subprocesses on 2 cores
SMALL = ("dataset.loader.n=150", "head=nca_g", "splits=[0,1,2]", "trainer.max_epochs=4", "trainer.patience=10")


@pytest.fixture
def small(tiny):
    """``small(root, *overrides)``: the override list of that run with its results under ``root``, for
    ``run.py`` on a command line or ``compose``; a test's override of a SMALL key wins (Hydra keeps the last)."""

    def overrides(root: Path, *extra: str) -> list[str]:
        return tiny.overrides(*SMALL, f"paths.results_root={root}", *extra)

    return overrides


def cli(args: list[str], tmp: Path, fault: str = "", **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, *args, f"hydra.run.dir={tmp}/hydra"],
        cwd=REPO,
        env={**ENV, "FAULT": fault},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def cli_run(args: list[str], tmp: Path, fault: str = "", timeout: float = 300) -> subprocess.CompletedProcess:
    p = cli(args, tmp, fault)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def in_process(overrides: list[str], capsys) -> tuple[int, str]:
    """run.py's own execute() on a composed config: (exit code, stderr)."""
    capsys.readouterr()
    try:
        RUN.execute(compose(overrides), signals=False)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def trained(stderr: str) -> list[int]:
    return [int(line.split()[-1]) for line in stderr.splitlines() if line.startswith("[test] training split")]


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".ckpt.pt", ".lock"))]


def metrics(root: Path) -> dict[int, tuple]:
    """Per split: metrics, validation history (without the epochs' wall times) and best epoch."""

    def history(r):
        return [{k: v for k, v in h.items() if k not in ("epoch_time_s", "train_time_s")} for h in r["history"]]

    return {r["split"]: (r["metrics"], history(r), r["best_epoch"]) for r in read_results(root)}


# ---------------------------------------------------------------- kill and resume


def test_kills_at_random_points_lose_nothing(small, tmp_path):
    """Ten kills (SIGKILL, and SIGTERM / SIGINT, which checkpoint mid-epoch) at random points of a
    run's training, then one run to the end: one result per split, metrics and histories identical
    to an uninterrupted run, and no temp file, checkpoint or lock left behind."""
    import threading

    ref_root, root = tmp_path / "ref", tmp_path / "killed"
    args = ("dataset.loader.n=300", "trainer.max_epochs=12")
    pipeline.run(compose(small(ref_root, *args)))
    rng = np.random.default_rng(14)
    kills, codes, stops = 0, [], []
    for attempt in range(14):
        if kills >= 10:
            break
        p = cli(small(root, *args), tmp_path)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
        reader.start()
        deadline = time.time() + 120
        while p.poll() is None and time.time() < deadline and not any(x.startswith("[test] training") for x in lines):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.8))  # a random point of the training (about 10 s in all)
        if p.poll() is not None:  # it finished before the kill
            break
        sig = [signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT][attempt % 4]
        p.send_signal(sig)
        p.wait(timeout=120)
        reader.join(timeout=10)
        err = "".join(lines)
        kills += 1
        codes.append(p.returncode)
        if sig != signal.SIGKILL:
            assert p.returncode == 128 + sig and "Traceback" not in err, err[-2000:]
            stops.append(err.strip().splitlines()[-1])
    assert kills == 10, f"only {kills} kills landed"
    out = cli_run(small(root, *args), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert metrics(root) == metrics(ref_root)  # bit-identical metrics and validation histories
    assert sorted(p.name for p in root.rglob("split_*.json")) == ["split_0.json", "split_1.json", "split_2.json"]
    assert leftovers(root) == []
    for line in stops:  # a SIGTERM / SIGINT ends with one line
        assert line.startswith("[softstep] stopped by SIG"), line
    print(f"kills survived: {kills}; exit codes: {codes}")


def test_sigterm_checkpoints_mid_epoch_and_exits_with_one_line(small, tmp_path):
    root = tmp_path / "r"
    args = small(root, "splits=[0]", "dataset.loader.n=1500", "trainer.max_epochs=50", "trainer.batch_size=8")
    p = cli(args, tmp_path)
    ck = None
    deadline = time.time() + 120
    while time.time() < deadline and not ck:
        ck = next(root.rglob("split_0.ckpt.pt"), None)
        time.sleep(0.2)
    assert ck, "no checkpoint appeared"
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err[-2000:]
    lines = [line for line in err.splitlines() if not line.startswith("[test]")]
    assert len(lines) == 1 and lines[0].startswith("[softstep] stopped by SIGTERM: stopped in epoch"), err
    state = torch.load(ck, weights_only=True)
    assert state["batch"] > 0  # mid-epoch: the epoch in progress was not lost


# ---------------------------------------------------------------- two runs, one folder


def test_two_concurrent_runs_train_each_split_once(small, tmp_path):
    root = tmp_path / "r"
    args = small(root, "splits=[0,1,2,3]", "trainer.max_epochs=6")
    a, b = cli(args, tmp_path / "a"), cli(args, tmp_path / "b")
    (_, err_a), (_, err_b) = a.communicate(timeout=400), b.communicate(timeout=400)
    assert a.returncode == 0 and b.returncode == 0, err_a[-2000:] + err_b[-2000:]
    both = trained(err_a) + trained(err_b)
    assert sorted(both) == [0, 1, 2, 3], (err_a, err_b)  # each split trained exactly once
    assert sorted(r["split"] for r in read_results(root)) == [0, 1, 2, 3]
    assert "skipped here" in err_a + err_b and leftovers(root) == []


def test_lock_of_a_dead_owner_is_stale_and_taken_over(tmp_path):
    from experiments.store.locks import FileLock

    lock = FileLock(tmp_path / "split_0.lock")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    lock.path.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": 0}))
    assert lock.is_stale() and lock.try_acquire()
    other = FileLock(lock.path)
    assert not other.try_acquire() and str(os.getpid()) in other.describe()  # we are alive: not stale
    lock.release()
    assert not lock.path.exists()
    remote = FileLock(tmp_path / "split_1.lock", stale_after_s=60)  # another host: stale when not touched
    remote.path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0}))
    assert not remote.is_stale()
    os.utime(remote.path, (time.time() - 120, time.time() - 120))
    assert remote.is_stale()


def test_a_lock_of_a_reused_pid_or_a_malformed_lock_is_stale(tmp_path):
    """A lock whose pid now runs a process that started after the lock was taken (the pid was reused) is stale;
    so is a lock file that is JSON but no owner record (a list, a string); a live owner's lock is not."""
    import socket

    from experiments.store.locks import FileLock

    host = socket.gethostname()
    reused = FileLock(tmp_path / "split_0.lock")
    reused.path.write_text(json.dumps({"pid": os.getpid(), "host": host, "started": 1.0}))  # long before we began
    assert reused.is_stale() and reused.try_acquire()
    reused.release()
    live = FileLock(tmp_path / "split_1.lock")
    live.path.write_text(json.dumps({"pid": os.getpid(), "host": host, "started": time.time()}))
    assert not live.is_stale()
    for content in ("[1, 2, 3]", '"pid"', '{"pid": "12"}', "{" * 50_000):
        odd = FileLock(tmp_path / "split_2.lock")
        odd.path.write_text(content)
        assert odd.owner() is None and odd.describe() == "pid ? on ?"
        if content.startswith("{" * 2):  # unreadable (could be half-written): stale once untouched for a while
            assert not odd.is_stale()
            os.utime(odd.path, (time.time() - 60, time.time() - 60))
        assert odd.is_stale() and odd.try_acquire(), content
        odd.release()


# ---------------------------------------------------------------- planted and corrupt files


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_checkpoint_runs_nothing(small, tmp_path):
    root, marker = tmp_path / "r", tmp_path / "pwned"
    args = small(root, "splits=[0]", "trainer.max_epochs=2")
    ck = identity.run_key(compose(args)).checkpoint(0)
    ck.parent.mkdir(parents=True)
    torch.save({"model": Evil(marker), "epoch": 0, "batch": 0}, ck)
    out = cli_run(args, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not marker.exists(), "unpickling the planted checkpoint ran a shell command"
    warnings = [line for line in out.stderr.splitlines() if "warning" in line and "still improving" not in line]
    assert len(warnings) == 1 and str(ck) in warnings[0] and "refused" in warnings[0], out.stderr
    assert ck.with_name(ck.name + ".corrupt").exists() and trained(out.stderr) == [0]


@pytest.mark.parametrize("size", [0, 100])
def test_a_corrupt_checkpoint_is_moved_aside_and_blocks_nothing(small, tmp_path, size):
    root = tmp_path / "r"
    args = small(root, "splits=[0,1]", "trainer.max_epochs=2")
    key = identity.run_key(compose(args))
    key.dir.mkdir(parents=True)
    key.checkpoint(0).write_bytes(os.urandom(size))
    out = cli_run(args, tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    warnings = [line for line in out.stderr.splitlines() if "warning" in line and "still improving" not in line]
    assert len(warnings) == 1 and str(key.checkpoint(0)) in warnings[0] and "starts afresh" in warnings[0]
    assert sorted(r["split"] for r in read_results(root)) == [0, 1]
    assert key.checkpoint(0).with_name("split_0.ckpt.pt.corrupt").exists()


def test_a_corrupt_feature_cache_is_recomputed(small, tmp_path, capsys):
    root = tmp_path / "r"
    assert in_process(small(root, "splits=[0]", "trainer.max_epochs=1"), capsys)[0] == 0
    (cache,) = (root / "cache" / "features").glob("*.pt")
    good = torch.load(cache, weights_only=True)
    cache.write_bytes(cache.read_bytes()[:100])
    code, err = in_process(small(root, "splits=[0]", "trainer.max_epochs=1", "head=nca"), capsys)
    assert code == 0
    warnings = [line for line in err.splitlines() if "warning" in line and "still improving" not in line]
    assert len(warnings) == 1 and str(cache) in warnings[0] and "recomputing" in warnings[0], err
    assert torch.equal(torch.load(cache, weights_only=True), good)


def test_leftovers_of_a_kill_are_removed(small, tmp_path, capsys):
    """A temp file of an interrupted atomic write, and the checkpoint of a split whose result was written."""
    root = tmp_path / "r"
    args = small(root, "splits=[0]", "trainer.max_epochs=1")
    assert in_process(args, capsys)[0] == 0
    key = identity.run_key(compose(args))
    (key.dir / ".split_0.json.abc123.tmp").write_text("{")
    (key.dir / ".split_1.ckpt.pt.abc123.tmp").write_text("x")
    key.checkpoint(0).write_bytes(b"stale")
    assert in_process(small(root, "splits=[0,1]", "trainer.max_epochs=1"), capsys)[0] == 0
    assert leftovers(root) == [] and sorted(r["split"] for r in read_results(root)) == [0, 1]


# ---------------------------------------------------------------- changed data


def write_table(path: Path, y: np.ndarray) -> None:
    x = np.random.default_rng(0).normal(size=(len(y), 3))
    rows = ["a,b,c,target"] + [f"{a:.6f},{b:.6f},{c:.6f},{t:.6f}" for (a, b, c), t in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")


def test_changed_data_is_refused_never_an_old_number(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    y = np.random.default_rng(1).normal(size=120) * 10 + 50
    write_table(csv, y)
    args = [
        "dataset=table",
        f"dataset.loader.path={csv}",
        "dataset.loader.target=target",
        "dataset.loader.features=all",
        "head=nca",
        "splits=[0]",
        "trainer.max_epochs=2",
        "progress=false",
        f"paths.results_root={tmp_path}/r",
    ]
    assert in_process(args, capsys)[0] == 0
    (old,) = read_results(tmp_path / "r")
    write_table(csv, np.random.default_rng(2).permutation(y))  # the target column shuffled
    code, err = in_process(args, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert old["_path"] in err and "other data" in err and "force=true" in err
    assert in_process([*args, "force=true"], capsys)[0] == 0
    (new,) = read_results(tmp_path / "r")
    assert new["data_digest"] != old["data_digest"] and new["metrics"] != old["metrics"]
    assert in_process(args, capsys)[0] == 0  # the new results match the data: reported


# ---------------------------------------------------------------- bad inputs: exit 2, one line, no result


def csv_case(tmp: Path, name: str, text: str, *extra: str) -> list[str]:
    path = tmp / f"{name}.csv"
    path.write_text(text)
    features = [] if any(e.startswith("dataset.loader.features=") for e in extra) else ["dataset.loader.features=all"]
    return ["dataset=table", f"dataset.loader.path={path}", "dataset.loader.target=y", *features, *extra]


GOOD_ROWS = "".join(f"{i},{(i * 7) % 11},{i % 3}\n" for i in range(40))
BAD_CONFIGS = [  # (overrides, what the message must name)
    (["trainer.max_elements=0"], "trainer.max_elements"),
    (["trainer.max_elements=-5"], "trainer.max_elements"),
    (["trainer.max_elements=big"], "trainer.max_elements"),
    (["trainer.threads=0"], "trainer.threads"),
    (["trainer.threads=many"], "trainer.threads"),
    (["trainer.workers=0"], "trainer.workers"),
    (["trainer.workers=-1"], "trainer.workers"),
    (["trainer.weight_decay=-0.1"], "trainer.weight_decay"),
    (["trainer.weight_decay=nan"], "trainer.weight_decay"),
    (["model.dropout=1.5"], "model.dropout"),
    (["model.dropout=-0.1"], "model.dropout"),
    (["head=diffknn_g", "head.module.q=-1"], "head.module.q"),
    (["head=diffknn_g", "head.module.t=0"], "head.module.t"),
    (["head=diffknn_g", "head.module.rank_strength=0"], "head.module.rank_strength"),
    (["head=nca_i", "head.module.gamma=-1"], "head.module.gamma"),
    (["head=nca_i", "head.module.norm=weird"], "head.module.norm"),
    (["head=nca_i", "head.module.step=half"], "head.module.step"),
    (["head=nca_i", "+head.module.foo=1"], "head.module.foo"),
    (["trainer.device=tpu9"], "trainer.device"),
    ([f"trainer.device={'cuda:99' if torch.cuda.is_available() else 'cuda'}"], "trainer.device"),
    (["trainer.lr=0"], "trainer.lr"),
    (["trainer.batch_size=1"], "trainer.batch_size"),
    (["trainer.max_epochs=0"], "trainer.max_epochs"),
    (["trainer.eval_batch_size=0"], "trainer.eval_batch_size"),
    (["trainer.stratify_bins=0"], "trainer.stratify_bins"),
    (["trainer.num_workers=-1"], "trainer.num_workers"),
    (["splits=[0,0]"], "splits"),
    (["head.similarity=manhattan"], "head.similarity"),
    (["model.embed_dim=0"], "model.embed_dim"),
    (["force=maybe"], "force"),
]
BAD_DATA = [  # (name, csv text, extra overrides, what the message must name)
    ("header_only", "a,b,y\n", (), "no data rows"),
    ("constant_target", "".join(["a,b,y\n"] + [f"{i},{i % 5},3.0\n" for i in range(40)]), (), "constant target"),
    ("no_target", "a,b,z\n" + GOOD_ROWS, (), "'y'"),
    ("text_in_feature", "a,b,y\n" + GOOD_ROWS + "x,1,2\n", ("dataset.loader.features=[a,b]",), "'a'"),
    ("nan_target", "a,b,y\n" + GOOD_ROWS + "1,2,\n", (), "'y'"),
    ("missing_file", None, (), "dataset.loader.path"),
]


@pytest.fixture(scope="module")
def clear_count():
    seen = {"tried": 0, "clear": 0}
    yield seen
    print(f"\nbad inputs clear: {seen['clear']} of {seen['tried']}")


def check_one_line(code: int, err: str, must_name: str, root: Path, counter: dict) -> None:
    counter["tried"] += 1
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and must_name in lines[0], err
    assert not list(root.rglob("split_*.json")) and not list(root.rglob("*.ckpt.pt")), "a partial result was written"
    counter["clear"] += 1


@pytest.mark.parametrize("overrides,field", BAD_CONFIGS, ids=[" ".join(o) for o, _ in BAD_CONFIGS])
def test_bad_config_value_is_one_line_naming_the_field(small, tmp_path, capsys, clear_count, overrides, field):
    code, err = in_process(small(tmp_path / "r", "splits=[0]", "trainer.max_epochs=1", *overrides), capsys)
    check_one_line(code, err, field, tmp_path / "r", clear_count)


@pytest.mark.parametrize("name,text,extra,named", BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_bad_data_is_one_line_naming_the_file(tmp_path, capsys, clear_count, name, text, extra, named):
    args = csv_case(tmp_path, name, text or "", *extra)
    if text is None:
        (tmp_path / f"{name}.csv").unlink()
    code, err = in_process(
        [*args, "head=nca", "splits=[0]", "trainer.max_epochs=1", "progress=false", f"paths.results_root={tmp_path}/r"],
        capsys,
    )
    check_one_line(code, err, named, tmp_path / "r", clear_count)
    assert f"{name}.csv" in err


def test_constant_training_labels_of_a_split_are_refused():
    from data.base import DataError, RegressionData
    from experiments import labels

    data = RegressionData("d", "table", torch.zeros(10, 2), np.r_[np.zeros(9), 1.0])
    with pytest.raises(DataError, match="split 3: every training label is 0"):
        labels.check_labels(data, {3: np.zeros(7)})


@pytest.mark.parametrize("case", ["results_root_under_a_file", "read_only_folder", "disk_full"])
def test_os_errors_are_one_line_with_exit_2(small, tmp_path, clear_count, case):
    root, fault = tmp_path / "r", ""
    if case == "results_root_under_a_file":
        (tmp_path / "plain").write_text("not a folder")
        root = tmp_path / "plain" / "results"
    elif case == "read_only_folder":
        root.mkdir()
        if os.geteuid() == 0:
            fault = f"readonly:{root}"
        else:
            root.chmod(0o555)
    else:
        fault = "enospc"
    out = cli_run(small(root, "splits=[0]", "trainer.max_epochs=1"), tmp_path, fault)
    lines = [line for line in out.stderr.splitlines() if not line.startswith("[test]")]
    check_one_line(
        out.returncode,
        "\n".join(lines),
        str(root if case != "results_root_under_a_file" else tmp_path / "plain"),
        root if root.is_dir() else tmp_path,
        clear_count,
    )
    assert "Traceback" not in out.stderr


def test_result_validation_rejects_non_finite_metrics(tmp_path):
    good = {
        "format_version": 1,
        "dataset": "d",
        "extractor": "e",
        "head": "h",
        "split": 0,
        "run_id": "r",
        "hparams": {},
        "best_epoch": 0,
        "epochs_run": 1,
        "config": {},
        "metrics": {
            k: 1.0 for k in ("test_mse", "val_mse", "test_mse_x1e3", "val_mse_x1e3", "test_mse_orig", "val_mse_orig")
        },
    }
    check_result(good)
    for bad in (float("inf"), float("nan")):
        path = tmp_path / "split_0.json"
        path.write_text(
            json.dumps({**good, "metrics": {**good["metrics"], "test_mse_x1e3": bad}})
        )  # "Infinity" / "NaN"
        with pytest.raises(ResultError, match=rf"{path}.*test_mse_x1e3 must be a finite number"):
            read_result(path)


def test_a_read_only_feature_cache_is_still_read(tmp_path, monkeypatch):
    from experiments.inputs import features
    from experiments.store.locks import FileLock

    path = tmp_path / "features" / "f.pt"
    path.parent.mkdir()
    torch.save(torch.ones(3, 2), path)

    def refuse(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(self.path))

    monkeypatch.setattr(FileLock, "acquire", refuse)
    assert torch.equal(features.cached_features(path, lambda: pytest.fail("must not recompute")), torch.ones(3, 2))
    path.unlink()
    with pytest.raises(PermissionError):
        features.cached_features(path, lambda: torch.zeros(1, 1))


# ---------------------------------------------------------------- saved models are data (issue 21, point 1)
def _flats(path: Path, n: int = 80) -> None:
    rng = np.random.default_rng(0)
    area = rng.uniform(20, 200, n)
    city = rng.choice(["oslo", "bergen"], n)
    import pandas as pd

    pd.DataFrame({"area": area, "city": city, "price": 1e3 * area + 5e4 * (city == "oslo")}).to_csv(path, index=False)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """One saved nca_i model of a small table run: (run folder, input CSV); tests tamper with copies."""
    root = tmp_path_factory.mktemp("saved")
    _flats(root / "f.csv")
    res = pipeline.run(
        compose(
            [
                "dataset=table",
                f"dataset.loader.path={root / 'f.csv'}",
                "dataset.loader.target=price",
                "dataset.loader.features=all",
                "head=nca_i",
                "splits=[0]",
                "trainer.max_epochs=2",
                "trainer.workers=1",
                "progress=false",
                f"paths.results_root={root}/results",
            ]
        )
    )
    return res.key.dir, root / "f.csv"


def _payload(target: str, marker: Path) -> dict:
    """A config node whose instantiation would act: run a command, unpickle, or write ``marker``."""
    return {
        "os.system": {"_target_": "os.system", "command": f"touch {marker}"},
        "subprocess.run": {"_target_": "subprocess.run", "args": ["touch", str(marker)]},
        "pandas.read_pickle": {"_target_": "pandas.read_pickle", "filepath_or_buffer": str(marker)},
        "numpy.load": {"_target_": "numpy.load", "file": str(marker), "allow_pickle": True},
        "torch.load": {"_target_": "torch.load", "f": str(marker), "weights_only": False},
        "joblib.load": {"_target_": "joblib.load", "filename": str(marker)},
        "builtins.open": {"_target_": "builtins.open", "file": str(marker), "mode": "w"},
        "pathlib.Path.write_text": {"_target_": "pathlib.Path.write_text", "self": str(marker), "data": "x"},
        "shutil.copyfile": {"_target_": "shutil.copyfile", "src": __file__, "dst": str(marker)},
        "torch.save": {"_target_": "torch.save", "obj": 1, "f": str(marker)},
        "omegaconf.OmegaConf.save": {"_target_": "omegaconf.OmegaConf.save", "config": {"a": 1}, "f": str(marker)},
        "traversal": {
            "_target_": "builtins.open",
            "file": f"{marker.parent}/../{marker.parent.name}/{marker.name}",
            "mode": "w",
        },
        # a head class with an argument it does not take, and one of ours under a path not in the registry
        "extra argument": {"_target_": "softstep.NCAHead", "callback": "os.system"},
        "private path": {"_target_": "softstep.heads._check"},
    }[target]


PAYLOADS = [
    "os.system",
    "subprocess.run",
    "pandas.read_pickle",
    "numpy.load",
    "torch.load",
    "joblib.load",
    "builtins.open",
    "pathlib.Path.write_text",
    "shutil.copyfile",
    "torch.save",
    "omegaconf.OmegaConf.save",
    "traversal",
]


def _tampered(saved_run, tmp_path, edit) -> Path:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(saved_run[0], run_dir)
    m = run_dir / "models" / "model_0.json"
    meta = json.loads(m.read_text())
    edit(meta)
    m.write_text(json.dumps(meta))
    return run_dir


def _predict_cli(run_dir: Path, input_path: Path, out: Path, capsys) -> tuple[int, list[str]]:
    from scripts.predict import main

    capsys.readouterr()
    code = main([str(run_dir), "--input", str(input_path), "--out", str(out)])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def _files(root: Path) -> set:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize("where", ["head", "extractor", "folder loader"])
@pytest.mark.parametrize("payload", PAYLOADS + ["extra argument", "private path"])
def test_a_saved_model_names_nothing_that_runs(saved_run, tmp_path, capsys, payload, where):
    marker = tmp_path / "pwned"
    marker.write_bytes(b"\x80\x04K\x01.")  # a pickle the unpickling payloads would read
    node = _payload(payload, marker)

    def edit(meta):
        if where == "head":
            meta["config"]["head"]["module"] = node
        elif where == "extractor":  # built on load when the model says its extractor was saved
            meta["extractor_saved"] = True
            meta["config"]["extractor"]["builder"] = node
        else:  # built by predict.py to read a folder of new images
            meta["modality"], meta["features"] = "image", None
            meta["config"]["dataset"]["loader"] = {**node, "file_column": "file", "target_column": "target"}

    run_dir = _tampered(saved_run, tmp_path, edit)
    new = tmp_path / "new"
    new.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(new / "a.png")
    input_path = new if where == "folder loader" else saved_run[1]
    before, stamp = _files(tmp_path), marker.stat().st_mtime_ns
    code, lines = _predict_cli(run_dir, input_path, tmp_path / "out.csv", capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "model_0.json" in lines[0] and ("_target_" in lines[0] or "callback" in lines[0]), lines[0]
    assert marker.read_bytes() == b"\x80\x04K\x01." and marker.stat().st_mtime_ns == stamp, "the payload wrote its file"
    assert _files(tmp_path) == before, "something was written"


def _set(path: str, value):
    def edit(meta):
        *parents, last = path.split(".")
        node = meta
        for p in parents:
            node = node[p]
        node[last] = value

    return edit


BAD_META = {
    "label.lo NaN": (lambda m: m["label"].update(lo=float("nan")), "label.lo"),
    "label.hi inf": (lambda m: m["label"].update(hi=float("inf")), "label.hi"),
    "label.lo a string": (_set("label.lo", "0"), "label.lo"),
    "label.hi below lo": (_set("label.hi", -1e9), "label.hi"),
    "log_target yes": (_set("label.log_target", "yes"), "label.log_target"),
    "format_version 2": (_set("format_version", 2), "format_version"),
    "unknown field": (_set("extra", 1), "extra"),
    "split -1": (_set("split", -1), "split"),
    "head unknown": (_set("head", "evil"), "head"),
    "in_dim huge": (_set("in_dim", 10**12), "in_dim"),
    "in_dim wrong": (lambda m: m.update(in_dim=m["in_dim"] + 1), "in_dim"),  # against the features' width
    "reference_items too many": (lambda m: m.update(reference_items=list(range(10**6))), "reference"),
    "reference_items objects": (_set("reference_items", [{"a": 1}]), "reference_items"),
    "interpolation": (_set("config.head.module.similarity", "${oc.env:HOME}"), "interpolation"),
    "embed_dim wrong": (_set("config.model.embed_dim", 7), "embed_dim"),
    "arch unknown": (_set("config.model.arch", "evil"), "config.model.arch"),
    "dropout 2": (_set("config.model.dropout", 2.0), "config.model.dropout"),
    "variance negative": (lambda m: m["features"]["numeric"].update(area=[0.0, -1.0]), "features.numeric.area"),
    "categories empty": (lambda m: m["features"]["categorical"].update(city=[]), "features.categorical.city"),
    "similarity unknown": (_set("config.head.module.similarity", "evil"), "config.head.module"),
    "config a list": (_set("config", [1]), "config"),
}


@pytest.mark.parametrize("case", list(BAD_META))
def test_a_tampered_model_json_is_one_line_naming_the_field(saved_run, tmp_path, capsys, case):
    edit, field = BAD_META[case]
    run_dir = _tampered(saved_run, tmp_path, edit)
    code, lines = _predict_cli(run_dir, saved_run[1], tmp_path / "out.csv", capsys)
    assert code == 2 and len(lines) == 1, lines
    assert "model_0" in lines[0] and field in lines[0], lines[0]
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("case", ["random bytes", "deep nesting", "not utf-8", "empty"])
def test_an_unreadable_model_json_is_one_line(saved_run, tmp_path, capsys, case):
    run_dir = _tampered(saved_run, tmp_path, lambda m: None)
    m = run_dir / "models" / "model_0.json"
    m.write_bytes(
        {
            "random bytes": os.urandom(300).replace(b"{", b"x"),
            "deep nesting": b"[" * 100_000 + b"]" * 100_000,
            "not utf-8": b'{"a": "\xff"}',
            "empty": b"",
        }[case]
    )
    code, lines = _predict_cli(run_dir, saved_run[1], tmp_path / "out.csv", capsys)
    assert code == 2 and len(lines) == 1 and str(m) in lines[0], lines


def _tensors_edit(run_dir: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    w = run_dir / "models" / "model_0.safetensors"
    tensors = load_file(str(w))
    edit(tensors)
    save_file(tensors, str(w))


BAD_TENSORS = {
    "NaN weight": (lambda t: t["model.mlp.0.weight"].fill_(float("nan")), "model.mlp.0.weight"),
    "wrong shape": (lambda t: t.update({"model.mlp.0.weight": torch.zeros(3, 3)}), "model.mlp.0.weight"),
    "missing tensor": (lambda t: t.pop("reference.y"), "reference.y"),
    "extra tensor": (lambda t: t.update({"evil": torch.zeros(1)}), "evil"),
    "wrong dtype": (lambda t: t.update({"reference.z": t["reference.z"].double()}), "reference.z"),
    "huge reference": (
        lambda t: t.update({"reference.z": torch.zeros(10**5, t["reference.z"].shape[1])}),
        "reference.z",
    ),
    "inf label": (lambda t: t["reference.y"].fill_(float("inf")), "reference.y"),
}


@pytest.mark.parametrize("case", list(BAD_TENSORS) + ["random bytes", "truncated"])
def test_a_tampered_safetensors_file_is_one_line_naming_the_tensor(saved_run, tmp_path, capsys, case):
    run_dir = _tampered(saved_run, tmp_path, lambda m: None)
    w = run_dir / "models" / "model_0.safetensors"
    if case == "random bytes":
        w.write_bytes(os.urandom(1000))
    elif case == "truncated":
        w.write_bytes(w.read_bytes()[:-100])
    else:
        _tensors_edit(run_dir, BAD_TENSORS[case][0])
    code, lines = _predict_cli(run_dir, saved_run[1], tmp_path / "out.csv", capsys)
    assert code == 2 and len(lines) == 1 and "model_0.safetensors" in lines[0], lines
    if case in BAD_TENSORS:
        assert BAD_TENSORS[case][1] in lines[0], lines[0]


def test_the_untampered_model_still_predicts(saved_run, tmp_path, capsys):
    code, lines = _predict_cli(saved_run[0], saved_run[1], tmp_path / "out.csv", capsys)
    assert code == 0 and (tmp_path / "out.csv").exists(), lines


def test_every_config_builder_is_in_the_registry():
    """The registry's argument lists cover what every extractor config passes, and each _target_ is listed."""
    import yaml

    from experiments.models import schema

    for f in sorted((REPO / "configs" / "extractor").glob("*.yaml")):
        builder = yaml.safe_load(f.read_text())["builder"]
        target = builder.pop("_target_")
        assert target in schema.EXTRACTOR_BUILDERS, f
        assert set(builder) <= schema.EXTRACTOR_BUILDERS[target][2], f
    for f in ("image_folder", "audio_folder"):
        assert (
            yaml.safe_load((REPO / "configs" / "dataset" / f"{f}.yaml").read_text())["loader"]["_target_"]
            in schema.FOLDER_LOADERS
        )
    for name in ("nca", "nca_i", "diffknn_g", "linear"):
        target = yaml.safe_load((REPO / "configs" / "head" / f"{name}.yaml").read_text())["head"]["module"]["_target_"]
        assert target in schema.head_classes()


# ---------------------------------------------------------------- malformed result files (issue 21, point 3)
@pytest.mark.parametrize("case", ["random bytes", "deep nesting", "format_version 2", "another split"])
def test_a_bad_result_file_is_set_aside_and_its_split_trained_again(tmp_path, capsys, tiny, case):
    """A result file that cannot be read or validated blocks nothing: the rerun moves it aside (a copy is kept) with
    one warning line naming it, trains the split again, and gets the same numbers."""
    cfg = tiny.at(tmp_path)("splits=[0]")
    path = pipeline.run(cfg).key.split_path(0)
    good = read_result(path)
    payload = {
        "random bytes": bytes(range(256)) * 3,
        "deep nesting": b"[" * 100_000 + b"]" * 100_000,
        "format_version 2": json.dumps({**json.loads(path.read_text()), "format_version": 2}).encode(),
        "another split": json.dumps({**json.loads(path.read_text()), "split": 7}).encode(),
    }[case]
    path.write_bytes(payload)
    capsys.readouterr()
    pipeline.run(cfg)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line and "still improving" not in line]
    assert len(warnings) == 1 and str(path) in warnings[0] and "split_0.json.corrupt" in warnings[0], err
    assert path.with_name("split_0.json.corrupt").read_bytes() == payload
    assert read_result(path)["metrics"] == good["metrics"]


@pytest.mark.parametrize("case", ["json field", "truncated weights", "json not json"])
def test_a_broken_saved_model_is_set_aside_and_its_split_trained_again(tmp_path, capsys, tiny, case):
    """A finished split whose saved model no longer loads blocks nothing: the rerun moves the model's files and the
    result aside (copies kept) with one warning line naming the file, trains the split again, and saves a model that
    loads, with the same numbers."""
    from experiments.models import saved

    cfg = tiny.at(tmp_path)("splits=[0,1]", "head=nca_i", "save_model=true")
    key = pipeline.run(cfg).key
    good = read_result(key.split_path(0))
    meta, weights = saved.meta_path(key.dir, 0), saved.weights_path(key.dir, 0)
    if case == "json field":
        m = json.loads(meta.read_text())
        m["label"]["lo"] = "zero"
        meta.write_text(json.dumps(m))
    elif case == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        meta.write_bytes(b"\xff\xfe not json")
    broken = {p: p.read_bytes() for p in (meta, weights)}
    capsys.readouterr()
    pipeline.run(cfg)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line and "still improving" not in line]
    assert len(warnings) == 1 and "split 0 is trained again" in warnings[0], err
    assert ("model_0.json" if case != "truncated weights" else "model_0.safetensors") in warnings[0]
    for p, payload in broken.items():
        assert p.with_name(p.name + ".corrupt").read_bytes() == payload
    assert key.split_path(0).with_name("split_0.json.corrupt").exists()
    assert read_result(key.split_path(0))["metrics"] == good["metrics"]
    assert saved.load_model(key.dir, 0).y_ref is not None  # the new model loads
    assert not key.dir.joinpath("models", "model_1.json.corrupt").exists()  # the sound split is left alone


# ---------------------------------------------------------------- predict.py inputs (issue 21, point 4)
def test_bad_predict_inputs_are_one_line_and_write_nothing(saved_run, tmp_path, capsys):
    """A header-only table, a cell float32 cannot hold, --out equal to --input, --explain < 1: one line, exit 2,
    no output written and the input untouched; --explain larger than the reference set is capped at its size."""
    import pandas as pd

    run_dir, table = saved_run
    header = tmp_path / "header.csv"
    pd.DataFrame({"area": [], "city": []}).to_csv(header, index=False)
    huge = tmp_path / "huge.csv"
    pd.DataFrame({"area": [50.0, 1e308], "city": ["oslo", "oslo"]}).to_csv(huge, index=False)
    copy = tmp_path / "f.csv"
    copy.write_bytes(table.read_bytes())
    from scripts.predict import main

    for args, words in (
        (["--input", header, "--out", tmp_path / "o.csv"], "header only"),
        (["--input", huge, "--out", tmp_path / "o.csv"], "row 1"),
        (["--input", copy, "--out", copy], "is the --input file"),
        (["--input", copy, "--out", tmp_path / "o.csv", "--explain", "-1"], "--explain must be >= 1"),
    ):
        capsys.readouterr()
        code = main([str(run_dir), *map(str, args)])
        err = [line for line in capsys.readouterr().err.strip().splitlines() if "warning" not in line]
        assert code == 2 and len(err) == 1 and words in err[0], (args, err)  # a warning may say what came first
        assert not (tmp_path / "o.csv").exists() and copy.read_bytes() == table.read_bytes()
    assert main([str(run_dir), "--input", str(copy), "--out", str(tmp_path / "o.csv"), "--explain", "100000"]) == 0
    out = pd.read_csv(tmp_path / "o.csv")
    n_ref = len(json.loads((run_dir / "models" / "model_0.json").read_text())["reference_items"])
    assert f"neighbor_{n_ref}" in out.columns and f"neighbor_{n_ref + 1}" not in out.columns
    assert capsys.readouterr().err == ""  # no pandas warnings


# ---------------------------------------------------------------- signals and worker processes (issue 21, point 2)
IN_WORKERS = (
    "splits=[0,1]",
    "dataset.loader.n=1500",
    "trainer.max_epochs=50",
    "trainer.batch_size=8",
    "trainer.workers=2",
    "trainer.threads=1",
)


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (from /proc), so a test can watch a run's worker processes."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _both_checkpoints(root: Path, timeout: float = 180) -> list[Path]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        cks = sorted(root.rglob("split_*.ckpt.pt"))
        if len(cks) == 2:
            time.sleep(0.5)
            return cks
        time.sleep(0.2)
    raise AssertionError("the two splits did not both start training")


@pytest.mark.parametrize("sig,group", [("SIGTERM", False), ("SIGINT", False), ("SIGTERM", True), ("SIGUSR1", False)])
def test_a_signal_stops_the_splits_in_worker_processes(small, tmp_path, sig, group):
    """trainer.workers=2: a stop signal to the run alone (or to its process group) checkpoints both splits in
    flight and ends the run within seconds with one line (a preemption signal: exit 75 for the requeue); the rerun
    resumes them and finishes."""
    root = tmp_path / "r"
    args = small(root, *IN_WORKERS)
    p = cli(args, tmp_path, start_new_session=True)
    cks = _both_checkpoints(root)
    signum = getattr(signal, sig)
    start = time.time()
    os.killpg(p.pid, signum) if group else p.send_signal(signum)
    _, err = p.communicate(timeout=120)
    assert time.time() - start < 60, err[-2000:]
    lines = [line for line in err.splitlines() if not line.startswith("[test]") and "caught SIGUSR1" not in line]
    if sig == "SIGUSR1":
        assert (
            p.returncode == 75 and len(lines) == 1 and lines[0].startswith("[softstep] preempted: split 0: stopped in")
        ), err
    else:
        assert p.returncode == 128 + signum, err[-2000:]
        assert len(lines) == 1 and lines[0].startswith(f"[softstep] stopped by {sig}: split 0: stopped in epoch"), err
        assert "; split 1: stopped in epoch" in lines[0]
    for ck in cks:
        assert torch.load(ck, weights_only=True)["batch"] > 0  # each split's epoch in progress was kept
    assert not list(root.rglob(".stop-*"))
    done = cli_run(args, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(r["split"] for r in read_results(root)) == [0, 1] and not list(root.rglob("*.ckpt.pt"))


def test_a_killed_run_leaves_no_worker_training(small, tmp_path):
    """SIGKILL of the run: its worker processes notice their parent is gone and stop (no orphan trains on), and
    an immediate rerun trains both splits instead of skipping them as held by another run."""
    root = tmp_path / "r"
    args = small(root, *IN_WORKERS)
    p = cli(args, tmp_path, start_new_session=True)
    _both_checkpoints(root)
    below = _descendants(p.pid)
    assert below, "no worker processes"
    p.kill()
    p.wait(timeout=30)
    deadline = time.time() + 60
    while time.time() < deadline and any(_alive(pid) for pid in below):
        time.sleep(0.2)
    left = [(pid, (Path("/proc") / str(pid) / "cmdline").read_bytes()[:200]) for pid in below if _alive(pid)]
    assert not left, f"processes of the run kept running after it was killed: {left}"
    done = cli_run(args, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "another run" not in done.stderr  # the dead workers' locks were stale, not held
    assert sorted(r["split"] for r in read_results(root)) == [0, 1]


def test_a_signal_while_starting_is_one_line(small, tmp_path):
    """SIGTERM during start-up (imports, data loading): one line, no traceback, a non-zero exit."""
    for delay in (0.3, 1.5, 3.0):
        p = cli(small(tmp_path / "r", *IN_WORKERS), tmp_path)
        time.sleep(delay)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
        lines = [line for line in err.splitlines() if not line.startswith("[test]")]
        assert p.returncode == 128 + signal.SIGTERM and len(lines) == 1 and "SIGTERM" in lines[0], (delay, err[-3000:])
        assert "Traceback" not in err


# ---------------------------------------------------------------- checkpoints that load but do not fit (issue 21, point 3)
def _left_checkpoint(tiny, root, monkeypatch):
    """A run whose result write fails after training: its last checkpoint stays (epoch = max_epochs)."""
    from experiments.protocol import pipeline as P
    from experiments.store import run_store

    cfg = tiny.at(root)("splits=[0]", "trainer.checkpoint=true")

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_store, "write_result", fail)
    with pytest.raises(OSError):
        P.run(cfg)
    monkeypatch.undo()
    return cfg


BAD_CHECKPOINTS = {
    "wrong tensor shape": lambda ck: ck["model"].update({k: torch.zeros(3, 3) for k in list(ck["model"])[:1]}),
    "rng of the wrong size": lambda ck: ck.update(torch_rng=torch.zeros(7, dtype=torch.uint8)),
    "best_state None": lambda ck: ck.update(best_state=None),
    "history a string": lambda ck: ck.update(history="oops"),
    "epoch 10**9": lambda ck: ck.update(epoch=10**9),
    "batch -1": lambda ck: ck.update(batch=-1),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_a_checkpoint_that_does_not_fit_is_set_aside_with_one_line(tmp_path, tiny, capsys, monkeypatch, case):
    """A checkpoint that loads (tensors and plain values) but does not fit the model or the settings is moved aside
    with one line and the split trains afresh, ending with the clean run's metrics (no traceback, no other number)."""
    from experiments.store.identity import run_key

    clean = pipeline.run(tiny.at(tmp_path / "clean")("splits=[0]")).trained[0].record["metrics"]
    cfg = _left_checkpoint(tiny, tmp_path / "r", monkeypatch)
    ck_path = run_key(cfg).checkpoint(0)
    ck = torch.load(ck_path, weights_only=True)
    BAD_CHECKPOINTS[case](ck)
    torch.save(ck, ck_path)
    capsys.readouterr()
    res = pipeline.run(cfg)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line and "still improving" not in line]
    assert len(warnings) == 1 and str(ck_path) in warnings[0] and "starts afresh" in warnings[0], err
    assert ck_path.with_name(ck_path.name + ".corrupt").exists()
    assert res.trained[0].record["metrics"] == clean


# ---------------------------------------------------------------- numerics at the door (issue 21, point 6)
@pytest.mark.parametrize("head", ["linear", "nca", "nca_g", "nca_i", "diffknn_g", "diffknn_i"])
def test_targets_beyond_the_embeddings_dtype_are_refused_never_inf(head):
    """float32 embeddings with float64 targets: every output is finite, or a ValueError says the targets exceed the
    head's label bound in z's dtype (label_bound: 1.8e19 in float32); before, targets beyond 3.4e38 came back as inf
    or NaN."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from softstep import build_head
    from softstep.dtypes import label_bound

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(exponent=st.floats(0, 300), sim=st.sampled_from(["l2", "cos", "rbf", "dot"]), n=st.integers(2, 9))
    def check(exponent, sim, n):
        h = build_head(head, 4, **({} if head == "linear" else {"similarity": sim}))
        g = torch.Generator().manual_seed(n)
        z = torch.randn(n, 4, generator=g)
        y = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * 10.0**exponent
        for call in (lambda: h.train()(z, z, y, exclude_self=True), lambda: h.eval().predict(z, z, y)):
            try:
                with torch.no_grad():
                    out = call()
            except ValueError as e:
                assert "scale the targets" in str(e) and 10.0**exponent > label_bound(torch.float32), str(e)
                continue
            assert torch.isfinite(out).all()

    check()
