"""Extraction throughput of each extractor on the CPU (frozen, no_grad), tiny and real-size.

Weights are random (``source=random``): the cost of a forward pass depends on the architecture,
not on the weight values. ``full`` builds the real architectures (torchvision models as they
are; transformers from their real config values: DistilBertConfig(), BertConfig(),
HubertConfig(), Whisper-tiny's sizes); ``tiny`` builds the test-sized ones (torchvision has no
tiny variant, so it is absent there). ``scripts/benchmark_extractors.py`` writes the table.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from typing import Callable

import torch

#: extractor → (builder path, input kind, what one sample is)
SPECS = {
    "resnet18": ("extractors.vision.resnet18", "gray224", "grey 224×224 image (RSNA)"),
    "resnet34": ("extractors.vision.resnet34", "rgb224", "RGB 224×224 image (Houses)"),
    "efficientnet_b0": ("extractors.vision.efficientnet_b0", "rgb224", "RGB 224×224 image (MedSegBench, Udacity)"),
    "distilbert": ("extractors.text.distilbert", "text", "text of {tokens} tokens"),
    "bert_base": ("extractors.text.bert_base", "text", "text of {tokens} tokens"),
    "minilm": ("extractors.text.minilm", "text", "text of {tokens} tokens"),
    "hubert_base": ("extractors.audio.hubert_base", "audio1", "1 s of 16 kHz audio (CoughVid)"),
    "whisper_tiny": ("extractors.audio.whisper_tiny", "audio30", "30 s of 16 kHz audio (NoseMic)"),
}
VISION = ("resnet18", "resnet34", "efficientnet_b0")


def _builder(path: str) -> Callable:
    mod, fn = path.rsplit(".", 1)
    return getattr(__import__(mod, fromlist=[fn]), fn)


def make_batch(kind: str, n: int, tokens: int = 128):
    g = torch.Generator().manual_seed(0)
    if kind == "gray224":
        return torch.randn(n, 1, 224, 224, generator=g)
    if kind == "rgb224":
        return torch.randn(n, 3, 224, 224, generator=g)
    if kind == "audio1":
        return 0.1 * torch.randn(n, 16000, generator=g)
    if kind == "audio30":
        return 0.1 * torch.randn(n, 30 * 16000, generator=g)
    words = "the quick brown fox jumps over a lazy dog while music plays softly".split()
    # the random models' tokenizer splits words into characters: enough words to fill `tokens`
    return [" ".join(words[(i + j) % len(words)] for j in range(tokens)) for i in range(n)]


@dataclass
class Row:
    extractor: str
    size: str
    params_m: float
    out_dim: int
    sample: str
    samples_per_s: float
    batches: int


@torch.no_grad()
def measure(name: str, size: str, *, batch_size: int = 32, tokens: int = 128, min_seconds: float = 2.0,
            max_batches: int = 5) -> Row:
    path, kind, sample = SPECS[name]
    kw = dict(source="random", finetune=False)
    if name not in VISION:
        kw |= dict(random_size=size, max_length=tokens)
    if name == "minilm":  # its real weights ship in a pip package: time those
        kw = dict(source="package", finetune=False, max_length=tokens)
    ext = _builder(path)(**kw).eval()
    batch = make_batch(kind, batch_size, tokens)
    ext(make_batch(kind, 2, tokens))  # warm-up
    times, t0 = [], time.perf_counter()
    while True:  # the fastest of several batches: like timeit, least disturbed by other load on the machine
        t = time.perf_counter()
        ext(batch)
        times.append(time.perf_counter() - t)
        if time.perf_counter() - t0 >= min_seconds or len(times) >= max_batches:
            break
    params = sum(p.numel() for p in ext.parameters()) / 1e6
    return Row(name, size, params, ext.out_dim, sample.format(tokens=tokens), batch_size / min(times), len(times))


def run(names=None, sizes=("tiny", "full"), *, batch_size: int = 32, tokens: int = 128, min_seconds: float = 2.0,
        log=print) -> list[Row]:
    rows = []
    for name in names or SPECS:
        for size in sizes:
            if name in VISION and size == "tiny":
                continue
            if name == "minilm" and size == "tiny":
                continue  # MiniLM is timed with its real, packaged weights (size "full")
            r = measure(name, size, batch_size=batch_size, tokens=tokens, min_seconds=min_seconds)
            log(f"{r.extractor:16s} {r.size:5s} {r.params_m:8.2f}M params  {r.samples_per_s:9.1f} samples/s")
            rows.append(r)
    return rows


def to_markdown(rows: list[Row], *, batch_size: int, tokens: int, seconds: float, load: float | None = None) -> str:
    cpu = platform.processor() or platform.machine()
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Extractor throughput (CPU, frozen)",
        "",
        f"Written by `scripts/benchmark_extractors.py` in {seconds:.0f} s. Frozen extraction (`torch.no_grad()`, eval mode), "
        f"batch {batch_size} (samples/s of the fastest of up to 5 batches), random weights (cost does not depend on the weights), {torch.get_num_threads()} CPU threads "
        f"({cpu}; torch {torch.__version__}). `full` = the real architecture, `tiny` = the test-sized model "
        f"(the configs' `random_size: tiny`); MiniLM runs its real packaged weights. Text: inputs truncated at {tokens} tokens (appendix B runs use up to 512). "
        "Whisper includes the log-mel feature extraction; HuBERT the per-clip normalisation. "
        f"Load average when written: {load:.1f} on {os.cpu_count()} cores (a shared machine gives lower, noisier numbers).",
        "",
        "| extractor | size | params (M) | out dim | one sample | samples/s |",
        "| --- | --- | ---: | ---: | --- | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r.extractor} | {r.size} | {r.params_m:.2f} | {r.out_dim} | {r.sample} | {r.samples_per_s:.1f} |")
    return "\n".join(lines) + "\n"
