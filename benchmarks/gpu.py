"""Heads and fine-tuning on the GPU (or, with --quick, the same code shrunk to run on a CPU) → results/benchmarks/gpu.md.

    python -m benchmarks.gpu --write         # on a CUDA machine: about 5 minutes on one H100 → results/benchmarks/gpu.md
    python -m benchmarks.gpu --quick         # the same code, small sizes, on the CPU: under 2 minutes
                                             # (without --write: results/benchmarks/scratch/gpu.md, git-ignored)

Sections (each skips itself, saying so, when the deadline leaves it too little time):

1. Parity: every head's outputs and gradients on the device against the CPU, in float64
   (on a CPU-only machine the device is the CPU: a self-check of the code path only).
2. Training step per head (MLP(200) + head, Adam), eager and ``torch.compile``d (default mode),
   at B = 32, 128, 1,024; median ms per step and the ratio to the linear head; soft ranks alone,
   torchsort's against softstep's with each isotonic kernel (torchsort's, column-major; the Triton one), and
   DiffKNN's step with each; the operators each step dispatches; a profile of DiffKNN's step
   (top operators by self time).
3. Evaluation: ``head.predict`` with ``trainer.max_elements=auto`` against the dense forward and an
   exact hard k-NN (``torch.cdist`` + ``topk``, k = 10) at Q = 1,000 queries, N = 10⁴…10⁶; seconds and
   peak extra memory (CUDA).
4. Fine-tuning throughput, end to end: resnet18, efficientnet_b0, distilbert, hubert_base and
   whisper_tiny with random weights (their real sizes; tiny ones with --quick) on generated files,
   through the decoded-sample cache and ``fit`` (training plus the evaluation embedding), across
   ``num_workers`` (the cache build) and ``trainer.precision``. Training items per second of an epoch.

The output ends with a JSON line (``<!-- throughput: ... -->``) that ``scripts/status.py`` reads to
estimate GPU hours before any job has finished.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import _output
from benchmarks.ops import count_ops
from data.base import RegressionData
from data.media import AudioFile, ImageFile, ImageTransform
from experiments.inputs.batches import DecodedCache, Inputs
from experiments.protocol.device import resolve_max_elements
from softstep import HEADS, build_head
from softstep.model import Regressor
from softstep.training import adam_kernels, fit
from softstep.training_types import TrainerSettings

EXTRACTORS = ("resnet18", "efficientnet_b0", "distilbert", "hubert_base", "whisper_tiny")
SECTIONS = ("parity", "steps", "ranks", "profile", "eval", "finetune")


class Clock:
    """The deadline: each stage asks whether it has time left."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, reps: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


# ------------------------------------------------------------------------------------------ 1. parity
def parity(device, n: int, d: int) -> list[dict]:
    rows = []
    for name in HEADS:
        torch.manual_seed(0)
        head = build_head(name, d).double()
        z = torch.randn(n, d, dtype=torch.float64)
        y = torch.rand(n, dtype=torch.float64)
        res = {}
        for dev in ("cpu", device):
            h = build_head(name, d).double().to(dev)
            h.load_state_dict(head.state_dict())
            zz = z.clone().to(dev).requires_grad_(True)
            out = h(zz, zz, y.to(dev), exclude_self=True)
            out.sum().backward()
            res[str(dev)] = (
                out.detach().cpu(),
                zz.grad.cpu(),
                [p.grad.cpu() for p in h.parameters() if p.grad is not None],
            )
        (o1, g1, p1), (o2, g2, p2) = res["cpu"], res[str(device)]
        err = max(
            [float((o1 - o2).abs().max()), float((g1 - g2).abs().max())]
            + [float((a - b).abs().max()) for a, b in zip(p1, p2)]
        )
        rows.append({"head": name, "max_abs_diff": err})
    return rows


# ------------------------------------------------------------------------------------------ 2. training step
def step_fn(name: str, d_in: int, embed: int, device, compiled: str | None):
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(d_in, 200), torch.nn.ReLU(), torch.nn.Linear(200, embed)).to(device)
    head = build_head(name, embed).to(device)
    opt = torch.optim.Adam(list(mlp.parameters()) + list(head.parameters()), lr=1e-3, **adam_kernels(device))  # as fit

    def loss(x, y):
        z = mlp(x)
        return torch.mean((head(z, z, y, exclude_self=True) - y) ** 2)

    f = torch.compile(loss, backend=compiled) if compiled else loss

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        f(x, y).backward()
        opt.step()

    return step


def train_steps(device, batches, reps, clock: Clock, compile_backend: str | None, compile_cost: float) -> list[dict]:
    rows = []
    d_in = 64
    for b in batches:
        x = torch.randn(b, d_in, device=device)
        y = torch.rand(b, device=device)
        timed(lambda s=step_fn("linear", d_in, 25, device, None): s(x, y), device, 3)  # warm up autograd, Adam, kernels
        for name in HEADS:
            if clock.left() < 5:
                rows.append({"B": b, "head": name, "skipped": "deadline"})
                continue
            eager = step_fn(name, d_in, 25, device, None)
            row = {
                "B": b,
                "head": name,
                "eager_ms": 1e3 * timed(lambda s=eager: s(x, y), device, reps),
                "ops": sum(count_ops(lambda: eager(x, y)).values()),
            }
            if compile_backend and clock.left() > compile_cost:
                s = step_fn(name, d_in, 25, device, compile_backend)
                t = time.perf_counter()
                s(x, y)
                sync(device)
                row["compile_s"] = time.perf_counter() - t
                row["compiled_ms"] = 1e3 * timed(lambda: s(x, y), device, reps)
            rows.append(row)
    return rows


def soft_rank_variants(device, batches, reps: int, clock: Clock) -> list[dict]:
    """Soft ranks alone (forward + backward of a B × B float64 matrix, strength 0.1): torchsort.soft_rank against
    softstep's soft_rank with each isotonic kernel (``softstep.ranks.ISOTONIC``: torchsort's, fed column-major on
    CUDA, and softstep.isotonic's Triton kernel, on CUDA only); then the training step of nca and of diffknn_i
    with each kernel."""
    import torchsort

    from softstep import isotonic
    from softstep import ranks as R

    kernels = ["torchsort"] + (
        ["triton"] if torch.device(device).type == "cuda" and isotonic.triton is not None else []
    )
    kind = torch.device(device).type
    rows = []
    for b in batches:
        if clock.left() < 3:
            rows.append({"B": b, "skipped": "deadline"})
            continue
        torch.manual_seed(0)
        row = {"B": b}
        x = torch.randn(b, b, device=device, dtype=torch.float64) * b
        cot = torch.randn_like(x)
        row["torchsort_ms"] = 1e3 * timed(
            lambda: torchsort.soft_rank(x.clone().requires_grad_(True), regularization_strength=0.1).backward(cot),
            device,
            reps,
        )
        xs, ys = torch.randn(b, 64, device=device), torch.rand(b, device=device)
        row["nca_ms"] = 1e3 * timed(lambda s=step_fn("nca", 64, 25, device, None): s(xs, ys), device, reps)
        saved = dict(R.ISOTONIC)
        try:
            for k in kernels:
                R.ISOTONIC[kind] = k
                row[f"softstep_{k}_ms"] = 1e3 * timed(
                    lambda: R.soft_rank(x.clone().requires_grad_(True), 0.1).backward(cot), device, reps
                )
                row[f"diffknn_{k}_ms"] = 1e3 * timed(
                    lambda s=step_fn("diffknn_i", 64, 25, device, None): s(xs, ys), device, reps
                )
        finally:
            R.ISOTONIC.update(saved)
        rows.append(row)
    return rows


def profile_diffknn(device, b: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(b, 64, device=device)
    y = torch.rand(b, device=device)
    s = step_fn("diffknn_i", 64, 25, device, None)
    for _ in range(3):
        s(x, y)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.device(device).type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(5):
            s(x, y)
        sync(device)
    key = "self_cuda_time_total" if torch.device(device).type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=8, max_name_column_width=40)


# ------------------------------------------------------------------------------------------ 3. evaluation
def peak(device, fn, reps: int = 3):
    """(median seconds of ``fn()`` over ``reps`` runs after one warm-up run, peak extra MiB on CUDA or None)."""
    dev = torch.device(device)
    fn()
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if dev.type == "cuda" else 0
    seconds = timed(fn, dev, reps, warmup=0)
    mib = (torch.cuda.max_memory_allocated() - base) / 2**20 if dev.type == "cuda" else None
    return seconds, mib


def knn(zq, zr, yr, k=10, max_elements=2**26):
    rows = max(1, max_elements // len(zr))
    out = []
    for i in range(0, len(zq), rows):
        idx = torch.cdist(zq[i : i + rows], zr).topk(k, largest=False).indices
        out.append(yr[idx].mean(1))
    return torch.cat(out)


def evaluation(device, ns, q, d, clock: Clock) -> tuple[list[dict], dict]:
    rows = []
    max_el = {name: resolve_max_elements("auto", device, build_head(name, d)) for name in ("nca", "nca_i", "diffknn_i")}
    for n in ns:
        torch.manual_seed(0)
        zr, yr, zq = torch.randn(n, d, device=device), torch.rand(n, device=device), torch.randn(q, d, device=device)
        for name in ("nca", "nca_i", "diffknn_i"):
            if clock.left() < 10:
                rows.append({"N": n, "head": name, "skipped": "deadline"})
                continue
            head = build_head(name, d).to(device).eval()
            row = {"N": n, "head": name}
            with torch.no_grad():
                row["predict_s"], row["predict_mib"] = peak(
                    device, lambda: head.predict(zq, zr, yr, max_elements=max_el[name])
                )
                try:
                    row["dense_s"], row["dense_mib"] = peak(device, lambda: head(zq, zr, yr))
                except torch.OutOfMemoryError:
                    row["dense_s"] = None
                row["knn_s"], row["knn_mib"] = peak(device, lambda: knn(zq, zr, yr))
            rows.append(row)
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
    return rows, max_el


# ------------------------------------------------------------------------------------------ 4. fine-tuning
def make_data(kind: str, n: int, tmp: Path, quick: bool) -> RegressionData:
    rng = np.random.default_rng(0)
    y = rng.random(n)
    if kind == "image":
        from PIL import Image

        size = 32 if quick else 224
        files = []
        for i in range(n):
            p = tmp / f"img_{i}.png"
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p)
            files.append(str(p))
        t = ImageTransform(mode="RGB", size=size)
        return RegressionData("gen_image", "image", files, y, load=ImageFile(t), preprocessing=t.describe())
    if kind in ("audio1", "audio30"):
        import soundfile as sf

        seconds = (0.5 if kind == "audio1" else 2.0) if quick else (1.0 if kind == "audio1" else 30.0)
        files = []
        for i in range(n):
            p = tmp / f"{kind}_{i}.wav"
            sf.write(str(p), (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
            files.append(str(p))
        a = AudioFile(sample_rate=16000, seconds=seconds)
        return RegressionData(f"gen_{kind}", "audio", files, y, load=a, preprocessing=a.describe())
    words = ["the", "album", "guitar", "sound", "record", "band", "song", "melody"]
    length = 64 if quick else 512
    texts = [" ".join(rng.choice(words, size=length)) for _ in range(n)]
    return RegressionData("gen_text", "text", texts, y, preprocessing="raw")


def build_extractor(name: str, quick: bool):
    from extractors import audio, text, vision

    size = "tiny" if quick else "full"
    if name in ("resnet18", "efficientnet_b0"):
        return getattr(vision, name)(source="random", finetune=True), "image"
    if name == "distilbert":
        return text.distilbert(
            source="random", finetune=True, random_size=size, max_length=64 if quick else 512
        ), "text"
    if name == "hubert_base":
        return audio.hubert_base(source="random", finetune=True, random_size=size), "audio1"
    return audio.whisper_tiny(source="random", finetune=True, random_size=size), "audio30"


def finetune(
    device, quick: bool, workers: list[int], precisions: list[str], clock: Clock, n_items: dict, extractors=EXTRACTORS
) -> list[dict]:
    """Every extractor at (num_workers 0, float32) first; then the other precisions of the convolutional ones (what
    ``trainer.precision=auto`` rests on), then their NHWC rows; then the rest of the grid (with --quick: resnet18's only)."""
    conv = [e for e in extractors if e in ("resnet18", "efficientnet_b0")]
    cells = [(name, workers[0], precisions[0], False) for name in extractors]
    cells += [(name, workers[0], p, False) for name in conv for p in precisions[1:]]
    cells += [(name, workers[0], p, True) for name in conv for p in precisions]
    cells += [
        (name, w, p, False)
        for name in (extractors[:1] if quick else extractors)
        for w in workers
        for p in precisions
        if (name, w, p, False) not in cells
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        made: dict[str, RegressionData] = {}
        caches: dict[tuple, tuple] = {}
        for name, w, prec, nhwc in cells:
            if clock.left() < (8 if quick else 20):
                rows.append(
                    {"extractor": name, "workers": w, "precision": prec, "channels_last": nhwc, "skipped": "deadline"}
                )
                continue
            try:
                rows.append(_finetune_cell(device, quick, name, w, prec, nhwc, tmp, made, caches, n_items))
            except Exception as e:  # noqa: BLE001 - e.g. soundfile missing on the GPU machine: report it, go on
                rows.append(
                    {
                        "extractor": name,
                        "workers": w,
                        "precision": prec,
                        "channels_last": nhwc,
                        "skipped": f"error: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}",
                    }
                )
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
    return rows


def _finetune_cell(device, quick, name, w, prec, nhwc, tmp, made, caches, n_items) -> dict:
    """One fine-tuning cell: the data and its decoded-sample cache (made once per kind and workers), then 2 epochs."""
    _, kind = build_extractor(name, True)
    if kind not in made:
        made[kind] = make_data(kind, n_items[kind], tmp, quick)
    data = made[kind]
    n = len(data)
    if (kind, w) not in caches:  # the decoded-sample cache, built by w workers (decode once)
        t = time.perf_counter()
        shard = max(4, -(-n // max(2 * w, 1)))
        cache = DecodedCache(tmp / "cache" / f"{kind}-w{w}", data, shard_size=shard).build(num_workers=w)
        caches[kind, w] = (cache, n / (time.perf_counter() - t))
    cache, build = caches[kind, w]
    idx = np.random.default_rng(0).permutation(n)
    tr, va, te = idx[: int(0.7 * n)], idx[int(0.7 * n) : int(0.85 * n)], idx[int(0.85 * n) :]
    torch.manual_seed(0)
    ext, _ = build_extractor(name, quick)
    model = Regressor(ext.out_dim, 200, 25, build_head("nca_i", 25), ext)
    settings = TrainerSettings(
        max_epochs=2,
        patience=5,
        batch_size=32,
        lr=1e-3,
        device=str(device),
        precision=prec,
        max_elements=resolve_max_elements("auto", device),
        channels_last=nhwc,
    )
    res = fit(model, Inputs(data=data, cache=cache), data.labels, tr, va, te, settings, seed=0)
    times = [h["epoch_time_s"] for h in res.history]
    return {
        "extractor": name,
        "workers": w,
        "precision": prec,
        "channels_last": nhwc,
        "n_train": len(tr),
        "build_per_s": build,
        "epoch_s": times,
        "train_per_s": [len(tr) / s for s in times],
        "loop_per_s": len(tr) / res.history[-1]["train_time_s"],
    }


# ------------------------------------------------------------------------------------------ report
def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def report(meta, par, steps, ranks, prof, evals, max_el, tunes) -> str:
    """The markdown of the sections that ran (a section not run is None)."""
    out = [f"# GPU benchmark{' — CPU run (--quick)' if meta['quick'] else ''}", ""]
    if meta["device"] == "cpu":
        out += [
            "**This is a CPU run** (`python -m benchmarks.gpu --quick`, no GPU was available): the same code "
            "as the GPU benchmark at small sizes. Its numbers say the code paths work; they are not GPU "
            "timings. Run `python -m benchmarks.gpu --write` on a CUDA machine and commit its output.",
            "",
        ]
    out += [
        f"Device: {meta['device_name']}; torch {torch.__version__}; {meta['cores']} CPU cores; "
        f"took {meta['seconds']:.0f} s (deadline {meta['deadline']:.0f} s); `{meta['command']}`.",
        "",
    ]
    if par is not None:
        out += [
            "## 1. Parity (float64, device vs CPU)",
            "",
            f"B = {meta['parity_n']}, d = 8: the largest absolute difference of outputs and gradients (input and parameters)."
            + (" The device is the CPU here: a self-check only." if meta["device"] == "cpu" else ""),
            "",
            "| head | max abs diff |",
            "|---|---|",
        ]
        out += [f"| {r['head']} | {r['max_abs_diff']:.1e} |" for r in par] + [""]
    if steps is not None:
        out += _steps_report(meta, steps, ranks, prof)
    if evals is not None:
        out += [
            "## 3. Evaluation (predict vs dense vs exact hard k-NN)",
            "",
            f"Q = {meta['q']} queries, d = {meta['d']}; `predict` with `trainer.max_elements=auto` = "
            + ", ".join(f"{v:,} ({k})" for k, v in max_el.items())
            + " entries per block on this device; dense = `head(zq, zr, yr)` in eval mode; k-NN = `torch.cdist` + `topk` (k = 10). "
            "Seconds: median of 3 after a warm-up run of the same shapes. Peak MiB: extra memory allocated (CUDA only).",
            "",
            "| N | head | predict s | dense s | k-NN s | predict / dense | predict MiB | dense MiB | k-NN MiB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in evals:
            if "skipped" in r:
                out.append(f"| {r['N']:.0e} | {r['head']} | skipped ({r['skipped']}) | | | | | | |")
                continue
            ratio = r["predict_s"] / r["dense_s"] if r.get("dense_s") else None
            out.append(
                f"| {r['N']:.0e} | {r['head']} | {r['predict_s']:.4f} | {fmt(r.get('dense_s'))} | {r['knn_s']:.4f} | {fmt(ratio)} "
                f"| {fmt(r.get('predict_mib'))} | {fmt(r.get('dense_mib'))} | {fmt(r.get('knn_mib'))} |"
            )
        out.append("")
    if tunes is not None:
        out += _tunes_report(meta, tunes)
    return "\n".join(out)


def _steps_report(meta, steps, ranks, prof) -> list[str]:
    out = [
        "## 2. Training step (MLP(200) + head, Adam)",
        "",
        f"Median ms per step over {meta['reps']} steps; x = B × 64 inputs. Compiled: `torch.compile(backend="
        f"{meta['compile_backend']!r})`"
        + (
            " (eager-graph backend on the CPU: dynamo and AOTAutograd without "
            "inductor's C++ build, which takes minutes here)"
            if meta["compile_backend"] == "aot_eager"
            else ""
        )
        + "; compile_s is the first call.",
        "",
        "ops: the ATen operators one eager step dispatches (forward, backward and Adam; views left out: "
        "`python -m benchmarks.ops`), each a kernel launch on a GPU.",
        "",
        "| B | head | ops | eager ms | × linear | compiled ms | × linear (compiled) | compile s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lin = {(r["B"]): r for r in steps if r["head"] == "linear" and "eager_ms" in r}
    for r in steps:
        if "skipped" in r:
            out.append(f"| {r['B']} | {r['head']} | | skipped ({r['skipped']}) | | | | |")
            continue
        base = lin.get(r["B"], {})
        ratio = r["eager_ms"] / base["eager_ms"] if base else None
        cr = r["compiled_ms"] / base["compiled_ms"] if "compiled_ms" in r and "compiled_ms" in base else None
        out.append(
            f"| {r['B']} | {r['head']} | {r.get('ops', '')} | {r['eager_ms']:.2f} | {fmt(ratio)} | {fmt(r.get('compiled_ms'))} | {fmt(cr)} "
            f"| {fmt(r.get('compile_s'))} |"
        )
    if ranks:
        out += [
            "",
            "Soft ranks (DiffKNN's line 12) alone: forward + backward of a B × B float64 matrix, median ms; "
            "torchsort.soft_rank against `softstep.ranks.soft_rank` with each isotonic kernel "
            "(`softstep.ranks.ISOTONIC`: torchsort's, fed column-major on CUDA; softstep.isotonic's Triton kernel, "
            "each row pooled in parallel rounds, CUDA only). Then the eager training step of nca and of diffknn_i "
            "with each kernel.",
            "",
            "| B | torchsort ms | softstep, torchsort kernel ms | softstep, Triton kernel ms | nca step ms "
            "| diffknn_i step, torchsort kernel | Triton kernel | diffknn_i / nca (torchsort kernel) | (Triton kernel) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in ranks:
            if "skipped" in r:
                out.append(f"| {r['B']} | skipped ({r['skipped']}) | | | | | | | |")
                continue
            tri = r.get("diffknn_triton_ms")
            out.append(
                f"| {r['B']} | {r['torchsort_ms']:.2f} | {r['softstep_torchsort_ms']:.2f} | {fmt(r.get('softstep_triton_ms'))} "
                f"| {r['nca_ms']:.2f} | {r['diffknn_torchsort_ms']:.2f} | {fmt(tri)} "
                f"| {r['diffknn_torchsort_ms'] / r['nca_ms']:.2f} | {fmt(tri / r['nca_ms'] if tri else None)} |"
            )
    if prof:
        out += [
            "",
            f"DiffKNN (diffknn_i) step at B = {meta['profile_b']}, top operators by self time:",
            "",
            "```",
            prof.strip(),
            "```",
        ]
    return out + [""]


def _tunes_report(meta, tunes) -> list[str]:
    out = [
        "## 4. Fine-tuning throughput (end to end)",
        "",
        f"Random weights ({'tiny configs, 32² images, short clips and texts' if meta['quick'] else 'real architecture sizes, 224² images, 1-s / 30-s clips, 512-token texts'}), "
        "generated files, head nca_i, B = 32, 2 epochs of `fit` (training plus the evaluation embedding of the "
        "training and validation splits). `num_workers`: the decoded-sample cache build (decode once); epochs then "
        "read the cache. NHWC: `TrainerSettings(channels_last=True)`. Training items per second of each epoch, end to end; "
        "the last column counts the training loop alone (`train_time_s`) in epoch 2.",
        "",
        "| extractor | num_workers | precision | NHWC | n train | cache build items/s | epoch 1 items/s | epoch 2 items/s | epoch 2 training loop items/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in tunes:
        lead = f"| {r['extractor']} | {r.get('workers', '')} | {r.get('precision', '')} | {'yes' if r.get('channels_last') else 'no'}"
        if "skipped" in r:
            out.append(f"{lead} | skipped ({r['skipped']}) | | | | |")
            continue
        tp = r["train_per_s"]
        out.append(
            f"{lead} | {r['n_train']} | {r['build_per_s']:.1f} | {tp[0]:.1f} | {tp[-1]:.1f} | {fmt(r.get('loop_per_s'), 4)} |"
        )
    rates = {}
    for r in tunes:
        if "train_per_s" in r and r["precision"] == "32":
            rates[r["extractor"]] = max(rates.get(r["extractor"], 0.0), r["train_per_s"][-1])
    return out + [
        "",
        "<!-- throughput: "
        + json.dumps(
            {
                "device": meta["device"],
                "quick": meta["quick"],
                "train_items_per_s": {k: round(v, 2) for k, v in rates.items()},
            }
        )
        + " -->",
        "",
    ]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes on the CPU, under 2 minutes")
    p.add_argument("--device", default=None, help="default: cuda when available (cpu with --quick)")
    p.add_argument("--deadline", type=float, default=None, help="seconds (default 280, or 90 with --quick)")
    _output.add_arguments(p, "gpu")
    p.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)} (default: all)"
    )
    p.add_argument(
        "--no-compile", action="store_true", help="training steps eager only (compiling each head takes 5-20 s)"
    )
    p.add_argument("--extractors", default=",".join(EXTRACTORS), help="comma-separated, for the fine-tuning section")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    bad = set(args.sections.split(",")) - set(SECTIONS) or set(args.extractors.split(",")) - set(EXTRACTORS)
    if bad:
        p.error(f"unknown section or extractor: {', '.join(sorted(bad))}")
    start = time.monotonic()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.quick else "cpu"))
    clock = Clock(args.deadline or (90.0 if args.quick else 280.0))
    quick = args.quick
    meta = {
        "quick": quick,
        "device": device.type,
        "cores": os.cpu_count(),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()})",
        "parity_n": 16 if quick else 64,
        "reps": 10 if quick else 30,
        "q": 200 if quick else 1000,
        "d": 100,
        "deadline": clock.left(),
        "profile_b": 32 if quick else 1024,
        "compile_backend": "aot_eager" if device.type == "cpu" else "inductor",
        "command": " ".join(["python -m benchmarks.gpu"] + (argv if argv is not None else sys.argv[1:])),
    }

    def log(msg):
        print(f"[{time.monotonic() - start:6.1f}s] {msg}", flush=True)

    log(f"device {meta['device_name']}")
    run = set(args.sections.split(","))
    par = steps = ranks = evals = tunes = None
    prof, max_el = "", None
    if "parity" in run:
        par = parity(device, meta["parity_n"], 8)
        log("parity done")
    batches = [32] if quick else [32, 128, 1024]
    if "steps" in run:
        compile_heads = clock.left() > 60 and not args.no_compile
        steps = train_steps(
            device,
            batches,
            meta["reps"],
            Clock(min(clock.left() * (0.2 if quick else 0.35), 90.0)),
            meta["compile_backend"] if compile_heads else None,
            10.0 if quick else 20.0,
        )
        log("training steps done")
    if "ranks" in run:
        steps = steps if steps is not None else []
        ranks = soft_rank_variants(device, batches, meta["reps"], Clock(min(clock.left() * 0.15, 30.0)))
        log("soft ranks done")
    if "profile" in run and clock.left() > 30:
        steps = steps if steps is not None else []
        try:
            prof = profile_diffknn(device, meta["profile_b"])
        except Exception as e:  # noqa: BLE001 - the profiler needs CUPTI on a GPU; its absence is not fatal
            prof = f"profiler failed: {type(e).__name__}: {e}"
    if "eval" in run:
        ns = [1000, 4000] if quick else [10_000, 100_000, 1_000_000]
        evals, max_el = evaluation(
            device, ns, meta["q"], meta["d"], Clock(min(clock.left() * (0.2 if quick else 0.4), 100.0))
        )
        log("evaluation done")
    if "finetune" in run:
        n_items = (
            {"image": 24, "audio1": 16, "audio30": 8, "text": 24}
            if quick
            else {"image": 1024, "audio1": 512, "audio30": 128, "text": 512}
        )
        workers = [0, 2] if quick else [0, max(1, min(8, (os.cpu_count() or 2) - 1))]
        tunes = finetune(device, quick, workers, ["32", "bf16"], clock, n_items, tuple(args.extractors.split(",")))
        log("fine-tuning done")
    meta["seconds"] = time.monotonic() - start
    text = report(meta, par, steps, ranks, prof, evals, max_el, tunes)
    print(text)
    _output.write(args, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
