"""Adversarial cases against the saved-model, predict, result-file and head surfaces (issue 28's measure), each
classified by what the code did:

    python -m benchmarks.adversarial [--write | --out PATH] [--work DIR] [--seed 0]

(default output results/benchmarks/scratch/adversarial.md, git-ignored; --write: results/benchmarks/adversarial.md)

Areas: every leaf of a saved table model's, image model's and estimator's JSON set to a value of another type or
range (deleted, null, a bool, 0, -1, 1e30, 2**63, a 401-digit integer, a string with a terminal escape and a
newline, an empty list or mapping, ...), a duplicated key; the tensor file's tensors and bytes (resealed or not); a
predict input's cells and files; ``--out`` paths; result files read by ``make_tables.py``; the heads given mixed
dtypes, embedding scales 1e-20..1e15 and labels up to float32's range; SIGINT/SIGTERM at start-up and mid-run.

Outcomes:

- **clear**: refused in one line (exit 2 and one error line with no control character; one ``ValueError``
  line), or accepted with a warning line that says what was unusual, every result finite;
- **accepted**: a valid input (a resealed model of finite weights, a head call within bounds) accepted, every
  result finite; **ignored**: accepted, the predictions bitwise the untouched model's (a field predict never reads);
- **traceback**: another exception escaped, or several error lines; **silently wrong**: accepted, exit 0, with
  other or non-finite results from an invalid input; **lost**: the input, the model or a complete earlier output
  changed; **code run**: a file that a payload would write changed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks import _output

ROOT = Path(__file__).resolve().parents[1]
DELETE = object()
ESCAPE = "x\x1b[2J\nforged"
#: the values each leaf of a JSON is set to
MUTATIONS = [DELETE, None, True, False, 0, -1, 3.5, 1e30, 2**63, -(10**400), "", ESCAPE, [], {}]
OUTCOMES = ("clear", "accepted", "ignored", "traceback", "silently wrong", "lost", "code run")


# ---------------------------------------------------------------------------------------------------- fixtures
def build(work: Path) -> dict:
    """A table run and an image run (two saved splits each), an estimator's save, and their inputs."""
    from experiments.protocol import pipeline
    from experiments.protocol.compose import compose
    from softstep import SoftStepRegressor
    from tests import fixtures_data as FD

    rng = np.random.default_rng(0)
    area, city = rng.uniform(20, 200, 80), rng.choice(["oslo", "bergen"], 80)
    table = work / "flats.csv"
    pd.DataFrame({"area": area, "city": city, "price": 1e3 * area + 5e4 * (city == "oslo")}).to_csv(table, index=False)
    common = ["splits=[0,1]", "trainer.max_epochs=2", "trainer.workers=1", "progress=false"]
    table_run = pipeline.run(
        compose(
            ["dataset=table", f"dataset.loader.path={table}", "dataset.loader.target=price"]
            + ["dataset.loader.features=all", "head=nca_i", f"paths.results_root={work}/results", *common]
        )
    ).key.dir
    files = [f"{'ab'[k % 2]}/{k}.png" for k in range(20)]
    images = FD.labelled_image_folder(work / "imgs", files, size=(16, 16))
    image_run = pipeline.run(
        compose(
            ["dataset=image_folder", f"dataset.loader.root={images}", "dataset.loader.size=32"]
            + ["extractor.finetune=false", "extractor.builder.source=random", "head=nca"]
            + [f"paths.results_root={work}/img_results", f"paths.cache_dir={work}/cache", *common]
        )
    ).key.dir
    new_images = work / "new_images"
    for k in range(3):
        FD.write_image(new_images / f"q{k}.png", (16, 16), "RGB", 90 + k)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    est = SoftStepRegressor(head="nca_i", max_epochs=2, random_state=0).fit(X, X.sum(axis=1).to_numpy())
    est.save(work / "est")
    return dict(table=table, table_run=table_run, image_run=image_run, new_images=new_images, X=X, est=work / "est")


# ---------------------------------------------------------------------------------------------------- running
def predict_cli(model: Path, inputs: Path, out: Path, explain: int = 2):
    """(exit code or the escaped exception's name, stderr lines, output frame or None) of ``scripts/predict.py``."""
    from scripts import predict as predict_script

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = predict_script.main(
                [str(model), "--input", str(inputs), "--out", str(out), "--explain", str(explain)]
            )
    except BaseException as e:  # noqa: BLE001 - what the harness measures
        code = type(e).__name__
    frame = pd.read_csv(out) if code == 0 and out.is_file() else None
    return code, err.getvalue().splitlines(), frame


def one_error_line(lines) -> bool:
    errors = [line for line in lines if "error" in line.lower() and "warning" not in line.lower()]
    return len(errors) == 1 and errors[0].isprintable()


#: fields a saved model may hold null in (no resize, no crop, whole clips, γ = 1/d)
NULLABLE = {"size", "crop", "seconds", "gamma"}


def valid_change(path, before, after) -> bool:
    """Whether a mutation keeps the field's kind (a number for a number, a bool for a bool, a string for a string,
    null where null is allowed): a saved model with another valid value is another model, not an attack."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    key = path[-1] if path else None
    if after is DELETE:
        return False
    if key in NULLABLE and (before is None or number(before)):
        return after is None or number(after)
    if key in ("mean", "std") and number(after):  # one value for every channel
        return True
    return (number(before) and number(after)) or type(before) is type(after) in (bool, str)


def judge_refusal(code, lines, frame, baseline, valid=False) -> str:
    """The outcome of a case: clear when refused in one line; accepted when a ``valid`` change gave finite
    predictions; ignored when the predictions did not change; else silently wrong."""
    if not isinstance(code, int):
        return "traceback"
    if code == 2 and one_error_line(lines):
        return "clear"
    if code == 0 and frame is not None:
        if frame["prediction"].equals(baseline["prediction"]):
            return "ignored"
        finite = np.isfinite(frame["prediction"]).all()
        return "accepted" if valid and finite else "silently wrong"
    return "traceback"


def mutated(meta, path, value):
    meta = json.loads(json.dumps(meta))
    node = meta
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return meta


def show(value) -> str:
    """A mutation's value as the case list prints it."""
    return "deleted" if value is DELETE else repr(value)[:24]


def get(node, path):
    for key in path:
        node = node[key]
    return node


def leaves(node, path=()):
    """Every leaf path of a JSON value (a list: its whole, and its first two items)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*path, k))
    elif isinstance(node, list) and node:
        yield path
        for i in range(min(2, len(node))):
            yield from leaves(node[i], (*path, i))
    else:
        yield path


def json_cases(work, model_json: Path, run: Path, inputs: Path, keep=lambda path: True):
    """Each leaf of a saved model's JSON set to each of :data:`MUTATIONS`, a key duplicated, an escape key added."""
    meta = json.loads(model_json.read_text())
    out = work / "out.csv"
    _, _, baseline = predict_cli(run, inputs, out)
    copy = work / "case"
    for path in [p for p in leaves(meta) if p and keep(p)]:
        for value in MUTATIONS:
            if value is DELETE and isinstance(path[-1], int):
                continue
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(run, copy)
            target = copy / model_json.relative_to(run)
            target.write_text(json.dumps(mutated(meta, path, value)))
            yield (
                f"{'.'.join(map(str, path))} = {show(value)}",
                judge_refusal(*predict_cli(copy, inputs, out), baseline, valid_change(path, get(meta, path), value)),
            )
    for key in list(meta) + [ESCAPE]:  # a duplicated key (the last would win) or an unknown one
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy)
        text = json.dumps(meta)
        (copy / model_json.relative_to(run)).write_text(text[:-1] + f", {json.dumps(key)}: 1}}")
        yield f"key {key!r} twice", judge_refusal(*predict_cli(copy, inputs, out), baseline)


def tensor_cases(work, run: Path, inputs: Path):
    """The split-0 tensor file's tensors changed (resealed: only the content checks can see it; unsealed: the seal
    must), and its bytes truncated, flipped, swapped with split 1's, or replaced by a folder or a FIFO."""
    from safetensors.torch import load_file, save_file

    from softstep.saved_seal import reseal

    out, copy = work / "out.csv", work / "case"
    _, _, baseline = predict_cli(run, inputs, out)
    tensors = load_file(str(run / "models" / "model_0.safetensors"))
    changes = {
        "x 3e38": lambda t: t * 3e38 if t.is_floating_point() else t + 2**40,
        "NaN": lambda t: t.float() * float("nan"),
        "inf": lambda t: t.float().fill_(float("inf")),
        "zero": torch.zeros_like,
        "float16": lambda t: t.half(),
        "float64": lambda t: t.double(),
        "int64": lambda t: t.long(),
        "transposed": lambda t: t.T.contiguous() if t.dim() == 2 else t.unsqueeze(0),
        "one row more": lambda t: torch.cat([t, t[:1]]) if t.dim() else t.reshape(1),
        "dropped": None,
    }
    for (name, t), (change, fn), sealed in itertools.product(tensors.items(), changes.items(), (True, False)):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy)
        new = dict(tensors)
        if fn is None:
            del new[name]
        else:
            new[name] = fn(t)
        w = copy / "models" / "model_0.safetensors"
        save_file(new, str(w))
        if sealed:
            reseal(w)
        code, lines, frame = predict_cli(copy, inputs, out)
        valid = sealed and change == "zero"  # a sealed file of finite weights is a model like any other
        if valid and code == 0 and frame is not None and np.isfinite(frame["prediction"]).all():
            yield f"{name} {change} sealed={sealed}", "accepted"
        else:
            yield f"{name} {change} sealed={sealed}", judge_refusal(code, lines, frame, baseline)
    raw = (run / "models" / "model_0.safetensors").read_bytes()
    variants = [raw[:k] for k in (0, 4, 8, 40, len(raw) // 2, len(raw) - 1)]
    variants += [raw[:k] + bytes([raw[k] ^ 0xFF]) + raw[k + 1 :] for k in (0, 3, 9, 20, 60, len(raw) - 5)]
    variants += [(run / "models" / "model_1.safetensors").read_bytes(), b"{}", b"\x00" * 1000]
    for payload in [*variants, "folder", "fifo"]:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy)
        w = copy / "models" / "model_0.safetensors"
        if payload == "folder":
            w.unlink()
            w.mkdir()
        elif payload == "fifo":
            w.unlink()
            os.mkfifo(w)
        else:
            w.write_bytes(payload)
        yield (
            f"bytes {str(payload)[:12]!r}",
            judge_refusal(*predict_cli(copy / "models" / "model_0.json", inputs, out), baseline),
        )


def input_cases(work, run: Path, table: Path, image_run: Path, new_images: Path):
    """A predict input's cells and files: a refusal naming the row, or a warning, never a traceback or a NaN."""
    out = work / "out.csv"
    rows = pd.read_csv(table, dtype=str)
    cells = ["1e30", "1e300", "-1e308", "1" * 30, "inf", "nan", "", "abc", " 12 ", "1e-320", "١٢", ESCAPE, "9" * 400]
    cells += ["oslo", "paris", "Oslo", " oslo", "0", "1e7"]
    for column, cell, row in itertools.product(["area", "city"], cells, [0, 41]):
        new = rows.copy()
        new.loc[row, column] = cell
        new.to_csv(work / "in.csv", index=False)
        code, lines, frame = predict_cli(run, work / "in.csv", out)
        yield f"{column}[{row}] = {cell[:20]!r}", judge_input(code, lines, frame)
    files = {
        "header only": "area,city,price\n",
        "empty": "",
        "no city column": rows.drop(columns="city").to_csv(index=False),
        "a duplicated column": rows.to_csv(index=False).replace("area,city", "area,area", 1),
        "an extra column": rows.assign(extra="x").to_csv(index=False),
        "a BOM": "\ufeff" + rows.to_csv(index=False),
        "binary": bytes(range(256)) * 20,
        "utf-16": rows.to_csv(index=False).encode("utf-16"),
        "latin-1": rows.assign(city="bérgen").to_csv(index=False).encode("latin-1"),
        "one row": rows.iloc[:1].to_csv(index=False),
        "semicolons": rows.to_csv(index=False, sep=";"),
    }
    for _name, content in files.items():
        path = work / "in.csv"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        yield _name, judge_input(*predict_cli(run, path, out))
    for special in ("folder", "fifo", "missing", "a .txt"):
        path = work / ("in.txt" if special == "a .txt" else "special.csv")
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if special == "folder":
            path.mkdir()
        elif special == "fifo":
            os.mkfifo(path)
        elif special == "a .txt":
            path.write_text(rows.to_csv(index=False))
        yield special, judge_input(*predict_cli(run, path, out))
    images = {
        "corrupt": b"\x89PNG\r\n\x1a\n" + b"\x00" * 50,
        "empty": b"",
        "text": b"not an image",
        "1x1": _png((1, 1), "RGB"),
        "grey": _png((16, 16), "L"),
        "RGBA": _png((16, 16), "RGBA"),
        "16-bit": _png((16, 16), "I;16"),
    }
    for _name, content in images.items():
        folder = work / "imgs_in"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(new_images, folder)
        (folder / "odd.png").write_bytes(content)
        yield _name, judge_input(*predict_cli(image_run, folder, out))


def _png(size, mode) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def judge_input(code, lines, frame) -> str:
    """Refused in one line, or accepted with finite predictions (with a warning where a value was unusual)."""
    if not isinstance(code, int):
        return "traceback"
    if code == 2 and one_error_line(lines):
        return "clear"
    if code == 0 and frame is not None:
        return "clear" if np.isfinite(frame["prediction"]).all() else "silently wrong"
    return "traceback"


def out_cases(work, run: Path, table: Path):
    """``--out`` naming the input or a file of the model, by any path: refused, and nothing else changes."""
    copy, out = work / "case", work / "out.csv"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy)
    inputs = work / "in.csv"
    shutil.copy(table, inputs)
    models = copy / "models"
    targets = {
        "the input": inputs,
        "the input, dotted": work / "." / "in.csv",
        "the input via ..": work / "imgs" / ".." / "in.csv",
        "model json": models / "model_0.json",
        "model tensors": models / "model_1.safetensors",
        "inside the run": copy / "tables.csv",
        "a new folder in the run": copy / "new" / "p.csv",
    }
    for name, link in (("hard link to input", "hard"), ("symlink to input", "soft"), ("hard link to model", "model")):
        path = work / f"link_{link}.csv"
        path.unlink(missing_ok=True)
        if link == "soft":
            path.symlink_to(inputs)
        else:
            os.link(models / "model_0.json" if link == "model" else inputs, path)
        targets[name] = path
    targets["a folder"] = work
    targets["a fine file"] = out
    targets["a fine file in a new folder"] = work / "nope" / "p.csv"
    for name, target in targets.items():
        before = {p: p.read_bytes() for p in [inputs, *models.iterdir()]}
        code, lines, frame = predict_cli(copy, inputs, target)
        if {p: p.read_bytes() for p in before} != before:
            yield name, "lost"
        elif not isinstance(code, int):
            yield name, "traceback"
        elif name.startswith("a fine file"):
            yield name, "accepted" if code == 0 else "traceback"
        else:
            yield name, "clear" if code == 2 and one_error_line(lines) else "silently wrong"


def result_cases(work, results_root: Path):
    """Each leaf of a result file set to each of :data:`MUTATIONS`, then ``make_tables.py``: one warning line naming
    the skipped file, or the same tables; plus a FIFO, a truncated file, invalid JSON and a file over the cap."""
    from scripts import make_tables

    files = sorted(results_root.rglob("split_0.json"))
    result = json.loads(files[0].read_text())
    root, out = work / "res_case", work / "tables_out"

    def tables(prepare) -> tuple:
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(results_root, root)
        prepare(root / files[0].relative_to(results_root))
        shutil.rmtree(out, ignore_errors=True)
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = make_tables.main(["--results-root", str(root), "--out", str(out), "--no-tuning"])
        except BaseException as e:  # noqa: BLE001
            return type(e).__name__, err.getvalue().splitlines(), None
        text = (out / "table1.md").read_text() if (out / "table1.md").is_file() else None
        return code, err.getvalue().splitlines(), text

    _, _, baseline = tables(lambda p: None)
    numeric = (0, -1, 3.5, 1e30, 2**63)
    for path in [p for p in leaves(result) if p]:
        for value in MUTATIONS:
            if value is DELETE and isinstance(path[-1], int):
                continue
            code, lines, text = tables(lambda p, v=value, k=path: p.write_text(json.dumps(mutated(result, k, v))))
            named = [line for line in lines if "skipped" in line and "split_0.json" in line]
            if not isinstance(code, int):
                yield f"{'.'.join(map(str, path))} = {show(value)}", "traceback"
            elif len(named) == 1 and named[0].isprintable():
                yield f"{'.'.join(map(str, path))} = {show(value)}", "clear"
            elif code == 0 and text == baseline:
                yield f"{'.'.join(map(str, path))} = {show(value)}", "ignored"
            elif code == 0 and value in numeric and not isinstance(value, bool):
                yield (
                    f"{'.'.join(map(str, path))} = {show(value)}",
                    "accepted",
                )  # another number where a number is read
            else:
                yield (
                    f"{'.'.join(map(str, path))} = {show(value)}",
                    "silently wrong" if code == 0 else "traceback",
                )
    for _name, prepare in {
        "fifo": lambda p: (p.unlink(), os.mkfifo(p)),
        "truncated": lambda p: p.write_text(p.read_text()[:50]),
        "not JSON": lambda p: p.write_bytes(b"\x00\xff"),
        "over the cap": lambda p: p.write_text(" " * (2 << 20) + p.read_text()),
        "a folder": lambda p: (p.unlink(), p.mkdir()),
    }.items():
        os.environ["SOFTSTEP_MAX_JSON_MB"] = "1"
        try:
            code, lines, _ = tables(prepare)
        finally:
            os.environ.pop("SOFTSTEP_MAX_JSON_MB")
        ok = isinstance(code, int) and len([line for line in lines if "split_0.json" in line]) == 1
        yield _name, "clear" if ok else "traceback"


def estimator_cases(work, est: Path, X: pd.DataFrame):
    """Each leaf of an estimator's saved JSON mutated, then ``SoftStepRegressor.load`` and ``predict``."""
    from softstep import SoftStepRegressor

    meta = json.loads(est.with_suffix(".json").read_text())
    baseline = SoftStepRegressor.load(est).predict(X)
    copy = work / "est_case"
    for path in [p for p in leaves(meta) if p]:
        for value in MUTATIONS:
            if value is DELETE and isinstance(path[-1], int):
                continue
            shutil.copy(est.with_suffix(".safetensors"), copy.with_suffix(".safetensors"))
            copy.with_suffix(".json").write_text(json.dumps(mutated(meta, path, value)))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pred = SoftStepRegressor.load(copy).predict(X)
            except ValueError as e:
                yield (
                    f"{'.'.join(map(str, path))} = {show(value)}",
                    "clear" if str(e).isprintable() and "\n" not in str(e) else "traceback",
                )
                continue
            except Exception:  # noqa: BLE001
                yield f"{'.'.join(map(str, path))} = {show(value)}", "traceback"
                continue
            same = np.array_equal(pred, baseline)
            valid = valid_change(path, get(meta, path), value) and np.isfinite(pred).all()
            yield (
                f"{'.'.join(map(str, path))} = {show(value)}",
                "ignored" if same else "accepted" if valid else "silently wrong",
            )


def head_cases(n: int, seed: int):
    """``n`` head calls drawn at random: mixed dtypes, embedding scales 1e-20..1e15, labels up to float32's range;
    refused in one line beyond the label bound, else finite outputs and gradients (inf only where the true
    gradient, about |y|/|z|, is beyond the dtype)."""
    from softstep import HEADS, SIMILARITIES, build_head
    from softstep.dtypes import label_bound

    rng = np.random.default_rng(seed)
    dtypes = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
    for _ in range(n):
        name, kind = rng.choice(list(HEADS)), rng.choice(SIMILARITIES)
        hd, zd, rd, yd = (dtypes[i] for i in (rng.integers(2), *rng.integers(4, size=3)))
        scale, y_max = 10.0 ** rng.choice([-20, -6, 0, 4, 15]), float(rng.choice([1, 1.6e16, 1e18, 1e30, 3e38]))
        train = bool(rng.integers(2))
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        head = build_head(name, 4, **({} if name == "linear" else {"similarity": kind})).to(hd).train(train)
        z_ref = (torch.randn(8, 4, generator=g, dtype=torch.float64) * scale).to(rd)
        z = z_ref.to(zd) if train else (torch.randn(3, 4, generator=g, dtype=torch.float64) * scale).to(zd)
        z = z.requires_grad_()
        y = ((torch.rand(8, generator=g, dtype=torch.float64) * 2 - 1) * y_max).to(yd)
        case = f"{name} {kind} {hd} z {zd} ref {rd} y {yd} scale {scale:g} |y| {y_max:g} train={train}"
        bound = label_bound(torch.float64 if zd == torch.float64 else torch.float32)
        valid = all(torch.isfinite(t).all() for t in (z, z_ref, y)) and (name == "linear" or y_max <= bound)
        try:
            out = head(z, z if train and zd == rd else z_ref, y, exclude_self=train and zd == rd)
            (grad,) = torch.autograd.grad(out.sum(), [z])
        except ValueError as e:
            one = "\n" not in str(e)
            yield (case, "clear") if one and not valid else (f"{case}: refused: {str(e)[:120]}", "traceback")
            continue
        except Exception as e:  # noqa: BLE001
            yield f"{case}: {type(e).__name__}: {str(e)[:120]}", "traceback"
            continue
        fits = y_max / min(scale, 1.0) <= torch.finfo(zd).max * 1e-8  # the true gradient fits z's dtype
        if not torch.isfinite(out).all() or torch.isnan(grad).any() or (fits and not torch.isfinite(grad).all()):
            yield case, "silently wrong"
        else:
            yield case, "accepted"


def signal_cases(work, run: Path, table: Path):
    """SIGINT or SIGTERM to ``run.py`` at start-up and to ``predict.py`` at any time: one line, the earlier output
    whole."""
    out = work / "sig.csv"
    predict_cli(run, table, out)
    earlier = out.read_bytes()
    commands = {"run.py": [sys.executable, "run.py", "--help"], "predict.py": [sys.executable, "scripts/predict.py"]}
    commands["predict.py"] += [str(run), "--input", str(table), "--out", str(out)]
    for (script, cmd), sig, delay in itertools.product(
        commands.items(), (signal.SIGINT, signal.SIGTERM), (0.05, 0.3, 1.5)
    ):
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        now = out.read_bytes()
        whole = now == earlier or (len(now.decode().splitlines()) == 81 and now.endswith(b"\n"))  # header + 80 rows
        if script == "predict.py" and not whole:
            yield f"{script} {sig.name} at {delay}s", "lost"
        elif "Traceback" in err:
            yield f"{script} {sig.name} at {delay}s", "traceback"
        else:
            yield f"{script} {sig.name} at {delay}s", "clear" if len(err.strip().splitlines()) <= 1 else "traceback"


# ---------------------------------------------------------------------------------------------------- the table
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "results" / "benchmarks" / "scratch" / "adversarial_work")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head-cases", type=int, default=6000, help="random head calls (default 6000)")
    return _output.add_arguments(p, "adversarial")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from experiments.models import predict as predict_module

    predict_module.readable_decimals = lambda label: 12  # compare predictions at full precision, not the CSV's
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    torch.set_num_threads(1)
    start = time.process_time()
    fx = build(args.work)
    table_model, image_model = fx["table_run"] / "models" / "model_0.json", fx["image_run"] / "models" / "model_0.json"
    image_keep = lambda path: path[0] != "config" or path[1] in ("extractor", "dataset", "head", "model")  # noqa: E731
    areas = {
        "table model JSON": lambda: json_cases(args.work, table_model, fx["table_run"], fx["table"]),
        "image model JSON": lambda: json_cases(args.work, image_model, fx["image_run"], fx["new_images"], image_keep),
        "estimator JSON": lambda: estimator_cases(args.work, fx["est"], fx["X"]),
        "tensor file": lambda: tensor_cases(args.work, fx["table_run"], fx["table"]),
        "predict inputs": lambda: input_cases(
            args.work, fx["table_run"], fx["table"], fx["image_run"], fx["new_images"]
        ),
        "--out paths": lambda: out_cases(args.work, fx["table_run"], fx["table"]),
        "result files": lambda: result_cases(args.work, args.work / "results"),
        "heads: dtypes, scales, labels": lambda: head_cases(args.head_cases, args.seed),
        "signals": lambda: signal_cases(args.work, fx["table_run"], fx["table"]),
    }
    counts, bad_cases = {}, []
    for area, cases in areas.items():
        t = time.time()
        counts[area] = Counter()
        for case, outcome in cases():
            counts[area][outcome] += 1
            if outcome in ("traceback", "silently wrong", "lost", "code run"):
                bad_cases.append(f"- {area}: {case}: {outcome}")
        print(
            f"{area}: {sum(counts[area].values())} cases in {time.time() - t:.0f} s: {dict(counts[area])}", flush=True
        )
    total = sum(counts.values(), Counter())
    rows = [
        f"| {a} | {sum(c.values()):,} | " + " | ".join(f"{c[o]:,}" for o in OUTCOMES) + " |" for a, c in counts.items()
    ]
    rows.append(
        f"| **all** | **{sum(total.values()):,}** | " + " | ".join(f"**{total[o]:,}**" for o in OUTCOMES) + " |"
    )
    text = "\n".join(
        [
            "# Adversarial cases (issue 28)",
            "",
            f"`python -m benchmarks.adversarial` (seed {args.seed}), {time.strftime('%Y-%m-%d')}, CPU, "
            f"{time.process_time() - start:.0f} s of process CPU time. Outcomes: see the module's docstring; "
            "clear, accepted and ignored are the wanted ones.",
            "",
            "| area | tried | " + " | ".join(OUTCOMES) + " |",
            "|---|---|" + "---|" * len(OUTCOMES),
            *rows,
            "",
            *(["Cases not clear:", "", *bad_cases[:200], ""] if bad_cases else []),
        ]
    )
    _output.write(args, text)
    print(text)
    bad = sum(total[o] for o in ("traceback", "silently wrong", "lost", "code run"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
