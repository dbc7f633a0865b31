""":class:`SoftStepRegressor`, the library's heads on an MLP as a scikit-learn estimator, for tabular data (settings
in :mod:`softstep.estimator_settings`, saved-model JSON in :mod:`softstep.estimator_files`, checks of new rows in
:mod:`softstep.new_rows`); ``import softstep`` loads it, and scikit-learn, on first use."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import saved_format
from .estimator_columns import encoded, fit_categories, keep_one_hot
from .estimator_files import architecture, estimator_from_saved, estimator_meta, feature_names, loadable_meta
from .estimator_settings import (
    DTYPES,
    check_k,
    check_target,
    epoch_printer,
    fit_summary,
    resolved_settings,
    thread_count,
    torch_device,
    torch_threads,
    trainer_settings,
)
from .heads import build_head
from .model import Regressor
from .new_rows import representable, warn_far
from .training import fit
from .training_types import TensorInputs

#: Share of the rows ``fit`` holds out for early stopping (the paper's 85/15), when there are at least 10.
VALIDATION_FRACTION = 0.15


class SoftStepRegressor(RegressorMixin, BaseEstimator):
    """MLP → embedding → one of the library's heads, trained with Adam and early stopping.

    The paper's protocol (section 5) on one table: numeric features standardised (categorical columns one-hot,
    :mod:`softstep.estimator_columns`) and labels min–max scaled on the training rows; a neighbour head's
    reference set is each training batch in training (Algorithm 1 line 10) and, at prediction, every row given to
    ``fit``, embedded by the best model. ``fit`` is the pipeline's final model (``final=true``) in Python: it
    trains on all the rows it is given but 15 % that early stopping watches (:func:`softstep.training.fit`), keeps
    the best epoch's weights, and predicts from all the rows as the reference set. There is no test split:
    measure it with scikit-learn's ``cross_val_score`` or a held-out set of your own.

    ``save(path)`` writes, and ``SoftStepRegressor.load(path)`` reads, the format a pipeline run saves its
    models in (:mod:`softstep.saved_format`), with the reference set unless ``reference=False``. Pickling works too.

    Parameters
    ----------
    head : str, default="nca_i"
        One of ``softstep.HEADS``: ``linear``, ``nca``, ``nca_g``, ``nca_i``, ``diffknn_g``, ``diffknn_i``.
    similarity : {"l2", "cos", "rbf", "dot"} or None, default=None
        None: the paper's tuned value for the head (appendix A; ignored by ``linear``).
    embed_dim : int or None, default=None
        Embedding width; None: the paper's tuned value (25 or 100).
    hidden : int, default=200
        Width of the MLP's hidden layer; 0 for one linear map to the embedding.
    max_epochs : int, default=200
    max_time : float or None, default=None
        Seconds of training after which no epoch starts (the best epoch so far is kept); None: no limit.
    patience : int, default=10
        Epochs without a lower validation MSE before stopping; the best epoch's weights are kept. ``fit``
        holds out 15 % of the rows for it (with fewer than 10 rows it trains ``max_epochs`` on all).
    batch_size : int, "auto" or None, default="auto"
        None: the paper's tuned value (32); ``"auto"`` (ours): 32 below 4,096 training rows, 256 from there.
    lr : float or "auto", default="auto"
        Adam's rate; ``"auto"`` (ours): 1e-3 · √(batch / 32), i.e. 1e-3 (``protocol=tuned``'s) at 32, 2.8e-3 at 256.
    reference : {"batch", "sample", "auto"}, default="auto"
        A neighbour head's reference set in training: the batch (the paper, Algorithm 1 line 10), or (ours) the
        batch and ``reference_size`` other training rows drawn afresh for each batch; ``"auto"``: the batch below
        4,096 training rows, a sample from there. The ``"auto"`` defaults were chosen on ten tables: docs/predict.md,
        "When to choose a SoftStep head".
    reference_size : int, default=1024
        With a sampled reference set, how many other training rows each batch draws (all when fewer).
    device : str, default="auto"
        ``"auto"``: CUDA when available, else CPU; or any torch device name.
    dtype : {"float32", "float64"}, default="float32"
        The dtype the model trains and predicts in (the pipeline's is float32).
    n_jobs : int or None, default=None
        CPU threads torch uses in ``fit``, ``predict`` and ``neighbors``: None means 1 (as in scikit-learn: run
        several fits in parallel, e.g. ``GridSearchCV(n_jobs=...)``, rather than threads within one); -1 all
        cores, -2 all but one. torch's thread count is set back to what it was when each call returns.
    verbose : int, default=0
        0: silent; 1: one line per epoch on stdout (validation MSE, the best so far, the epoch's seconds) and a
        summary (epochs, seconds per epoch, best epoch).
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split, the initial weights and the batch order.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when ``X`` has string column names
    best_epoch_ : int
        The epoch (0-based) whose weights were kept.
    n_epochs_ : int
    history_ : list of dict
        Per epoch: ``epoch``, ``val_mse`` (on the [0, 1] label scale), ``epoch_time_s`` (training and validation),
        ``train_time_s`` (training alone).
    fit_time_s_ : float
        Wall-clock seconds of ``fit``'s training loop.
    reference_indices_ : ndarray of int
        The rows of ``fit``'s ``X`` in the reference set (all; after ``set_reference``, the rows of its ``X``).

    See Also
    --------
    softstep.build_head : the heads themselves, for a model of your own.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from softstep import SoftStepRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = SoftStepRegressor(head="nca_i", max_epochs=5, random_state=0).fit(X[:300], y[:300])
    >>> model.predict(X[300:305]).shape
    (5,)
    >>> idx, w = model.neighbors(X[300:302], k=3)    # the 3 training rows with the largest weights
    >>> idx.shape, w.shape
    ((2, 3), (2, 3))
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = model.save(os.path.join(d, "diabetes"))      # diabetes.safetensors and diabetes.json
    ...     again = SoftStepRegressor.load(os.path.join(d, "diabetes"))
    >>> import numpy as np    # the same predictions, to float32 rounding (BLAS may sum in another order)
    >>> bool(np.allclose(again.predict(X[300:305]), model.predict(X[300:305]), rtol=1e-6))
    True
    """

    def __init__(
        self,
        head="nca_i",
        similarity=None,
        embed_dim=None,
        hidden=200,
        max_epochs=200,
        max_time=None,
        patience=10,
        batch_size="auto",
        lr="auto",
        reference="auto",
        reference_size=1024,
        device="auto",
        dtype="float32",
        n_jobs=None,
        verbose=0,
        random_state=None,
    ):
        self.head, self.similarity, self.embed_dim, self.hidden = head, similarity, embed_dim, hidden
        self.max_epochs, self.max_time, self.patience = max_epochs, max_time, patience
        self.batch_size, self.lr, self.reference, self.reference_size = batch_size, lr, reference, reference_size
        self.device, self.dtype, self.n_jobs = device, dtype, n_jobs
        self.verbose, self.random_state = verbose, random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.multi_output = False
        return tags

    _settings = resolved_settings  # (similarity, embed_dim, batch_size) of this estimator

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Train on (X, y), holding out 15 % of the rows for early stopping (see ``patience``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : SoftStepRegressor
            Trained and predicting in ``dtype`` (float32 by default).
        """
        check_target(y)
        self.categories_ = fit_categories(X)  # strings and categories one-hot (softstep.estimator_columns)
        X, y = validate_data(self, encoded(X, self.categories_), y, y_numeric=True, dtype=np.float64)
        thread_count(self.n_jobs)  # a bad n_jobs fails before any work
        with torch_threads(self.n_jobs):
            return self._fit(X, y)

    def _fit(self, X, y):
        similarity, embed_dim, batch_size = self._settings()
        for name in ("head_module_", "arch_", "dropout_", "log_target_"):  # a loaded model's, refitted
            self.__dict__.pop(name, None)
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"SoftStepRegressor needs at least 2 samples; got n_samples = {n} (1 sample)")
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        order = rng.permutation(n)
        n_val = int(round(VALIDATION_FRACTION * n)) if n >= 10 else 0
        val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
        device, dtype = torch_device(self.device), DTYPES[self.dtype]

        self.x_scaler_ = keep_one_hot(StandardScaler().fit(X[train_rows]), feature_names(self), self.categories_)
        y_lo, y_hi = float(y[train_rows].min()), float(y[train_rows].max())
        self.y_lo_, self.y_hi_, self.y_span_ = y_lo, y_hi, (y_hi - y_lo if y_hi > y_lo else 1.0)
        xs = torch.as_tensor(self.x_scaler_.transform(X), dtype=dtype, device=device)
        ys = (y - y_lo) / self.y_span_

        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            kwargs = {"similarity": similarity} if similarity is not None else {}
            head = build_head(self.head, embed_dim, **kwargs)
            self.model_ = Regressor(X.shape[1], self.hidden, embed_dim, head, arch=architecture(self.hidden)).to(
                device, dtype
            )
            settings = trainer_settings(self, batch_size, len(train_rows), device)  # "auto" resolved for this n
            # the pipeline's loop (softstep.training.fit), early stopping on val_rows
            res = fit(
                self.model_,
                TensorInputs(xs),
                ys,
                train_rows,
                val_rows,
                None,
                settings,
                seed=seed,
                on_epoch=epoch_printer(self.max_epochs) if self.verbose else None,
            )
        self.history_ = [{k: h[k] for k in ("epoch", "val_mse", "epoch_time_s", "train_time_s")} for h in res.history]
        self.best_epoch_, self.n_epochs_, self.fit_time_s_ = res.best_epoch, res.epochs_run, res.wall_time_s
        if self.verbose:
            print(fit_summary(res), flush=True)
        self.model_.eval()
        # the final model's reference set: every row given, the training and the early-stopping ones
        self.reference_indices_ = np.arange(n)
        self._set_reference(xs, ys)
        return self

    def _set_reference(self, x_scaled: torch.Tensor | None, y_scaled) -> None:
        """The reference set a neighbour head predicts from: the embeddings of ``x_scaled`` and their [0, 1] labels."""
        dtype, device = next(self.model_.parameters()).dtype, next(self.model_.parameters()).device
        if not self.model_.uses_reference or x_scaled is None:
            self.z_ref_ = None
            self.y_ref_ = None if x_scaled is None else torch.zeros(0, dtype=dtype, device=device)
            return
        self.y_ref_ = torch.as_tensor(np.asarray(y_scaled), dtype=dtype, device=device)
        with torch.no_grad():
            self.z_ref_ = torch.cat([self.model_.mlp(x_scaled[i : i + 4096]) for i in range(0, len(x_scaled), 4096)])

    def set_reference(self, X, y):
        """Predict from the rows (X, y): embed them with the fitted network and make them the reference set.

        A model saved without its reference set (``save(path, reference=False)``, ``save_model=weights``) needs
        this before it predicts; it also swaps a fitted model's training rows for others (the head's weights are
        unchanged). ``y`` is scaled with the fitted label scaling.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : SoftStepRegressor
        """
        check_is_fitted(self, "model_")
        X, y = validate_data(self, encoded(X, self.categories_), y, reset=False, y_numeric=True, dtype=np.float64)
        with torch_threads(self.n_jobs):
            xs = self._scaled(X)
            self.reference_indices_ = np.arange(len(X))
            self._set_reference(xs, (y - self.y_lo_) / self.y_span_)
        return self

    def _scaled(self, X) -> torch.Tensor:
        """``X`` standardised as in ``fit`` (values far beyond the training spread warned of), in the model's dtype."""
        p = next(self.model_.parameters())
        x = warn_far(self.x_scaler_.transform(X), feature_names(self))
        return torch.as_tensor(x, dtype=p.dtype, device=p.device)

    def _embed(self, X) -> torch.Tensor:
        """The fitted MLP's embeddings of ``X`` (in the model's dtype)."""
        check_is_fitted(self)
        X = validate_data(self, encoded(X, self.categories_), reset=False, dtype=np.float64)
        xs = self._scaled(X)
        self.model_.eval()
        with torch.no_grad():
            return self.model_.mlp(xs)

    def _representable(self, z, X):
        """A block where the head's overflow is one ValueError naming the row and column (:mod:`softstep.new_rows`)."""
        return representable(
            z, lambda: self.x_scaler_.transform(np.asarray(encoded(X, self.categories_), float)), feature_names(self)
        )

    def _check_reference(self) -> None:
        if self.model_.uses_reference and getattr(self, "z_ref_", None) is None:
            raise ValueError(
                f"this {self.head} model has no reference set (it was saved without one): a neighbour head predicts "
                f"from its training rows; give it rows with set_reference(X, y)"
            )

    # ------------------------------------------------------------------ predict
    def predict(self, X):
        """Predictions in the units of ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        self._check_reference()
        with torch_threads(self.n_jobs):
            z = self._embed(X)
            with torch.no_grad(), self._representable(z, X):
                pred = self.model_.head.predict(z, self.z_ref_, self.y_ref_)
        out = self.y_lo_ + pred.double().cpu().numpy() * self.y_span_
        return saved_format.to_target(out, getattr(self, "log_target_", False))

    def neighbors(self, X, k=5):
        """The ``k`` reference rows with the largest weights in each query's prediction (neighbour heads only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        k : int, default=5
            How many rows, 1 to the number of reference rows.

        Returns
        -------
        indices : ndarray of shape (n_samples, k)
            Rows of ``fit``'s ``X`` (the reference set: all of its rows).
        weights : ndarray of shape (n_samples, k)
            Their weights (each query's weights over the reference set sum to 1), largest first.
        """
        check_is_fitted(self)
        head = self.model_.head
        if not head.needs_reference:
            raise ValueError(f"head={self.head!r} predicts without neighbours; choose a neighbour head")
        self._check_reference()
        check_k(k, len(self.reference_indices_))
        with torch_threads(self.n_jobs):
            z = self._embed(X)
            rows = max(1, 2**22 // len(self.reference_indices_))
            with torch.no_grad(), self._representable(z, X):
                tops = [head.neighbor_weights(zb, self.z_ref_).topk(int(k), dim=-1) for zb in z.split(rows)]
        j = torch.cat([t.indices.cpu() for t in tops]).numpy() if tops else np.zeros((0, k), dtype=np.int64)
        w = torch.cat([t.values.cpu() for t in tops]).double().numpy() if tops else np.zeros((0, k))
        return self.reference_indices_[j], w

    # ------------------------------------------------------------------ save and load
    def save(self, path, *, reference=True):
        """Write the fitted model as ``<path>.safetensors`` and ``<path>.json``, the pipeline's saved-model format.

        ``scripts/predict.py PATH.json --input new.csv`` then predicts (and ``--explain K`` names the rows of
        ``fit``'s ``X``): the table's columns are the ``X`` columns' names (``x0``, ``x1``, … for an array).
        The format is :mod:`softstep.saved_format`'s (no pickle; the pipeline writes the same files), written by
        the library itself; the dtype is the model's (float32 unless ``dtype="float64"``).

        Parameters
        ----------
        path : str or path-like
            The files' common stem (a ``.json`` or ``.safetensors`` suffix is dropped).
        reference : bool, default=True
            Keep a neighbour head's reference set: the training rows' embeddings and labels, and their row
            numbers. **Whoever has the files has them.** ``False`` shares the weights alone; the loaded model
            then predicts only after ``set_reference(X, y)``.

        Returns
        -------
        (weights, meta) : tuple of pathlib.Path
        """
        check_is_fitted(self)
        keep = bool(reference) and self.model_.uses_reference and self.z_ref_ is not None
        reference = (self.z_ref_, self.y_ref_) if keep else None
        return saved_format.write_model(path, self.model_, estimator_meta(self, keep), reference)

    @classmethod
    def load(cls, path, *, device="cpu"):
        """A fitted estimator from a saved model's files: an estimator's ``save``, or a pipeline table run's
        ``<run>/models/model_<s>`` (numeric feature columns only; ``scripts/predict.py`` reads the others).

        Loading is data only (:mod:`softstep.saved_format`): the JSON is validated, the head is built from the
        library's own head classes, and the tensors are checked before they are loaded. The estimator's
        settings (head, similarity, embed_dim, hidden, and max_epochs, patience, batch_size, lr, an integer
        random_state) are the saved model's, so ``clone`` and ``fit`` train a model like it; it has no ``history_``.

        Parameters
        ----------
        path : str or path-like
            ``<stem>``, ``<stem>.json`` or ``<stem>.safetensors``.
        device : str, default="cpu"

        Returns
        -------
        SoftStepRegressor
        """
        loaded = saved_format.read_model(path, validate=loadable_meta, device=device)
        return estimator_from_saved(cls, loaded, device)
