#!/usr/bin/env python
"""Extraction throughput per extractor on the CPU → results/benchmarks/extractors.md.

    python scripts/benchmark_extractors.py                      # every extractor, tiny and real-size
    python scripts/benchmark_extractors.py --sizes tiny --only distilbert hubert_base --out /tmp/x.md
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extractors.benchmark import SPECS, run, to_markdown  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(SPECS), help="extractors to time (default: all)")
    p.add_argument("--sizes", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tokens", type=int, default=128, help="text length in tokens")
    p.add_argument("--min-seconds", type=float, default=2.0, help="time at least this long per extractor")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "extractors.md")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(a.only, a.sizes, batch_size=a.batch_size, tokens=a.tokens, min_seconds=a.min_seconds)
    text = to_markdown(rows, batch_size=a.batch_size, tokens=a.tokens, seconds=time.perf_counter() - t0)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text)
    print(f"\nwrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
