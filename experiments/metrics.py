"""The metrics a run records and reports, in one place: every writer and reader of a metric uses these names.

The paper's metric (Table 1) is the test MSE × 10³ on the label min–max scaled on the training split.
"""

from __future__ import annotations

#: The result-file field Table 1 reports.
PAPER_METRIC = "test_mse_x1e3"
#: Every result file's ``metrics`` holds these (validated by :mod:`experiments.store.results`).
REQUIRED = ("test_mse", "val_mse", "test_mse_x1e3", "val_mse_x1e3", "test_mse_orig", "val_mse_orig")


def split_metrics(test_mse: float, val_mse: float, scaler) -> dict[str, float]:
    """A result file's ``metrics``: the MSE on the scaled label, × 10³ (the paper's unit), and in the label's units."""
    return {
        "test_mse": test_mse,
        "val_mse": val_mse,
        "test_mse_x1e3": 1e3 * test_mse,
        "val_mse_x1e3": 1e3 * val_mse,
        "test_mse_orig": scaler.mse_to_original(test_mse),
        "val_mse_orig": scaler.mse_to_original(val_mse),
    }
