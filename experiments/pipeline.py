"""One configuration over its splits: the paper's protocol as a program (``python run.py``).

for each split seed: skip if its result file exists (unless ``force``) → split 80/20 → 85/15 →
scale labels on train → features (cached when the extractor is frozen) → fit → write the
result JSON atomically. At the end print mean ± std × 10³ beside the paper's number.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from data.base import DataError, RegressionData
from experiments import device as D
from experiments import features as F
from experiments import inputs as I
from experiments.report.paper import read_paper_table1
from experiments.results import FORMAT_VERSION, RunKey, read_result, write_result
from experiments.splits import MinMaxScaler, paper_split
from experiments.tracking import make_tracker
from experiments.train import FitResult, Inputs, Regressor, fit
from softstep import SIMILARITIES

REPO = Path(__file__).resolve().parents[1]
PAPER_TABLE = REPO / "results" / "paper" / "table1.csv"
#: Config keys that do not change a result: left out of the run id.
NOT_IN_RUN_ID = {"splits", "force", "progress", "paths", "logger", "hydra", "slurm"}
TRAINER_NOT_IN_RUN_ID = {"device", "threads", "workers", "num_workers", "checkpoint", "eval_batch_size", "max_elements",
                         "precision", "compile", "decoded_cache"}  # how it runs, like device: recorded in result files


class ConfigError(ValueError):
    """A bad config value; the message names the field and what is allowed."""


def validate(cfg: DictConfig) -> list[int]:
    """Check the values the pipeline relies on, before any data or model is touched. Returns the splits."""
    def bad(field, value, allowed):
        raise ConfigError(f"bad config value {field}={value!r}: {allowed}")

    splits = OmegaConf.to_container(cfg.splits) if OmegaConf.is_list(cfg.splits) else cfg.splits
    if isinstance(splits, int) and not isinstance(splits, bool):
        splits = [splits]
    if not isinstance(splits, list) or not splits or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in splits):
        bad("splits", cfg.splits, "a non-empty list of split seeds >= 0, e.g. splits=[0,1,2] (default 0-9)")
    if len(set(splits)) != len(splits):
        bad("splits", splits, "each split seed once")
    if cfg.head.similarity is not None and cfg.head.similarity not in SIMILARITIES:
        bad("head.similarity", cfg.head.similarity, f"one of {', '.join(SIMILARITIES)}")
    for field, value, lo in (("model.embed_dim", cfg.model.embed_dim, 1), ("model.hidden", cfg.model.hidden, 0),
                             ("trainer.batch_size", cfg.trainer.batch_size, 2), ("trainer.max_epochs", cfg.trainer.max_epochs, 1),
                             ("trainer.patience", cfg.trainer.patience, 1), ("trainer.eval_batch_size", cfg.trainer.eval_batch_size, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            bad(field, value, f"an integer >= {lo}")
    for field, value in (("trainer.lr", cfg.trainer.lr), ("trainer.extractor_lr", cfg.trainer.extractor_lr)):
        if not isinstance(value, (int, float)) or value <= 0:
            bad(field, value, "a number > 0")
    try:  # the device knobs (trainer.precision, compile, max_elements, num_workers, decoded_cache)
        D.check(cfg.trainer)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    build_head(cfg)  # the head's own arguments, checked by its constructor
    return splits


def build_head(cfg: DictConfig) -> torch.nn.Module:
    """The configured head: ``instantiate(head.module)``; a bad argument is a :class:`ConfigError` naming it."""
    try:
        return instantiate(cfg.head.module)
    except InstantiationException as e:
        raise ConfigError(f"bad config head.module for head {cfg.head.name!r} "
                          f"({cfg.head.module.get('_target_')}): {e.__cause__ or e}") from None


def run_id(cfg: DictConfig) -> str:
    """``<sim>-e<embed>-b<batch>-<hash>``: the hash covers every setting that can change a result.

    Of the head it covers its name and what is built (``head.module``), so a value no head reads
    (``head.similarity`` of the linear head) does not split one configuration into several."""
    c = OmegaConf.to_container(cfg, resolve=True)
    key = {k: v for k, v in c.items() if k not in NOT_IN_RUN_ID}
    key["trainer"] = {k: v for k, v in key["trainer"].items() if k not in TRAINER_NOT_IN_RUN_ID}
    key["head"] = {k: key["head"][k] for k in ("name", "module")}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{head_similarity(cfg) or cfg.head.name}-e{cfg.model.embed_dim}-b{cfg.trainer.batch_size}-{digest}"


def head_similarity(cfg: DictConfig) -> str | None:
    """The similarity the built head uses (None for a head without one, e.g. linear)."""
    return OmegaConf.select(cfg, "head.module.similarity", default=None)


def run_key(cfg: DictConfig) -> RunKey:
    """Where this configuration's results live (see :class:`experiments.results.RunKey`)."""
    return RunKey(str(cfg.paths.results_root), cfg.dataset.name, cfg.extractor.name, cfg.head.name, run_id(cfg))


def _device(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
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


def _instantiate(node, **kwargs):
    """hydra's instantiate, re-raising our own clear errors instead of its wrapper around them."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, (DataError, ConfigError, FileNotFoundError, ValueError)):
            raise e.__cause__ from None
        raise


def load_data(cfg: DictConfig) -> RegressionData:
    data = _instantiate(cfg.dataset.loader)
    if not isinstance(data, RegressionData):
        raise DataError(f"dataset {cfg.dataset.name!r}: loader {cfg.dataset.loader._target_} returned {type(data).__name__}, not RegressionData")
    return data


def check_modality(cfg: DictConfig, data: RegressionData) -> None:
    """The extractor config's ``modality`` must match the data's, checked before any model or cache is touched."""
    if cfg.extractor.modality != data.modality:
        raise ConfigError(f"extractor {cfg.extractor.name!r} reads {cfg.extractor.modality} but dataset {cfg.dataset.name!r} "
                          f"holds {data.modality}; choose an extractor for {data.modality} (extractor=NAME)")


def build_extractor(cfg: DictConfig, data: RegressionData):
    """The configured extractor (its modality was checked against the data by :func:`check_modality`)."""
    in_dim = int(np.prod(np.shape(data.load(data.items[0])))) if data.modality == "table" else None
    return _instantiate(cfg.extractor.builder, finetune=bool(cfg.extractor.finetune), in_dim=in_dim)


def prepare_inputs(cfg: DictConfig, data: RegressionData, device) -> tuple[Inputs, int | None]:
    """(inputs, feature width): cached features of a frozen extractor (none is built on a cache hit),
    or the raw items when fine-tuning (width None: each split builds its own extractor)."""
    if cfg.extractor.finetune:
        workers = I.resolve_num_workers(cfg.trainer.num_workers)
        cache = I.decoded_cache(Path(cfg.paths.cache_dir) / "decoded", data, cfg.trainer.decoded_cache,
                                num_workers=workers, progress=cfg.progress)
        return Inputs(data=data, num_workers=workers, cache=cache), None
    builder = OmegaConf.to_container(cfg.extractor.builder, resolve=True)
    key = F.cache_key(data, cfg.extractor.name, json.dumps(builder, sort_keys=True))
    path = Path(cfg.paths.cache_dir) / "features" / f"{key}.pt"

    def compute():
        return F.extract(build_extractor(cfg, data), data, batch_size=cfg.trainer.eval_batch_size, device=device,
                         progress=cfg.progress)

    feats = F.cached_features(path, compute)
    if len(feats) != len(data):
        raise DataError(f"feature cache {path} holds {len(feats)} rows but the dataset has {len(data)}; delete the file")
    return Inputs(features=feats), feats.shape[1]


@dataclass
class Trained:
    """One split trained by this process: its result record and what produced it (``keep_models=True``)."""

    record: dict
    model: Regressor | None = None
    scaler: MinMaxScaler | None = None
    inputs: Inputs | None = None
    train_idx: np.ndarray | None = None  # the reference set at evaluation: inputs[train_idx], labels y_train
    y_train: np.ndarray | None = None    # scaled to [0, 1] by ``scaler``


@dataclass
class RunResult:
    """What :func:`run` did: the configuration's place in the store, the summary line, and the splits it trained."""

    key: RunKey
    summary: str
    trained: dict[int, Trained] = field(default_factory=dict)


def train_split(cfg: DictConfig, data: RegressionData, inputs: Inputs, in_dim: int | None, split: int, key: RunKey,
                device) -> tuple[FitResult, Regressor, MinMaxScaler, tuple]:
    """Split, scale, build and fit one model: returns the fit, the trained model (best epoch), the scaler and the split."""
    train_idx, val_idx, test_idx = paper_split(data.labels, split, cfg.trainer.stratify_bins)
    scaler = MinMaxScaler(data.labels[train_idx])
    torch.manual_seed(split)
    head = build_head(cfg)
    extractor = None
    if cfg.extractor.finetune:  # every split starts again from the same pretrained weights
        extractor = build_extractor(cfg, data)
        in_dim = extractor.out_dim
    model = Regressor(in_dim, cfg.model.hidden, cfg.model.embed_dim, head, extractor, cfg.model.dropout)
    tracker = make_tracker(cfg, key.run_id, split)
    t = cfg.trainer
    try:
        res = fit(model, inputs, scaler.transform(data.labels), train_idx, val_idx, test_idx, seed=split,
                  max_epochs=t.max_epochs, patience=t.patience, batch_size=t.batch_size, lr=t.lr, extractor_lr=t.extractor_lr,
                  weight_decay=t.weight_decay, eval_batch_size=t.eval_batch_size,
                  max_elements=D.resolve_max_elements(t.max_elements, device), device=device,
                  precision=D.resolve_precision(t.precision, device), compile=D.resolve_compile(t.compile, device),
                  checkpoint=key.checkpoint(split) if t.checkpoint else None, progress=cfg.progress,
                  log=tracker.log, desc=f"split {split}")
    finally:
        tracker.finish()
    return res, model, scaler, (train_idx, val_idx, test_idx)


def result_record(cfg: DictConfig, res: FitResult, scaler: MinMaxScaler, split: int, rid: str, idx: tuple) -> dict:
    """The content of one result file (format in experiments/results.py)."""
    train_idx, val_idx, test_idx = idx
    return {
        "format_version": FORMAT_VERSION, "dataset": cfg.dataset.name, "extractor": cfg.extractor.name,
        "head": cfg.head.name, "split": split, "run_id": rid,
        "hparams": {"similarity": head_similarity(cfg), "embed_dim": cfg.model.embed_dim,
                    "batch_size": cfg.trainer.batch_size, "finetune": bool(cfg.extractor.finetune)},
        "metrics": {"test_mse": res.test_mse, "val_mse": res.val_mse,
                    "test_mse_x1e3": 1e3 * res.test_mse, "val_mse_x1e3": 1e3 * res.val_mse,
                    "test_mse_orig": scaler.mse_to_original(res.test_mse), "val_mse_orig": scaler.mse_to_original(res.val_mse)},
        "best_epoch": res.best_epoch, "epochs_run": res.epochs_run, "wall_time_s": res.wall_time_s,
        "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(test_idx),
        "label_range": [scaler.lo, scaler.hi], "history": res.history, "runtime": res.runtime,
        "config": OmegaConf.to_container(cfg, resolve=True), "git_commit": _git_commit(), "versions": versions(),
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
    mses = np.array([read_result(key.split_path(s))["metrics"]["test_mse_x1e3"] for s in done])
    std = mses.std(ddof=1) if len(mses) > 1 else 0.0
    line = f"{cfg.dataset.name} / {cfg.head.name}: test MSE x 10^3 = {mses.mean():.3g} ± {std:.3g} over {len(done)} split(s)"
    paper = paper_number(cfg.dataset.name, cfg.head.name)
    return line + (f"   (paper: {paper})" if paper else "") + f"\n  results: {key.dir}"


def _parallel_splits(cfg: DictConfig, device: torch.device, n_todo: int) -> int:
    """How many splits train at once: ``trainer.workers``, where ``auto`` means one process per CPU
    core (one thread each) for cached features on the CPU outside SLURM, else 1. A SLURM job runs its
    splits in one process, so that the pre-termination signal reaches the training loop."""
    workers = cfg.trainer.workers
    if workers == "auto":
        frozen_cpu = device.type == "cpu" and not cfg.extractor.finetune
        workers = (os.cpu_count() or 1) if frozen_cpu and "SLURM_JOB_ID" not in os.environ else 1
    return max(1, min(int(workers), n_todo))


def _threads(cfg: DictConfig, device: torch.device) -> int | None:
    threads = cfg.trainer.threads
    if threads == "auto":  # a small MLP on cached features: one thread has the least overhead
        threads = 1 if (device.type == "cpu" and not cfg.extractor.finetune) else None
    return int(threads) if threads else None


def run_split(cfg, data, inputs, in_dim, split: int, key: RunKey, device, threads, progress, keep_model=False) -> Trained:
    """One split, start to finish: train, write its result atomically, drop its checkpoint."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        if not progress:
            cfg = cfg.copy()
            cfg.progress = False
        res, model, scaler, idx = train_split(cfg, data, inputs, in_dim, split, key, device)
        record = result_record(cfg, res, scaler, split, key.run_id, idx)
        write_result(key.split_path(split), record)
        key.checkpoint(split).unlink(missing_ok=True)
        if not keep_model:
            return Trained(record)
        return Trained(record, model, scaler, inputs, idx[0], scaler.transform(data.labels[idx[0]]))
    finally:
        torch.set_num_threads(before)


def run(cfg: DictConfig, *, keep_models: bool = False) -> RunResult:
    """Run every requested split that has no result yet (all of them with ``force``).

    Returns the summary line and, per split trained here, its result record (and with ``keep_models``
    the trained model, label scaler and inputs, e.g. to draw Figure 3's surfaces)."""
    splits = validate(cfg)
    key = run_key(cfg)
    todo = splits if cfg.force else [s for s in splits if s not in key.finished()]
    trained: dict[int, Trained] = {}
    if todo:
        device = _device(cfg.trainer.device)
        data = load_data(cfg)
        check_modality(cfg, data)
        inputs, in_dim = prepare_inputs(cfg, data, device)
        workers, threads = _parallel_splits(cfg, device, len(todo)), _threads(cfg, device)
        bar = dict(total=len(todo), desc=f"{cfg.dataset.name}/{cfg.head.name} splits", disable=not cfg.progress)
        args = (cfg, data, inputs, in_dim)
        if workers == 1:
            jobs = (run_split(*args, s, key, device, threads, cfg.progress, keep_models) for s in todo)
        else:  # independent splits in parallel processes; per-epoch bars off, the split bar stays
            from joblib import Parallel, delayed

            jobs = Parallel(n_jobs=workers, return_as="generator_unordered")(
                delayed(run_split)(*args, s, key, device, threads, False, keep_models) for s in todo)
        for t in tqdm(jobs, **bar):
            trained[t.record["split"]] = t
    return RunResult(key, summary(cfg, key), trained)
