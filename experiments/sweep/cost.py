"""What the rest of a sweep costs: GPU hours of the jobs that have no result yet.

Per (dataset, head), a remaining job is estimated as (seconds per epoch) × (epochs per job):

- **measured**: from the finished result files of the same dataset and head (``history[].epoch_time_s``,
  or ``wall_time_s / epochs_run`` for files written before epoch times were recorded, and ``epochs_run``);
  else of the same dataset with any head (the extractor and the data set the pace, not the head);
- **benchmark**: when nothing of the dataset has finished, from ``results/benchmarks/gpu.md``'s
  (and, for extractors it lacks, its ``gpu_*.md`` siblings') fine-tuning throughput of the job's extractor (training items per second of an epoch) and the
  dataset's size (its loader is run to count the items; 68 % of them train); epochs per job from the
  finished jobs of other datasets, else ``trainer.max_epochs`` (an upper bound);
- **unknown**: neither (the data is not there, or the benchmark has no such extractor).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from experiments.store.results import ResultError, read_result
from experiments.sweep.jobs import REPO, Job

GPU_MD = REPO / "results" / "benchmarks" / "gpu.md"
THROUGHPUT = re.compile(r"<!-- throughput: (\{.*\}) -->")
TRAIN_FRACTION = 0.8 * 0.85  # 80/20 development/test, then 85/15 train/validation


@dataclass
class CellCost:
    dataset: str
    head: str
    extractor: str
    remaining: int = 0
    epoch_s: float | None = None
    epochs: float | None = None
    source: str = "unknown"

    @property
    def hours(self) -> float | None:
        if self.epoch_s is None or self.epochs is None:
            return None
        return self.remaining * self.epoch_s * self.epochs / 3600


@dataclass
class Estimate:
    cells: list[CellCost] = field(default_factory=list)
    devices: set = field(default_factory=set)  # where the measured jobs ran (cuda, cpu)
    benchmark: dict | None = None  # the parsed throughput line of gpu.md, when it was used

    @property
    def hours(self) -> float:
        return sum(c.hours or 0.0 for c in self.cells)


def _measured(result: dict) -> tuple[float, int] | None:
    """(seconds per epoch, epochs run) of one finished result file."""
    epochs = int(result.get("epochs_run") or 0)
    times = [h["epoch_time_s"] for h in result.get("history", []) if isinstance(h, dict) and "epoch_time_s" in h]
    if times:
        return mean(times), epochs
    wall = result.get("wall_time_s")
    if wall and epochs:
        return float(wall) / epochs, epochs
    return None


def read_benchmark(path: Path = GPU_MD) -> dict | None:
    """The throughput line of a gpu.md (None when it is absent), with the rates of extractors it lacks
    taken from its sibling ``gpu_*.md`` files of the same device (a partial rerun beside a full run)."""

    def line(p: Path) -> dict | None:
        try:
            m = THROUGHPUT.search(Path(p).read_text())
        except OSError:
            return None
        return json.loads(m.group(1)) if m else None

    bench = line(path)
    if bench is None:
        return None
    for other in sorted(Path(path).parent.glob("gpu_*.md")):
        more = line(other)
        if more and more.get("device") == bench.get("device") and more.get("quick") == bench.get("quick"):
            rates = bench.setdefault("train_items_per_s", {})
            for name, rate in (more.get("train_items_per_s") or {}).items():
                rates.setdefault(name, rate)
    return bench


def _dataset_items(job: Job) -> int | None:
    """How many items the job's dataset has (its loader run once); None when the data is not there."""
    from experiments.protocol.compose import compose
    from experiments.protocol.setup import load_data

    try:
        return len(load_data(compose(shlex.split(job.line))))
    except Exception:  # noqa: BLE001 - missing data, a bad path: no estimate
        return None


def _max_epochs(job: Job) -> int | None:
    from experiments.protocol.compose import compose

    try:
        return int(compose(shlex.split(job.line)).trainer.max_epochs)
    except Exception:  # noqa: BLE001
        return None


def estimate(jobs: list[Job], state: dict, *, gpu_md: Path = GPU_MD) -> Estimate:
    """GPU hours of every job whose state is not ``done`` (see the module docstring)."""
    est = Estimate()
    by_cell: dict[tuple, list] = {}
    by_dataset: dict[str, list] = {}
    all_epochs: list[int] = []
    for j in jobs:
        if state[j.key] != "done":
            continue
        try:
            r = read_result(j.result_path())
        except ResultError:
            continue
        m = _measured(r)
        if m is None:
            continue
        by_cell.setdefault((j.dataset, j.head), []).append(m)
        by_dataset.setdefault(j.dataset, []).append(m)
        all_epochs.append(m[1])
        est.devices.add(
            (r.get("runtime") or {}).get("device") or r.get("config", {}).get("trainer", {}).get("device", "?")
        )
    cells: dict[tuple, CellCost] = {}
    sizes: dict[str, int | None] = {}
    bench = None
    for j in jobs:
        if state[j.key] == "done":
            continue
        c = cells.setdefault((j.dataset, j.head), CellCost(j.dataset, j.head, j.extractor))
        c.remaining += 1
        if c.source != "unknown" or c.remaining > 1:
            continue
        measured = by_cell.get((j.dataset, j.head)) or by_dataset.get(j.dataset)
        if measured:
            c.epoch_s = mean(s for s, _ in measured)
            c.epochs = mean(e for _, e in (by_cell.get((j.dataset, j.head)) or measured))
            c.source = "measured" + ("" if (j.dataset, j.head) in by_cell else f" ({j.dataset}, other heads)")
            continue
        bench = bench if bench is not None else (read_benchmark(gpu_md) or {})
        rate = (bench.get("train_items_per_s") or {}).get(j.extractor)
        if not rate:
            continue
        if j.dataset not in sizes:
            sizes[j.dataset] = _dataset_items(j)
        if sizes[j.dataset] is None:
            continue
        c.epoch_s = sizes[j.dataset] * TRAIN_FRACTION / rate
        if all_epochs:
            c.epochs, how = mean(all_epochs), "epochs of other datasets' jobs"
        else:
            c.epochs, how = _max_epochs(j), "max_epochs, an upper bound"
        c.source = f"gpu.md ({how})"
        est.benchmark = bench
    est.cells = list(cells.values())
    return est


def format_estimate(est: Estimate) -> str:
    if not est.cells:
        return "estimated GPU hours: nothing left to run"
    cols = ("dataset", "head", "remaining", "s/epoch", "epochs", "hours", "source")
    rows = [
        {
            "dataset": c.dataset,
            "head": c.head,
            "remaining": str(c.remaining),
            "s/epoch": "?" if c.epoch_s is None else f"{c.epoch_s:.3g}",
            "epochs": "?" if c.epochs is None else f"{c.epochs:.3g}",
            "hours": "?" if c.hours is None else f"{c.hours:.3g}",
            "source": c.source,
        }
        for c in est.cells
    ]
    width = {k: max([len(k)] + [len(r[k]) for r in rows]) for k in cols}
    total = sum(c.remaining for c in est.cells)
    unknown = sum(c.remaining for c in est.cells if c.hours is None)
    out = [
        f"estimated GPU hours of the {total} remaining job(s): {est.hours:.1f} h"
        + (f" ({unknown} job(s) without an estimate)" if unknown else "")
    ]
    if est.devices - {"cuda"}:
        out.append(
            f"  note: measured on {', '.join(sorted(map(str, est.devices)))}: not GPU timings where that is not cuda"
        )
    if est.benchmark is not None and (est.benchmark.get("quick") or est.benchmark.get("device") != "cuda"):
        out.append(
            "  note: results/benchmarks/gpu.md is a CPU --quick run: its estimates are not GPU hours; "
            "run python -m benchmarks.gpu --write on a GPU"
        )
    out.append("  " + "  ".join(k.ljust(width[k]) for k in cols))
    out += ["  " + "  ".join(r[k].ljust(width[k]) for k in cols) for r in rows]
    return "\n".join(out)
