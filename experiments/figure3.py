"""Figure 3 of the paper, through the real pipeline: synthetic 2-D targets learned by a linear
head, plain NCA and NCA with SoftStep; their surfaces on a grid and their test MSE.

Each (target, head) is one ``dataset=synthetic`` run of split 0 with the head's tuned settings;
its result file lands in the results store like any other run.
"""
from __future__ import annotations

import numpy as np
import torch

from data.synthetic import TARGETS, target
from experiments import pipeline
from experiments.compose import compose

HEADS = ("linear", "nca", "nca_g", "nca_i")  # the heads of the paper's Figure 3


@torch.no_grad()
def surface(trained: pipeline.Trained, grid: np.ndarray) -> np.ndarray:
    """Predictions (original label units) on ``grid`` (G, 2), the training split as the reference set."""
    model = trained.model.eval()
    device = next(model.parameters()).device
    z_grid = model.embed(torch.as_tensor(grid, dtype=torch.float32, device=device))
    x_ref = trained.inputs.features[torch.as_tensor(trained.train_idx)].to(device)
    z_ref = model.embed(x_ref) if model.uses_reference else None
    y_ref = torch.as_tensor(trained.y_train, dtype=torch.float32, device=device)
    pred = model.head.predict(z_grid, z_ref, y_ref).cpu().numpy()
    return pred * trained.scaler.span + trained.scaler.lo


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
            cfg = compose(["dataset=synthetic", f"dataset.loader.target_name={name}", f"dataset.loader.n={n}",
                           f"head={head}", "splits=[0]", "force=true", f"paths.results_root={results_root}",
                           "progress=false", *overrides])
            trained = pipeline.run(cfg, keep_models=True).trained[0]
            surfaces[name][head] = surface(trained, grid).reshape(x1.shape)
            mse[name][head] = trained.record["metrics"]["test_mse_x1e3"]
            print(f"{name:15s} {head:8s} test MSE x 10^3 = {mse[name][head]:.3g} "
                  f"(best epoch {trained.record['best_epoch']})", flush=True)
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
