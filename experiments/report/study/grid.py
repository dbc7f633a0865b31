"""One cell per dataset × head × variant × protocol, and its paired tests against the controls.

- **A cell** holds the result files of one (dataset, protocol, base head, variant) (:mod:`.variants`). Where they
  come from several runs (run ids: a learning rate, an MLP, an embedding width tried), the cell is the run of the
  lowest mean validation MSE × 10³ (``metrics.val_mse_x1e3``, over its splits): chosen on validation, never on test.
  ``candidates`` counts the runs it was chosen among.
- **Value**: ``metrics.test_mse_x1e3`` per split, mean ± sample std (:class:`experiments.report.cells.CellStats`).
- **Tests** (two-sided paired Wilcoxon over shared splits, :func:`experiments.report.cells.paired_wilcoxon`):
  ``linear``: against the linear cell of the same dataset and protocol (itself chosen on validation among the
  protocol's linear runs); ``stepless``: against the same head's ``no step`` control, else the family's head
  without a step (``nca`` for ``nca_g``, ``nca_i``) of the same setting; ``frozen``: against the same head's
  ``frozen step`` control. A test whose reference has no cell is None (the report says which are missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from statistics import fmean

from experiments.report.cells import CellStats, group_by, paired_wilcoxon, split_values
from experiments.report.names import dataset_sort_key, head_sort_key

from .mechanism import drift, movement, sparsity_means
from .variants import (
    FROZEN,
    NO_STEP,
    Variant,
    base_head,
    has_step,
    protocol_of,
    protocol_sort_key,
    stepless_head,
    variant_of,
)

BASELINE = "linear"
ALPHA = 0.05
HINT = "two files of one run hold the same split; move one aside"


@dataclass(frozen=True)
class Test:
    """A paired Wilcoxon test of a cell against a reference cell: p (None: fewer pairs than MIN_PAIRS), pairs, and
    whether the cell's mean over the shared splits is the lower."""

    reference: str
    reference_mean: float  # the reference cell's mean over all its splits
    p_value: float | None
    n_pairs: int
    lower: bool | None

    @property
    def outcome(self) -> str:
        """``win`` (lower, p < α), ``loss`` (higher, p < α), ``tie`` (p ≥ α) or ``untested`` (too few pairs)."""
        if self.p_value is None:
            return "untested"
        if self.p_value >= ALPHA:
            return "tie"
        return "win" if self.lower else "loss"


@dataclass(frozen=True)
class StudyCell(CellStats):
    dataset: str
    protocol: str
    head: str
    variant: Variant
    run_id: str
    values: dict  # split -> test MSE × 10³
    val_mean: float  # mean validation MSE × 10³ of the chosen run
    candidates: int
    records: tuple = field(default=(), compare=False, repr=False)
    tests: dict = field(default_factory=dict, compare=False)  # "linear" | "stepless" | "frozen" -> Test | None
    best: bool = False

    @property
    def mechanism(self) -> dict:
        records = list(self.records)
        return {**sparsity_means(records), "movement": movement(records), "drift": drift(records)}

    @property
    def block(self) -> tuple[str, tuple]:
        """The ranking this cell belongs to: (protocol, setting)."""
        return self.protocol, self.variant.setting


def cell_key(r: dict) -> tuple:
    return r["dataset"], protocol_of(r), base_head(r["head"]), variant_of(r)


def _val_mean(files: list[dict]) -> float:
    return fmean(float(r["metrics"]["val_mse_x1e3"]) for r in files)


def choose_on_validation(files: list[dict], what: str) -> StudyCell:
    """The cell of ``files`` (one key): the run of the lowest mean validation MSE; ties go to the smaller run id."""
    runs = group_by(files, lambda r: r["run_id"])
    run_id = min(runs, key=lambda rid: (_val_mean(runs[rid]), rid))
    chosen = runs[run_id]
    _, values = split_values(chosen, what, HINT)
    dataset, protocol, head, variant = cell_key(chosen[0])
    records = tuple(sorted(chosen, key=lambda r: r["split"]))
    return StudyCell(dataset, protocol, head, variant, run_id, values, _val_mean(chosen), len(runs), records)


def study_cells(results: list[dict]) -> list[StudyCell]:
    """Every cell, with its tests filled in, in protocol, dataset, head, variant order."""
    cells = {}
    for key, files in group_by(results, cell_key).items():
        cells[key] = choose_on_validation(files, f"study cell {key[:3]} {key[3].label or 'plain'}")
    out = [replace(c, tests=_tests(c, cells)) for c in cells.values()]
    return sorted(out, key=sort_key)


def sort_key(c: StudyCell) -> tuple:
    return protocol_sort_key(c.protocol), dataset_sort_key(c.dataset), head_sort_key(c.head), c.variant


def references(c: StudyCell, cells: dict) -> dict[str, StudyCell | None]:
    """The cells ``c`` is compared with (absent: None); only the tests that apply to its head and variant."""
    out: dict[str, StudyCell | None] = {}
    at = (c.dataset, c.protocol)
    if c.head != BASELINE:
        out["linear"] = cells.get((*at, BASELINE, Variant()))
    if has_step(c.head) and not c.variant.control:
        plain = cells.get((*at, c.head, Variant(c.variant.setting, NO_STEP)))
        family = stepless_head(c.head)
        if plain is None and family is not None:
            plain = cells.get((*at, family, Variant(c.variant.setting)))
        out["stepless"] = plain
        out["frozen"] = cells.get((*at, c.head, Variant(c.variant.setting, FROZEN)))
    return out


def _tests(c: StudyCell, cells: dict) -> dict[str, Test | None]:
    tests = {}
    for name, ref in references(c, cells).items():
        if ref is None:
            tests[name] = None
            continue
        p, n, lower = paired_wilcoxon(c.values, ref.values)
        tests[name] = Test(f"{ref.head} {ref.variant.label}".strip(), ref.mean, p, n, lower)
    return tests
