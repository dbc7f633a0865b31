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

from experiments.metrics import PAPER_METRIC, split_metrics
from experiments.protocol.settings import head_similarity
from experiments.protocol.splits import MinMaxScaler
from experiments.report.paper import read_paper_table1
from experiments.store.results import FORMAT_VERSION, RunKey, read_result
from softstep.training_types import FitResult

REPO = Path(__file__).resolve().parents[2]
PAPER_TABLE = REPO / "results" / "paper" / "table1.csv"


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
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("torchsort", "transformers"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is recorded, not fatal
            out[mod] = None
    return out


def result_record(cfg: DictConfig, res: FitResult, scaler: MinMaxScaler, split: int, rid: str, idx: tuple) -> dict:
    """The content of one result file (format in experiments/store/results.py)."""
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
        "metrics": split_metrics(res.test_mse, res.val_mse, scaler),
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
    if not PAPER_TABLE.exists():
        return None
    cell = read_paper_table1(PAPER_TABLE).get((dataset, head))
    return None if cell is None else f"{cell[0]:g} ± {cell[1]:g}"


def summary(cfg: DictConfig, key: RunKey) -> str:
    done = sorted(key.finished())
    if not done:
        return f"{cfg.dataset.name} / {cfg.head.name}: no finished split yet\n  results: {key.dir}"
    mses = np.array([read_result(key.split_path(s))["metrics"][PAPER_METRIC] for s in done])
    std = mses.std(ddof=1) if len(mses) > 1 else 0.0
    line = f"{cfg.dataset.name} / {cfg.head.name}: test MSE x 10^3 = {mses.mean():.3g} ± {std:.3g} over {len(done)} split(s)"
    paper = paper_number(cfg.dataset.name, cfg.head.name)
    return line + (f"   (paper: {paper})" if paper else "") + f"\n  results: {key.dir}"
