"""Training and evaluation of one split: Adam, early stopping on validation MSE, resumable.

- Neighbour heads use each training batch as their own reference set (``exclude_self=True``);
  the batch order is reshuffled every epoch from (seed, epoch), so a resumed run sees the
  same batches.
- Evaluation embeds the whole training split in eval mode as the reference set and predicts
  through the head's memory-bounded ``predict``.
- Early stopping keeps the epoch with the LOWEST validation MSE and restores its weights.
- With a checkpoint path, the state is saved after every epoch, and mid-epoch when a stop is
  requested (``STOP.set()``, e.g. from SLURM's pre-termination signal); a rerun resumes there.
"""
from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from experiments.device import autocast_dtype, extractor_autocast
from experiments.inputs import Inputs
from experiments.results import atomic_torch_save
from experiments.safety import load_checkpoint

#: Set to ask the training loop to checkpoint at the next batch boundary and raise :class:`Preempted`.
STOP = threading.Event()


class Preempted(Exception):
    """Training stopped on request after saving a checkpoint; rerun to resume."""


ARCHS = ("mlp", "mlp_bn_tanh", "linear", "identity")


def embedding_net(arch: str, in_dim: int, hidden: int, embed_dim: int, dropout: float = 0.0) -> nn.Module:
    """Features → embedding (``model.arch``): ``mlp`` Linear → ReLU → Dropout → Linear; ``mlp_bn_tanh``
    [BatchNorm → Linear → Tanh] × 2, the authors' blocks (a bounded embedding); ``linear`` one Linear;
    ``identity`` the features themselves (``embed_dim`` must equal their width)."""
    if arch == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, embed_dim))
    if arch == "mlp_bn_tanh":
        return nn.Sequential(nn.BatchNorm1d(in_dim), nn.Linear(in_dim, hidden), nn.Tanh(), nn.Dropout(dropout),
                             nn.BatchNorm1d(hidden), nn.Linear(hidden, embed_dim), nn.Tanh())
    if arch == "linear":
        return nn.Linear(in_dim, embed_dim)
    if arch == "identity":
        if embed_dim != in_dim:
            raise ValueError(f"model.arch=identity passes the {in_dim} features on as the embedding; "
                             f"set model.embed_dim={in_dim} (got {embed_dim})")
        return nn.Identity()
    raise ValueError(f"unknown model.arch {arch!r}; allowed: {', '.join(ARCHS)}")


class Regressor(nn.Module):
    """extractor (optional: absent when features are precomputed) → embedding network → embedding → head."""

    def __init__(self, in_dim: int, hidden: int, embed_dim: int, head: nn.Module, extractor: nn.Module | None = None,
                 dropout: float = 0.0, arch: str = "mlp"):
        super().__init__()
        self.in_dim, self.extractor = in_dim, extractor
        self.mlp = embedding_net(arch, in_dim, hidden, embed_dim, dropout)
        self.head = head
        self.extractor_dtype: torch.dtype | None = None  # autocast dtype of the extractor (trainer.precision)

    @property
    def uses_reference(self) -> bool:
        """Whether the head predicts from a reference set (``head.needs_reference``; False for the linear head)."""
        return self.head.needs_reference

    @property
    def min_batch(self) -> int:
        """The smallest training batch: 2 where the head needs another item or BatchNorm needs batch statistics."""
        batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.mlp.modules())
        return 2 if (self.uses_reference or batch_norm) else 1

    def embed(self, x) -> torch.Tensor:
        if self.extractor is not None:
            with extractor_autocast(self.extractor_dtype, self.mlp_device.type):
                x = self.extractor(x)
            x = x.float()  # the MLP and the head run in float32 whatever the extractor's precision
        return self.mlp(x)

    @property
    def mlp_device(self) -> torch.device:
        return next(self.mlp.parameters()).device


@dataclass
class FitResult:
    best_epoch: int
    epochs_run: int
    val_mse: float
    test_mse: float
    history: list = field(default_factory=list)
    wall_time_s: float = 0.0
    runtime: dict = field(default_factory=dict)  # how it ran: device, precision, compile (recorded in the result file)


class EarlyStopping:
    """Keeps the lowest validation MSE seen; ``step`` returns True when patience has run out."""

    def __init__(self, patience: int):
        self.patience, self.best, self.best_epoch, self.bad_epochs = patience, float("inf"), -1, 0

    def step(self, val_mse: float, epoch: int) -> bool:
        if val_mse < self.best:
            self.best, self.best_epoch, self.bad_epochs = val_mse, epoch, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    @property
    def improved(self) -> bool:
        return self.bad_epochs == 0


def adam_kernels(device) -> dict:
    """Adam's implementation: on CUDA ``fused`` (one kernel per parameter group and step, where ``foreach`` launches
    about eight per group and reads each parameter's step count on the host), elsewhere ``foreach``, which keeps CPU
    results bit for bit as before."""
    return {"fused": True} if torch.device(device).type == "cuda" else {"foreach": True}


def _embed(model: Regressor, inputs: Inputs, idx, batch_size, device) -> torch.Tensor:
    return torch.cat([model.embed(x) for x in inputs.batches(idx, batch_size, device)])


@torch.no_grad()
def evaluate(model: Regressor, inputs: Inputs, y: torch.Tensor, train_idx, query_sets: dict, *, eval_batch_size=512,
             max_elements=2**22, device="cpu") -> dict[str, float]:
    """MSE of each query set, with the whole training split (embedded in eval mode) as the reference set."""
    model.eval()
    z_ref = _embed(model, inputs, train_idx, eval_batch_size, device) if model.uses_reference else None
    y_ref = y[torch.as_tensor(train_idx)].to(device)
    out = {}
    for name, idx in query_sets.items():
        zq = _embed(model, inputs, idx, eval_batch_size, device)
        pred = model.head.predict(zq, z_ref, y_ref, max_elements=max_elements)
        out[name] = float(torch.mean((pred - y[torch.as_tensor(idx)].to(device)) ** 2))
    return out


def fit(model: Regressor, inputs: Inputs, y_scaled: np.ndarray, train_idx, val_idx, test_idx, *, seed: int,
        max_epochs: int, patience: int, batch_size: int, lr: float, extractor_lr: float = 1e-5,
        weight_decay: float = 0.0, eval_batch_size: int = 512, max_elements: int = 2**22, device="cpu",
        checkpoint: Path | None = None, progress: bool = True, log: Callable[[dict, int], None] | None = None,
        desc: str = "", eval_from_epoch: int = 0, reference: str = "batch", reference_fraction: float = 0.3,
        epoch_metrics: Callable[[Regressor], dict] | None = None, precision: str = "32", compile: bool = False,
        channels_last: bool = False) -> FitResult:
    """Train ``model`` on ``train_idx`` with early stopping on ``val_idx``; return val and test MSE of the best epoch.

    The first ``eval_from_epoch`` epochs are trained without validation, so patience counts from there
    (the authors' ``start_after_epoch``); the last epoch is always validated.

    ``reference="batch"``: a neighbour head's reference set in training is the batch itself (the paper).
    ``"sample"``: the batch followed by a fresh random ``reference_fraction`` of the rest of the training
    split for every batch (as ModernNCA samples its candidates), so that the kernel is trained at
    about the density it is evaluated at; the query's own entry still gets weight 0.

    ``epoch_metrics(model)``, optional: more numbers to record after each epoch's validation (in the
    history and the tracker), e.g. the sparsity of the neighbourhoods.

    ``precision`` (``32`` or ``bf16``: the extractor's autocast) and ``compile`` (``torch.compile`` of the
    training step's forward and loss) come resolved from :mod:`experiments.device`; ``channels_last`` stores a
    fine-tuned extractor's 2-d convolution weights in NHWC on CUDA (off in the pipeline: on an H100 it made a
    resnet18 epoch 45 % slower, 775 against 1,407 images/s; ``results/benchmarks/gpu.md``). Each epoch's history
    entry records its time (``epoch_time_s``: training plus validation; ``train_time_s``: training alone)."""
    start = time.time()
    y = torch.as_tensor(y_scaled, dtype=torch.float32)
    y_dev = y.to(device)  # copied once: a per-batch copy from pageable memory can wait for the GPU
    model.to(device)
    model.extractor_dtype = autocast_dtype(precision)
    if torch.device(device).type == "cuda" and model.extractor is not None:
        torch.backends.cudnn.benchmark = True  # fixed-size inputs (224² images, fixed audio windows): cuDNN picks its fastest kernels once
        if channels_last:  # 2-d convolutions in NHWC (tensor-core friendly); other weights are unaffected
            model.extractor.to(memory_format=torch.channels_last)

    def batch_loss(x, yb, y_ref):
        z_ref = model.embed(x)
        z = z_ref if len(z_ref) == len(yb) else z_ref[: len(yb)]  # the same tensor: the head computes it once
        pred = model.head(z, z_ref, y_ref, exclude_self=True)  # the batch (and a sample) as its reference set
        return torch.mean((pred - yb) ** 2)

    step_loss = torch.compile(batch_loss) if compile else batch_loss
    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("extractor.") and p.requires_grad], "lr": lr}]
    ext = [p for p in model.extractor.parameters() if p.requires_grad] if model.extractor is not None else []
    if ext:
        groups.append({"params": ext, "lr": extractor_lr})
    opt = torch.optim.Adam(groups, weight_decay=weight_decay, **adam_kernels(device))
    stopper, best_state, history, epoch, first_batch = EarlyStopping(patience), None, [], 0, 0

    ck = load_checkpoint(checkpoint, device) if checkpoint is not None and checkpoint.exists() else None
    if ck is not None:  # tensors and plain values only (weights_only); an unreadable file was moved aside
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        best_state, history, epoch, first_batch = ck["best_state"], ck["history"], ck["epoch"], ck["batch"]
        stopper.best, stopper.best_epoch, stopper.bad_epochs = ck["best"], ck["best_epoch"], ck["bad_epochs"]
        torch.set_rng_state(ck["torch_rng"])

    def save(next_epoch: int, next_batch: int) -> None:
        if checkpoint is not None:
            atomic_torch_save(checkpoint, dict(model=model.state_dict(), optim=opt.state_dict(), best_state=best_state,
                                   history=history, epoch=next_epoch, batch=next_batch, best=stopper.best,
                                   best_epoch=stopper.best_epoch, bad_epochs=stopper.bad_epochs,
                                   torch_rng=torch.get_rng_state()))

    bar = tqdm(total=max_epochs, initial=epoch, desc=desc or "epochs", disable=not progress, leave=False)
    done = epoch >= max_epochs or (history and stopper.bad_epochs >= patience)
    while not done:
        epoch_start = time.time()
        model.train()
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = np.asarray(train_idx)[torch.randperm(len(train_idx), generator=g).numpy()]
        # one pass of the input pipeline per epoch (resuming mid-epoch: from the first batch not yet trained);
        # a sampled reference set is fetched per batch instead
        sample = reference == "sample" and model.uses_reference
        xs = None if sample else inputs.batches(perm[first_batch * batch_size:], batch_size, device)
        y_epoch = y_dev[torch.as_tensor(perm).to(device)]  # this epoch's targets in batch order: one copy, then slices
        loss_sum = torch.zeros((), device=device)  # summed on the device: read back once per epoch, not per step
        for b in range(first_batch, math.ceil(len(perm) / batch_size)):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            x = None if sample else next(xs)
            if len(idx) < model.min_batch:
                continue  # a neighbour head needs another item in the batch, BatchNorm a batch statistic
            ref = idx
            if sample:
                rng = np.random.default_rng([seed, epoch, b])
                rest = np.setdiff1d(train_idx, idx)
                ref = np.concatenate([idx, rng.choice(rest, round(reference_fraction * len(rest)), replace=False)])
                x = next(inputs.batches(ref, len(ref), device))
            yb = y_epoch[b * batch_size : (b + 1) * batch_size]
            y_ref = y_dev[torch.as_tensor(ref).to(device)] if sample else yb
            loss = step_loss(x, yb, y_ref)
            loss_sum += loss.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if STOP.is_set():
                save(epoch, b + 1)
                raise Preempted(f"stopped in epoch {epoch} after batch {b}; checkpoint {checkpoint}")
        first_batch = 0
        if not math.isfinite(float(loss_sum)):  # the heads skip their per-step input scans on CUDA (softstep.functional.in_cuda_training)
            raise FloatingPointError(f"the training loss became NaN or inf in epoch {epoch}: the inputs contain NaN/inf "
                                     "or training diverged; check the data, or lower trainer.lr")
        train_time = time.time() - epoch_start
        if epoch < eval_from_epoch and epoch < max_epochs - 1:
            epoch += 1
            bar.update(1)
            save(epoch, 0)
            continue
        val = evaluate(model, inputs, y, train_idx, {"val": val_idx}, eval_batch_size=eval_batch_size,
                       max_elements=max_elements, device=device)["val"]
        done = stopper.step(val, epoch)
        if stopper.improved:
            best_state = copy.deepcopy(model.state_dict())
        extra = epoch_metrics(model) if epoch_metrics else {}
        history.append({"epoch": epoch, "val_mse": val, "epoch_time_s": round(time.time() - epoch_start, 4),
                        "train_time_s": round(train_time, 4), **extra})
        if log:
            log({"val_mse": val, "best_val_mse": stopper.best, **extra}, epoch)
        epoch += 1
        done = done or epoch >= max_epochs
        bar.update(1)
        bar.set_postfix(val_mse=f"{val:.4g}", best=f"{stopper.best:.4g}")
        save(epoch, 0)
    bar.close()
    model.load_state_dict(best_state)
    final = evaluate(model, inputs, y, train_idx, {"val": val_idx, "test": test_idx}, eval_batch_size=eval_batch_size,
                     max_elements=max_elements, device=device)
    device = torch.device(device)
    runtime = {"device": device.type, "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "precision": precision, "compile": bool(compile), "max_elements": int(max_elements)}
    return FitResult(stopper.best_epoch, epoch, final["val"], final["test"], history, time.time() - start, runtime)
