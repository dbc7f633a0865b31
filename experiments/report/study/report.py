"""The whole report from one results root: cells, rankings, verdicts, figures and files (``scripts/study_report.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments.report.fmt import write_texts
from experiments.report.names import dataset_sort_key
from experiments.store.results import read_results

from . import figures, write
from .grid import StudyCell, study_cells
from .mechanism import compute_hours
from .ranking import Ranking, rankings
from .variants import protocol_of, protocol_sort_key, variant_of
from .verdicts import verdicts

MARKDOWN, CSV = "offline_study.md", "offline_study.csv"
FIGURES = "figures"  # the figures' folder, beside the two files


@dataclass
class Study:
    cells: list[StudyCell]
    rankings: list[Ranking]
    verdicts: list[str]
    hours: dict  # (dataset, protocol, variant) → compute_hours' entry
    part_hours: dict  # (protocol, variant), then ("all", "") → the same over datasets
    n_files: int


def study(results: list[dict]) -> Study:
    """Cells, rankings, verdicts and compute of ``results`` (result files as read)."""
    cells = study_cells(results)
    ranked = rankings(cells)
    hours = compute_hours(results, lambda r: (r["dataset"], protocol_of(r), variant_of(r).label))
    order = sorted(hours, key=lambda k: (dataset_sort_key(k[0]), protocol_sort_key(k[1]), k[2]))
    hours = {k: hours[k] for k in order}
    parts = compute_hours(results, lambda r: (protocol_of(r), variant_of(r).label))
    parts = {k: parts[k] for k in sorted(parts, key=lambda k: (protocol_sort_key(k[0]), k[1]))}
    parts |= compute_hours(results, lambda r: ("all", ""))
    return Study(cells, ranked, verdicts(cells, ranked), hours, parts, len(results))


def write_report(root: str | Path, out_dir: str | Path) -> list[Path]:
    """Read every result file under ``root`` (unreadable ones skipped with a warning) and write
    ``offline_study.{md,csv}`` into ``out_dir`` and the figures into ``out_dir/figures``; return the paths."""
    s = study(read_results(root, skip_bad=True))
    out_dir = Path(out_dir)
    fig_dir = out_dir / FIGURES
    written, links = [], {}
    for r in s.rankings:
        paths = figures.plot_cd(r, fig_dir)
        if paths:
            links[r.name] = f"{FIGURES}/{paths[0].name}"
            written += paths
    written += figures.plot_trajectories(s.cells, fig_dir)
    text = write.markdown(
        s.cells, s.rankings, s.verdicts, s.hours, s.part_hours, root=str(root), n_files=s.n_files, figures=links
    )
    return write_texts(out_dir, {MARKDOWN: text, CSV: write.csv_rows(s.cells)}) + written
