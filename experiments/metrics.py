"""The metrics a run records and reports, in one place: every writer and reader of a metric uses these names.

The paper's metric (Table 1) is the test MSE × 10³ on the label min–max scaled on the training split. Beside it
every result records (ours, for comparing with other tools) the MSE, RMSE and MAE in the label's units (the
loader's label: ln(target) with ``log_target``) and R², each from the predictions of the best epoch's model.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

#: The paper's Table 1 (``dataset,head,mse_x1e3_mean,mse_x1e3_std``), data beside the code.
PAPER_TABLE1 = Path(__file__).resolve().parents[1] / "results" / "paper" / "table1.csv"
#: The result-file field Table 1 reports.
PAPER_METRIC = "test_mse_x1e3"
#: Every result file's ``metrics`` holds these (validated by :mod:`experiments.store.results`).
REQUIRED_METRICS = ("test_mse", "val_mse", "test_mse_x1e3", "val_mse_x1e3", "test_mse_orig", "val_mse_orig")
#: A final model's result (``final=true``: no test rows) holds the validation ones only.
REQUIRED_FINAL_METRICS = ("val_mse", "val_mse_x1e3", "val_mse_orig")
#: Optional (absent from files written before they were added): in the label's units, and R² (may be negative).
LABEL_UNITS = ("rmse_orig", "mae_orig", "r2")

#: ``make_tables --metric`` name → (result field of the test split, what a table calls it, higher is better).
TABLE_METRICS = {
    "paper": (PAPER_METRIC, "test MSE × 10³ (labels min–max scaled on the training split)", False),
    "mse": ("test_mse_orig", "test MSE in the label's units", False),
    "rmse": ("test_rmse_orig", "test RMSE in the label's units", False),
    "mae": ("test_mae_orig", "test MAE in the label's units", False),
    "r2": ("test_r2", "test R²", True),
}


def label_metrics(y_true, y_pred) -> dict[str, float]:
    """MSE, RMSE, MAE (in the units of ``y_true``) and R² of predictions ``y_pred``, as scikit-learn's
    ``mean_squared_error``, ``mean_absolute_error`` and ``r2_score`` compute them (R² of constant labels: 1 when
    every prediction is exact, else 0, as ``r2_score``'s ``force_finite``, also where their spread is too small for
    float64 to divide by; of one row: absent)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    mse = float(mean_squared_error(y_true, y_pred))
    out = {"mse_orig": mse, "rmse_orig": math.sqrt(mse), "mae_orig": float(mean_absolute_error(y_true, y_pred))}
    if len(y_true) > 1:  # R² of one row is undefined: left out
        r2 = float(r2_score(y_true, y_pred))
        out["r2"] = r2 if math.isfinite(r2) else (1.0 if mse == 0 else 0.0)  # a spread of 1e-155 squares to ~0
    return out


def split_metrics(test_mse: float, val_mse: float, scaler, predictions: dict | None = None) -> dict[str, float]:
    """A result file's ``metrics``: the MSE on the scaled label, × 10³ (the paper's unit), and in the label's units.

    ``predictions``: ``{"test": (y_true, y_pred), "val": ...}`` in the label's units; with them each set also gets
    ``<set>_rmse_orig``, ``<set>_mae_orig`` and ``<set>_r2`` (and its ``_mse_orig`` from the same predictions). A
    set whose MSE is NaN (no test rows: a final model) is left out."""
    out = {}
    for name, value in (("test", test_mse), ("val", val_mse)):
        if value is None or not math.isfinite(value):
            continue
        out[f"{name}_mse"] = value
        out[f"{name}_mse_x1e3"] = 1e3 * value
        out[f"{name}_mse_orig"] = scaler.mse_to_original(value)
        if predictions and name in predictions:
            out.update({f"{name}_{k}": v for k, v in label_metrics(*predictions[name]).items()})
    return out


def metrics_line(m: dict, prefix: str = "test") -> str:
    """One line of a result's metrics of ``prefix`` (test or val): the paper's and, where recorded, the others."""
    parts = [f"MSE x 10^3 (scaled label) {m[f'{prefix}_mse_x1e3']:.4g}", f"MSE {m[f'{prefix}_mse_orig']:.4g}"]
    for key, name in (("rmse_orig", "RMSE"), ("mae_orig", "MAE"), ("r2", "R^2")):
        if f"{prefix}_{key}" in m:
            parts.append(f"{name} {m[f'{prefix}_{key}']:.4g}")
    return ", ".join(parts)


def read_paper_table1(path: str | Path) -> dict[tuple[str, str], tuple[float, float]]:
    """results/paper/table1.csv (dataset,head,mse_x1e3_mean,mse_x1e3_std) → (dataset, head) -> (mean, std)."""
    with open(path, newline="") as f:
        return {
            (r["dataset"], r["head"]): (float(r["mse_x1e3_mean"]), float(r["mse_x1e3_std"])) for r in csv.DictReader(f)
        }
