"""Resuming training (the pipeline's preemption): what a checkpoint holds and restores, checked before any of it is
used. :func:`softstep.training.fit` saves the state after every epoch and, when asked to stop, mid-epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .model import Regressor
from .nca import current_key
from .training_types import Checkpoint, EarlyStopping


@dataclass
class TrainState:
    """Where training stands (what a checkpoint holds besides the weights): the next epoch and batch, the early
    stopper, the best epoch's weights and the validation history.

    Parameters
    ----------
    stopper : EarlyStopping
    best_state : dict or None
        The best epoch's weights (a state dict), None before the first validation.
    history : list of dict
        One entry per validated epoch.
    epoch, first_batch : int
        The next epoch, and its first batch (a mid-epoch checkpoint's).

    Examples
    --------
    >>> TrainState(EarlyStopping(3)).finished(max_epochs=10)
    False
    """

    stopper: EarlyStopping
    best_state: dict | None = None
    history: list = field(default_factory=list)
    epoch: int = 0
    first_batch: int = 0

    def finished(self, max_epochs: int) -> bool:
        """Whether training is over: ``max_epochs`` run, or early stopping's patience spent."""
        return self.epoch >= max_epochs or (bool(self.history) and self.stopper.bad_epochs >= self.stopper.patience)


def save_state(checkpoint: Checkpoint | None, model: Regressor, opt, state: TrainState, next_batch: int = 0) -> None:
    """Save the training state after ``next_batch`` batches of ``state.epoch`` (nothing without a checkpoint).

    Parameters
    ----------
    checkpoint : Checkpoint or None
    model : Regressor
    opt : torch.optim.Optimizer
    state : TrainState
    next_batch : int, default=0
        The batch to resume at (0: the next epoch from its start).

    Returns
    -------
    None

    Examples
    --------
    >>> import torch
    >>> from softstep import build_head
    >>> from softstep.training_types import EarlyStopping
    >>> class InMemory:
    ...     def save(self, state): self.state = state
    >>> model, ck = Regressor(3, 8, 4, build_head("linear", 4)), InMemory()
    >>> save_state(ck, model, torch.optim.Adam(model.parameters()), TrainState(EarlyStopping(3), epoch=2))
    >>> ck.state["epoch"], ck.state["batch"]
    (2, 0)
    """
    if checkpoint is not None:
        checkpoint.save(
            dict(
                model=model.state_dict(),
                optim=opt.state_dict(),
                best_state=state.best_state,
                history=state.history,
                epoch=state.epoch,
                batch=next_batch,
                best=state.stopper.best,
                best_epoch=state.stopper.best_epoch,
                bad_epochs=state.stopper.bad_epochs,
                torch_rng=torch.get_rng_state(),
            ),
        )


def resume(checkpoint: Checkpoint | None, model: Regressor, opt, state: TrainState, device, max_epochs: int) -> None:
    """Restore the state :func:`save_state` wrote, if the checkpoint holds one that fits this model and these
    settings (:func:`checkpoint_problem`); one that does not is handed to ``checkpoint.reject(why)`` where the
    checkpoint has that method, and training starts afresh.

    Parameters
    ----------
    checkpoint : Checkpoint or None
        Where :func:`save_state` saved (None: start afresh).
    model, opt, state : Regressor, torch.optim.Optimizer, TrainState
        Restored in place.
    device : str or torch.device
        Where the checkpoint's tensors are loaded.
    max_epochs : int
        The epochs the settings allow (a checkpoint past them does not fit).

    Returns
    -------
    None

    Examples
    --------
    >>> import types
    >>> from softstep import build_head
    >>> model = Regressor(2, 4, 2, build_head("nca", 2))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> saved = types.SimpleNamespace(save=lambda s: setattr(saved, "state", s), load=lambda device: saved.state)
    >>> save_state(saved, model, opt, TrainState(EarlyStopping(2), epoch=1, history=[]))
    >>> state = TrainState(EarlyStopping(2))
    >>> resume(saved, model, opt, state, "cpu", max_epochs=4); state.epoch
    1
    """
    ck = checkpoint.load(device) if checkpoint is not None else None
    if ck is None:
        return
    for key in ("model", "best_state"):  # weights saved before a renaming, under their names now
        if isinstance(ck.get(key), dict):
            ck[key] = {current_key(k, "head."): v for k, v in ck[key].items()}
    why = checkpoint_problem(ck, model, max_epochs)
    if why is None:
        try:
            opt.load_state_dict(ck["optim"])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            why = f"its optimizer state does not fit ({str(e).splitlines()[0][:120]})"
    if why is not None:
        if hasattr(checkpoint, "reject"):
            checkpoint.reject(why)
        return
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optim"])
    state.best_state, state.history, state.epoch, state.first_batch = (
        ck["best_state"],
        ck["history"],
        ck["epoch"],
        ck["batch"],
    )
    state.stopper.best, state.stopper.best_epoch, state.stopper.bad_epochs = (
        ck["best"],
        ck["best_epoch"],
        ck["bad_epochs"],
    )
    torch.set_rng_state(ck["torch_rng"])


def _same_tensors(a, b) -> bool:
    return (
        isinstance(a, dict)
        and a.keys() == b.keys()
        and all(torch.is_tensor(a[k]) and a[k].shape == b[k].shape and a[k].dtype == b[k].dtype for k in b)
    )


def checkpoint_problem(ck: dict, model: Regressor, max_epochs: int) -> str | None:
    """Why ``ck`` cannot resume ``model`` (None: it can): its weights' names, shapes and dtypes, the counters'
    ranges, the history's form and the random state's size are checked before any of it is used.

    Parameters
    ----------
    ck : dict
        A loaded checkpoint (:func:`save_state`'s).
    model : Regressor
    max_epochs : int

    Returns
    -------
    str or None
        One line saying what does not fit.

    Examples
    --------
    >>> from softstep import build_head
    >>> checkpoint_problem({"model": {}}, Regressor(3, 8, 4, build_head("linear", 4)), 5)
    'its weights do not fit this model (names, shapes or dtypes)'
    """
    want = model.state_dict()
    if not _same_tensors(ck.get("model"), want):
        return "its weights do not fit this model (names, shapes or dtypes)"
    if ck.get("best_state") is not None and not _same_tensors(ck["best_state"], want):
        return "its best weights do not fit this model"
    ints = {"epoch": (0, max_epochs), "batch": (0, 1 << 40), "best_epoch": (-1, max_epochs), "bad_epochs": (0, 1 << 40)}
    for key, (lo, hi) in ints.items():
        v = ck.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            return f"its {key} is {str(v)[:40]!r}, not an integer in [{lo}, {hi}]"
    if not isinstance(ck.get("best"), float) or math.isnan(ck["best"]):
        return "its best validation MSE is not a number"
    if ck.get("best_state") is None and ck.get("history"):
        return "it has a validation history but no best weights"
    history = ck.get("history")
    if not isinstance(history, list) or not all(isinstance(h, dict) and "val_mse" in h for h in history):
        return "its history is not a list of epochs"
    rng = ck.get("torch_rng")
    if not torch.is_tensor(rng) or rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
        return "its random state is not torch's"
    return None
