"""Issue 28's predict findings, each reproduced: an interrupted write must leave the earlier output whole (1), an
``--out`` that is the model or the input is refused however it is named (2), and a stop at any moment of start-up
or prediction is one line (15)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from scripts import predict as predict_script
from tests.test_reliability import _flats, saved_run  # noqa: F401 - the fixture and its table

REPO = Path(__file__).resolve().parents[1]


def test_finding_1_an_interrupted_write_leaves_the_earlier_file_whole(saved_run, tmp_path, capsys, monkeypatch):  # noqa: F811
    run_dir, table = saved_run
    out = tmp_path / "pred.csv"
    assert predict_script.main([str(run_dir), "--input", str(table), "--out", str(out)]) == 0
    earlier = out.read_bytes()
    wide = tmp_path / "wide.csv"
    pd.concat([pd.read_csv(table)] * 50).to_csv(wide, index=False)

    def stopped_while_writing(fd):  # SIGTERM arrives after the bytes are written, before the rename
        raise predict_script.Interrupted(signal.SIGTERM)

    monkeypatch.setattr(os, "fsync", stopped_while_writing)
    capsys.readouterr()
    code = predict_script.main([str(run_dir), "--input", str(wide), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 128 + signal.SIGTERM and len(err) == 1 and "SIGTERM" in err[0], err
    assert out.read_bytes() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.csv", "wide.csv"]  # no temporary file left


@pytest.mark.parametrize(
    "where",
    [
        "model json",
        "model safetensors",
        "inside run folder",
        "hard link of model",
        "hard link of input",
        "symlink to input",
        "dotted path to input",
    ],
)
def test_finding_2_out_that_is_the_model_or_the_input_is_refused(saved_run, tmp_path, capsys, where):  # noqa: F811
    run_dir, table = saved_run
    copy = tmp_path / "in.csv"
    copy.write_bytes(table.read_bytes())
    models = run_dir / "models"
    before = {p: p.read_bytes() for p in models.iterdir()}
    out = {
        "model json": models / "model_0.json",
        "model safetensors": models / "model_0.safetensors",
        "inside run folder": run_dir / "new.csv",
        "hard link of model": tmp_path / "linked_model.json",
        "hard link of input": tmp_path / "linked_input.csv",
        "symlink to input": tmp_path / "sym.csv",
        "dotted path to input": tmp_path / "sub" / ".." / "in.csv",
    }[where]
    if where == "hard link of model":
        os.link(models / "model_0.json", out)
    if where == "hard link of input":
        os.link(copy, out)
    if where == "symlink to input":
        out.symlink_to(copy)
    (tmp_path / "sub").mkdir()
    capsys.readouterr()
    code = predict_script.main([str(run_dir), "--input", str(copy), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "write the predictions elsewhere" in err[0], err
    assert {p: p.read_bytes() for p in models.iterdir()} == before
    assert copy.read_bytes() == table.read_bytes() and not (run_dir / "new.csv").exists()


def test_finding_2_a_saved_model_file_is_refused_as_out(saved_run, tmp_path, capsys):  # noqa: F811
    run_dir, table = saved_run
    model_json = run_dir / "models" / "model_0.json"
    before = model_json.read_bytes()
    code = predict_script.main(
        [str(model_json), "--input", str(table), "--out", str(model_json.with_suffix(".safetensors"))]
    )
    assert code == 2 and model_json.read_bytes() == before


def _stop_after(cmd: list[str], delay: float, sig: int) -> tuple[int, str]:
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


@pytest.mark.parametrize("delay", [0.1, 0.25, 0.6])
def test_finding_15_sigint_early_in_run_py_is_one_line(tmp_path, delay):
    code, err = _stop_after(
        [sys.executable, "run.py", "dataset=synthetic", f"paths.results_root={tmp_path}"], delay, signal.SIGINT
    )
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    assert code == 128 + signal.SIGINT and len(err.strip().splitlines()) == 1, (code, err[-2000:])


@pytest.mark.parametrize(
    "delay,sig", [(0.1, signal.SIGINT), (0.5, signal.SIGINT), (1.5, signal.SIGTERM), (3.0, signal.SIGINT)]
)
def test_finding_15_a_stop_at_any_time_in_predict_is_one_line(saved_run, tmp_path, delay, sig):  # noqa: F811
    run_dir, table = saved_run
    out = tmp_path / "pred.csv"
    out.write_text("earlier\n")
    code, err = _stop_after(
        [sys.executable, "scripts/predict.py", str(run_dir), "--input", str(table), "--out", str(out)], delay, sig
    )
    if code == 0:  # it finished before the signal: nothing to check but the output
        assert out.read_text() != "earlier\n"
        return
    assert "Traceback" not in err and code == 128 + sig and len(err.strip().splitlines()) == 1, (code, err[-2000:])
    assert out.read_text() == "earlier\n"


def test_finding_15_a_stop_after_the_output_is_written_changes_nothing(saved_run, tmp_path):  # noqa: F811
    """A signal while the interpreter shuts down (CI saw SIGINT end a finished predict.py with -2 and no line):
    once the predictions are written, a stop is ignored; atexit runs before the interpreter drops its handlers."""
    run_dir, table = saved_run
    out = tmp_path / "pred.csv"
    late_stop = (
        "import atexit, os, runpy, signal, sys; "
        "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT)); "
        f"sys.argv = ['scripts/predict.py', {str(run_dir)!r}, '--input', {str(table)!r}, '--out', {str(out)!r}]; "
        "runpy.run_path('scripts/predict.py', run_name='__main__')"
    )
    p = subprocess.run([sys.executable, "-c", late_stop], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "Traceback" not in p.stderr and "stopped" not in p.stderr, (p.returncode, p.stderr)
    assert len(pd.read_csv(out)) == len(pd.read_csv(table))


def test_finding_15_a_stop_inside_an_import_that_rewrites_errors_is_one_line(tmp_path):
    """CI saw SIGINT 0.1 s into run.py land inside omegaconf, which turned the handler's SystemExit into an
    AttributeError with a traceback. Here a stand-in ``hydra`` (first on the path) is stopped while it does the same."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "hydra.py").write_text(
        "import os, signal\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    sum(range(10**6))  # the handler runs here\n"
        "except BaseException:\n"
        "    raise AttributeError('a library turned the stop into an error of its own') from None\n"
    )
    env = {**os.environ, "PYTHONPATH": str(fake)}
    p = subprocess.run(
        [sys.executable, "run.py", "dataset=synthetic", f"paths.results_root={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 128 + signal.SIGINT and "Traceback" not in p.stderr, (p.returncode, p.stderr[-2000:])
    assert p.stderr.strip().splitlines() == ["[softstep] stopped by SIGINT while starting; nothing to save"]
