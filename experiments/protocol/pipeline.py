"""One configuration over its splits: the paper's protocol as a program (``python run.py``).

Read top-down: :func:`run` checks the config, loads the data, asks the store which splits are left and builds one
:class:`~experiments.protocol.setup.RunContext`; :func:`train_splits` runs each split (in worker processes with
``trainer.workers``); :func:`run_split` holds the split's lock; :func:`train_and_record` is the protocol of one
split: split 80/20 → 85/15 → scale the labels on the training split → fit (:func:`fit_split`) → evaluate
(:mod:`experiments.protocol.evaluate`) → record the result JSON atomically. At the end the summary line gives
mean ± std × 10³ beside the paper's number.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from omegaconf import DictConfig

from experiments.inputs import tabular
from experiments.inputs.batches import Inputs
from experiments.labels import MinMaxScaler
from experiments.models import saved
from experiments.protocol import workers
from experiments.protocol.evaluate import SplitFit, evaluate, step_start
from experiments.protocol.progress import loop_hooks
from experiments.protocol.settings import check_config, trainer_settings
from experiments.protocol.setup import RunContext, build_model, load_data, start_run
from experiments.protocol.splits import split_indices
from experiments.protocol.workers import StoppedSplit
from experiments.store.identity import run_key
from experiments.store.record import summary
from experiments.store.results import RunKey
from experiments.store.run_store import RunStore
from softstep.model import Regressor
from softstep.similarities import MagnitudeError
from softstep.training import fit


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


def run(cfg: DictConfig, *, keep_models: bool = False) -> RunResult:
    """Run every requested split that has no result yet (all of them with ``force``).

    Returns the summary line and, per split trained here, its result record (and with ``keep_models``
    the trained model, label scaler and inputs, e.g. to draw Figure 3's surfaces)."""
    splits = check_config(cfg)
    key = run_key(cfg)
    if key.final:  # one model on every labelled row instead of the splits (its seed: split 0)
        splits = [0]
    started = time.time()
    data = load_data(cfg)  # also when every split is done: finished results must match this data
    store = RunStore(key, force=cfg.force)
    todo = store.open(data, splits, saved.why_broken if saved.wanted(cfg) else None)
    trained: dict[int, Trained] = {}
    if todo:
        ctx = start_run(cfg, data, store, todo, splits=splits, started=started, keep_models=keep_models)
        trained = train_splits(ctx, todo)
    return RunResult(key, summary(cfg, key), trained)


def train_splits(ctx: RunContext, todo: list[int]) -> dict[int, Trained]:
    """Each split of ``todo``, in this process or, with ``trainer.workers``, in parallel processes
    (:mod:`experiments.protocol.workers`); raises :class:`Stopped` after the last one when any of them stopped."""
    what = "final model" if ctx.store.key.final else "splits"
    bar = dict(total=len(todo), desc=f"{ctx.cfg.dataset.name}/{ctx.cfg.head.name} {what}", disable=not ctx.cfg.progress)
    if ctx.workers == 1:
        return workers.collect((run_split(ctx, s) for s in todo), bar)
    return workers.in_parallel(ctx, todo, run_split, bar)


def run_split(ctx: RunContext, split: int) -> Trained | StoppedSplit | None:
    """One split under its lock (:meth:`experiments.store.run_store.RunStore.claim`): None when another run holds
    it or finished it meanwhile; a :class:`StoppedSplit` when a stop was requested before it started."""
    if ctx.stop_request().is_set():
        return StoppedSplit(split, "not started")
    with ctx.store.claim(split) as mine:
        return train_and_record(ctx, split) if mine else None


def train_and_record(ctx: RunContext, split: int) -> Trained:
    """The paper's protocol for one split: split → scale → fit → evaluate → record."""
    with torch_threads(ctx.threads):
        idx = split_indices(ctx.cfg, ctx.data.labels, split)
        scaler = MinMaxScaler(ctx.data.labels[idx[0]])
        sf = fit_split(ctx, split, idx, scaler)
        record = evaluate(ctx, split, sf)
        ctx.store.write(split, record)
    if not ctx.keep_models:
        return Trained(record)
    return Trained(record, sf.model, sf.scaler, sf.inputs, sf.idx, sf.scaler.transform(ctx.data.labels))


def fit_split(ctx: RunContext, split: int, idx: tuple, scaler: MinMaxScaler) -> SplitFit:
    """Build the split's model (seeded by the split) and fit it (:func:`softstep.training.fit`): early stopping on
    the validation MSE, the best epoch's weights kept, a checkpoint each epoch (``trainer.checkpoint``)."""
    cfg, data = ctx.cfg, ctx.data
    train_idx = idx[0]
    inputs, in_dim, prep = tabular.split_inputs(data, ctx.inputs, ctx.in_dim, train_idx)
    if cfg.trainer.batch_size >= len(train_idx):
        print(
            f"[softstep] warning: split {split}: trainer.batch_size={cfg.trainer.batch_size} is not below the training "
            f"split's {len(train_idx)} rows: each epoch is one batch (one step)",
            file=sys.stderr,
            flush=True,
        )
    torch.manual_seed(split)
    model = build_model(cfg, data, in_dim)
    settings = trainer_settings(cfg.trainer, ctx.device, model.head)
    start = step_start(cfg, model, inputs, idx)  # before training: how far the step moves is measured from here
    try:
        # the loop's progress bar and tracker, checkpoint file, stop request and per-epoch sparsity
        with loop_hooks(ctx, split, model, inputs, idx, settings) as hooks:
            res = fit(model, inputs, scaler.transform(data.labels), *idx, settings, seed=split, **hooks)
    except MagnitudeError as e:  # the embeddings grew during training: say what usually causes it
        raise MagnitudeError(
            f"split {split}: {e}; embeddings this large after training mean it diverged: lower trainer.lr "
            f"(now {cfg.trainer.lr:g})"
        ) from None
    return SplitFit(res, model, scaler, idx, inputs, prep, start)


@contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op threads set to ``threads`` (unchanged when None) while the body runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)
