"""The training loop shared by the pipeline and :class:`~softstep.SoftStepRegressor` (the paper's section 5).

Adam; a neighbour head's reference set in training is the batch itself (``exclude_self=True``, Algorithm 1
line 10), the batch order reshuffled every epoch from (seed, epoch); evaluation embeds the whole training split
as the reference set and predicts through the head's memory-bounded ``predict``; early stopping keeps the epoch
with the lowest validation MSE and restores its weights. A ``checkpoint`` saves the state after every epoch and,
when ``stop`` is set, mid-epoch, after which :class:`Stopped` is raised; a rerun resumes there.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from .checkpoints import TrainState, resume, save_state
from .model import Regressor, embed_rows
from .training_types import Checkpoint, EarlyStopping, FitResult, Stopped, TrainerSettings


def mse(pred, y):
    """Mean squared error of two tensors (or arrays): the training loss and the validation metric.

    Parameters
    ----------
    pred, y : torch.Tensor or numpy.ndarray of the same shape

    Returns
    -------
    Scalar of the inputs' type.

    Examples
    --------
    >>> import torch
    >>> float(mse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])))
    2.5
    """
    return ((pred - y) ** 2).mean()


def fit(
    model: Regressor,
    inputs,
    y_scaled: np.ndarray,
    train_idx,
    val_idx,
    test_idx,
    settings: TrainerSettings,
    *,
    seed: int,
    checkpoint: Checkpoint | None = None,
    stop: threading.Event | None = None,
    on_epoch: Callable[[int, dict | None, float], None] | None = None,
    epoch_metrics: Callable[[Regressor, dict], dict] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_idx`` with early stopping on ``val_idx``; return val and test MSE of the best epoch.

    Parameters
    ----------
    model : Regressor
    inputs : object with ``batches(idx, batch_size, device)``, e.g. :class:`TensorInputs`
    y_scaled : array of shape (n,), the labels of every row (scaled, e.g. min-max on the training rows)
    train_idx, val_idx, test_idx : row indices; without validation rows every epoch trains and the last is kept;
        without test rows ``test_mse`` is NaN
    settings : TrainerSettings
    seed : the batch order of epoch e is fixed by (seed, e)
    checkpoint, stop : a :class:`Checkpoint` written after every epoch, and mid-epoch when ``stop`` is set
        (then :class:`Stopped` is raised)
    on_epoch : called after each epoch with (epoch, its history entry or None when it was not validated, the best
        validation MSE so far)
    epoch_metrics : more numbers to record after each epoch's validation, from the model and the embeddings the
        validation computed (``{"reference": z_ref, "val": z_val}``; the training split is embedded once per epoch)

    Returns
    -------
    FitResult
        Each history entry records its time (``epoch_time_s``: training plus validation; ``train_time_s``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from softstep import build_head
    >>> from softstep.model import Regressor
    >>> from softstep.training_types import TensorInputs, TrainerSettings
    >>> x, y = torch.randn(60, 3), np.random.default_rng(0).random(60)
    >>> model = Regressor(3, 16, 4, build_head("nca", 4))
    >>> settings = TrainerSettings(max_epochs=3, patience=5, batch_size=16, lr=1e-2)
    >>> res = fit(model, TensorInputs(x), y, np.arange(40), np.arange(40, 50), np.arange(50, 60), settings, seed=0)
    >>> res.epochs_run, len(res.history)
    (3, 3)
    """
    s, start = settings, time.time()
    y = torch.as_tensor(y_scaled, dtype=torch.float32)
    y_dev = y.to(s.device)  # copied once: a per-batch copy from pageable memory can wait for the GPU
    _place_model(model, s)
    step_loss = _training_step(model, s.compile, s.embed_passes)
    opt = _optimizer(model, s)
    state = TrainState(EarlyStopping(s.patience))
    resume(checkpoint, model, opt, state, s.device, s.max_epochs)
    started, first = time.time(), state.epoch
    while not state.finished(s.max_epochs) and not _out_of_time(s, started, state.epoch > first):
        epoch_start = time.time()
        _train_epoch(model, inputs, y_dev, train_idx, step_loss, opt, s, seed, state, checkpoint, stop)
        entry = None
        skipped = state.epoch < s.eval_from_epoch and state.epoch < s.max_epochs - 1  # the last epoch is validated
        if len(val_idx) and not skipped:
            entry = _validate_epoch(model, inputs, y, train_idx, val_idx, s, state, epoch_start, epoch_metrics)
        if on_epoch:
            on_epoch(state.epoch, entry, state.stopper.best)
        state.epoch += 1
        save_state(checkpoint, model, opt, state)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    sets = {name: idx for name, idx in (("val", val_idx), ("test", test_idx)) if idx is not None and len(idx)}
    final = evaluate(model, inputs, y, train_idx, sets, s)
    device = torch.device(s.device)
    runtime = {
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "precision": s.precision,
        "compile": bool(s.compile),
        "max_elements": int(s.max_elements),
    }
    best_epoch = state.stopper.best_epoch if state.best_state is not None else state.epoch - 1
    nan = float("nan")
    return FitResult(
        best_epoch,
        state.epoch,
        final.get("val", nan),
        final.get("test", nan),
        state.history,
        time.time() - start,
        runtime,
    )


def _validate_epoch(
    model, inputs, y, train_idx, val_idx, s: TrainerSettings, state: TrainState, epoch_start, epoch_metrics
):
    """Validate the epoch just trained: early stopping's step, the best weights kept, the history entry added."""
    train_time = time.time() - epoch_start
    embeddings = {}
    val = evaluate(model, inputs, y, train_idx, {"val": val_idx}, s, embeddings=embeddings)["val"]
    state.stopper.step(val, state.epoch)
    if state.stopper.improved:
        state.best_state = copy.deepcopy(model.state_dict())
    extra = epoch_metrics(model, embeddings) if epoch_metrics else {}
    entry = {
        "epoch": state.epoch,
        "val_mse": val,
        "epoch_time_s": round(time.time() - epoch_start, 4),
        "train_time_s": round(train_time, 4),
        **extra,
    }
    state.history.append(entry)
    return entry


def _autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of the extractor for a resolved precision (None: no autocast)."""
    return torch.bfloat16 if precision == "bf16" else None


def _place_model(model: Regressor, s: TrainerSettings) -> None:
    """The model on the device, with the extractor's autocast dtype, cuDNN's autotuner and memory format."""
    model.to(s.device)
    model.extractor_dtype = _autocast_dtype(s.precision)
    if torch.device(s.device).type == "cuda" and model.extractor is not None:
        torch.backends.cudnn.benchmark = True  # fixed-size inputs: cuDNN picks its fastest kernels once
        if s.channels_last:  # 2-d convolutions in NHWC (tensor-core friendly); other weights are unaffected
            model.extractor.to(memory_format=torch.channels_last)


def _training_step(model: Regressor, compile: bool, embed_passes: int = 1) -> Callable:
    """The loss of one batch: the batch (and a sampled reference set) as the head's reference set, each item
    excluded from its own neighbours; compiled with ``torch.compile`` when asked. ``embed_passes=2`` (nona_anon's
    ``finetune.py``): the queries are embedded again in a second forward pass, and the self-mask applies only where
    the two passes agree exactly (not where dropout made them differ)."""

    def batch_loss(x, yb, y_ref):
        z_ref = model.embed(x)
        if embed_passes == 2 and model.uses_reference:
            z = model.embed(x)
            return mse(model.head(z, z_ref, y_ref, exclude_self=bool(torch.equal(z, z_ref))), yb)
        z = z_ref if len(z_ref) == len(yb) else z_ref[: len(yb)]  # the same tensor: the head computes it once
        return mse(model.head(z, z_ref, y_ref, exclude_self=True), yb)

    return torch.compile(batch_loss) if compile else batch_loss


def adam_kernels(device) -> dict:
    """Adam's implementation: ``fused`` on CUDA (one kernel per parameter group and step), ``foreach`` elsewhere.

    Parameters
    ----------
    device : torch.device or str

    Returns
    -------
    dict of keyword arguments for ``torch.optim.Adam``

    Examples
    --------
    >>> adam_kernels("cpu")
    {'foreach': True}
    """
    return {"fused": True} if torch.device(device).type == "cuda" else {"foreach": True}


def _optimizer(model: Regressor, s: TrainerSettings) -> torch.optim.Adam:
    """Adam over the MLP and head (``lr``; the head's own parameters at ``head_lr`` when set, ours) and a fine-tuned
    extractor (``extractor_lr``)."""
    own = [p for n, p in model.named_parameters() if not n.startswith("extractor.") and p.requires_grad]
    head = [p for p in model.head.parameters() if p.requires_grad] if s.head_lr is not None else []
    ids = {id(p) for p in head}
    groups = [{"params": [p for p in own if id(p) not in ids], "lr": s.lr}]
    if head:
        groups.append({"params": head, "lr": s.head_lr})
    ext = [p for p in model.extractor.parameters() if p.requires_grad] if model.extractor is not None else []
    if ext:
        groups.append({"params": ext, "lr": s.extractor_lr})
    return torch.optim.Adam(groups, weight_decay=s.weight_decay, **adam_kernels(s.device))


def _out_of_time(s: TrainerSettings, started: float, trained: bool) -> bool:
    """``max_time_s`` spent (ours, the estimator's ``max_time``): no further epoch starts, once one has run."""
    return trained and s.max_time_s is not None and time.time() - started >= s.max_time_s


def _train_epoch(
    model,
    inputs,
    y_dev: torch.Tensor,
    train_idx,
    step_loss,
    opt,
    s: TrainerSettings,
    seed: int,
    state: TrainState,
    checkpoint: Checkpoint | None,
    stop: threading.Event | None,
) -> None:
    """One pass over the training split in the order (seed, epoch) fixes, from ``state.first_batch``; checks the
    summed loss once at the end (a CUDA step reads nothing back), and stops with a checkpoint when asked."""
    model.train()
    g = torch.Generator().manual_seed(seed * 100_003 + state.epoch)
    perm = np.asarray(train_idx)[torch.randperm(len(train_idx), generator=g).numpy()]
    y_epoch = y_dev[torch.as_tensor(perm).to(s.device)]  # this epoch's targets in batch order: one copy, then slices
    loss_sum = torch.zeros((), device=s.device)
    for b, x, y_ref in _training_batches(model, inputs, y_dev, perm, train_idx, s, seed, state):
        yb = y_epoch[b * s.batch_size : (b + 1) * s.batch_size]
        loss = step_loss(x, yb, yb if y_ref is None else y_ref)
        loss_sum += loss.detach()
        if loss.requires_grad:  # else nothing to learn (plain NCA on raw coordinates at β = 1): only evaluated
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if stop is not None and stop.is_set():
            save_state(checkpoint, model, opt, state, next_batch=b + 1)
            raise Stopped(f"stopped in epoch {state.epoch} after batch {b}; checkpoint {checkpoint}")
    state.first_batch = 0
    if not math.isfinite(float(loss_sum)):  # the heads skip their per-step input scans on CUDA
        raise FloatingPointError(
            f"the training loss became NaN or inf in epoch {state.epoch}: the inputs contain NaN/inf "
            "or training diverged; check the data, or lower trainer.lr"
        )


def _training_batches(
    model: Regressor, inputs, y_dev, perm, train_idx, s: TrainerSettings, seed: int, state: TrainState
):
    """``(b, x, y_ref)`` per batch ``b`` of ``perm`` from ``state.first_batch``: ``y_ref`` None where the batch is its
    own reference set; with ``reference="sample"`` (neighbour heads) ``x`` is the batch followed by its sampled
    references and ``y_ref`` their labels. Batches smaller than ``model.min_batch`` are skipped."""
    bs, sample = s.batch_size, s.reference == "sample" and model.uses_reference
    xs = (
        None if sample else inputs.batches(perm[state.first_batch * bs :], bs, s.device)
    )  # one pass of the input pipeline
    for b in range(state.first_batch, math.ceil(len(perm) / bs)):
        idx = perm[b * bs : (b + 1) * bs]
        x = None if sample else next(xs)
        if len(idx) < model.min_batch:
            continue  # a neighbour head needs another item in the batch, BatchNorm a batch statistic
        if not sample:
            yield b, x, None
            continue
        rng = np.random.default_rng([seed, state.epoch, b])
        rest = np.setdiff1d(train_idx, idx)
        ref = np.concatenate([idx, rng.choice(rest, round(s.reference_fraction * len(rest)), replace=False)])
        yield b, next(inputs.batches(ref, len(ref), s.device)), y_dev[torch.as_tensor(ref).to(s.device)]


@torch.no_grad()
def evaluate(
    model: Regressor,
    inputs,
    y: torch.Tensor,
    train_idx,
    query_sets: dict,
    s: TrainerSettings,
    *,
    embeddings: dict | None = None,
) -> dict[str, float]:
    """MSE of each query set, with the whole training split (embedded in eval mode) as the reference set.

    Parameters
    ----------
    model : Regressor
    inputs : object with ``batches(idx, batch_size, device)``
    y : torch.Tensor of shape (n,), every row's label
    train_idx : the reference rows
    query_sets : dict of name → row indices
    s : TrainerSettings (``eval_batch_size``, ``max_elements``, ``device``)
    embeddings : dict, optional
        Filled with the embeddings computed here (``"reference"``: the training split, or None; and one per query
        set), for numbers that would otherwise embed them again (the epoch's sparsity block)

    Returns
    -------
    dict of name → MSE

    Examples
    --------
    >>> import torch
    >>> from softstep import build_head
    >>> from softstep.model import Regressor
    >>> from softstep.training_types import TensorInputs, TrainerSettings
    >>> model = Regressor(3, 8, 4, build_head("nca", 4))
    >>> s = TrainerSettings(max_epochs=1, patience=1, batch_size=4, lr=1e-3)
    >>> sorted(evaluate(model, TensorInputs(torch.randn(20, 3)), torch.rand(20), range(15), {"val": range(15, 20)}, s))
    ['val']
    """
    model.eval()
    z_ref = embed_rows(model, inputs, train_idx, s.eval_batch_size, s.device) if model.uses_reference else None
    y_ref = y[torch.as_tensor(train_idx)].to(s.device)
    out = {}
    for name, idx in query_sets.items():
        zq = embed_rows(model, inputs, idx, s.eval_batch_size, s.device)
        pred = model.head.predict(zq, z_ref, y_ref, max_elements=s.max_elements)
        out[name] = float(mse(pred, y[torch.as_tensor(idx)].to(s.device)))
        if embeddings is not None:
            embeddings[name] = zq
    if embeddings is not None:
        embeddings["reference"] = z_ref
    return out
