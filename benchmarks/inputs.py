"""The input pipeline alone (decode, transform, collate; no model), on this machine's CPU → results/benchmarks/inputs.md.

    python -m benchmarks.inputs [--write | --out PATH] [--n-images 16] [--n-clips 4]

(default output results/benchmarks/scratch/inputs.md, git-ignored; --write: the committed results/benchmarks/inputs.md)

Three inputs, as the paper's datasets have them:

- image: a 1,500 × 2,000 grey PNG (RSNA's size) → grey 224², mean/std 0.5;
- audio: a 30-s 44.1 kHz WAV → mono 16 kHz, noisereduce, one 30-s window (NoseMic → Whisper);
- text: a 512-token review (the string, then the extractor's tokenisation, memoised per text).

For each and for ``num_workers`` 0 and 2: samples/s of the first epoch and of later epochs (the mean of
three), with the decoded-sample cache (the first epoch builds it, later ones read it) and without it
(every epoch decodes again, through one persistent DataLoader). Goal: later / first ≥ 20× for images,
≥ 100× for denoised audio.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import _output
from data.base import RegressionData
from data.media import AudioFile, ImageFile, ImageTransform
from experiments.inputs.batches import DecodedCache, Inputs

GOALS = {"image": 20.0, "audio": 100.0}  # the goals (later epochs / first epoch); text has none
BATCH = 32
LATER = 3


def make_image(path: Path, seed: int) -> None:
    """A 1,500 × 2,000 grey PNG with X-ray-like structure (smooth shapes plus noise), about RSNA's size."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:2000, 0:1500].astype(np.float32)
    img = 90 + 60 * np.sin(xx / (80 + seed)) * np.cos(yy / 120) + rng.normal(0, 12, (2000, 1500))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L").save(path)


def make_clip(path: Path, seed: int) -> None:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    sr = 44100
    t = np.arange(30 * sr) / sr
    wave = 0.2 * np.sin(2 * np.pi * (1.1 + 0.1 * seed) * t) * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(
        len(t)
    )
    sf.write(str(path), wave.astype(np.float32), sr)


def make_text(seed: int) -> str:
    rng = np.random.default_rng(seed)
    words = ["the", "album", "guitar", "sound", "record", "band", "song", "melody", "drums", "voice", "late", "night"]
    return " ".join(rng.choice(words, size=512))


def datasets(tmp: Path, n_images: int, n_clips: int, n_texts: int) -> dict[str, RegressionData]:
    imgs = []
    for i in range(n_images):
        p = tmp / f"img_{i}.png"
        make_image(p, i)
        imgs.append(str(p))
    clips = []
    for i in range(n_clips):
        p = tmp / f"clip_{i}.wav"
        make_clip(p, i)
        clips.append(str(p))
    image = ImageTransform(mode="L", size=224, mean=(0.5,), std=(0.5,))
    audio = AudioFile(sample_rate=16000, seconds=30.0, window="first", denoise=True)
    texts = [make_text(i) for i in range(n_texts)]
    return {
        "image": RegressionData(
            "bench_image",
            "image",
            imgs,
            np.arange(n_images, dtype=float),
            load=ImageFile(image),
            preprocessing=image.describe(),
        ),
        "audio": RegressionData(
            "bench_audio", "audio", clips, np.arange(n_clips, dtype=float), load=audio, preprocessing=audio.describe()
        ),
        "text": RegressionData("bench_text", "text", texts, np.arange(n_texts, dtype=float), preprocessing="raw"),
    }


def epoch(inputs: Inputs, n: int, post=None) -> float:
    """Seconds for one pass over all items in batches of BATCH (a fresh order each time); ``post`` each batch."""
    order = np.random.default_rng(int(time.time() * 1e6) % 2**32).permutation(n)
    t = time.perf_counter()
    for x in inputs.batches(order, BATCH, "cpu"):
        if post is not None:
            post(x)
    return time.perf_counter() - t


def text_encoder():
    """The text extractor's tokenisation (BERT WordPiece, max_length 512), memoised per text, and a reset of the memo."""
    from extractors import text as T

    enc = T.hf_text("distilbert", "random", max_length=512)
    return enc.encode, T._TOKENS.clear


def measure(data: RegressionData, workers: int, cache_root: Path) -> dict:
    n = len(data)
    data.load(data.items[0])  # warm up: lazy imports (torchvision, noisereduce) are not the pipeline's cost
    post, reset = text_encoder() if data.modality == "text" else (None, lambda: None)
    reset()
    # with the decoded-sample cache: the first epoch builds it (decodes every item once), later epochs read it
    t = time.perf_counter()
    cache = DecodedCache(cache_root / f"w{workers}", data, shard_size=max(1, -(-n // max(workers, 1)))).build(
        num_workers=workers
    )
    inputs = Inputs(data=data, cache=cache)
    first = time.perf_counter() - t + epoch(inputs, n, post)
    later = float(np.mean([epoch(inputs, n, post) for _ in range(LATER)]))
    # without it: one persistent DataLoader decodes (and tokenises) every epoch (the first also starts the workers)
    plain = Inputs(data=data, num_workers=workers)
    reset()
    plain_first = epoch(plain, n, post)
    reset()
    plain_later = epoch(plain, n, post)
    return {
        "n": n,
        "workers": workers,
        "decodes": cache.decodes,
        "first": n / first,
        "later": n / later,
        "plain_first": n / plain_first,
        "plain_later": n / plain_later,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| input | num_workers | items | first epoch (builds cache) /s | later epochs (cache) /s | later / first "
        "| goal | no cache: first /s | no cache: later /s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["later"] / r["first"]
        goal = GOALS.get(r["input"])
        verdict = "" if goal is None else (f"≥ {goal:g}× {'met' if ratio >= goal else 'NOT met'}")
        lines.append(
            f"| {r['input']} | {r['workers']} | {r['n']} | {r['first']:,.1f} | {r['later']:,.0f} | {ratio:,.0f}× "
            f"| {verdict} | {r['plain_first']:,.1f} | {r['plain_later']:,.1f} |"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _output.add_arguments(p, "inputs")
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument("--n-clips", type=int, default=4)
    p.add_argument("--n-texts", type=int, default=256)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = datasets(tmp, args.n_images, args.n_clips, args.n_texts)
        for name, d in data.items():
            for w in args.workers:
                r = measure(d, w, tmp / "cache" / name)
                r["input"] = name
                rows.append(r)
                print(
                    f"{name} workers={w}: first {r['first']:.2f}/s, later {r['later']:.0f}/s "
                    f"({r['later'] / r['first']:.0f}x), no cache {r['plain_first']:.2f}/{r['plain_later']:.2f}/s",
                    flush=True,
                )
    head = (
        f"# Input pipeline throughput (CPU)\n\n"
        f"`python -m benchmarks.inputs` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores (shared with other work), torch {torch.__version__}, one thread per process. "
        f"Samples/s of decode, transform and collate only (no model), batches of {BATCH}. "
        "*First epoch* builds the decoded-sample cache (every item decoded once, by `num_workers` workers) and "
        f"reads one epoch from it; *later epochs* read it (mean of {LATER}). *No cache* (`trainer.decoded_cache=false`): "
        "one persistent DataLoader decodes every epoch again. Inputs: a 1,500 × 2,000 grey PNG → grey 224² "
        "(RSNA); a 30-s 44.1 kHz WAV → 16 kHz, noisereduce, one 30-s window (NoseMic → Whisper); a 512-token "
        "text (the string, then the text extractor's tokenisation, BERT WordPiece at max_length 512, which "
        "the extractor memoises per text; *no cache* tokenises every epoch).\n\n"
    )
    text = head + table(rows) + "\n"
    print(text)
    _output.write(args, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
