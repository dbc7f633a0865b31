"""Issue 28's file findings, each reproduced: duplicate JSON keys (6), files that follow the umask (9), FIFOs and
oversized files that must not hang or fill memory (11), a result field of the wrong type that crashed status (12)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from experiments.store.results import ResultError, check_result, read_result, read_results
from experiments.sweep.cluster import log_tail
from softstep.safe_io import UnreadableJSON, atomic_write_bytes, read_json
from tests.test_report_tables import fake_result

REPO = Path(__file__).resolve().parents[1]


def finishes(fn, timeout=10.0):
    """Whether ``fn()`` returns (or raises) within ``timeout`` seconds; its exception is re-raised."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return False
    if "error" in out:
        raise out["error"]
    return True


def test_finding_6_duplicate_json_keys_are_refused_not_last_wins(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{"label": {"lo": 0, "hi": 1, "hi": 1e30}}')
    with pytest.raises(UnreadableJSON, match="duplicate key 'hi'"):
        read_json(p)
    p.write_text('{"label": {"lo": 0, "hi": 1}}')
    assert read_json(p) == {"label": {"lo": 0, "hi": 1}}


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_finding_9_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "split_0.json", b"{}")
        (tmp_path / "plain").write_bytes(b"")  # what open() makes under the same umask
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "split_0.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o666 & ~umask


def test_finding_11_a_fifo_named_like_a_result_does_not_hang_a_reader(tmp_path):
    fifo = tmp_path / "split_1.json"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableJSON, match="FIFO"):
        assert finishes(lambda: read_json(fifo)), "read_json blocked on a FIFO"
    with pytest.raises(ResultError, match="FIFO"):
        assert finishes(lambda: read_result(fifo))
    assert finishes(lambda: log_tail(fifo)) and log_tail(fifo) == ""


def test_finding_11_a_fifo_in_the_results_tree_does_not_hang_make_tables(tmp_path):
    run = tmp_path / "runs" / "d" / "fake" / "nca" / "nca-rbf-e100-b32-0000abcd"
    run.mkdir(parents=True)
    (run / "split_0.json").write_text(json.dumps(fake_result("d", "nca", 0, 10.0)))
    os.mkfifo(run / "split_1.json")
    p = subprocess.run(
        [
            sys.executable,
            "scripts/make_tables.py",
            "--results-root",
            str(tmp_path),
            "--out",
            str(tmp_path / "t"),
            "--no-tuning",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "split_1.json" in p.stderr and "FIFO" in p.stderr, p.stderr
    assert len([line for line in p.stderr.splitlines() if "split_1.json" in line]) == 1


def test_finding_11_result_files_have_a_size_cap(tmp_path, monkeypatch):
    p = tmp_path / "split_0.json"
    p.write_text(json.dumps(fake_result("d", "nca", 0, 10.0) | {"pad": "x" * 3_000_000}))
    monkeypatch.setenv("SOFTSTEP_MAX_JSON_MB", "1")
    with pytest.raises(ResultError, match="over the 1 MiB"):
        read_result(p)
    monkeypatch.setenv("SOFTSTEP_MAX_JSON_MB", "8")
    assert read_result(p)["split"] == 0
    monkeypatch.setenv("SOFTSTEP_MAX_JSON_MB", "lots")
    with pytest.raises(ResultError, match="SOFTSTEP_MAX_JSON_MB"):
        read_result(p)


@pytest.mark.parametrize(
    "field,value",
    [
        ("history", [{"epoch": 1, "val_mse": 0.1, "epoch_time_s": "3.2"}]),
        ("history", [{"epoch": "1", "val_mse": 0.1}]),
        ("history", [{"epoch": 1, "val_mse": "0.1"}]),
        ("history", [{"epoch": 1, "train_time_s": -1.0}]),
        ("history", "epochs"),
        ("history", [3]),
        ("wall_time_s", "1.5"),
        ("n_train", True),
        ("sparsity", [1, 2]),
    ],
)
def test_finding_12_a_mistyped_optional_field_is_one_line_naming_it(tmp_path, field, value):
    r = fake_result("d", "nca", 0, 10.0) | {field: value}
    with pytest.raises(ResultError) as e:
        check_result(r, tmp_path / "split_0.json")
    assert field in str(e.value) and len(str(e.value).splitlines()) == 1


def test_finding_12_status_readers_skip_the_malformed_file_and_read_the_rest(tmp_path, capsys):
    run = tmp_path / "runs" / "d" / "fake" / "nca" / "nca-rbf-e100-b32-0000abcd"
    run.mkdir(parents=True)
    good = fake_result("d", "nca", 0, 10.0) | {"history": [{"epoch": 1, "val_mse": float("nan"), "epoch_time_s": 2.0}]}
    (run / "split_0.json").write_text(json.dumps(good))
    bad = fake_result("d", "nca", 1, 10.0) | {"history": [{"epoch": 1, "val_mse": 0.1, "epoch_time_s": "3.2"}]}
    (run / "split_1.json").write_text(json.dumps(bad))
    results = read_results(tmp_path, skip_bad=True)
    assert [r["split"] for r in results] == [0]  # a diverged epoch's NaN keeps its finished split
    err = capsys.readouterr().err
    assert "split_1.json" in err and "epoch_time_s" in err
