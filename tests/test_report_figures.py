"""Each paper figure, drawn from fabricated results (or surfaces): what it shows (panels, titles, labels, and the
plotted values against the input files) and the PNG and PDF it writes."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from experiments.report import figures as F
from experiments.report import surfaces as S
from experiments.report.fmt import sig
from experiments.report.names import HEADS, dataset_label, head_label
from experiments.report.tuning import tuning_cells
from experiments.store.results import RunKey, read_results, write_result

ROOT = Path(__file__).resolve().parents[1]
KB = 1024


def fake_result(dataset, head, split, mse, hparams):
    run_id = "-".join(str(hparams.get(k)) for k in ("similarity", "embed_dim", "batch_size")) + "-0000abcd"
    metrics = {k: mse for k in ("test_mse_x1e3", "val_mse_x1e3", "test_mse_orig", "val_mse_orig")}
    metrics.update(test_mse=mse / 1e3, val_mse=mse / 1e3)
    return {
        "format_version": 1,
        "dataset": dataset,
        "extractor": "fake",
        "head": head,
        "split": split,
        "run_id": run_id,
        "hparams": hparams,
        "metrics": metrics,
        "best_epoch": 1,
        "epochs_run": 2,
        "config": {},
        "git_commit": "0" * 40,
        "versions": {},
        "finished_at": "2026-01-01T00:00:00",
    }


def grid_results(root, heads=HEADS):
    """A 2 similarities × 2 embed × 2 batch grid on rsna, 3 splits; the best cell of each head is (rbf, 100, 32).
    Each head's values are shifted by 0.1 × its place in HEADS, so that panels of different heads differ."""
    for head in heads:
        sims = [None] if head == "linear" else ["l2", "rbf"]
        for sim in sims:
            for e in (25, 100):
                for b in (32, 128):
                    base = 3.0 if (sim in (None, "rbf") and e == 100 and b == 32) else 5.0 + 0.1 * e / 25 + b / 128
                    for s in range(3):
                        hp = {"embed_dim": e, "batch_size": b} | ({} if sim is None else {"similarity": sim})
                        r = fake_result("rsna", head, s, base + 0.1 * HEADS.index(head) + 0.2 * s, hp)
                        write_result(RunKey(str(root), "rsna", "fake", head, r["run_id"]).split_path(s), r)


def surfaces(targets=("sinusoidal", "spiral"), softstep="nca_i", n=40):
    g = np.linspace(-1, 1, n)
    x1, x2 = np.meshgrid(g, g)
    rng = np.random.default_rng(0)
    out = {}
    for t in targets:
        true = (
            np.sin(3 * x1) * np.cos(3 * x2) if t == "sinusoidal" else np.sin(5 * np.hypot(x1, x2) + np.arctan2(x2, x1))
        )
        out[t] = {
            "grid_x1": g,
            "grid_x2": g,
            "true": true,
            "linear": 0.3 * x1 - 0.1 * x2,
            "nca": true + rng.normal(0, 0.2, true.shape),
            softstep: true + rng.normal(0, 0.05, true.shape),
        }
    return out


def assert_figure(paths, stem, min_kb=10):
    """The files are written: a PNG and a PDF of some size (what they show: the Figure itself, see ``drawn``)."""
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.pdf"]
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > min_kb * KB
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > min_kb * KB


@pytest.fixture
def drawn(monkeypatch):
    """{file stem: the matplotlib Figure written under it}: each plot function builds its Figure and hands it to
    ``figures.save``, wrapped here, so the test reads what the figure shows while the files are still written."""
    figures = {}
    save = F.save

    def keep(fig, out_dir, stem):
        figures[stem] = fig
        return save(fig, out_dir, stem)

    monkeypatch.setattr(F, "save", keep)
    return figures


def texts(artists):
    return [a.get_text() for a in artists]


def bar_groups(ax):
    """The axes' bar groups (each with its error bars as ``.errorbar``), in drawing order."""
    from matplotlib.container import BarContainer

    return [c for c in ax.containers if isinstance(c, BarContainer)]


def test_figure2(tmp_path, drawn):
    import torch

    from softstep.functional import soft_step

    assert_figure(F.plot_figure2(tmp_path), "figure2_softstep")
    (ax,) = drawn["figure2_softstep"].axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("normalised similarity s", "SoftStep(s; l, u, t)")
    assert ax.get_title().startswith("SoftStep: 0 below l, 1 above u")
    assert ax.get_xlim() == (0, 1)
    curves = [line for line in ax.lines if line.get_label().startswith("t = ")]
    assert [c.get_label() for c in curves] == ["t = 0.1", "t = 0.25", "t = 0.5", "t = 0.75", "t = 1"]
    assert texts(ax.get_legend().get_texts()) == [c.get_label() for c in curves]
    assert ax.get_legend().get_title().get_text() == "transition t"
    s = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    for curve, t in zip(curves, (0.1, 0.25, 0.5, 0.75, 1.0)):
        x, y = curve.get_data()
        np.testing.assert_allclose(x, s.numpy())
        one = lambda v: torch.tensor(v, dtype=s.dtype)  # noqa: E731
        np.testing.assert_allclose(y, soft_step(s, one(0.25), one(0.75), one(t)).numpy())
        assert (y[x < 0.25] == 0).all() and (y[x > 0.75] == 1).all() and (np.diff(y) >= 0).all()
    # l and u: dashed vertical lines, named above the axes
    marks = [line for line in ax.lines if line not in curves]
    assert sorted(line.get_xdata()[0] for line in marks) == [0.25, 0.75] and all(
        line.get_linestyle() == "--" for line in marks
    )
    assert texts(ax.texts) == ["l = 0.25", "u = 0.75"]


def assert_tuning_panels(fig, results, heads, title):
    """One panel per head, in order: a bar per grid cell at the mean of its result files' test_mse_x1e3 over
    splits with the sample std as error bar, ticks labelled (similarity, embed_dim, batch_size), the best bar
    (the lowest mean) hatched and starred, and the panel title naming it."""
    assert fig.get_suptitle() == title
    axes = fig.axes
    assert len(axes) == len(heads)
    for ax, head in zip(axes, heads):
        by_cell = {}
        for r in results:
            if r["head"] == head:
                hp = r["hparams"]
                label = (
                    "("
                    + ", ".join(str(v) for v in (hp.get("similarity"), hp["embed_dim"], hp["batch_size"]) if v)
                    + ")"
                )
                by_cell.setdefault(label, []).append(r["metrics"]["test_mse_x1e3"])
        labels = texts(ax.get_xticklabels())
        assert sorted(labels) == sorted(by_cell) and len(labels) == 8
        (bars,) = bar_groups(ax)
        heights = [bar.get_height() for bar in bars]
        np.testing.assert_allclose(heights, [np.mean(by_cell[label]) for label in labels])
        spans = [seg[1][1] - seg[0][1] for seg in bars.errorbar.lines[2][0].get_segments()]
        np.testing.assert_allclose(spans, [2 * np.std(by_cell[label], ddof=1) for label in labels])
        best = int(np.argmin(heights))
        assert labels[best] == "(rbf, 100, 32)"
        assert [bar.get_hatch() for bar in bars] == [("//" if i == best else None) for i in range(8)]
        assert {bar.get_facecolor() for i, bar in enumerate(bars) if i != best} == {bars[best - 1].get_facecolor()}
        assert bars[best].get_facecolor() != bars[best - 1].get_facecolor()
        (star,) = [line for line in ax.lines if line.get_marker() == "*"]
        assert star.get_xdata()[0] == best
        assert ax.get_title().startswith(f"{head_label(head)}: best (rbf, 100, 32) = {sig(heights[best])} ± 0.200")
        assert ax.get_title().endswith("(n = 3 splits)") and ax.get_ylabel() == F.MSE_LABEL
    assert axes[-1].get_xlabel() == "(similarity, embedding dimension, batch size)"
    (legend,) = fig.legends
    assert texts(legend.get_texts()) == ["mean over splits (error bar: ± std)", "best mean", "best configuration"]


def test_figures_4_and_5(tmp_path, drawn):
    grid_results(tmp_path)
    results = read_results(tmp_path)
    cells = tuning_cells(results, "rsna")
    assert {c.label for c in cells if c.best and c.head != "linear"} == {"(rbf, 100, 32)"}
    assert_figure(F.plot_figure4(cells, tmp_path / "fig"), "figure4_nca_tuning")
    assert_figure(F.plot_figure5(cells, tmp_path / "fig"), "figure5_diffknn_tuning")
    assert_tuning_panels(
        drawn["figure4_nca_tuning"],
        results,
        ("nca", "nca_g", "nca_i"),
        "Figure 4: NCA heads over the tuning grid (rsna)",
    )
    assert_tuning_panels(
        drawn["figure5_diffknn_tuning"],
        results,
        ("diffknn_g", "diffknn_i"),
        "Figure 5: DiffKNN heads over the tuning grid (rsna)",
    )


def test_tuning_figure_with_some_heads_missing(tmp_path, drawn):
    grid_results(tmp_path, heads=("linear", "nca_i"))
    results = read_results(tmp_path)
    cells = tuning_cells(results, "rsna")
    assert_figure(F.plot_figure4(cells, tmp_path / "fig"), "figure4_nca_tuning")
    assert_tuning_panels(
        drawn["figure4_nca_tuning"], results, ("nca_i",), "Figure 4: NCA heads over the tuning grid (rsna)"
    )
    assert F.plot_figure5(cells, tmp_path / "fig") == []
    assert set(drawn) == {"figure4_nca_tuning"}  # no Figure 5 drawn


def assert_surface_rows(fig, surf, mse=None):
    """One row per target of four panels (true | Linear | NCA | NCA + SoftStep), each showing its surface on the
    grid, one colour scale per row spanning the row's values (and its colour bar), the MSE under the titles."""
    targets = list(surf)
    panels, bars = fig.axes[: 4 * len(targets)], fig.axes[4 * len(targets) :]
    assert len(bars) == len(targets) and all(b.get_ylabel() == "target / prediction" for b in bars)
    for r, target in enumerate(targets):
        d = surf[target]
        ss = "nca_i" if "nca_i" in d else "nca_g"
        row = panels[4 * r : 4 * r + 4]
        names = ["true", "linear", "nca", ss]
        lo, hi = min(d[k].min() for k in names), max(d[k].max() for k in names)
        for ax, key, title in zip(row, names, ["true target", "Linear", "NCA", f"NCA + SoftStep ({ss[-1]})"]):
            want = title if mse is None or key == "true" else f"{title}\nMSE {sig(mse[target][key])}"
            assert ax.get_title() == want
            (mesh,) = ax.collections
            np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(d[key].shape), d[key])
            np.testing.assert_allclose(mesh.get_clim(), (lo, hi))
            corners = mesh.get_coordinates()  # cell edges halfway between grid points: their midpoints are the grid
            np.testing.assert_allclose((corners[0, 1:, 0] + corners[0, :-1, 0]) / 2, d["grid_x1"], atol=1e-12)
            np.testing.assert_allclose((corners[1:, 0, 1] + corners[:-1, 0, 1]) / 2, d["grid_x2"], atol=1e-12)
        assert row[0].get_ylabel() == f"{target}\nx₂"
        assert all(ax.get_xlabel() == ("x₁" if r == len(targets) - 1 else "") for ax in row)
    assert fig.get_suptitle().startswith("Figure 3: regression surfaces")


def test_figure3_from_npz_and_json(tmp_path, drawn):
    surf = surfaces()
    path = tmp_path / "surfaces.npz"
    S.save_surfaces(surf, path)
    loaded = S.load_surfaces(path)
    assert set(loaded) == {"sinusoidal", "spiral"} and set(loaded["spiral"]) == {
        "grid_x1",
        "grid_x2",
        "true",
        "linear",
        "nca",
        "nca_i",
    }
    np.testing.assert_allclose(loaded["spiral"]["nca_i"], surf["spiral"]["nca_i"])
    mse = S.surface_mse(loaded)
    assert mse["sinusoidal"]["nca_i"] < mse["sinusoidal"]["nca"] < mse["sinusoidal"]["linear"]
    assert_figure(S.plot_figure3(loaded, tmp_path / "fig", mse=mse), "figure3_synthetic", min_kb=20)
    assert_surface_rows(drawn["figure3_synthetic"], surf, mse)

    js = tmp_path / "surfaces.json"
    spiral = surfaces(("spiral",), "nca_g")
    js.write_text(json.dumps({t: {k: np.asarray(v).tolist() for k, v in d.items()} for t, d in spiral.items()}))
    assert_figure(S.plot_figure3(S.load_surfaces(js), tmp_path / "fig2", stem="f3"), "f3", min_kb=10)
    assert_surface_rows(drawn["f3"], spiral)


def test_figure3_rejects_a_wrong_shape(tmp_path):
    surf = surfaces(("spiral",))
    surf["spiral"]["nca"] = surf["spiral"]["nca"][:, :-1]
    with pytest.raises(ValueError, match=r"spiral/nca has shape \(40, 39\)"):
        S.plot_figure3(surf, tmp_path)


def test_figure3_table(tmp_path):
    path = S.write_figure3_table(
        {"spiral": {"linear": 0.5, "nca": 0.0224, "nca_i": 0.00251}, "sinusoidal": {"linear": 0.288, "nca": 0.01}},
        tmp_path / "f3.md",
    )
    text = path.read_text()
    assert "| Target | Linear | NCA | NCA i |" in text
    assert "| spiral | 0.500 | 0.0224 | **0.00251** |" in text
    assert "| sinusoidal | 0.288 | **0.0100** | – |" in text


def test_make_figures_cli(tmp_path):
    from scripts import make_figures as module

    grid_results(tmp_path / "res")
    S.save_surfaces(surfaces(), tmp_path / "s.npz")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = module.main(
            [
                "--results-root",
                str(tmp_path / "res"),
                "--out",
                str(tmp_path / "figs"),
                "--figure3-from",
                str(tmp_path / "s.npz"),
            ]
        )
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == sorted(
        [
            f"{s}.{e}"
            for s in ("figure2_softstep", "figure3_synthetic", "figure4_nca_tuning", "figure5_diffknn_tuning")
            for e in ("png", "pdf")
        ]
        + ["figure3_mse.md"]
    )


def test_sparsity_figure_from_result_files(tmp_path, drawn):
    heads = ("nca", "nca_i", "diffknn_g")
    for d, n_ref in (("rsna", 900), ("books", 300)):
        for k, head in enumerate(heads + ("linear",)):
            for s in range(2):
                r = fake_result(d, head, s, 5.0, {"embed_dim": 25, "batch_size": 32})
                if head != "linear":  # each (dataset, head) its own sizes: rsna's nca 10 and 11, books' 3 × rsna's
                    q = lambda m: {"p10": m / 2, "median": m, "p90": 2 * m}  # noqa: E731
                    scale = (1 + k) * (3 if d == "books" else 1)
                    r["sparsity"] = {
                        "n_queries": 10,
                        "n_reference": n_ref,
                        "nonzero": q(scale * (40.0 + s)),
                        "effective": q(scale * (10.0 + s)),
                    }
                write_result(RunKey(str(tmp_path), d, "fake", head, r["run_id"]).split_path(s), r)
    results = read_results(tmp_path)
    cells = F.sparsity_cells(results)
    assert set(cells) == {(d, h) for d in ("rsna", "books") for h in heads}  # linear has no neighbours
    assert cells[("rsna", "nca")]["median"] == pytest.approx(10.5) and cells[("rsna", "nca")]["n"] == 2
    assert_figure(F.plot_sparsity(results, tmp_path / "fig"), "sparsity_effective_neighbours")
    assert F.plot_sparsity([r for r in results if r["head"] == "linear"], tmp_path / "none") == []
    assert set(drawn) == {"sparsity_effective_neighbours"}  # nothing drawn without a sparsity block

    fig = drawn["sparsity_effective_neighbours"]
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "neighbours per test query"
    assert ax.get_title().startswith("Effective neighbourhood size 1/Σw²")
    datasets = ["rsna", "books"]  # Table 1's order
    assert texts(ax.get_xticklabels()) == [f"{dataset_label(d)}\n(N = {n})" for d, n in zip(datasets, (900, 300))]
    # one group of bars per head, in Table 1's order: the mean over splits of the queries' median effective size,
    # whiskers from their p10 to their p90, and a diamond at the median number of non-zero weights
    expected = {(r["dataset"], r["head"]): [] for r in results if "sparsity" in r}
    for r in results:
        if "sparsity" in r:
            expected[(r["dataset"], r["head"])].append(r["sparsity"])
    diamonds = [line for line in ax.lines if line.get_marker() == "D"]
    assert len(bar_groups(ax)) == len(diamonds) == 3
    for bars, dots, head in zip(bar_groups(ax), diamonds, ("nca", "nca_i", "diffknn_g")):
        assert bars.get_label() == head_label(head)
        blocks = [expected[(d, head)] for d in datasets]
        mean = lambda key, q: [np.mean([b[key][q] for b in bl]) for bl in blocks]  # noqa: E731
        np.testing.assert_allclose([bar.get_height() for bar in bars], mean("effective", "median"))
        whiskers = bars.errorbar.lines[2][0].get_segments()
        np.testing.assert_allclose([w[0][1] for w in whiskers], mean("effective", "p10"))
        np.testing.assert_allclose([w[1][1] for w in whiskers], mean("effective", "p90"))
        np.testing.assert_allclose(dots.get_ydata(), mean("nonzero", "median"))
        np.testing.assert_allclose(dots.get_xdata(), [bar.get_x() + bar.get_width() / 2 for bar in bars])
        assert [round(bar.get_x() + bar.get_width() / 2) for bar in bars] == [0, 1]  # one group per dataset
    (legend,) = fig.legends
    assert texts(legend.get_texts()) == ["NCA", "NCA i", "DiffKNN g", "non-zero weights (median)"]
