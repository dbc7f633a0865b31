"""What the step did in one cell's splits, and the compute the result files record.

Read from each split's result file (format: experiments/store/results.py; blocks: experiments/protocol/sparsity.py):

- **exact zeros**, **mass removed**: ``sparsity.zero_fraction.median`` and ``sparsity.removed_mass.median`` (test
  queries against the training split, the best epoch's model), averaged over splits
  (:func:`experiments.report.sparsity_table.median_of`, which derives zeros from ``nonzero`` in older files).
- **learned parameters**: ``sparsity.<p>.median`` for p in l, u, t (SoftStep) or k (SoftKStep), averaged over splits.
- **moved** (needs ``step_start``, which the pipeline does not write yet): ``step_start.<p>`` is the same
  ``{p10, median, p90}`` summary of the untrained model's parameters on the same test queries. A parameter moved in
  a split when ``|sparsity.<p>.median − step_start.<p>.median|`` exceeds its initial spread
  ``step_start.<p>.p90 − step_start.<p>.p10``, and at least :data:`MOVE_TOL` × max(1, |start|). Without
  ``step_start`` the column is empty.
- **drift since the first logged epoch**: ``history`` entry of the best epoch minus the first logged entry, of
  ``sparsity/<p>_median`` (written after each validated epoch): a lower bound on the movement, as the first entry
  is logged after one epoch of training.
- **compute**: ``wall_time_s`` (the split's training and its evaluation, not the cached feature extraction), summed
  in hours per device of ``runtime.device`` (``cpu``, ``cuda``; unknown where a file has no ``runtime``), and the
  training alone: the history's ``train_time_s`` summed over epochs (validated epochs only; older files lack it).
"""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean

from experiments.report.sparsity_table import median_of

PARAMS = ("l", "u", "t", "k")
#: The smallest movement that counts, relative to max(1, |start|): 0.01 on l, u, t ∈ [0, 1].
MOVE_TOL = 0.01


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


def sparsity_means(records: list[dict]) -> dict[str, float | None]:
    """``zero_fraction``, ``removed_mass`` and each learned parameter's median, averaged over the splits that have it."""
    keys = ("zero_fraction", "removed_mass", *PARAMS)
    return {k: _mean([median_of(r.get("sparsity") or {}, k) for r in records]) for k in keys}


def split_movement(record: dict, param: str) -> tuple[float, float] | None:
    """(end − start of the median, initial spread p90 − p10) of one parameter in one split; None without both."""
    start = (record.get("step_start") or {}).get(param)
    end = (record.get("sparsity") or {}).get(param)
    if not isinstance(start, dict) or not isinstance(end, dict):
        return None
    return float(end["median"]) - float(start["median"]), float(start["p90"]) - float(start["p10"])


def moved(delta: float, spread: float, start: float) -> bool:
    return abs(delta) > max(spread, MOVE_TOL * max(1.0, abs(start)))


def movement(records: list[dict]) -> dict[str, dict]:
    """Per parameter with ``step_start`` in some split: mean ``delta``, mean initial ``spread`` and the ``moved``
    fraction of those splits; {} when no split records ``step_start``."""
    out = {}
    for p in PARAMS:
        rows = []
        for r in records:
            m = split_movement(r, p)
            if m is not None:
                rows.append((*m, float(r["step_start"][p]["median"])))
        if rows:
            out[p] = {
                "delta": fmean(d for d, _, _ in rows),
                "spread": fmean(s for _, s, _ in rows),
                "moved": fmean(moved(*row) for row in rows),
                "splits": len(rows),
            }
    return out


def history_value(record: dict, name: str, epoch: int | None) -> float | None:
    """``history`` entry's ``name`` at ``epoch`` (the last logged one at or before it; None: the first logged)."""
    entries = [h for h in record.get("history") or [] if name in h]
    if epoch is not None:
        entries = [h for h in entries if h.get("epoch", 0) <= epoch]
        return float(entries[-1][name]) if entries else None
    return float(entries[0][name]) if entries else None


def drift(records: list[dict]) -> dict[str, float]:
    """Per parameter logged per epoch: the mean over splits of (best epoch − first logged epoch) of its median."""
    out = {}
    for p in PARAMS:
        name = f"sparsity/{p}_median"
        deltas = []
        for r in records:
            first, best = history_value(r, name, None), history_value(r, name, r["best_epoch"])
            if first is not None and best is not None:
                deltas.append(best - first)
        if deltas:
            out[p] = fmean(deltas)
    return out


def compute_hours(results: list[dict], key) -> dict:
    """``key(result)`` → {``files``: count, ``train``: hours of ``train_time_s``, ``device``: {device: hours of
    ``wall_time_s``}} over every result file given."""
    out: dict = {}
    for r in results:
        cell = out.setdefault(key(r), {"files": 0, "train": 0.0, "device": defaultdict(float)})
        device = (r.get("runtime") or {}).get("device") or "unknown"
        cell["device"][device] += float(r.get("wall_time_s") or 0.0) / 3600.0
        cell["train"] += sum(float(h.get("train_time_s") or 0.0) for h in r.get("history") or []) / 3600.0
        cell["files"] += 1
    return out
