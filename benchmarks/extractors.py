"""Extraction throughput per extractor on the CPU → results/benchmarks/extractors.md.

    python -m benchmarks.extractors                      # every extractor, tiny and real-size → results/benchmarks/scratch/extractors.md
    python -m benchmarks.extractors --write              # the same, written to the committed results/benchmarks/extractors.md
    python -m benchmarks.extractors --sizes tiny --only distilbert hubert_base --out /tmp/x.md

The extractors are those of ``configs/extractor/*.yaml``, each built as a run builds it: the config
composed with ``extractor=<name>``, then ``extractor.builder`` instantiated. Weights are random
(``source=random``): the cost of a forward pass depends on the architecture, not on the weight
values; an extractor whose weights ship in a package (``source: package``, MiniLM) runs those.
``full`` is the real architecture (torchvision models as they are; transformers from their real
config values), ``tiny`` the test-sized one (the configs' ``random_size: tiny``); an extractor
without ``random_size`` has only ``full``. Frozen extraction: eval mode, ``torch.no_grad()``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from benchmarks import _output
from experiments.protocol.compose import CONFIGS, compose, hydra_context

TABLE_FEATURES = 16
WORDS = "the quick brown fox jumps over a lazy dog while music plays softly".split()


def _texts(n: int, g: torch.Generator, tokens: int) -> list[str]:
    # the random models' tokenizer splits words into characters: enough words to fill `tokens`
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(tokens)) for i in range(n)]


#: the sample input of each modality: (a batch of n from a seeded generator, what one sample is)
SAMPLES = {
    "image": (lambda n, g, tokens: torch.randn(n, 3, 224, 224, generator=g), "RGB 224×224 image"),
    "text": (_texts, "text of {tokens} tokens"),
    "audio": (lambda n, g, tokens: 0.1 * torch.randn(n, 16000, generator=g), "1 s of 16 kHz audio"),
    "table": (lambda n, g, tokens: torch.randn(n, TABLE_FEATURES, generator=g), f"{TABLE_FEATURES} numeric features"),
}
#: extractors whose paper dataset gives them another input than their modality's
PAPER_SAMPLES = {
    "resnet18": (lambda n, g, tokens: torch.randn(n, 1, 224, 224, generator=g), "grey 224×224 image (RSNA)"),
    "whisper_tiny": (
        lambda n, g, tokens: 0.1 * torch.randn(n, 30 * 16000, generator=g),
        "30 s of 16 kHz audio (NoseMic)",
    ),
}


def extractor_configs() -> dict[str, DictConfig]:
    """``configs/extractor/*.yaml`` by name, ordered by modality (as in :data:`SAMPLES`), then name."""
    cfgs = [OmegaConf.load(p) for p in (CONFIGS / "extractor").glob("*.yaml")]
    unknown = sorted({c.name: c.modality for c in cfgs if c.modality not in SAMPLES}.items())
    if unknown:
        raise ValueError(f"no sample input for extractor(s) {unknown}; add the modality to SAMPLES")
    return {c.name: c for c in sorted(cfgs, key=lambda c: (list(SAMPLES).index(c.modality), c.name))}


def sizes_of(cfg: DictConfig) -> tuple[str, ...]:
    """``tiny`` and ``full`` where the config has ``random_size``, else only ``full``."""
    return ("tiny", "full") if "random_size" in cfg.builder else ("full",)


def sample(name: str, modality: str, n: int, tokens: int = 128):
    """(a batch of ``n`` inputs for extractor ``name``, what one input is)."""
    make, what = PAPER_SAMPLES.get(name) or SAMPLES[modality]
    return make(n, torch.Generator().manual_seed(0), tokens), what.format(tokens=tokens)


def build(cfg: DictConfig, size: str, tokens: int):
    """The frozen extractor of config ``cfg`` at ``size``, through the composed config as a run builds it."""
    b, overrides = cfg.builder, [f"extractor={cfg.name}"]
    if "source" in b and b.source != "package":
        overrides.append("extractor.builder.source=random")
    if "random_size" in b:
        overrides.append(f"extractor.builder.random_size={size}")
    if "max_length" in b:
        overrides.append(f"extractor.builder.max_length={tokens}")
    composed = compose(overrides).extractor
    in_dim = TABLE_FEATURES if composed.modality == "table" else None
    return instantiate(composed.builder, finetune=False, in_dim=in_dim).eval()


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
def measure(
    cfg: DictConfig,
    size: str,
    *,
    batch_size: int = 32,
    tokens: int = 128,
    min_seconds: float = 2.0,
    max_batches: int = 5,
) -> Row:
    ext = build(cfg, size, tokens)
    batch, what = sample(cfg.name, cfg.modality, batch_size, tokens)
    ext(sample(cfg.name, cfg.modality, 2, tokens)[0])  # warm-up
    times, t0 = [], time.perf_counter()
    while True:  # the fastest of several batches: like timeit, least disturbed by other load on the machine
        t = time.perf_counter()
        ext(batch)
        times.append(time.perf_counter() - t)
        if time.perf_counter() - t0 >= min_seconds or len(times) >= max_batches:
            break
    params = sum(p.numel() for p in ext.parameters()) / 1e6
    return Row(cfg.name, size, params, ext.out_dim, what, batch_size / min(times), len(times))


def run(
    names=None, sizes=("tiny", "full"), *, batch_size: int = 32, tokens: int = 128, min_seconds: float = 2.0, log=print
) -> list[Row]:
    """Time each extractor in ``names`` (default: every config) at each of ``sizes`` it has."""
    cfgs = extractor_configs()
    rows = []
    with hydra_context():
        for name in names or cfgs:
            for size in (s for s in sizes if s in sizes_of(cfgs[name])):
                r = measure(cfgs[name], size, batch_size=batch_size, tokens=tokens, min_seconds=min_seconds)
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
        f"Written by `python -m benchmarks.extractors` in {seconds:.0f} s. Frozen extraction (`torch.no_grad()`, eval mode), "
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
        lines.append(
            f"| {r.extractor} | {r.size} | {r.params_m:.2f} | {r.out_dim} | {r.sample} | {r.samples_per_s:.1f} |"
        )
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(extractor_configs()), help="extractors to time (default: all)")
    p.add_argument("--sizes", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tokens", type=int, default=128, help="text length in tokens")
    p.add_argument("--min-seconds", type=float, default=2.0, help="time at least this long per extractor")
    _output.add_arguments(p, "extractors")
    return p


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    t0 = time.perf_counter()
    rows = run(a.only, a.sizes, batch_size=a.batch_size, tokens=a.tokens, min_seconds=a.min_seconds)
    text = to_markdown(rows, batch_size=a.batch_size, tokens=a.tokens, seconds=time.perf_counter() - t0)
    print()
    _output.write(a, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
