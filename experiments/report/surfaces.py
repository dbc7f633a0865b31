"""Figure 3: true and learned regression surfaces of synthetic 2-D targets, from a surfaces file (never the trainer).

:func:`load_surfaces` and :func:`save_surfaces` read and write the file, :func:`surface_mse` scores each head's
surface against the truth, :func:`plot_figure3` draws the paper's panels and :func:`write_figure3_table` the table of
MSEs. Drawn and saved as :mod:`experiments.report.figures` draws and saves the other figures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from experiments.report import figures
from experiments.report.fmt import MISSING, sig
from experiments.report.names import HEADS, head_label

FIGURE3_COLUMNS = ("true", "linear", "nca", "softstep")
#: The heads whose surfaces Figure 3 and its MSE table know, in column order.
FIGURE3_HEADS = ("linear", "nca", "nca_g", "nca_i")  # the paper's panels
FIGURE3_ROWS = (*HEADS, "knn")  # the table: every head and the k-NN reference


def load_surfaces(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read a Figure 3 surfaces file.

    Format, ``.npz`` (``np.savez(path, **{"<target>/<name>": array})``): for each target
    function name (e.g. ``sinusoidal``, ``checkerboard``, ``spiral``, ``multiplicative``) the keys

    - ``<target>/grid_x1`` (n1,) and ``<target>/grid_x2`` (n2,): the grid's coordinates on [−1, 1];
    - ``<target>/true`` (n2, n1): the target function on the grid, row i at x2 = grid_x2[i] and
      column j at x1 = grid_x1[j] (``np.meshgrid(grid_x1, grid_x2)`` order);
    - ``<target>/<head>`` (n2, n1) for each head drawn, head in ``linear``, ``nca``, ``nca_g``,
      ``nca_i``: the head's prediction on the same grid (same units as ``true``).

    ``.json`` holds the same as nested lists: ``{"<target>": {"grid_x1": [...], "true": [[...]], ...}}``.
    Returns ``{target: {name: array}}``.
    """
    path = Path(path)
    surfaces: dict[str, dict[str, np.ndarray]] = {}
    if path.suffix == ".npz":
        with np.load(path) as data:
            for key in data.files:
                target, sep, name = key.partition("/")
                if not sep or not name:
                    raise ValueError(f"{path}: key {key!r} is not <target>/<name>")
                surfaces.setdefault(target, {})[name] = np.asarray(data[key], dtype=float)
    elif path.suffix == ".json":
        raw = json.loads(path.read_text())
        surfaces = {t: {k: np.asarray(v, dtype=float) for k, v in d.items()} for t, d in raw.items()}
    else:
        raise ValueError(f"{path}: a surfaces file must be .npz or .json")
    for target, d in surfaces.items():
        _check_surface(target, d, path)
    return surfaces


def save_surfaces(surfaces: Mapping[str, Mapping[str, np.ndarray]], path: str | Path) -> None:
    """Write ``surfaces`` in the ``.npz`` format of :func:`load_surfaces`."""
    np.savez(path, **{f"{t}/{k}": np.asarray(v) for t, d in surfaces.items() for k, v in d.items()})


def _check_surface(target: str, d: Mapping[str, np.ndarray], where="<memory>") -> None:
    for key in ("grid_x1", "grid_x2", "true"):
        if key not in d:
            raise ValueError(f"{where}: target {target!r} has no {key!r} (has {', '.join(d)})")
    shape = (len(d["grid_x2"]), len(d["grid_x1"]))
    for key, arr in d.items():
        if key not in ("grid_x1", "grid_x2") and np.shape(arr) != shape:
            raise ValueError(
                f"{where}: {target}/{key} has shape {np.shape(arr)}, expected (len(grid_x2), len(grid_x1)) = {shape}"
            )


def _softstep_head(d: Mapping) -> str | None:
    return "nca_i" if "nca_i" in d else ("nca_g" if "nca_g" in d else None)


def surface_mse(surfaces: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Mean squared difference between each head's surface and the true one on the grid."""
    return {
        t: {h: float(np.mean((np.asarray(d[h]) - np.asarray(d["true"])) ** 2)) for h in FIGURE3_ROWS if h in d}
        for t, d in surfaces.items()
    }


def plot_figure3(
    surfaces: Mapping[str, Mapping[str, np.ndarray]],
    out_dir: str | Path,
    *,
    mse: Mapping[str, Mapping[str, float]] | None = None,
    mse_label: str = "MSE",
    stem: str = "figure3_synthetic",
) -> list[Path]:
    """Figure 3: one row per target, columns true | Linear | NCA | NCA + SoftStep (nca_i, else nca_g).

    ``surfaces``: ``{target: {"grid_x1": (n1,), "grid_x2": (n2,), "true": (n2, n1), "linear": ...,
    "nca": ..., "nca_g" or "nca_i": ...}}`` (see :func:`load_surfaces` for the layout). Each row
    shares one colour scale (its colour bar on the right). ``mse`` ({target: {head: value}}),
    when given, is shown under each panel's title as ``<mse_label> <value>``. A missing head
    leaves its panel empty ("not available"). Writes ``<stem>.{png,pdf}``.
    """
    if not surfaces:
        raise ValueError("plot_figure3 needs at least one target surface")
    for target, d in surfaces.items():
        _check_surface(target, d)
    targets = list(surfaces)
    fig = Figure(figsize=(12.0, 2.9 * len(targets) + 0.5), layout="constrained")
    axes = fig.subplots(len(targets), 4, squeeze=False)
    for r, target in enumerate(targets):
        d = surfaces[target]
        ss = _softstep_head(d)
        keys = ["true", "linear", "nca", ss]
        titles = ["true target", "Linear", "NCA", f"NCA + SoftStep ({ss.split('_')[1]})" if ss else "NCA + SoftStep"]
        arrays = [np.asarray(d[k], dtype=float) for k in keys if k and k in d]
        vmin, vmax = min(float(a.min()) for a in arrays), max(float(a.max()) for a in arrays)
        x1, x2 = np.asarray(d["grid_x1"], dtype=float), np.asarray(d["grid_x2"], dtype=float)
        image = None
        for c, (key, title) in enumerate(zip(keys, titles)):
            ax = axes[r, c]
            ax.set_aspect("equal")
            if key is None or key not in d:
                ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes, color="0.4")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(title, fontsize=10)
                continue
            image = ax.pcolormesh(
                x1,
                x2,
                np.asarray(d[key], dtype=float),
                cmap="viridis",
                vmin=vmin,
                vmax=vmax,
                shading="nearest",
                rasterized=True,
            )
            if mse is not None and key != "true" and key in mse.get(target, {}):
                title += f"\n{mse_label} {sig(mse[target][key])}"
            ax.set_title(title, fontsize=10)
            ax.set_xticks([-1, 0, 1])
            ax.set_yticks([-1, 0, 1])
            if r == len(targets) - 1:
                ax.set_xlabel("x₁")
            else:
                ax.tick_params(labelbottom=False)
            if c == 0:
                ax.set_ylabel(f"{target}\nx₂", fontsize=10)
            else:
                ax.tick_params(labelleft=False)
        if image is not None:
            fig.colorbar(image, ax=list(axes[r]), shrink=0.9, label="target / prediction")
    fig.suptitle("Figure 3: regression surfaces on [−1, 1]² (shared colour scale per row)")
    return figures.save(fig, out_dir, stem)


def write_figure3_table(
    mse: Mapping[str, Mapping[str, float]],
    path: str | Path,
    *,
    note: str = "MSE of each head on the synthetic targets.",
) -> Path:
    """A small Markdown table: rows targets, columns the heads present and k-NN; best bold."""
    heads = [h for h in FIGURE3_ROWS if any(h in row for row in mse.values())]
    lines = ["| Target | " + " | ".join(head_label(h) for h in heads) + " |", "| --- |" + " ---: |" * len(heads)]
    for target, row in mse.items():
        best = min(row.values()) if row else None
        cells = []
        for h in heads:
            if h not in row:
                cells.append(MISSING)
            else:
                text = sig(row[h])
                cells.append(f"**{text}**" if row[h] == best else text)
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Figure 3: synthetic targets\n\n" + "\n".join(lines) + f"\n\n{note} Bold: lowest of the row.\n")
    return path
