"""Figure 3 of the paper, through the real pipeline: the six heads and a k-NN reference on the
synthetic 2-D targets; their surfaces on a grid and their test MSE.

Setups (``SETUPS``):

- ``raw`` (the main result, as the paper's claim and the authors' notebook have it): the heads on
  the raw coordinates (x₁, x₂), no MLP (``model.arch=identity``, ``model.embed_dim=2``). The linear
  head is then a linear regression, and a neighbour head can only be better by being a better
  neighbourhood.
- ``mlp`` (ours): the pipeline's 200-wide ReLU MLP before the head. With it even the linear head
  approximates any smooth target, so it does not test the claim.

``knn`` is scikit-learn's ``KNeighborsRegressor`` on the same split and the same (scaled) labels,
on the raw coordinates, with k chosen on the validation split. Each (target, head) is one
``dataset=synthetic`` run of split 0 with the head's tuned settings; its result file lands in the
results store like any other run.
"""

from __future__ import annotations

import numpy as np
import torch

from data.synthetic import TARGETS, target
from experiments.protocol import pipeline
from experiments.protocol.baselines import KS, tuned_knn
from experiments.protocol.compose import compose
from experiments.report.names import HEADS

SETUPS = {"raw": ("model.arch=identity", "model.embed_dim=2"), "mlp": ()}
KNN_KS = KS
#: The mean predictor's test MSE × 10³ on each target is about its label variance; a head "at the mean"
#: scores near it. We call a head at the mean when it is above 60 % of the variance.
AT_MEAN = 0.6


@torch.no_grad()
def surface(trained: pipeline.Trained, grid: np.ndarray) -> np.ndarray:
    """Predictions (original label units) on ``grid`` (G, 2), the training split as the reference set."""
    model = trained.model.eval()
    device = next(model.parameters(), torch.zeros(())).device
    train = torch.as_tensor(trained.idx[0])
    z_grid = model.embed(torch.as_tensor(grid, dtype=torch.float32, device=device))
    z_ref = model.embed(trained.inputs.features[train].to(device)) if model.uses_reference else None
    y_ref = torch.as_tensor(trained.y_scaled[train], dtype=torch.float32, device=device)
    pred = model.head.predict(z_grid, z_ref, y_ref).cpu().numpy()
    return pred * trained.scaler.span + trained.scaler.lo


def knn_reference(trained: pipeline.Trained, grid: np.ndarray) -> tuple[float, int, np.ndarray]:
    """(test MSE × 10³, k, surface on ``grid``) of scikit-learn's k-NN on the raw coordinates, k by validation MSE."""
    x, y = trained.inputs.features.numpy(), trained.y_scaled
    train, val, test = trained.idx
    knn, k = tuned_knn(x, y, train, val, KNN_KS)
    test_mse = 1e3 * float(np.mean((knn.predict(x[test]) - y[test]) ** 2))
    return test_mse, k, knn.predict(grid) * trained.scaler.span + trained.scaler.lo


def run(
    results_root: str,
    *,
    setup: str = "raw",
    n: int = 2000,
    grid_size: int = 100,
    heads=HEADS,
    targets=tuple(TARGETS),
    overrides: tuple[str, ...] = (),
    neighbour_overrides: tuple[str, ...] = (),
) -> tuple[dict, dict]:
    """Train every (target, head) on split 0 in ``setup``; return (surfaces, test MSE × 10³ per target and
    head, ``knn`` included). ``neighbour_overrides`` apply to the neighbour heads only (e.g. a head.module
    argument the linear head does not take)."""
    g = np.linspace(-1, 1, grid_size)
    x1, x2 = np.meshgrid(g, g)
    grid = np.stack([x1.ravel(), x2.ravel()], 1)
    surfaces, mse = {}, {}
    for name in targets:
        surfaces[name] = {"grid_x1": g, "grid_x2": g, "true": target(name, x1, x2)}
        mse[name] = {}
        for head in heads:
            cfg = compose(
                [
                    "dataset=synthetic",
                    f"dataset.loader.target_name={name}",
                    f"dataset.loader.n={n}",
                    f"head={head}",
                    "splits=[0]",
                    "force=true",
                    f"paths.results_root={results_root}",
                    "progress=false",
                    *SETUPS[setup],
                    *overrides,
                    *(neighbour_overrides if head != "linear" else ()),
                ]
            )
            trained = pipeline.run(cfg, keep_models=True).trained[0]
            surfaces[name][head] = surface(trained, grid).reshape(x1.shape)
            mse[name][head] = trained.record["metrics"]["test_mse_x1e3"]
            print(
                f"{setup} {name:15s} {head:10s} test MSE x 10^3 = {mse[name][head]:.3g} "
                f"(best epoch {trained.record['best_epoch']})",
                flush=True,
            )
        mse[name]["knn"], k, knn_surface = knn_reference(trained, grid)
        surfaces[name]["knn"] = knn_surface.reshape(x1.shape)
        print(f"{setup} {name:15s} knn (k={k:2d})   test MSE x 10^3 = {mse[name]['knn']:.3g}", flush=True)
    return surfaces, mse


def label_variance_x1e3(name: str, n: int = 2000, noise: float = 0.0) -> float:
    """The mean predictor's MSE × 10³ on scaled labels: the variance of the min–max scaled target (with its noise)."""
    from data.synthetic import load

    y = np.asarray(load(target_name=name, n=n, noise=noise).labels, dtype=float)
    return 1e3 * float(np.var((y - y.min()) / (y.max() - y.min())))


def verdict(mse: dict, variance: dict | None = None) -> list[str]:
    """The paper's claim, target by target: every neighbour head below the linear head; none at the mean;
    each SoftStep head's distance from k-NN."""
    lines = []
    for name, row in mse.items():
        lin = row["linear"]
        nbr = {h: v for h, v in row.items() if h not in ("linear", "knn")}
        below = all(v < lin for v in nbr.values())
        at_mean = [h for h, v in nbr.items() if variance and v > AT_MEAN * variance[name]]
        knn = row.get("knn")
        lines.append(
            f"- **{name}**: linear {lin:.3g}"
            + (f", k-NN {knn:.3g}" if knn is not None else "")
            + (f", the mean {variance[name]:.3g}" if variance else "")
            + "; "
            + ", ".join(f"{h} {v:.3g}" + (f" ({v / knn:.2f}× k-NN)" if knn else "") for h, v in nbr.items())
            + f". Every neighbour head below the linear head: **{'yes' if below else 'no'}**"
            + (f"; neighbour heads at the mean: {', '.join(at_mean) if at_mean else 'none'}" if variance else "")
            + "."
        )
    return lines
