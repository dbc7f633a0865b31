"""The estimator's settings and inputs: its settings resolved against the paper's tuned values and checked,
``X`` and ``y`` checked before scikit-learn sees them (each problem a ValueError that says what was wrong and what
is allowed), and what ``device``, ``n_jobs`` and ``verbose`` do to a call."""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import torch

from .heads import HEADS, TUNED
from .training_types import TrainerSettings

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolved_settings(est) -> tuple[str | None, int, int]:
    """(similarity, embed_dim, batch_size) of a :class:`~softstep.SoftStepRegressor`: the given values, else the
    paper's tuned ones (:data:`softstep.TUNED`); its other settings are checked too.

    Parameters
    ----------
    est : SoftStepRegressor

    Returns
    -------
    similarity, embed_dim, batch_size

    Examples
    --------
    >>> from types import SimpleNamespace as S
    >>> resolved_settings(S(head="nca_i", dtype="float32", similarity=None, embed_dim=None, batch_size=None,
    ...                     hidden=200, max_epochs=5, patience=2, lr=1e-3))
    ('rbf', 100, 32)
    """
    if est.head not in HEADS:
        raise ValueError(f"unknown head {est.head!r}; allowed: {', '.join(HEADS)}")
    if est.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {est.dtype!r}")
    tuned = TUNED[est.head]
    sim, embed, batch = tuned["similarity"], tuned["embed_dim"], tuned["batch_size"]
    sim = est.similarity if est.similarity is not None else sim
    embed = est.embed_dim if est.embed_dim is not None else embed
    batch = est.batch_size if est.batch_size is not None else batch
    auto = isinstance(batch, str) and batch == "auto"
    batch = AUTO_BATCH[1] if auto else batch  # checked as the largest it can be
    for name, value, lo in (
        ("embed_dim", embed, 1),
        ("hidden", est.hidden, 0),
        ("max_epochs", est.max_epochs, 1),
        ("patience", est.patience, 1),
        ("batch_size", batch, 2),
        ("reference_size", getattr(est, "reference_size", 1), 1),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    if not (isinstance(est.lr, str) and est.lr == "auto") and (
        not isinstance(est.lr, (int, float)) or isinstance(est.lr, bool) or not est.lr > 0
    ):
        raise ValueError(f"lr must be a number > 0 or 'auto'; got {est.lr!r}")
    if getattr(est, "reference", "batch") not in ("batch", "sample", "auto"):
        raise ValueError(f"reference must be 'batch' (the paper), 'sample' or 'auto' (ours); got {est.reference!r}")
    budget = getattr(est, "max_time", None)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0):
        raise ValueError(f"max_time must be None or a number of seconds > 0; got {budget!r}")
    return sim, int(embed), "auto" if auto else int(batch)


#: ``"auto"`` settings (ours, chosen on ten tables: benchmarks/tables.py): from this many training rows the estimator
#: trains with batches of 256 against a sampled reference set, below it as the paper does (batch 32, the batch as
#: the reference set)
LARGE = 4096
#: (small, large) tables' ``batch_size="auto"``
AUTO_BATCH = (32, 256)


def batch_for(batch, n_train: int) -> int:
    """The batch size of a fit on ``n_train`` rows: ``batch`` itself, or for ``"auto"`` the paper's tuned 32 below
    :data:`LARGE` training rows and 256 from there.

    Parameters
    ----------
    batch : int or "auto"
    n_train : int

    Returns
    -------
    int

    Examples
    --------
    >>> batch_for("auto", 1600), batch_for("auto", 16000), batch_for(64, 16000)
    (32, 256, 64)
    """
    if batch != "auto":
        return int(batch)
    return AUTO_BATCH[n_train >= LARGE]


def reference_for(reference: str, n_train: int) -> str:
    """The training reference set: ``reference`` itself, or for ``"auto"`` the batch (the paper) below
    :data:`LARGE` training rows and a sampled reference set (ours) from there.

    Parameters
    ----------
    reference : {"batch", "sample", "auto"}
    n_train : int

    Returns
    -------
    {"batch", "sample"}

    Examples
    --------
    >>> reference_for("auto", 1600), reference_for("auto", 16000), reference_for("batch", 16000)
    ('batch', 'sample', 'batch')
    """
    return ("batch", "sample")[n_train >= LARGE] if reference == "auto" else reference


def lr_for(lr, batch: int) -> float:
    """Adam's rate: ``lr`` itself, or for ``"auto"`` (ours) 1e-3 · √(batch / 32), the rate tuned at the paper's
    batch of 32 scaled by the square root of the batch (2.8e-3 at 256).

    Parameters
    ----------
    lr : float or "auto"
    batch : int

    Returns
    -------
    float

    Examples
    --------
    >>> lr_for("auto", 32), round(lr_for("auto", 256), 5), lr_for(0.01, 256)
    (0.001, 0.00283, 0.01)
    """
    return 1e-3 * (batch / 32) ** 0.5 if lr == "auto" else float(lr)


def thread_count(n_jobs) -> int:
    """The CPU threads ``n_jobs`` asks for (None: 1; -1: every core; -2: all but one; …).

    Parameters
    ----------
    n_jobs : int or None

    Returns
    -------
    int

    Examples
    --------
    >>> thread_count(None), thread_count(3)
    (1, 3)
    """
    n = n_jobs
    if n is None:
        return 1
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n == 0:
        raise ValueError(f"n_jobs must be None or a non-zero integer (-1: every core); got {n!r}")
    return int(n) if n > 0 else max(1, (os.cpu_count() or 1) + 1 + int(n))


def check_target(y) -> None:
    """A target of text is one ValueError (scikit-learn fails inside a NumPy ufunc on strings).

    Parameters
    ----------
    y : array-like or None

    Returns
    -------
    None

    Examples
    --------
    >>> check_target(["a", "b"])
    Traceback (most recent call last):
    ...
    ValueError: y must hold numbers (a regression target); got <U1 values
    """
    kind = np.asarray(y).dtype.kind if y is not None else "f"
    try:
        if kind in "USO":
            np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"y must hold numbers (a regression target); got {np.asarray(y).dtype} values") from None
    if kind in "US":  # numbers written as text: scikit-learn would fail inside a NumPy ufunc
        raise ValueError(
            f"y must hold numbers (a regression target); got {np.asarray(y).dtype} values that read as numbers: "
            "convert them first (y.astype(float))"
        )


def check_k(k, n_ref: int) -> None:
    """``neighbors``' ``k``: an integer from 1 to the number of reference rows, else a ValueError.

    Parameters
    ----------
    k : object
    n_ref : int

    Returns
    -------
    None

    Examples
    --------
    >>> check_k(0, 10)
    Traceback (most recent call last):
    ...
    ValueError: k must be an integer in 1..10 (the reference rows); got 0
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= n_ref:
        raise ValueError(f"k must be an integer in 1..{n_ref} (the reference rows); got {k!r}")


def torch_device(device: str) -> torch.device:
    """The torch device ``device`` names (``"auto"``: CUDA when available).

    Parameters
    ----------
    device : str

    Returns
    -------
    torch.device

    Examples
    --------
    >>> torch_device("cpu")
    device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def torch_threads(n_jobs):
    """torch's intra-op threads set to :func:`thread_count` for the call, and set back to what they were after.

    Parameters
    ----------
    n_jobs : int or None

    Returns
    -------
    contextlib.AbstractContextManager

    Examples
    --------
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    """
    before, want = torch.get_num_threads(), thread_count(n_jobs)
    if want != before:
        torch.set_num_threads(want)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def epoch_printer(max_epochs: int):
    """``fit``'s per-epoch callback with ``verbose``: one line per epoch (validation MSE, the best so far, seconds).

    Parameters
    ----------
    max_epochs : int

    Returns
    -------
    callable (epoch, entry, best) -> None

    Examples
    --------
    >>> epoch_printer(3)(0, None, float("inf"))  # doctest: +ELLIPSIS
    epoch 1/3: not validated, ... s
    """
    last = [time.perf_counter()]

    def report(epoch, entry, best):
        now = time.perf_counter()
        seconds, last[0] = now - last[0], now
        val = f"val MSE {entry['val_mse']:.5f} (best {best:.5f})" if entry else "not validated"
        print(f"epoch {epoch + 1}/{max_epochs}: {val}, {seconds:.2f} s", flush=True)

    return report


def fit_summary(res) -> str:
    """``fit``'s last line with ``verbose``: epochs, seconds per epoch, the best epoch, counted as the epoch lines
    count it (from 1) and as ``best_epoch_`` holds it (from 0).

    Parameters
    ----------
    res : softstep.training_types.FitResult

    Returns
    -------
    str

    Examples
    --------
    >>> from softstep.training_types import FitResult
    >>> fit_summary(FitResult(3, 5, 0.1, float("nan"), [], 2.5, {})).split("; ")[1]
    'best epoch 4 of 5 (best_epoch_ = 3, counted from 0)'
    """
    return (
        f"SoftStepRegressor: {res.epochs_run} epochs in {res.wall_time_s:.1f} s "
        f"({res.wall_time_s / max(res.epochs_run, 1):.2f} s per epoch); best epoch {res.best_epoch + 1} of "
        f"{res.epochs_run} (best_epoch_ = {res.best_epoch}, counted from 0)"
    )


def trainer_settings(est, batch, n_train: int, device) -> TrainerSettings:
    """The trainer's settings of ``est``'s fit on ``n_train`` rows, its ``"auto"`` values resolved
    (:func:`batch_for`, :func:`lr_for`, :func:`reference_for`); ``reference_size`` as a share of the other rows.

    Parameters
    ----------
    est : SoftStepRegressor
    batch : int or "auto"
    n_train : int
    device : torch.device or str

    Returns
    -------
    TrainerSettings

    Examples
    --------
    >>> from softstep import SoftStepRegressor
    >>> s = trainer_settings(SoftStepRegressor(), "auto", 8000, "cpu")
    >>> s.batch_size, round(s.lr, 5), s.reference, round(s.reference_fraction * (8000 - 256))
    (256, 0.00283, 'sample', 1024)
    """
    b = batch_for(batch, n_train)
    return TrainerSettings(
        est.max_epochs,
        est.patience,
        b,
        lr_for(est.lr, b),
        device=str(device),
        max_time_s=est.max_time,
        reference=reference_for(est.reference, n_train),
        reference_fraction=min(1.0, est.reference_size / max(1, n_train - b)),
    )
