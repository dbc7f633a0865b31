"""The evaluate step of one split: the best epoch's model on its split, as the result file records it: the paper's
metric and the metrics in the label's units (:mod:`experiments.metrics`), convergence, the sparsity of a neighbour
head's test neighbourhoods (and, after each epoch, of its validation ones: :func:`epoch_sparsity`), and the saved model (:func:`evaluate` returns the record :mod:`experiments.protocol.pipeline`
writes)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from omegaconf import DictConfig

from experiments.inputs import tabular
from experiments.inputs.batches import Inputs
from experiments.labels import MinMaxScaler
from experiments.models import saved
from experiments.protocol import sparsity
from experiments.protocol.device import resolve_max_elements
from experiments.protocol.setup import frozen_extractor_sha256
from experiments.store.record import result_record
from softstep.model import Regressor, embed_rows
from softstep.training_types import FitResult, TrainerSettings

if TYPE_CHECKING:
    from experiments.protocol.setup import RunContext


@dataclass
class SplitFit:
    """The fit step's output: the fit, the model at its best epoch, the label scaler, the (train, val, test)
    indices, the split's inputs and, for a table, its feature preprocessing (fitted on the training split)."""

    result: FitResult
    model: Regressor
    scaler: MinMaxScaler
    idx: tuple
    inputs: Inputs
    prep: tabular.TablePreprocessor | None
    step_start: dict | None = None


def evaluate(ctx: RunContext, split: int, sf: SplitFit) -> dict:
    """The result record of ``split``: its metrics, the data it was trained on, its convergence and its extras."""
    cfg, key = ctx.cfg, ctx.store.key
    z = embeddings(cfg, sf, ctx.device)
    predictions = label_predictions(sf, z, ctx.data.labels, cfg, ctx.device)
    record = result_record(cfg, sf.result, sf.scaler, split, key.run_id, sf.idx, predictions)
    record["data_digest"] = ctx.store.digest  # a later run on changed data refuses to report it
    record.update(convergence(cfg, sf.result, "the final model" if key.final else f"split {split}"))
    if key.final:
        record["final"] = True
        record["n_reference"] = len(sf.idx[0]) + len(sf.idx[1])
    record.update(split_extras(ctx, split, sf, z))
    return record


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


def split_extras(ctx: RunContext, split: int, sf: SplitFit, z: dict) -> dict:
    """Optional result fields of one split: ``features`` (a table's columns), ``sparsity`` (neighbour heads, on the
    test queries; ``z``: :func:`embeddings`) and ``saved_model`` (its files and size, when ``save_model`` asks for it,
    and always for a final model, whose reference set is every labelled row; written here)."""
    cfg, key, device = ctx.cfg, ctx.store.key, ctx.device
    train_idx, val_idx, test_idx = sf.idx
    model = sf.model
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
    if sf.step_start:
        out["step_start"] = sf.step_start
    if key.final or saved.wanted(cfg):  # a final model's neighbours: the training and the early-stopping rows
        ref = np.sort(np.concatenate([train_idx, val_idx])) if key.final else train_idx
        digest = frozen_extractor_sha256(cfg, ctx.data)
        out["saved_model"] = saved.save(
            cfg, key, split, model, sf.inputs, ctx.data, sf.scaler, sf.prep, ref, device, extractor_sha256=digest
        )
    return out


def step_start(cfg: DictConfig, model: Regressor, inputs: Inputs, idx: tuple) -> dict | None:
    """Where the step starts: the untrained model's l, u, t (SoftStep) or k (SoftKStep) on the test queries, in the
    ``sparsity`` block's form (``{"l": {"p10", "median", "p90"}, …}``); None for a head without a step. Read in eval
    mode, which draws no random numbers, so training is unchanged."""
    if not model.uses_reference or not len(idx[2]):
        return None
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            z = embed_rows(model, inputs, idx[2], cfg.trainer.eval_batch_size, device)
            return sparsity.learned_parameters(model.head, z, len(idx[0])) or None
    finally:
        model.train(was_training)


#: Validation queries whose neighbourhoods are measured after each epoch.
EPOCH_SPARSITY_QUERIES = 256


def epoch_sparsity(cfg: DictConfig, model: Regressor, inputs: Inputs, train_idx, val_idx, settings: TrainerSettings):
    """The per-epoch sparsity metrics (median, p10 and p90 over up to 256 validation queries, the training split as
    the reference set; the mass the step removes included), for neighbour heads; None otherwise. They read the
    embeddings the epoch's validation computed (the training split is embedded once per epoch)."""
    if not model.uses_reference:
        return None
    s = settings

    def metrics(m: Regressor, embeddings: dict) -> dict:
        z_ref, z = embeddings["reference"], embeddings["val"][:EPOCH_SPARSITY_QUERIES]
        return sparsity.flat(sparsity.head_sparsity(m.head, z, z_ref, max_elements=s.max_elements))

    return metrics
