"""What a finished split leaves behind: its result record (format in ``experiments/store/results.py``), the
code and library versions it ran with, and the summary line beside the paper's number."""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from experiments.labels import MinMaxScaler
from experiments.metrics import PAPER_METRIC, PAPER_TABLE1, read_paper_table1, split_metrics
from experiments.store.identity import head_similarity
from experiments.store.results import FORMAT_VERSION, RunKey, read_result
from softstep.training_types import FitResult

REPO = Path(__file__).resolve().parents[2]


def _git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    """The versions of Python and the libraries a result depends on, from the installed distributions' metadata
    (torchsort has no ``__version__``; None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("torchsort", "transformers"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def result_record(
    cfg: DictConfig, res: FitResult, scaler: MinMaxScaler, split: int, rid: str, idx: tuple, predictions=None
) -> dict:
    """The content of one result file (format in experiments/store/results.py); ``predictions``: the label-unit
    metrics' (:func:`experiments.metrics.split_metrics`)."""
    train_idx, val_idx, test_idx = idx
    return {
        "format_version": FORMAT_VERSION,
        "dataset": cfg.dataset.name,
        "extractor": cfg.extractor.name,
        "head": cfg.head.name,
        "split": split,
        "run_id": rid,
        "hparams": {
            "similarity": head_similarity(cfg),
            "embed_dim": cfg.model.embed_dim,
            "batch_size": cfg.trainer.batch_size,
            "finetune": bool(cfg.extractor.finetune),
        },
        "metrics": split_metrics(res.test_mse, res.val_mse, scaler, predictions),
        "best_epoch": res.best_epoch,
        "epochs_run": res.epochs_run,
        "wall_time_s": res.wall_time_s,
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_test": len(test_idx),
        "label_range": [scaler.lo, scaler.hi],
        "history": res.history,
        "runtime": res.runtime,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "git_commit": _git_commit(),
        "versions": versions(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def paper_number(dataset: str, head: str) -> str | None:
    """The paper's Table 1 cell for (dataset, head) as ``mean ± std``, or None."""
    if not PAPER_TABLE1.exists():
        return None
    cell = read_paper_table1(PAPER_TABLE1).get((dataset, head))
    return None if cell is None else f"{cell[0]:g} ± {cell[1]:g}"


def summary(cfg: DictConfig, key: RunKey) -> str:
    """The lines a run prints at its end: the paper's metric (mean ± std over the finished splits) beside the paper's
    number, the metrics in the label's units, and where the results are; for a final model, its validation metrics
    and its files."""
    done = sorted(key.finished())
    if not done:
        return f"{cfg.dataset.name} / {cfg.head.name}: no finished split yet\n  results: {key.dir}"
    records = [read_result(key.split_path(s)) for s in done]
    if key.final:
        return final_summary(cfg, key, records[0])
    mses = np.array([r["metrics"][PAPER_METRIC] for r in records])
    std = mses.std(ddof=1) if len(mses) > 1 else 0.0
    line = f"{cfg.dataset.name} / {cfg.head.name}: test MSE x 10^3 = {mses.mean():.3g} ± {std:.3g} over {len(done)} split(s)"
    paper = paper_number(cfg.dataset.name, cfg.head.name)
    line += f"   (paper: {paper})" if paper else ""
    line += "\n  " + label_units_line(records)
    capped = [r["split"] for r in records if r.get("hit_epoch_cap")]
    if capped:
        line += f"\n  stopped at trainer.max_epochs while improving: split(s) {', '.join(map(str, capped))}"
    return line + f"\n  results: {key.dir}"


def label_units_line(records: list[dict], prefix: str = "test") -> str:
    """``in the label's units: MSE m ± s, RMSE …, MAE …, R^2 …`` (mean ± sample std over ``records``; each metric over
    the files that record it: files written before RMSE, MAE and R² were recorded lack them)."""
    parts = []
    for key, name in (("mse_orig", "MSE"), ("rmse_orig", "RMSE"), ("mae_orig", "MAE"), ("r2", "R^2")):
        values = np.array([r["metrics"][f"{prefix}_{key}"] for r in records if f"{prefix}_{key}" in r["metrics"]])
        if len(values):
            std = f" ± {values.std(ddof=1):.3g}" if len(values) > 1 else ""
            parts.append(f"{name} {values.mean():.4g}{std}")
    return f"{prefix} in the label's units: " + ", ".join(parts)


def final_summary(cfg: DictConfig, key: RunKey, r: dict) -> str:
    """A final model's lines: what it was trained on, its validation metrics, and where its model is."""
    m = r["metrics"]
    return (
        f"{cfg.dataset.name} / {cfg.head.name}: final model, trained on {r['n_train']} rows with {r['n_val']} for "
        f"early stopping (best epoch {r['best_epoch'] + 1} of {r['epochs_run']})\n"
        f"  validation MSE x 10^3 (scaled label) = {m['val_mse_x1e3']:#.3g}; {label_units_line([r], 'val')}\n"
        + (
            f"  model: {key.dir / 'models'} (weights only, save_model=weights: it predicts once given a reference "
            f"set, SoftStepRegressor.load(...).set_reference(X, y))"
            if OmegaConf.select(cfg, "save_model") == "weights"
            else f"  model: {key.dir / 'models'} (reference set: {r.get('n_reference', r['n_train'])} rows); "
            f"predict: python scripts/predict.py {key.run_dir} --input FILE --out FILE.csv"
        )
    )
