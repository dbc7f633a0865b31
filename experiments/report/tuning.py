"""Appendix A's tuning tables: each head's grid of (similarity, embed_dim, batch_size) on one dataset.

Cell value, std and bold are defined in :mod:`experiments.report.cells`. For the tuning tables:

- **A cell** is a grid point (head, similarity, embed_dim, batch_size), read from each result's
  ``hparams``; ``hparams.similarity`` is null for a head without a similarity (linear). It is
  expected to have :data:`TUNING_SPLITS` splits ((n=k) otherwise).
- **One configuration per cell**: all files of a cell share one ``run_id``, a split appears once,
  and the runs of one head may differ in nothing but the grid's hparams (:data:`TUNING_KEYS`) and
  so in run_id: not in extractor nor in another hparam. Anything else raises
  :class:`~experiments.store.results.ResultError` naming two files.
- **Bold**: the head's lowest mean, ties all bold.
- **Layout**: a head without similarity has embed_dim rows × batch_size columns (the paper's
  Table 2); a head with one has (similarity, embed_dim) rows × batch_size columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments.report.names import SIMILARITY_ORDER, head_label, head_sort_key
from experiments.store.results import ResultError

from .cells import CellStats, group_by, mark_best, markdown_cell, split_values
from .fmt import csv_number, csv_text, md_table, write_texts

TUNING_SPLITS = 3
TUNING_KEYS = ("similarity", "embed_dim", "batch_size")


@dataclass(frozen=True)
class TuningCell(CellStats):
    """One grid point of the appendix-A search: (head, similarity, embed_dim, batch_size)."""

    head: str
    similarity: str | None  # None for a head without similarity (linear)
    embed_dim: int
    batch_size: int
    run_id: str
    values: dict  # split -> metric value
    best: bool = False

    @property
    def label(self) -> str:
        """The paper's tick label: ``(rbf, 100, 32)``; ``(25, 32)`` for the linear head."""
        parts = ([self.similarity] if self.similarity else []) + [str(self.embed_dim), str(self.batch_size)]
        return "(" + ", ".join(parts) + ")"


def _tuning_key(r: dict) -> tuple:
    hp = r["hparams"]
    for k in ("embed_dim", "batch_size"):
        if hp.get(k) is None:
            raise ResultError(f"{r['_path']}: hparams.{k} is missing; a tuning result needs {', '.join(TUNING_KEYS)}")
    sim = hp.get("similarity")
    return r["head"], None if sim is None else str(sim), int(hp["embed_dim"]), int(hp["batch_size"])


def tuning_cells(results: list[dict], dataset: str = "rsna") -> list[TuningCell]:
    """The grid of appendix A on ``dataset``, one cell per (head, similarity, embed_dim, batch_size)."""
    results = [r for r in results if r["dataset"] == dataset]
    _same_apart_from_grid(results)
    by_head: dict[str, list[TuningCell]] = {}
    for key, files in group_by(results, _tuning_key).items():
        head, sim, embed, batch = key
        what = f"tuning cell ({dataset}, {head}, similarity={sim}, embed_dim={embed}, batch_size={batch})"
        run_id, values = split_values(files, what, "they differ in a setting other than the grid's; move one aside")
        by_head.setdefault(head, []).append(TuningCell(head, sim, embed, batch, run_id, values))
    cells = [c for row in by_head.values() for c in mark_best(row)]
    return sorted(cells, key=lambda c: (head_sort_key(c.head), _sim_key(c.similarity), c.embed_dim, c.batch_size))


def _sim_key(sim: str | None) -> tuple:
    return (0, "") if sim is None else ((1, SIMILARITY_ORDER.index(sim)) if sim in SIMILARITY_ORDER else (2, sim))


def _same_apart_from_grid(results: list[dict]) -> None:
    """Within one head, runs may differ only in the grid's hparams (and so in run_id), not in extractor or others."""
    for head, files in group_by(results, lambda r: r["head"]).items():
        ref = files[0]
        for r in files[1:]:
            for field in ("extractor",):
                if r[field] != ref[field]:
                    raise ResultError(
                        f"tuning results of head {head} differ in {field}: {ref['_path']} ({ref[field]}) and "
                        f"{r['_path']} ({r[field]}); keep one {field} (move the others aside)"
                    )
            keys = (set(ref["hparams"]) | set(r["hparams"])) - set(TUNING_KEYS)
            for k in sorted(keys):
                if ref["hparams"].get(k) != r["hparams"].get(k):
                    raise ResultError(
                        f"tuning results of head {head} differ in hparams.{k} (not a grid setting): {ref['_path']} "
                        f"({ref['hparams'].get(k)!r}) and {r['_path']} ({r['hparams'].get(k)!r}); move one aside"
                    )


def tuning_markdown(cells: list[TuningCell], head: str, dataset: str = "rsna") -> str:
    """Without similarity (linear): embed_dim rows × batch_size columns (the paper's Table 2); with one: (similarity, embed_dim) rows."""
    cells = [c for c in cells if c.head == head]
    batches = sorted({c.batch_size for c in cells})
    at = {(c.similarity, c.embed_dim, c.batch_size): c for c in cells}
    rows_keys = sorted({(c.similarity, c.embed_dim) for c in cells}, key=lambda k: (_sim_key(k[0]), k[1]))
    by_similarity = any(c.similarity is not None for c in cells)
    row_header = ["Similarity", "Embed \\ Batch"] if by_similarity else ["Embed \\ Batch"]
    header = row_header + [str(b) for b in batches]
    rows = [
        ([s] if by_similarity else []) + [str(e)] + [markdown_cell(at.get((s, e, b)), TUNING_SPLITS) for b in batches]
        for s, e in rows_keys
    ]
    align = ["---"] * len(row_header) + ["---:"] * len(batches)
    title = f"# Tuning ({dataset}): {head_label(head)} head, test MSE × 10³\n\n"
    notes = (
        f"\nMean ± sample std (ddof = 1) over splits; (n=k) when a cell has k ≠ {TUNING_SPLITS} splits. "
        "Bold: the head's best mean.\n"
    )
    return title + md_table(header, rows, align) + notes


TUNING_CSV_COLUMNS = ("head", "similarity", "embed_dim", "batch_size", "n", "mean", "std", "best", "run_id")


def tuning_csv(cells: list[TuningCell]) -> str:
    return csv_text(
        TUNING_CSV_COLUMNS,
        (
            [
                c.head,
                c.similarity or "",
                c.embed_dim,
                c.batch_size,
                c.n,
                csv_number(c.mean),
                csv_number(c.std),
                c.best,
                c.run_id,
            ]
            for c in cells
        ),
    )


def write_tuning(cells: list[TuningCell], out_dir: str | Path, dataset: str = "rsna") -> list[Path]:
    """``tuning_<head>.md`` for each head with cells, and ``tuning.csv``, in ``out_dir``."""
    texts = {
        f"tuning_{head}.md": tuning_markdown(cells, head, dataset)
        for head in sorted({c.head for c in cells}, key=head_sort_key)
    }
    return write_texts(out_dir, texts | {"tuning.csv": tuning_csv(cells)})
