"""Figure 3 of the paper, through the real pipeline: synthetic 2-D targets learned by a linear
head, plain NCA and NCA with SoftStep; their surfaces on a grid and their test MSE.

Each (target, head) is one ``dataset=synthetic`` run of split 0 with the head's tuned settings;
its result file lands in the results store like any other run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from data.synthetic import TARGETS, target
from experiments import pipeline
from experiments.results import split_path, write_result

HEADS = ("linear", "nca", "nca_g", "nca_i")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@torch.no_grad()
def surface(model, inputs, train_idx, y_scaled, scaler, grid: np.ndarray, device) -> np.ndarray:
    """Predictions (original label units) on ``grid`` (G, 2), the training split as the reference set."""
    model.eval()
    z_grid = model.embed(torch.as_tensor(grid, dtype=torch.float32, device=device))
    z_ref = model.embed(inputs.features[torch.as_tensor(train_idx)].to(device)) if model.uses_reference else None
    y_ref = torch.as_tensor(y_scaled[train_idx], dtype=torch.float32, device=device)
    pred = model.head.predict(z_grid, z_ref, y_ref).cpu().numpy()
    return pred * scaler.span + scaler.lo


def run(results_root: str, *, n: int = 2000, grid_size: int = 100, heads=HEADS, targets=tuple(TARGETS),
        overrides: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Train every (target, head) on split 0; return (surfaces, test MSE × 10³ per target and head)."""
    g = np.linspace(-1, 1, grid_size)
    x1, x2 = np.meshgrid(g, g)
    grid = np.stack([x1.ravel(), x2.ravel()], 1)
    surfaces, mse = {}, {}
    for name in targets:
        surfaces[name] = {"grid_x1": g, "grid_x2": g, "true": target(name, x1, x2)}
        mse[name] = {}
        for head in heads:
            with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
                cfg = compose("config", overrides=["dataset=synthetic", f"dataset.loader.target_name={name}",
                                                   f"dataset.loader.n={n}", f"head={head}", "splits=[0]",
                                                   f"paths.results_root={results_root}", "progress=false", *overrides])
            pipeline.validate(cfg)
            rid, device = pipeline.run_id(cfg), torch.device("cpu")
            data = pipeline.load_data(cfg)
            pipeline.check_modality(cfg, data)
            inputs, in_dim = pipeline.prepare_inputs(cfg, data, device)
            res, model, scaler, idx = pipeline.train_split(cfg, data, inputs, in_dim, 0, rid, device)
            write_result(split_path(results_root, cfg.dataset.name, cfg.extractor.name, head, rid, 0),
                         pipeline.result_record(cfg, res, scaler, 0, rid, idx))
            surfaces[name][head] = surface(model, inputs, idx[0], scaler.transform(data.labels), scaler, grid, device).reshape(x1.shape)
            mse[name][head] = 1e3 * res.test_mse
            print(f"{name:15s} {head:8s} test MSE x 10^3 = {mse[name][head]:.3g} (best epoch {res.best_epoch})", flush=True)
    return surfaces, mse


def verdict(mse: dict) -> list[str]:
    """The paper's claim, target by target: the linear head fails where the neighbour heads succeed."""
    lines = []
    for name, row in mse.items():
        lin = row["linear"]
        nbr = {h: v for h, v in row.items() if h != "linear"}
        ok = all(v < 0.5 * lin for v in nbr.values())
        ss = min(row.get("nca_g", np.inf), row.get("nca_i", np.inf))
        lines.append(f"- **{name}**: linear {lin:.3g}; " + ", ".join(f"{h} {v:.3g} ({v / lin:.2f}× linear)" for h, v in nbr.items())
                     + f". Neighbour heads below half the linear head's MSE: **{'agrees' if ok else 'does not agree'}**"
                     + f"; SoftStep ≤ plain NCA: {'yes' if ss <= row.get('nca', np.inf) else 'no'}.")
    return lines
