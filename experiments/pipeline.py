"""One configuration over its splits: the paper's protocol as a program (``python run.py``).

for each split seed: skip if its result file exists (unless ``force``) → split 80/20 → 85/15 →
scale labels on train → features (cached when the extractor is frozen) → fit → write the
result JSON atomically. At the end print mean ± std × 10³ beside the paper's number.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
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
from experiments import safety, saved, sparsity, tabular
from experiments.report.paper import read_paper_table1
from experiments.results import FORMAT_VERSION, RunKey, read_result, write_result
from experiments.splits import MinMaxScaler, paper_split
from experiments.tracking import make_tracker
from experiments.train import ARCHS, FitResult, Inputs, Regressor, _embed, fit
from softstep import SIMILARITIES

REPO = Path(__file__).resolve().parents[1]
PAPER_TABLE = REPO / "results" / "paper" / "table1.csv"
#: Config keys that do not change a result: left out of the run id.
NOT_IN_RUN_ID = {"splits", "force", "progress", "paths", "logger", "hydra", "slurm", "save_model"}
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
    if cfg.model.arch not in ARCHS:
        bad("model.arch", cfg.model.arch, f"one of {', '.join(ARCHS)}")
    if cfg.trainer.reference not in ("batch", "sample"):
        bad("trainer.reference", cfg.trainer.reference, "batch (the paper) or sample")
    if not isinstance(cfg.trainer.reference_fraction, (int, float)) or not 0 < cfg.trainer.reference_fraction <= 1:
        bad("trainer.reference_fraction", cfg.trainer.reference_fraction, "a number in (0, 1]")
    for field, value, lo in (("model.embed_dim", cfg.model.embed_dim, 1), ("model.hidden", cfg.model.hidden, 1),
                             ("trainer.eval_from_epoch", cfg.trainer.eval_from_epoch, 0),
                             ("trainer.batch_size", cfg.trainer.batch_size, 2), ("trainer.max_epochs", cfg.trainer.max_epochs, 1),
                             ("trainer.patience", cfg.trainer.patience, 1), ("trainer.eval_batch_size", cfg.trainer.eval_batch_size, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            bad(field, value, f"an integer >= {lo}")
    for field, value in (("trainer.lr", cfg.trainer.lr), ("trainer.extractor_lr", cfg.trainer.extractor_lr)):
        if not isinstance(value, (int, float)) or value <= 0:
            bad(field, value, "a number > 0")
    validate_more(cfg, bad)
    try:
        saved.wanted(cfg)
        D.check(cfg.trainer)  # the device knobs (trainer.precision, compile, max_elements, num_workers, decoded_cache)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    build_head(cfg)  # the head's own arguments, checked by its constructor
    return splits


def validate_more(cfg: DictConfig, bad) -> None:
    """Trainer, model and device fields that used to fail late (or run for hours): checked at the door."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def count_or_auto(field, value):
        if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            bad(field, value, "auto or an integer >= 1")

    t = cfg.trainer
    if t.max_elements != "auto" and (not isinstance(t.max_elements, int) or isinstance(t.max_elements, bool)
                                     or t.max_elements < 1024):
        bad("trainer.max_elements", t.max_elements,
            "auto or an integer >= 1024 (query x reference entries evaluated at once; auto: sized from the device)")
    count_or_auto("trainer.threads", t.threads)
    count_or_auto("trainer.workers", t.workers)
    if t.num_workers != "auto" and (not isinstance(t.num_workers, int) or isinstance(t.num_workers, bool) or t.num_workers < 0):
        bad("trainer.num_workers", t.num_workers, "auto or an integer >= 0 (DataLoader worker processes)")
    if not isinstance(t.stratify_bins, int) or isinstance(t.stratify_bins, bool) or t.stratify_bins < 1:
        bad("trainer.stratify_bins", t.stratify_bins, "an integer >= 1")
    if not number(t.weight_decay) or t.weight_decay < 0:
        bad("trainer.weight_decay", t.weight_decay, "a finite number >= 0")
    for field, value in (("trainer.lr", t.lr), ("trainer.extractor_lr", t.extractor_lr)):
        if not number(value):
            bad(field, value, "a finite number > 0")
    if not number(cfg.model.dropout) or not 0 <= cfg.model.dropout < 1:
        bad("model.dropout", cfg.model.dropout, "a number in [0, 1)")
    for field in ("force", "progress", "trainer.checkpoint"):
        if not isinstance(OmegaConf.select(cfg, field), bool):
            bad(field, OmegaConf.select(cfg, field), "true or false")
    check_device(t.device, bad)


def check_device(name, bad) -> None:
    """``trainer.device``: auto, cpu, cuda, cuda:N or mps, and present on this machine."""
    allowed = "auto, cpu, cuda, cuda:N or mps"
    if name == "auto":
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        bad("trainer.device", name, allowed)
    if dev.type not in ("cpu", "cuda", "mps"):
        bad("trainer.device", name, allowed)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            bad("trainer.device", name, "no CUDA GPU is visible on this machine; use trainer.device=cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            bad("trainer.device", name, f"this machine has {torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                                        f"cuda:{torch.cuda.device_count() - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        bad("trainer.device", name, "MPS is not available on this machine; use trainer.device=cpu or auto")


def build_head(cfg: DictConfig) -> torch.nn.Module:
    """The configured head: ``instantiate(head.module)``; a bad argument is a :class:`ConfigError` naming it."""
    try:
        return instantiate(cfg.head.module)
    except InstantiationException as e:
        why = str(e.__cause__ or e).strip().splitlines()[0]
        keys = [str(k) for k in cfg.head.module if k != "_target_"]
        named = ([k for k in keys if re.search(rf"\b{re.escape(k)}\b", why)]
                 or [k for k in keys if repr(OmegaConf.select(cfg.head.module, k)) in why])  # named by its value
        field = f"head.module.{named[0]}={OmegaConf.select(cfg.head.module, str(named[0]))!r}" if named else "head.module"
        raise ConfigError(f"bad config {field} for head {cfg.head.name!r} "
                          f"({cfg.head.module.get('_target_')}): {why}") from None


def run_id(cfg: DictConfig) -> str:
    """``<sim>-e<embed>-b<batch>-<hash>``: the hash covers every setting that can change a result.

    Of the head it covers its name and what is built (``head.module``), so a value no head reads
    (``head.similarity`` of the linear head) does not split one configuration into several."""
    c = OmegaConf.to_container(cfg, resolve=True)
    key = {k: v for k, v in c.items() if k not in NOT_IN_RUN_ID}
    key["trainer"] = {k: v for k, v in key["trainer"].items() if k not in TRAINER_NOT_IN_RUN_ID}
    key["dataset"] = {k: v for k, v in key["dataset"].items() if k not in ("expected_n", "expected_n_note")}  # checks only
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
    check_expected_count(cfg, data)
    return data


def check_expected_count(cfg: DictConfig, data: RegressionData) -> str | None:
    """One warning line on stderr when the loaded count differs from the paper's (``dataset.expected_n``).

    Not an error: releases change. The line names both counts, the likely cause (the dataset's own
    ``expected_n_note`` where it has one, else what fewer or more items usually mean) and, where the
    loader reports them, the counts after each of its filters. Returns the line (None: no check or
    the counts agree)."""
    import sys

    expected = OmegaConf.select(cfg, "dataset.expected_n", default=None)
    if expected is None or len(data) == int(expected):
        return None
    n, expected = len(data), int(expected)
    cause = OmegaConf.select(cfg, "dataset.expected_n_note", default=None) or (
        "a filter, missing files or only part of the release" if n < expected else
        "a newer or different release, or a filter the paper applied that is off here")
    steps = "; ".join(f"{k} {v:,}" for k, v in (getattr(data, "counts", None) or {}).items())
    line = (f"[softstep] warning: dataset {cfg.dataset.name!r} loaded {n:,} items, the paper counts {expected:,}; "
            f"likely cause: {cause}" + (f" (here: {steps})" if steps else "") + f"; see data/{cfg.dataset.name}/README.md")
    print(line, file=sys.stderr, flush=True)
    return line


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
    or the raw items when fine-tuning (width None: each split builds its own extractor). A table's columns
    are preprocessed per split instead (:func:`experiments.tabular.split_inputs`)."""
    if data.columns is not None:
        return Inputs(), None
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
    idx: tuple | None = None             # (train, val, test) indices; the training split is the reference set
    y_scaled: np.ndarray | None = None   # every label, scaled by ``scaler`` (fitted on the training split)


@dataclass
class RunResult:
    """What :func:`run` did: the configuration's place in the store, the summary line, and the splits it trained."""

    key: RunKey
    summary: str
    trained: dict[int, Trained] = field(default_factory=dict)


def train_split(cfg: DictConfig, data: RegressionData, inputs: Inputs, in_dim: int | None, split: int, key: RunKey,
                device) -> tuple[FitResult, Regressor, MinMaxScaler, tuple, Inputs, tabular.TablePreprocessor | None]:
    """Split, scale, build and fit one model: returns the fit, the trained model (best epoch), the scaler, the split,
    the split's inputs and, for a table, its feature preprocessing (fitted on the training split)."""
    train_idx, val_idx, test_idx = paper_split(data.labels, split, cfg.trainer.stratify_bins)
    inputs, in_dim, prep = tabular.split_inputs(data, inputs, in_dim, train_idx)
    scaler = MinMaxScaler(data.labels[train_idx])
    torch.manual_seed(split)
    head = build_head(cfg)
    extractor = None
    if cfg.extractor.finetune:  # every split starts again from the same pretrained weights
        extractor = build_extractor(cfg, data)
        in_dim = extractor.out_dim
    model = Regressor(in_dim, cfg.model.hidden, cfg.model.embed_dim, head, extractor, cfg.model.dropout, cfg.model.arch)
    tracker = make_tracker(cfg, key.run_id, split)
    t = cfg.trainer
    try:
        res = fit(model, inputs, scaler.transform(data.labels), train_idx, val_idx, test_idx, seed=split,
                  max_epochs=t.max_epochs, patience=t.patience, batch_size=t.batch_size, lr=t.lr, extractor_lr=t.extractor_lr,
                  weight_decay=t.weight_decay, eval_batch_size=t.eval_batch_size,
                  max_elements=D.resolve_max_elements(t.max_elements, device), device=device,
                  precision=D.resolve_precision(t.precision, device), compile=D.resolve_compile(t.compile, device),
                  checkpoint=key.checkpoint(split) if t.checkpoint else None, progress=cfg.progress,
                  log=tracker.log, desc=f"split {split}", eval_from_epoch=t.eval_from_epoch,
                  reference=t.reference, reference_fraction=t.reference_fraction,
                  epoch_metrics=epoch_sparsity(cfg, model, inputs, train_idx, val_idx, device))
    finally:
        tracker.finish()
    return res, model, scaler, (train_idx, val_idx, test_idx), inputs, prep


#: Validation queries whose neighbourhoods are measured after each epoch.
EPOCH_SPARSITY_QUERIES = 256


def epoch_sparsity(cfg: DictConfig, model: Regressor, inputs: Inputs, train_idx, val_idx, device):
    """The per-epoch sparsity metrics (medians over up to 256 validation queries, the training split as the
    reference set), for neighbour heads on a frozen extractor; None otherwise (a fine-tuned extractor would
    embed the training split a second time each epoch)."""
    if not model.uses_reference or cfg.extractor.finetune:
        return None
    t = cfg.trainer

    def metrics(m: Regressor) -> dict:
        m.eval()
        with torch.no_grad():
            z_ref = _embed(m, inputs, train_idx, t.eval_batch_size, device)
            z = _embed(m, inputs, val_idx[:EPOCH_SPARSITY_QUERIES], t.eval_batch_size, device)
        return sparsity.flat(sparsity.head_sparsity(m.head, z, z_ref, max_elements=t.max_elements))

    return metrics


def split_extras(cfg: DictConfig, key: RunKey, split: int, data: RegressionData, model: Regressor, inputs: Inputs,
                 scaler: MinMaxScaler, prep, idx: tuple, device) -> dict:
    """Optional result fields of one split: ``features`` (a table's columns), ``sparsity`` (neighbour heads, on the
    test queries) and ``saved_model`` (its files and size, when ``save_model`` asks for it; written here)."""
    train_idx, _, test_idx = idx
    out = {}
    if prep is not None:
        out["features"] = prep.describe()
    if model.uses_reference:
        model.eval()
        with torch.no_grad():
            z_ref = _embed(model, inputs, train_idx, cfg.trainer.eval_batch_size, device)
            z = _embed(model, inputs, test_idx, cfg.trainer.eval_batch_size, device)
        out["sparsity"] = sparsity.head_sparsity(model.head, z, z_ref, max_elements=cfg.trainer.max_elements)
    if saved.wanted(cfg):
        out["saved_model"] = saved.save(cfg, key, split, model, inputs, data, scaler, prep, train_idx, device)
    return out


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
    if not done:
        return f"{cfg.dataset.name} / {cfg.head.name}: no finished split yet\n  results: {key.dir}"
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
        res, model, scaler, idx, inputs, prep = train_split(cfg, data, inputs, in_dim, split, key, device)
        record = result_record(cfg, res, scaler, split, key.run_id, idx)
        record["data_digest"] = safety.data_digest(data)  # a later run on changed data refuses to report it
        record.update(split_extras(cfg, key, split, data, model, inputs, scaler, prep, idx, device))
        write_result(key.split_path(split), record)
        key.checkpoint(split).unlink(missing_ok=True)
        if not keep_model:
            return Trained(record)
        return Trained(record, model, scaler, inputs, idx, scaler.transform(data.labels))
    finally:
        torch.set_num_threads(before)


def run(cfg: DictConfig, *, keep_models: bool = False) -> RunResult:
    """Run every requested split that has no result yet (all of them with ``force``).

    Returns the summary line and, per split trained here, its result record (and with ``keep_models``
    the trained model, label scaler and inputs, e.g. to draw Figure 3's surfaces)."""
    splits = validate(cfg)
    key = run_key(cfg)
    started = time.time()
    data = load_data(cfg)  # also when every split is done: finished results must match this data
    if not cfg.force:
        safety.check_data(key, safety.data_digest(data))
    done_before = key.finished()
    todo = splits if cfg.force else [s for s in splits if s not in done_before]
    trained: dict[int, Trained] = {}
    if todo:
        source = OmegaConf.select(cfg, "dataset.loader.path") or OmegaConf.select(cfg, "dataset.loader.root")
        safety.check_labels(data, {s: data.labels[paper_split(data.labels, s, cfg.trainer.stratify_bins)[0]] for s in todo},
                            source)
        device = _device(cfg.trainer.device)
        check_modality(cfg, data)
        check_writable(cfg, key)
        safety.clean_run(key, splits, started)
        inputs, in_dim = prepare_inputs(cfg, data, device)
        workers, threads = _parallel_splits(cfg, device, len(todo)), _threads(cfg, device)
        bar = dict(total=len(todo), desc=f"{cfg.dataset.name}/{cfg.head.name} splits", disable=not cfg.progress)
        args = (cfg, data, inputs, in_dim)
        if workers == 1:
            jobs = (run_split_locked(*args, s, key, device, threads, cfg.progress, keep_models,
                                     replace=s in done_before) for s in todo)
        else:  # independent splits in parallel processes; per-epoch bars off, the split bar stays
            from joblib import Parallel, delayed

            jobs = Parallel(n_jobs=workers, return_as="generator_unordered")(
                delayed(run_split_locked)(*args, s, key, device, threads, False, keep_models,
                                          replace=s in done_before, worker=True) for s in todo)
        for t in tqdm(jobs, **bar):
            if t is not None:
                trained[t.record["split"]] = t
    return RunResult(key, summary(cfg, key), trained)


def check_writable(cfg: DictConfig, key: RunKey) -> None:
    """The run folder can be created and written, checked before any work (an OSError naming the path)."""
    try:
        key.dir.mkdir(parents=True, exist_ok=True)
        probe = key.dir / f".write-test-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OSError(e.errno, f"cannot write results under paths.results_root={cfg.paths.results_root} "
                               f"({e.strerror or e})", str(e.filename or key.dir)) from None


def run_split_locked(cfg, data, inputs, in_dim, split: int, key: RunKey, device, threads, progress, keep_model=False,
                     *, replace: bool = False, worker: bool = False) -> Trained | None:
    """:func:`run_split` under the split's lock (``split_<s>.lock``, see :mod:`experiments.locks`).

    Returns None, and says so, when another live run holds the split, or finished it meanwhile (a
    result that existed when this run started is replaced only with ``replace``, i.e. ``force``).
    Leftovers of the split (temp files, a finished split's checkpoint) are removed first."""
    if worker:  # a split in its own process: SIGTERM/SIGINT checkpoint here too
        from experiments import preemption

        preemption.install()
    lock = safety.split_lock(key, split)
    if not lock.try_acquire():
        print(f"[softstep] split {split}: another run ({lock.describe()}) is training it; skipped here",
              file=sys.stderr, flush=True)
        return None
    try:
        done = split in key.finished()
        safety.clean_split(key, split, done)
        if done and not replace:
            print(f"[softstep] split {split}: finished by another run meanwhile; skipped here", file=sys.stderr, flush=True)
            return None
        return run_split(cfg, data, inputs, in_dim, split, key, device, threads, progress, keep_model)
    finally:
        lock.release()
