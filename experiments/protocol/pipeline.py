"""One configuration over its splits: the paper's protocol as a program (``python run.py``).

for each split seed: skip if its result file exists (unless ``force``) → split 80/20 → 85/15 →
scale labels on train → features (cached when the extractor is frozen) → fit → write the
result JSON atomically. At the end print mean ± std × 10³ beside the paper's number.

Read top-down: :func:`run` → :func:`run_split_locked` → :func:`run_split` → :func:`train_split`;
the set-up steps :func:`run` calls (data, inputs, workers) are in :mod:`experiments.protocol.setup`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from data.base import RegressionData
from experiments.inputs import tabular
from experiments.inputs.batches import Inputs
from experiments.models import saved
from experiments.protocol import preemption, sparsity
from experiments.protocol.device import resolve_device, resolve_max_elements
from experiments.protocol.settings import head_from_config, run_key, validate
from experiments.protocol.setup import (
    build_extractor,
    check_modality,
    check_weights,
    check_writable,
    load_data,
    parallel_splits,
    prepare_inputs,
    thread_count,
)
from experiments.protocol.splits import MinMaxScaler, final_split, paper_split
from experiments.protocol.tracking import make_tracker
from experiments.protocol.train import EpochProgress, FileCheckpoint, InFlight, trainer_settings
from experiments.store import safety
from experiments.store.record import result_record, summary
from experiments.store.results import RunKey, write_result
from softstep.model import Regressor, embed_rows
from softstep.similarities import MagnitudeError
from softstep.training import fit
from softstep.training_types import FitResult, Stopped, TrainerSettings


@dataclass
class RunResult:
    """What :func:`run` did: the configuration's place in the store, the summary line, and the splits it trained."""

    key: RunKey
    summary: str
    trained: dict[int, Trained] = field(default_factory=dict)


@dataclass
class Trained:
    """One split trained by this process: its result record and what produced it (``keep_models=True``)."""

    record: dict
    model: Regressor | None = None
    scaler: MinMaxScaler | None = None
    inputs: Inputs | None = None
    idx: tuple | None = None  # (train, val, test) indices; the training split is the reference set
    y_scaled: np.ndarray | None = None  # every label, scaled by ``scaler`` (fitted on the training split)


@dataclass
class SplitFit:
    """:func:`train_split`'s output: the fit, the model at its best epoch, the label scaler, the (train, val, test)
    indices, the split's inputs and, for a table, its feature preprocessing (fitted on the training split)."""

    result: FitResult
    model: Regressor
    scaler: MinMaxScaler
    idx: tuple
    inputs: Inputs
    prep: tabular.TablePreprocessor | None


def run(cfg: DictConfig, *, keep_models: bool = False) -> RunResult:
    """Run every requested split that has no result yet (all of them with ``force``).

    Returns the summary line and, per split trained here, its result record (and with ``keep_models``
    the trained model, label scaler and inputs, e.g. to draw Figure 3's surfaces)."""
    splits = validate(cfg)
    key = run_key(cfg)
    if key.final:  # one model on every labelled row instead of the splits (its seed: split 0)
        splits = [0]
    started = time.time()
    data = load_data(cfg)  # also when every split is done: finished results must match this data
    if not cfg.force:
        safety.check_data(key, safety.data_digest(data))
        if saved.wanted(cfg):
            saved.set_aside_broken(key, splits)  # a finished split whose model no longer loads is trained again
    done_before = key.finished()
    todo = splits if cfg.force else [s for s in splits if s not in done_before]
    if not cfg.force and set(splits) & done_before:
        print(skipped_line(key, splits, done_before, todo), file=sys.stderr, flush=True)
    trained: dict[int, Trained] = {}
    if todo:
        source = OmegaConf.select(cfg, "dataset.loader.path") or OmegaConf.select(cfg, "dataset.loader.root")
        safety.check_labels(data, {s: data.labels[split_indices(cfg, data.labels, s)[0]] for s in todo}, source)
        device = resolve_device(cfg.trainer.device)
        check_modality(cfg, data)
        check_weights(cfg, data)  # missing pretrained weights: said before any item is decoded
        check_writable(cfg, key)
        safety.clean_run(key, splits, started)
        inputs, in_dim = prepare_inputs(cfg, data, device)
        trained = train_splits(cfg, data, inputs, in_dim, todo, key, device, keep_models, done_before)
    return RunResult(key, summary(cfg, key), trained)


def skipped_line(key: RunKey, splits, done: set, todo) -> str:
    """One line saying which requested splits a rerun skips because their result files exist, and what it trains."""
    if key.final:
        return f"[softstep] the final model is done already ({key.dir}); force=true retrains it"
    skipped = [s for s in splits if s in done]
    plural = "s" if len(skipped) > 1 else ""
    then = f"training {split_ranges(todo)}" if todo else "nothing to train (force=true retrains)"
    return f"[softstep] split{plural} {split_ranges(skipped)} done already ({key.dir}), {then}"


def split_ranges(splits) -> str:
    """Split seeds as ranges: [0, 1, 2, 5, 7, 8] → ``0-2, 5, 7-8``."""
    out, group = [], []
    for s in sorted(splits):
        if group and s != group[-1] + 1:
            out.append(group)
            group = []
        group.append(s)
    if group:
        out.append(group)
    return ", ".join(str(g[0]) if len(g) == 1 else f"{g[0]}-{g[-1]}" for g in out)


def split_indices(cfg: DictConfig, labels, split: int) -> tuple:
    """(train, val, test) rows of ``split``: the paper's 80/20 → 85/15 cut, or with ``final=true`` every labelled
    row cut 85/15 into training and early stopping, no test rows (:func:`experiments.protocol.splits.final_split`)."""
    if OmegaConf.select(cfg, "final", default=False) is True:
        return final_split(labels, split, cfg.trainer.stratify_bins)
    return paper_split(labels, split, cfg.trainer.stratify_bins)


def train_splits(cfg, data, inputs, in_dim, todo, key: RunKey, device, keep_models, done_before) -> dict[int, Trained]:
    """Each split of ``todo``, in this process or, with ``trainer.workers``, in parallel processes (per-epoch bars
    off, the split bar stays). A stop request reaches the workers through a stop file
    (:class:`experiments.protocol.preemption.WorkerStop`); :class:`Stopped` is raised once every split in flight
    has saved its checkpoint."""
    workers, threads = parallel_splits(cfg, device, len(todo)), thread_count(cfg, device)
    what = "final model" if key.final else "splits"
    bar = dict(total=len(todo), desc=f"{cfg.dataset.name}/{cfg.head.name} {what}", disable=not cfg.progress)
    args = (cfg, data, inputs, in_dim)
    if workers == 1:
        jobs = (
            run_split_locked(*args, s, key, device, threads, cfg.progress, keep_models, replace=s in done_before)
            for s in todo
        )
        return collect(jobs, bar)
    from joblib import Parallel, delayed

    stop_file = key.dir / f".stop-{os.getpid()}.tmp"
    preemption.stop_workers_with(stop_file)
    worker = (str(stop_file), os.getpid())
    try:
        jobs = Parallel(n_jobs=workers, return_as="generator_unordered")(
            delayed(run_split_locked)(
                *args, s, key, device, threads, False, keep_models, replace=s in done_before, worker=worker
            )
            for s in todo
        )
        in_flight = InFlight(key.dir, waiting=f"{workers} worker processes starting") if cfg.progress else None
        return collect(jobs, bar, in_flight)
    except Stopped:
        raise
    except Exception as e:  # a worker ended by the same signal before its handler was installed
        if not preemption.STOP.is_set():
            raise
        raise Stopped(
            f"a worker process ended ({type(e).__name__}); finished splits and checkpoints are kept"
        ) from None
    finally:
        preemption.forget_stop_file(stop_file)


@dataclass
class StoppedSplit:
    """A split that stopped on request in a worker process, after saving its checkpoint (or before it started)."""

    split: int
    message: str


def collect(jobs, bar: dict, in_flight: InFlight | None = None) -> dict[int, Trained]:
    """The trained splits of ``jobs``; raises :class:`Stopped` after the last one when any of them stopped.
    ``in_flight``: the worker processes' epoch progress, shown on the splits' bar while they train."""
    trained, stopped = {}, []
    with tqdm(total=bar["total"], desc=bar["desc"], disable=bar["disable"]) as pbar:
        if in_flight is not None:
            in_flight.start(pbar)
        try:
            for t in jobs:
                pbar.update(1)
                if isinstance(t, StoppedSplit):
                    stopped.append(f"split {t.split}: {t.message}")
                elif t is not None:
                    trained[t.record["split"]] = t
        finally:
            if in_flight is not None:
                in_flight.stop()
    if stopped:
        raise Stopped("; ".join(sorted(stopped)))
    return trained


def run_split_locked(
    cfg,
    data,
    inputs,
    in_dim,
    split: int,
    key: RunKey,
    device,
    threads,
    progress,
    keep_model=False,
    *,
    replace: bool = False,
    worker: tuple[str, int] | None = None,
) -> Trained | StoppedSplit | None:
    """:func:`run_split` under the split's lock (``split_<s>.lock``, see :mod:`experiments.store.locks`).

    Returns None, and says so, when another live run holds the split, or finished it meanwhile (a
    result that existed when this run started is replaced only with ``replace``, i.e. ``force``).
    Leftovers of the split (temp files, a finished split's checkpoint) are removed first. In a worker process
    (``worker``: the run's stop file and process id) a stop request returns a :class:`StoppedSplit`."""
    stop = preemption.STOP
    if worker is not None:  # a split in its own process: its signals, the run's stop file and the run's end stop it
        preemption.install()
        stop = preemption.WorkerStop(*worker)
    if stop.is_set():
        return StoppedSplit(split, "not started")
    lock = safety.split_lock(key, split)
    if not lock.try_acquire():
        print(
            f"[softstep] split {split}: another run ({lock.describe()}) is training it; skipped here",
            file=sys.stderr,
            flush=True,
        )
        return None
    try:
        done = split in key.finished()
        safety.clean_split(key, split, done)
        if done and not replace:
            print(
                f"[softstep] split {split}: finished by another run meanwhile; skipped here",
                file=sys.stderr,
                flush=True,
            )
            return None
        report = InFlight.path(key.dir, split) if worker is not None and cfg.progress else None
        return run_split(
            cfg, data, inputs, in_dim, split, key, device, threads, progress, keep_model, stop=stop, report=report
        )
    except Stopped as e:
        if worker is None:
            raise
        return StoppedSplit(split, str(e))
    finally:
        lock.release()
        if getattr(stop, "orphaned", False):  # the run was killed: its checkpoint is written, nobody waits for more
            os._exit(128 + signal.SIGTERM)


def run_split(
    cfg,
    data,
    inputs,
    in_dim,
    split: int,
    key: RunKey,
    device,
    threads,
    progress,
    keep_model=False,
    *,
    stop=None,
    report=None,
) -> Trained:
    """One split, start to finish: train, write its result atomically, drop its checkpoint. ``report``: a file its
    epoch progress is written to (a worker process's, read by :class:`experiments.protocol.train.InFlight`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        if not progress:
            cfg = cfg.copy()
            cfg.progress = False
        sf = train_split(cfg, data, inputs, in_dim, split, key, device, stop=stop, report=report)
        z = embeddings(cfg, sf, device)
        record = result_record(
            cfg, sf.result, sf.scaler, split, key.run_id, sf.idx, label_predictions(sf, z, data.labels, cfg, device)
        )
        record["data_digest"] = safety.data_digest(data)  # a later run on changed data refuses to report it
        record.update(convergence(cfg, sf.result, "the final model" if key.final else f"split {split}"))
        if key.final:
            record["final"] = True
            record["n_reference"] = len(sf.idx[0]) + len(sf.idx[1])
        record.update(split_extras(cfg, key, split, data, sf, device, z))
        write_result(key.split_path(split), record)
        key.checkpoint(split).unlink(missing_ok=True)
        if not keep_model:
            return Trained(record)
        return Trained(record, sf.model, sf.scaler, sf.inputs, sf.idx, sf.scaler.transform(data.labels))
    finally:
        torch.set_num_threads(before)


def train_split(
    cfg: DictConfig,
    data: RegressionData,
    inputs: Inputs,
    in_dim: int | None,
    split: int,
    key: RunKey,
    device,
    *,
    stop=None,
    report=None,
) -> SplitFit:
    """Split, scale, build and fit one model (:class:`SplitFit`)."""
    train_idx, val_idx, test_idx = split_indices(cfg, data.labels, split)
    inputs, in_dim, prep = tabular.split_inputs(data, inputs, in_dim, train_idx)
    if cfg.trainer.batch_size >= len(train_idx):
        print(
            f"[softstep] warning: split {split}: trainer.batch_size={cfg.trainer.batch_size} is not below the training "
            f"split's {len(train_idx)} rows: each epoch is one batch (one step)",
            file=sys.stderr,
            flush=True,
        )
    scaler = MinMaxScaler(data.labels[train_idx])
    torch.manual_seed(split)
    head = head_from_config(cfg)
    extractor = None
    if cfg.extractor.finetune:  # every split starts again from the same pretrained weights
        extractor = build_extractor(cfg, data)
        in_dim = extractor.out_dim
    model = Regressor(in_dim, cfg.model.hidden, cfg.model.embed_dim, head, extractor, cfg.model.dropout, cfg.model.arch)
    settings = trainer_settings(cfg.trainer, device, head)
    tracker = make_tracker(cfg, key.run_id, split)
    progress = EpochProgress(settings.max_epochs, f"split {split}", cfg.progress, tracker.log, report=report)
    try:
        res = fit(
            model,
            inputs,
            scaler.transform(data.labels),
            train_idx,
            val_idx,
            test_idx,
            settings,
            seed=split,
            checkpoint=FileCheckpoint(key.checkpoint(split)) if cfg.trainer.checkpoint else None,
            stop=stop if stop is not None else preemption.STOP,
            on_epoch=progress,
            epoch_metrics=epoch_sparsity(cfg, model, inputs, train_idx, val_idx, settings),
        )
    except MagnitudeError as e:  # the embeddings grew during training: say what usually causes it
        raise MagnitudeError(
            f"split {split}: {e}; embeddings this large after training mean it diverged: lower trainer.lr "
            f"(now {cfg.trainer.lr:g})"
        ) from None
    finally:
        progress.close()
        tracker.finish()
    return SplitFit(res, model, scaler, (train_idx, val_idx, test_idx), inputs, prep)


#: Validation queries whose neighbourhoods are measured after each epoch.
EPOCH_SPARSITY_QUERIES = 256


def epoch_sparsity(cfg: DictConfig, model: Regressor, inputs: Inputs, train_idx, val_idx, settings: TrainerSettings):
    """The per-epoch sparsity metrics (medians over up to 256 validation queries, the training split as the
    reference set), for neighbour heads; None otherwise. They read the embeddings the epoch's validation computed
    (the training split is embedded once per epoch)."""
    if not model.uses_reference:
        return None
    s = settings

    def metrics(m: Regressor, embeddings: dict) -> dict:
        z_ref, z = embeddings["reference"], embeddings["val"][:EPOCH_SPARSITY_QUERIES]
        return sparsity.flat(sparsity.head_sparsity(m.head, z, z_ref, max_elements=s.max_elements, mass=False))

    return metrics


def embeddings(cfg: DictConfig, sf: SplitFit, device) -> dict[str, torch.Tensor]:
    """The best model's embeddings of the split's ``train`` (the reference set of a neighbour head), ``val`` and
    ``test`` rows (those it has), computed once for the label-unit metrics and the sparsity block."""
    sf.model.eval()
    names = ("train", "val", "test") if sf.model.uses_reference else ("val", "test")
    with torch.no_grad():
        return {
            name: embed_rows(sf.model, sf.inputs, idx, cfg.trainer.eval_batch_size, device)
            for name, idx in zip(("train", "val", "test"), sf.idx)
            if name in names and len(idx)
        }


def label_predictions(sf: SplitFit, z: dict, labels, cfg: DictConfig, device) -> dict:
    """``{"val": (labels, predictions), "test": ...}`` in the label's units, of the best epoch's model, for the
    metrics beside the paper's (:func:`experiments.metrics.split_metrics`)."""
    model, train_idx = sf.model, sf.idx[0]
    y_ref = torch.as_tensor(sf.scaler.transform(labels[train_idx]), dtype=torch.float32, device=device)
    max_elements = resolve_max_elements(cfg.trainer.max_elements, device, model.head)
    out = {}
    with torch.no_grad():
        for name, idx in (("val", sf.idx[1]), ("test", sf.idx[2])):
            if name in z:
                pred = model.head.predict(z[name], z.get("train"), y_ref, max_elements=max_elements)
                out[name] = (labels[idx], sf.scaler.inverse(pred.double().cpu().numpy()))
    return out


def convergence(cfg: DictConfig, res: FitResult, what: str) -> dict:
    """``hit_epoch_cap``: training stopped at ``trainer.max_epochs`` while still improving, i.e. its best epoch is
    one of the last ``trainer.patience`` epochs (early stopping would not have stopped it yet); said in one line."""
    t = cfg.trainer
    hit = bool(res.history) and res.epochs_run >= t.max_epochs and res.best_epoch >= t.max_epochs - t.patience
    if hit:
        print(
            f"[softstep] warning: {what} stopped at trainer.max_epochs={t.max_epochs} while still improving "
            f"(best epoch {res.best_epoch + 1} of {res.epochs_run}, within the last trainer.patience={t.patience}): "
            f"it has not converged; raise trainer.max_epochs",
            file=sys.stderr,
            flush=True,
        )
    return {"hit_epoch_cap": hit}


def split_extras(
    cfg: DictConfig, key: RunKey, split: int, data: RegressionData, sf: SplitFit, device, z: dict | None = None
) -> dict:
    """Optional result fields of one split: ``features`` (a table's columns), ``sparsity`` (neighbour heads, on the
    test queries; ``z``: :func:`embeddings`) and ``saved_model`` (its files and size, when ``save_model`` asks for it,
    and always for a final model, whose reference set is every labelled row; written here)."""
    train_idx, val_idx, test_idx = sf.idx
    model = sf.model
    z = z if z is not None else embeddings(cfg, sf, device)
    out = {}
    if sf.prep is not None:
        out["features"] = sf.prep.describe()
    if model.uses_reference and "test" in z:
        out["sparsity"] = sparsity.head_sparsity(
            model.head,
            z["test"],
            z["train"],
            max_elements=resolve_max_elements(cfg.trainer.max_elements, device, model.head),
        )
    if key.final:  # the deployed model's neighbours: the training and the early-stopping rows
        ref = np.sort(np.concatenate([train_idx, val_idx]))
        out["saved_model"] = saved.save(cfg, key, split, model, sf.inputs, data, sf.scaler, sf.prep, ref, device)
    elif saved.wanted(cfg):
        out["saved_model"] = saved.save(cfg, key, split, model, sf.inputs, data, sf.scaler, sf.prep, train_idx, device)
    return out
