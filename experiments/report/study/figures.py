"""The study's figures (PNG and PDF, :func:`experiments.report.figures.save`), from cells built of result files.

- **Critical-difference diagram** per ranking (:func:`plot_cd`): the heads on the mean-rank axis, joined where the
  Nemenyi test does not separate them (``scikit_posthocs.critical_difference_diagram``).
- **Trajectories** per protocol (:func:`plot_trajectories`): one row per head with a step, one
  column per quantity its files log per epoch (``history[i]['sparsity/<q>_median']`` for l, u, t, k, exact zeros,
  mass removed), against epoch: one line per dataset (the mean over the splits that logged that epoch), a band
  from ``sparsity/<q>_p10`` to ``_p90`` where logged, the frozen-step control dashed, and the start
  (``step_start.<q>.median``, where recorded) as an open circle at epoch −1. A step that learns leaves its start.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from experiments.report.figures import OKABE_ITO, save
from experiments.report.names import dataset_label, head_label, head_sort_key

from .grid import StudyCell
from .ranking import Ranking
from .variants import FROZEN, has_step

QUANTITIES = (
    ("l", "l"),
    ("u", "u"),
    ("t", "t"),
    ("k", "k"),
    ("zero_fraction", "exact zeros"),
    ("removed_mass", "mass removed"),
)
COLOURS = list(OKABE_ITO.values())  # a ninth dataset on repeats the colours with a marker


def stem(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


def plot_cd(r: Ranking, out_dir: str | Path) -> list[Path]:
    """The critical-difference diagram of one ranking; [] without a Nemenyi test."""
    if r.nemenyi is None:
        return []
    import scikit_posthocs as sp

    labels = {h: head_label(h) for h in r.heads}
    ranks = {labels[h]: v for h, v in r.mean_ranks.items()}
    sig = r.nemenyi.rename(index=labels, columns=labels)
    fig = Figure(figsize=(6.5, 0.45 * len(r.heads) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    sp.critical_difference_diagram(ranks, sig, ax=ax)
    ax.set_title(f"{r.name}: mean rank over {len(r.datasets)} datasets (1 = lowest test MSE)", fontsize=10)
    return save(fig, out_dir, f"study_cd_{stem(r.name)}")


def epoch_series(records, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, mean over the splits that logged ``name`` at each epoch)."""
    by_epoch = defaultdict(list)
    for r in records:
        for h in r.get("history") or []:
            if name in h:
                by_epoch[h["epoch"]].append(float(h[name]))
    epochs = np.array(sorted(by_epoch))
    return epochs, np.array([np.mean(by_epoch[e]) for e in epochs])


def _start(records, q: str) -> float | None:
    starts = [float(r["step_start"][q]["median"]) for r in records if q in (r.get("step_start") or {})]
    return float(np.mean(starts)) if starts else None


def plot_trajectories(cells: list[StudyCell], out_dir: str | Path) -> list[Path]:
    """One figure per protocol whose step heads log per-epoch sparsity; [] when none does."""
    written = []
    for protocol in sorted({c.protocol for c in cells}):
        mine = [c for c in cells if c.protocol == protocol and has_step(c.head) and not c.variant.setting]
        logged = {
            q
            for c in mine
            for r in c.records
            for h in r.get("history") or []
            for q, _ in QUANTITIES
            if f"sparsity/{q}_median" in h
        }
        heads = sorted({c.head for c in mine if c.variant.control in ("", FROZEN)}, key=head_sort_key)
        quantities = [(q, label) for q, label in QUANTITIES if q in logged]
        if not quantities or not heads:
            continue
        datasets = sorted({c.dataset for c in mine})
        style = {d: (COLOURS[i % len(COLOURS)], "x" if i >= len(COLOURS) else None) for i, d in enumerate(datasets)}
        fig = Figure(figsize=(max(6.0, 2.6 * len(quantities) + 1.5), 2.2 * len(heads) + 0.8), layout="constrained")
        axes = fig.subplots(len(heads), len(quantities), squeeze=False)
        for i, head in enumerate(heads):
            for j, (q, label) in enumerate(quantities):
                ax = axes[i, j]
                drawn = [
                    _draw(ax, c, q, *style[c.dataset])
                    for c in mine
                    if c.head == head and c.variant.control in ("", FROZEN)
                ]
                ax.set_visible(any(drawn))  # k is not SoftStep's, nor l, u, t SoftKStep's
                ax.set_title(f"{head_label(head)}: {label}", fontsize=9)
                ax.grid(alpha=0.3)
                ax.set_xlabel("epoch")
        handles = [ax.plot([], [], color=style[d][0], marker=style[d][1], label=dataset_label(d))[0] for d in datasets]
        handles += [
            axes[0, 0].plot([], [], color="0.3", ls="--", label="frozen step")[0],
            axes[0, 0].plot([], [], color="0.3", ls="", marker="o", mfc="none", label="start (step_start)")[0],
        ]
        fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
        fig.suptitle(f"{protocol}: the step over epochs (median over validation queries)", fontsize=10)
        written += save(fig, out_dir, f"study_trajectories_{stem(protocol)}")
    return written


def _draw(ax, c: StudyCell, q: str, colour: str, marker: str | None) -> bool:
    """Draw one cell's series of ``q``; False when its files do not log it."""
    ls = "--" if c.variant.control == FROZEN else "-"
    epochs, med = epoch_series(c.records, f"sparsity/{q}_median")
    if not len(epochs):
        return False
    ax.plot(epochs, med, color=colour, ls=ls, lw=1.3, marker=marker, markevery=max(1, len(epochs) // 8))
    lo_e, lo = epoch_series(c.records, f"sparsity/{q}_p10")
    hi_e, hi = epoch_series(c.records, f"sparsity/{q}_p90")
    if len(lo_e) and len(lo_e) == len(hi_e):
        ax.fill_between(lo_e, lo, hi, color=colour, alpha=0.15, lw=0)
    start = _start(c.records, q)
    if start is not None:
        ax.plot([-1], [start], ls="", marker="o", mfc="none", mec=colour)
    return True


def plot_step_trajectories(results: list[dict], out_dir: str | Path) -> list[Path]:
    """:func:`plot_trajectories` of the cells that ``results`` (result files as read) make (``make_figures``)."""
    from .grid import study_cells

    return plot_trajectories(study_cells(results), out_dir)
