"""Time the README's commands on this machine → results/benchmarks/pipeline.md.

    python -m benchmarks.pipeline [--splits 10] [--write | --out PATH]

(default output results/benchmarks/scratch/pipeline.md, git-ignored; --write: the committed results/benchmarks/pipeline.md)

1. `python run.py` (vader + MiniLM + nca_i, 10 splits), cold (no feature cache) and warm.
2. The six-head demo sweep, `python run.py -m experiment=demo` (warm cache).
Then, from the result files, where the time goes: per head, seconds per split, epochs per split
and seconds per epoch. Goals (issue): single run < 2 min, six-head demo < 10 min, on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _output
from experiments.store.results import read_results
from softstep import HEADS

ROOT = Path(__file__).resolve().parents[1]


def timed(args: list[str], env=None) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "run.py", *args, "progress=false"],
        cwd=ROOT,
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", type=int, default=10)
    _output.add_arguments(ap, "pipeline")
    return ap


def main(argv=None) -> None:
    a = parser().parse_args(argv)
    splits = f"splits=[{','.join(map(str, range(a.splits)))}]"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        single = [splits, f"paths.results_root={tmp}/single", f"hydra.run.dir={tmp}/h1"]
        cold = timed(single, env)
        warm = timed([*single, "force=true"], env)
        demo_root = f"{tmp}/demo"
        # share the single run's feature cache so the demo measures warm training only
        demo = timed(
            [
                "-m",
                "experiment=demo",
                splits,
                f"paths.results_root={demo_root}",
                f"paths.cache_dir={tmp}/single/cache",
                f"hydra.sweep.dir={tmp}/h2",
            ],
            env,
        )
        rows = []
        for head in HEADS:
            res = [r for r in read_results(demo_root) if r["head"] == head]
            secs = sum(r["wall_time_s"] for r in res)
            epochs = sum(r["epochs_run"] for r in res)
            mse = sum(r["metrics"]["test_mse_x1e3"] for r in res) / max(1, len(res))
            rows.append(
                f"| {head} | {len(res)} | {secs:.0f} | {secs / max(1, len(res)):.1f} | "
                f"{epochs / max(1, len(res)):.1f} | {secs / max(1, epochs):.2f} | {mse:.3g} |"
            )
    lines = [
        "# Pipeline benchmark",
        "",
        f"{datetime.date.today()}, {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}; `python -m benchmarks.pipeline --splits {a.splits}`.",
        "",
        "| command | seconds | goal |",
        "| --- | ---: | --- |",
        f"| `python run.py` ({a.splits} splits), cold: no feature cache | {cold:.0f} | < 120 |",
        f"| `python run.py` ({a.splits} splits), warm: cached features | {warm:.0f} | < 120 |",
        f"| six-head demo, `python run.py -m experiment=demo` (warm) | {demo:.0f} | < 600 |",
        "",
        "Where the demo's time goes (from the result files' `wall_time_s`, training and evaluation of each split):",
        "",
        "| head | splits | seconds | s / split | epochs / split | s / epoch | test MSE × 10³ |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "The rest of each command is start-up (imports, Hydra) and, cold, one MiniLM pass over the 7,520 tokens.",
    ]
    print("\n".join(lines))
    _output.write(a, "\n".join(lines) + "\n")
    print(json.dumps({"cold_s": cold, "warm_s": warm, "demo_s": demo}))


if __name__ == "__main__":
    main()
