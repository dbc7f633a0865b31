"""Each paper figure draws from fabricated results (or surfaces) and writes non-empty PNG and PDF files."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from experiments.names import HEADS
from experiments.report import figures as F
from experiments.report.tuning import tuning_cells
from experiments.results import RunKey, read_results, write_result

ROOT = Path(__file__).resolve().parents[1]
KB = 1024


def fake_result(dataset, head, split, mse, hparams):
    run_id = "-".join(str(hparams.get(k)) for k in ("similarity", "embed_dim", "batch_size")) + "-0000abcd"
    metrics = {k: mse for k in ("test_mse_x1e3", "val_mse_x1e3", "test_mse_orig", "val_mse_orig")}
    metrics.update(test_mse=mse / 1e3, val_mse=mse / 1e3)
    return {"format_version": 1, "dataset": dataset, "extractor": "fake", "head": head, "split": split,
            "run_id": run_id, "hparams": hparams, "metrics": metrics, "best_epoch": 1, "epochs_run": 2,
            "config": {}, "git_commit": "0" * 40, "versions": {}, "finished_at": "2026-01-01T00:00:00"}


def grid_results(root, heads=HEADS):
    """A 2 similarities × 2 embed × 2 batch grid on rsna, 3 splits; the best cell of each head is (rbf, 100, 32)."""
    for head in heads:
        sims = [None] if head == "linear" else ["l2", "rbf"]
        for sim in sims:
            for e in (25, 100):
                for b in (32, 128):
                    base = 3.0 if (sim in (None, "rbf") and e == 100 and b == 32) else 5.0 + 0.1 * e / 25 + b / 128
                    for s in range(3):
                        hp = {"embed_dim": e, "batch_size": b} | ({} if sim is None else {"similarity": sim})
                        r = fake_result("rsna", head, s, base + 0.2 * s, hp)
                        write_result(RunKey(str(root), "rsna", "fake", head, r["run_id"]).split_path(s), r)


def surfaces(targets=("sinusoidal", "spiral"), softstep="nca_i", n=40):
    g = np.linspace(-1, 1, n)
    x1, x2 = np.meshgrid(g, g)
    rng = np.random.default_rng(0)
    out = {}
    for t in targets:
        true = np.sin(3 * x1) * np.cos(3 * x2) if t == "sinusoidal" else np.sin(5 * np.hypot(x1, x2) + np.arctan2(x2, x1))
        out[t] = {"grid_x1": g, "grid_x2": g, "true": true, "linear": 0.3 * x1 - 0.1 * x2,
                  "nca": true + rng.normal(0, 0.2, true.shape), softstep: true + rng.normal(0, 0.05, true.shape)}
    return out


def assert_figure(paths, stem, min_kb=10):
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.pdf"]
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > min_kb * KB
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > min_kb * KB


def test_figure2(tmp_path):
    assert_figure(F.plot_figure2(tmp_path), "figure2_softstep")


def test_figures_4_and_5(tmp_path):
    grid_results(tmp_path)
    cells = tuning_cells(read_results(tmp_path), "rsna")
    assert {c.label for c in cells if c.best and c.head != "linear"} == {"(rbf, 100, 32)"}
    assert_figure(F.plot_figure4(cells, tmp_path / "fig"), "figure4_nca_tuning")
    assert_figure(F.plot_figure5(cells, tmp_path / "fig"), "figure5_diffknn_tuning")


def test_tuning_figure_with_some_heads_missing(tmp_path):
    grid_results(tmp_path, heads=("linear", "nca_i"))
    cells = tuning_cells(read_results(tmp_path), "rsna")
    assert_figure(F.plot_figure4(cells, tmp_path / "fig"), "figure4_nca_tuning")
    assert F.plot_figure5(cells, tmp_path / "fig") == []


def test_figure3_from_npz_and_json(tmp_path):
    surf = surfaces()
    path = tmp_path / "surfaces.npz"
    F.save_surfaces(surf, path)
    loaded = F.load_surfaces(path)
    assert set(loaded) == {"sinusoidal", "spiral"} and set(loaded["spiral"]) == {"grid_x1", "grid_x2", "true", "linear", "nca", "nca_i"}
    np.testing.assert_allclose(loaded["spiral"]["nca_i"], surf["spiral"]["nca_i"])
    mse = F.surface_mse(loaded)
    assert mse["sinusoidal"]["nca_i"] < mse["sinusoidal"]["nca"] < mse["sinusoidal"]["linear"]
    assert_figure(F.plot_figure3(loaded, tmp_path / "fig", mse=mse), "figure3_synthetic", min_kb=20)

    js = tmp_path / "surfaces.json"
    js.write_text(json.dumps({t: {k: np.asarray(v).tolist() for k, v in d.items()} for t, d in surfaces(("spiral",), "nca_g").items()}))
    assert_figure(F.plot_figure3(F.load_surfaces(js), tmp_path / "fig2", stem="f3"), "f3", min_kb=10)


def test_figure3_rejects_a_wrong_shape(tmp_path):
    surf = surfaces(("spiral",))
    surf["spiral"]["nca"] = surf["spiral"]["nca"][:, :-1]
    with pytest.raises(ValueError, match=r"spiral/nca has shape \(40, 39\)"):
        F.plot_figure3(surf, tmp_path)


def test_figure3_table(tmp_path):
    path = F.write_figure3_table({"spiral": {"linear": 0.5, "nca": 0.0224, "nca_i": 0.00251},
                                  "sinusoidal": {"linear": 0.288, "nca": 0.01}}, tmp_path / "f3.md")
    text = path.read_text()
    assert "| Target | Linear | NCA | NCA i |" in text
    assert "| spiral | 0.500 | 0.0224 | **0.00251** |" in text
    assert "| sinusoidal | 0.288 | **0.0100** | – |" in text


def test_make_figures_cli(tmp_path):
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "scripts/make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    grid_results(tmp_path / "res")
    F.save_surfaces(surfaces(), tmp_path / "s.npz")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = module.main(["--results-root", str(tmp_path / "res"), "--out", str(tmp_path / "figs"),
                            "--figure3-from", str(tmp_path / "s.npz")])
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == sorted([f"{s}.{e}" for s in ("figure2_softstep", "figure3_synthetic", "figure4_nca_tuning",
                                                  "figure5_diffknn_tuning") for e in ("png", "pdf")] + ["figure3_mse.md"])


def test_sparsity_figure_from_result_files(tmp_path):
    heads = ("nca", "nca_i", "diffknn_g")
    for d, n_ref in (("rsna", 900), ("books", 300)):
        for head in heads + ("linear",):
            for s in range(2):
                r = fake_result(d, head, s, 5.0, {"embed_dim": 25, "batch_size": 32})
                if head != "linear":
                    q = lambda m: {"p10": m / 2, "median": m, "p90": 2 * m}  # noqa: E731
                    r["sparsity"] = {"n_queries": 10, "n_reference": n_ref, "nonzero": q(40.0 + s), "effective": q(10.0 + s)}
                write_result(RunKey(str(tmp_path), d, "fake", head, r["run_id"]).split_path(s), r)
    results = read_results(tmp_path)
    cells = F.sparsity_cells(results)
    assert set(cells) == {(d, h) for d in ("rsna", "books") for h in heads}  # linear has no neighbours
    assert cells[("rsna", "nca")]["median"] == pytest.approx(10.5) and cells[("rsna", "nca")]["n"] == 2
    assert_figure(F.plot_sparsity(results, tmp_path / "fig"), "sparsity_effective_neighbours")
    assert F.plot_sparsity([r for r in results if r["head"] == "linear"], tmp_path / "none") == []
