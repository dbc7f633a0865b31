"""The statistics of a table cell, shared by Table 1 and the tuning tables, and which result files make one.

Everything here reads the dicts that :func:`experiments.store.results.read_results` returns, never the
trainer. Definitions used in every table:

- **Cell value**: ``metrics.test_mse_x1e3`` (test MSE on labels min–max scaled on the training
  split, × 10³: the paper's unit), as *mean ± std over the splits* of one run, where std is the
  **sample** standard deviation (ddof = 1). A cell of one split has no std and shows the mean only
  (:class:`CellStats`).
- **Bold**: the lowest mean among the cells compared with each other (a Table 1 row, one head of
  a tuning table), ties all bold (:func:`mark_best`); the highest for a metric where higher is better (R²,
  ``make_tables --metric r2``).
- **Other metrics** (``make_tables --metric``, :data:`experiments.metrics.TABLE_METRICS`): the same statistics of
  another field of ``metrics``, e.g. the test RMSE in the label's units.
- **One configuration per cell**: all files of a cell must share one ``run_id``, and a split may
  appear once (:func:`split_values`); which files form a cell is the table's to say. Anything
  else raises :class:`~experiments.store.results.ResultError` naming two files.
- **Paired test**: two cells are compared over the splits both have by a two-sided paired Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon`` with its defaults: exact null distribution for
  n ≤ 50 pairs without ties or zero differences). With fewer than :data:`MIN_PAIRS` pairs no test
  is made: below 6 pairs even a unanimous sign gives p ≥ 2/2⁵ = 0.0625 (:func:`paired_wilcoxon`).
"""

from __future__ import annotations

import csv
import math
import statistics
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from experiments.metrics import PAPER_METRIC, TABLE_METRICS
from experiments.store.results import ResultError

from .fmt import MISSING, mean_std, n_note

#: The fewest paired splits for which the two-sided exact Wilcoxon test can reach p < 0.05 (2/2⁶).
MIN_PAIRS = 6


class CellStats:
    """Base of a table cell: one run's metric value per split, and the statistics a table shows of them.

    A subclass is a frozen dataclass with (at least) the fields ``run_id``, ``values`` (split ->
    metric value) and ``best``; this base adds ``n``, ``mean`` and the sample ``std``, and
    ``marker`` (a significance mark after the value; none unless the subclass tests its cells).
    """

    __slots__ = ()
    run_id: str
    values: dict  # split -> metric value
    best: bool

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values())

    @property
    def std(self) -> float:
        return statistics.stdev(self.values.values()) if self.n > 1 else math.nan

    @property
    def marker(self) -> str:
        return ""


Stats = TypeVar("Stats", bound=CellStats)


def markdown_cell(c: CellStats | None, expected: int) -> str:
    """``mean ± std``, bold when best, then its marker and (n=k) when k ≠ ``expected``; :data:`MISSING` for no cell."""
    if c is None:
        return MISSING
    text = mean_std(c.mean, c.std)
    if c.best:
        text = f"**{text}**"
    return text + c.marker + n_note(c.n, expected)


def mark_best(cells: Iterable[Stats], higher_better: bool = False) -> list[Stats]:
    """``cells`` (compared with each other) with ``best`` set on those of the lowest mean (the highest with
    ``higher_better``), ties all."""
    cells = list(cells)
    best = (max if higher_better else min)(c.mean for c in cells)
    return [replace(c, best=c.mean == best) for c in cells]


def group_by(results: Iterable[dict], key: Callable[[dict], object]) -> dict:
    """``results`` grouped by ``key(result)``, in first-seen order."""
    groups: dict = defaultdict(list)
    for r in results:
        groups[key(r)].append(r)
    return groups


def split_values(files: list[dict], what: str, hint: str, metric: str = "paper") -> tuple[str, dict[int, float]]:
    """The run_id and split -> metric value of one cell's ``files``, after checking they are one configuration.

    ``what`` names the cell and ``hint`` says how to fix a cell mixing two run_ids, in the error. ``metric``: a
    name of :data:`experiments.metrics.TABLE_METRICS` (the paper's by default); a file that does not record it
    (written before it was) is a :class:`ResultError` naming it.
    """
    first = files[0]
    for r in files[1:]:
        if r["run_id"] != first["run_id"]:
            raise ResultError(
                f"{what} mixes two configurations: {first['_path']} (run_id {first['run_id']}) and "
                f"{r['_path']} (run_id {r['run_id']}); {hint}"
            )
    by_split: dict[int, dict] = {}
    for r in files:
        if r["split"] in by_split:
            raise ResultError(
                f"{what} holds split {r['split']} twice: {by_split[r['split']]['_path']} and {r['_path']}; "
                "move one aside"
            )
        by_split[r["split"]] = r
    field = TABLE_METRICS[metric][0] if metric != "paper" else PAPER_METRIC
    for r in files:
        if field not in r["metrics"]:
            raise ResultError(
                f"{r['_path']}: no metrics.{field} (the file was written before it was recorded); rerun its "
                f"split with force=true, or choose --metric paper or mse"
            )
    return first["run_id"], {s: float(r["metrics"][field]) for s, r in sorted(by_split.items())}


def paired_wilcoxon(a: dict[int, float], b: dict[int, float]) -> tuple[float | None, int, bool | None]:
    """Two-sided paired Wilcoxon signed-rank test of ``a`` vs ``b`` over their shared splits.

    Returns (p_value, n_pairs, a_lower): p_value is None with fewer than :data:`MIN_PAIRS`
    pairs; all-zero differences give p = 1. ``a_lower`` says whether a's mean over the shared
    splits is below b's.
    """
    shared = sorted(set(a) & set(b))
    if len(shared) < MIN_PAIRS:
        return None, len(shared), None
    x = [a[s] for s in shared]
    y = [b[s] for s in shared]
    lower = statistics.fmean(x) < statistics.fmean(y)
    if all(u == v for u, v in zip(x, y)):
        return 1.0, len(shared), lower
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when ties or zeros force the normal approximation
        p = float(wilcoxon(x, y).pvalue)
    return p, len(shared), lower


def select_runs(results: list[dict], run_ids: Iterable[str] = (), hparams_by_head: dict | None = None) -> list[dict]:
    """Filter results before Table 1.

    ``run_ids``: in each (dataset, head) cell holding one of these run_ids, keep only those
    (cells holding none are kept whole). ``hparams_by_head``: head -> {hparam: value}; keep a
    result only if its hparams match its head's entry (heads without an entry are kept; an empty
    value matches anything).
    """
    run_ids = set(run_ids)
    out = results
    if hparams_by_head:

        def matches(r: dict) -> bool:
            want = hparams_by_head.get(r["head"])
            if not want:
                return True
            return all(v in ("", None) or str(r["hparams"].get(k)) == str(v) for k, v in want.items())

        out = [r for r in out if matches(r)]
    if run_ids:
        cells = group_by(out, lambda r: (r["dataset"], r["head"]))
        keep = []
        for files in cells.values():
            chosen = [r for r in files if r["run_id"] in run_ids]
            keep.extend(chosen or files)
        out = keep
    return out


def read_hparams(source: str | Path) -> dict[str, dict]:
    """head -> hparams: ``paper`` is the paper's tuned values (:data:`softstep.TUNED`), anything else a CSV file of
    ``head,similarity,embed_dim,batch_size`` rows."""
    if str(source) == "paper":
        from softstep.heads import TUNED

        return {head: dict(hp) for head, hp in TUNED.items()}
    with open(source, newline="") as f:
        return {row.pop("head"): row for row in csv.DictReader(f)}
