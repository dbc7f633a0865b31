"""What the training loop (:func:`softstep.training.fit`) takes and returns: its settings, inputs held as a tensor,
the checkpoint it may write, early stopping, its result, and the exception a requested stop raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch


class Stopped(Exception):
    """Training stopped on request (:func:`fit`'s ``stop``) after saving a checkpoint; rerun to resume.

    Parameters
    ----------
    *args
        The message: where training stopped and the checkpoint.

    Examples
    --------
    >>> isinstance(Stopped("stopped in epoch 3"), Exception)
    True
    """


class Checkpoint(Protocol):
    """Where :func:`fit` keeps its state: ``load(device)`` (None: start afresh) and ``save(state)``; optionally
    ``reject(why)``, called with one line when a loaded state does not fit the model or the settings.

    Parameters
    ----------
    *args, **kwargs
        Whatever the implementation needs (the pipeline's is a file path).

    Examples
    --------
    >>> class InMemory:
    ...     state = None
    ...     def load(self, device): return self.state
    ...     def save(self, state): self.state = state
    >>> InMemory().load("cpu") is None
    True
    """

    def load(self, device) -> dict | None: ...

    def save(self, state: dict) -> None: ...


class TensorInputs:
    """Model inputs held as one tensor of rows: ``batches(idx, batch_size, device)`` yields its rows ``idx``.

    Parameters
    ----------
    features : torch.Tensor of shape (n, ...)

    Examples
    --------
    >>> import torch
    >>> [b.tolist() for b in TensorInputs(torch.arange(5.0)).batches([4, 0, 2], 2, "cpu")]
    [[4.0, 0.0], [2.0]]
    """

    def __init__(self, features: torch.Tensor):
        self.features = features

    def batches(self, idx, batch_size: int, device):
        idx = torch.as_tensor(np.asarray(idx), device=self.features.device)
        for s in range(0, len(idx), batch_size):
            yield self.features[idx[s : s + batch_size]].to(device, non_blocking=True)


@dataclass(frozen=True)
class TrainerSettings:
    """How :func:`fit` trains: the fields of the pipeline's ``configs/trainer/`` it reads, resolved for a device.

    ``reference="batch"``: a neighbour head's reference set in training is the batch itself (the paper);
    ``"sample"``: the batch followed by a fresh random ``reference_fraction`` of the rest of the training split
    for every batch (as ModernNCA samples its candidates). The first ``eval_from_epoch`` epochs train without
    validation (the authors' ``start_after_epoch``). ``precision`` (``32`` | ``bf16``: the extractor's autocast),
    ``compile`` (``torch.compile`` of the step), ``channels_last`` (a fine-tuned extractor's convolutions in NHWC
    on CUDA): docs/performance.md.

    Parameters
    ----------
    max_epochs, patience, batch_size : int
    lr, extractor_lr, weight_decay : float
        Adam's rates for the MLP and head, for a fine-tuned extractor, and its weight decay.
    head_lr : float, optional
        Ours: Adam's rate for the head's own parameters (SoftStep's, k's, β); None = ``lr`` (the authors: one rate).
    eval_batch_size, max_elements : int
        Evaluation batches, and the most query × reference entries evaluated at once.
    device, precision, compile, eval_from_epoch, reference, reference_fraction, channels_last
        See above.
    max_time_s : float, optional
        Ours: no epoch starts after this many seconds of training (the best epoch so far is kept); None: no limit.
    embed_passes : {1, 2}
        1: the batch is embedded once as queries and reference set (Algorithms 1–2); 2: twice, as nona_anon trains
        (with ``reference="batch"`` only; docs/paper-choices.md).

    Examples
    --------
    >>> TrainerSettings(max_epochs=200, patience=10, batch_size=32, lr=1e-3).reference
    'batch'
    """

    max_epochs: int
    patience: int
    batch_size: int
    lr: float
    extractor_lr: float = 1e-5
    weight_decay: float = 0.0
    eval_batch_size: int = 512
    max_elements: int = 2**22
    device: str = "cpu"
    precision: str = "32"
    compile: bool = False
    eval_from_epoch: int = 0
    reference: str = "batch"
    reference_fraction: float = 0.3
    channels_last: bool = False
    head_lr: float | None = None
    max_time_s: float | None = None
    embed_passes: int = 1


@dataclass
class FitResult:
    """What :func:`fit` returns: the best epoch, the epochs run, its validation and test MSE, the history.

    Parameters
    ----------
    best_epoch, epochs_run : int
    val_mse, test_mse : float
    history : list of dict
    wall_time_s : float
    runtime : dict
        How it ran: device, precision, compile (recorded in the result file).

    Examples
    --------
    >>> FitResult(3, 7, 0.01, 0.02).epochs_run
    7
    """

    best_epoch: int
    epochs_run: int
    val_mse: float
    test_mse: float
    history: list = field(default_factory=list)
    wall_time_s: float = 0.0
    runtime: dict = field(default_factory=dict)  # how it ran: device, precision, compile (recorded in the result file)


class EarlyStopping:
    """Keeps the lowest validation MSE seen; ``step`` returns True when patience has run out.

    Parameters
    ----------
    patience : int
        Validated epochs without a new lowest MSE before training stops.

    Examples
    --------
    >>> stopper = EarlyStopping(patience=2)
    >>> [stopper.step(v, e) for e, v in enumerate([0.5, 0.2, 0.3, 0.4])]
    [False, False, False, True]
    >>> stopper.best, stopper.best_epoch
    (0.2, 1)
    """

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
