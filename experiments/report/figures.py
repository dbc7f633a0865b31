"""The paper's figures, drawn from result files (and, for Figure 3, from a surfaces file), never the trainer.

- Figure 2: the SoftStep function on [0, 1] for several t, l and u marked (:func:`plot_figure2`).
- Figure 3: in :mod:`experiments.report.surfaces` (true and learned surfaces of synthetic 2-D targets).
- Figures 4 and 5: the appendix-A tuning grid, one bar per (similarity, embed_dim, batch_size)
  with the std over splits as error bar, one panel per head (:func:`plot_tuning_figure`).
- Sparsity: the effective neighbourhood size 1/Σw² per dataset × neighbour head, from the result
  files' ``sparsity`` blocks (:func:`sparsity_cells`, :func:`plot_sparsity`).

Each figure is written as PNG (200 dpi) and PDF. Figures are built with
:class:`matplotlib.figure.Figure` (no pyplot state, the Agg renderer for PNG) and constrained
layout. Colours are the Okabe–Ito palette, safe for the common colour-vision deficiencies;
surfaces use viridis.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from experiments.report.names import dataset_label, dataset_sort_key, head_label, head_sort_key

from .fmt import mean_std
from .tuning import TuningCell

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
MSE_LABEL = "test MSE × 10³"
FIGURE4_HEADS = ("nca", "nca_g", "nca_i")
FIGURE5_HEADS = ("diffknn_g", "diffknn_i")


def save(fig: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<stem>.png`` and ``.pdf``; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=200)
    fig.savefig(paths[1])
    return paths


# ----------------------------------------------------------------------------- Figure 2


def plot_figure2(
    out_dir: str | Path, *, ts=(0.1, 0.25, 0.5, 0.75, 1.0), l: float = 0.25, u: float = 0.75
) -> list[Path]:
    """SoftStep(s; l, u, t) on s ∈ [0, 1] for each t in ``ts``, with l and u marked; ``figure2_softstep.{png,pdf}``."""
    import torch

    from softstep.functional import soft_step

    s = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    colours = [
        OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "reddish_purple", "black", "sky_blue", "vermillion")
    ]
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for i, t in enumerate(ts):
        y = soft_step(s, torch.tensor(l, dtype=s.dtype), torch.tensor(u, dtype=s.dtype), torch.tensor(t, dtype=s.dtype))
        ax.plot(s.numpy(), y.numpy(), color=colours[i % len(colours)], lw=2, label=f"t = {t:g}")
    for x, name in ((l, "l"), (u, "u")):
        ax.axvline(x, color="0.4", ls="--", lw=1)
        ax.annotate(
            f"{name} = {x:g}", (x, 1.04), xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=10
        )
    ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), xlabel="normalised similarity s", ylabel="SoftStep(s; l, u, t)")
    ax.set_title("SoftStep: 0 below l, 1 above u, transition shaped by t", pad=22)
    ax.legend(title="transition t", loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    return save(fig, out_dir, "figure2_softstep")


# ----------------------------------------------------------------------------- Figures 4 and 5


def plot_tuning_figure(
    cells: list[TuningCell], heads, out_dir: str | Path, stem: str, *, title: str | None = None
) -> list[Path]:
    """One panel per head in ``heads`` (those with cells): bars of mean test MSE × 10³ per
    (similarity, embed_dim, batch_size) with std over splits as error bars; the best mean is
    highlighted, starred and named in the panel title. Returns [] when no head has cells."""
    heads = [h for h in heads if any(c.head == h for c in cells)]
    if not heads:
        return []
    n_max = max(sum(c.head == h for c in cells) for h in heads)
    fig = Figure(figsize=(max(6.0, 0.42 * n_max + 2.0), 3.3 * len(heads)), layout="constrained")
    axes = fig.subplots(len(heads), 1, squeeze=False)[:, 0]
    normal, best_colour = OKABE_ITO["sky_blue"], OKABE_ITO["vermillion"]
    for ax, head in zip(axes, heads):
        row = [c for c in cells if c.head == head]
        x = np.arange(len(row))
        means = np.array([c.mean for c in row])
        stds = np.array([0.0 if math.isnan(c.std) else c.std for c in row])
        colours = [best_colour if c.best else normal for c in row]
        bars = ax.bar(
            x,
            means,
            yerr=stds,
            color=colours,
            edgecolor="black",
            linewidth=0.6,
            error_kw={"elinewidth": 1, "capsize": 3, "ecolor": "black"},
        )
        for bar, c in zip(bars, row):
            if c.best:
                bar.set_hatch("//")
        top = means + stds
        for i, c in enumerate(row):
            if c.best:
                ax.plot(i, top[i] + 0.07 * top.max(), marker="*", ms=14, color=best_colour, mec="black", mew=0.6)
        ax.set_ylim(0, top.max() * 1.18)
        ax.set_xticks(x, [c.label for c in row], rotation=45, ha="right", rotation_mode="anchor", fontsize=9)
        ax.set_xlim(-0.6, len(row) - 0.4)
        ax.set_ylabel(MSE_LABEL)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        best = [c for c in row if c.best]
        ns = sorted({c.n for c in row})
        n_text = f"n = {ns[0]} splits" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]} splits"
        ax.set_title(
            f"{head_label(head)}: best {', '.join(c.label for c in best)} = "
            f"{mean_std(best[0].mean, best[0].std)}  ({n_text})",
            fontsize=11,
        )
    axes[-1].set_xlabel("(similarity, embedding dimension, batch size)")
    handles = [
        Patch(facecolor=normal, edgecolor="black", label="mean over splits (error bar: ± std)"),
        Patch(facecolor=best_colour, edgecolor="black", hatch="//", label="best mean"),
        Line2D([], [], ls="", marker="*", ms=12, color=best_colour, mec="black", label="best configuration"),
    ]
    if title:
        fig.suptitle(title)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9, frameon=False)
    return save(fig, out_dir, stem)


def plot_figure4(cells: list[TuningCell], out_dir: str | Path, dataset: str = "rsna") -> list[Path]:
    """Figure 4: NCA, NCA g, NCA i over the tuning grid (``figure4_nca_tuning.{png,pdf}``)."""
    return plot_tuning_figure(
        cells,
        FIGURE4_HEADS,
        out_dir,
        "figure4_nca_tuning",
        title=f"Figure 4: NCA heads over the tuning grid ({dataset})",
    )


def plot_figure5(cells: list[TuningCell], out_dir: str | Path, dataset: str = "rsna") -> list[Path]:
    """Figure 5: DiffKNN g, DiffKNN i over the tuning grid (``figure5_diffknn_tuning.{png,pdf}``)."""
    return plot_tuning_figure(
        cells,
        FIGURE5_HEADS,
        out_dir,
        "figure5_diffknn_tuning",
        title=f"Figure 5: DiffKNN heads over the tuning grid ({dataset})",
    )


# ----------------------------------------------------------------------------- Sparsity


def sparsity_cells(results: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """(dataset, head) → means over splits of the test queries' effective size (p10, median, p90), the median
    number of non-zero weights, the reference-set size and the number of splits. Results without a ``sparsity``
    block (linear heads, older files) are left out; where a cell has several run ids, the one with the most
    splits is used."""
    runs: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for r in results:
        if isinstance(r.get("sparsity"), dict):
            runs.setdefault((r["dataset"], r["head"]), {}).setdefault(r["run_id"], []).append(r["sparsity"])
    cells = {}
    for key, by_run in runs.items():
        blocks = max(by_run.values(), key=len)
        cells[key] = {
            "p10": float(np.mean([b["effective"]["p10"] for b in blocks])),
            "median": float(np.mean([b["effective"]["median"] for b in blocks])),
            "p90": float(np.mean([b["effective"]["p90"] for b in blocks])),
            "nonzero": float(np.mean([b["nonzero"]["median"] for b in blocks])),
            "n_reference": float(np.mean([b["n_reference"] for b in blocks])),
            "n": len(blocks),
        }
    return cells


def plot_sparsity(results: list[dict], out_dir: str | Path, stem: str = "sparsity_effective_neighbours") -> list[Path]:
    """Effective neighbourhood size 1/Σw² of the test queries per dataset × neighbour head (log scale): bars at the
    median over queries, whiskers from p10 to p90 (each the mean over splits), a white diamond at the median number
    of neighbours with a non-zero weight. Returns [] when no result has a sparsity block."""
    cells = sparsity_cells(results)
    if not cells:
        return []
    datasets = sorted({d for d, _ in cells}, key=dataset_sort_key)
    heads = sorted({h for _, h in cells}, key=head_sort_key)
    colours = [
        OKABE_ITO[k] for k in ("orange", "sky_blue", "bluish_green", "blue", "vermillion", "reddish_purple", "yellow")
    ]
    width = 0.8 / len(heads)
    fig = Figure(figsize=(max(5.5, 1.1 * len(datasets) * len(heads) * 0.45 + 2.5), 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, head in enumerate(heads):
        xs, med, lo, hi, nz = [], [], [], [], []
        for j, d in enumerate(datasets):
            c = cells.get((d, head))
            if c is None:
                continue
            xs.append(j - 0.4 + width * (i + 0.5))
            med.append(c["median"])
            lo.append(c["median"] - c["p10"])
            hi.append(c["p90"] - c["median"])
            nz.append(c["nonzero"])
        colour = colours[i % len(colours)]
        ax.bar(
            xs,
            med,
            width=width * 0.9,
            color=colour,
            edgecolor="black",
            linewidth=0.6,
            label=head_label(head),
            yerr=[lo, hi],
            error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "black"},
        )
        ax.plot(xs, nz, ls="", marker="D", ms=5, mfc="white", mec="black", mew=0.8)
    ax.set_yscale("log")
    labels = [
        f"{dataset_label(d)}\n(N = {np.mean([c['n_reference'] for (dd, _), c in cells.items() if dd == d]):.0f})"
        for d in datasets
    ]
    ax.set_xticks(range(len(datasets)), labels)
    ax.set_ylabel("neighbours per test query")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.set_axisbelow(True)
    ax.set_title("Effective neighbourhood size 1/Σw² (bars: median, whiskers: p10–p90 over test queries)", fontsize=10)
    handles, names = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], ls="", marker="D", ms=5, mfc="white", mec="black", label="non-zero weights (median)"))
    fig.legend(handles=handles, loc="outside right center", fontsize=9, frameon=False)
    return save(fig, out_dir, stem)
