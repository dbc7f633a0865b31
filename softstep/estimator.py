""":class:`SoftStepRegressor`, the library's heads on an MLP as a scikit-learn estimator, for tabular data.

The only module that imports scikit-learn; ``import softstep`` loads it on first use of the estimator. ``save`` and
``load`` use the pipeline's saved-model format (:mod:`softstep.saved_format`; safetensors is imported on their
first use).
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import saved_format
from .heads import HEADS, TUNED, build_head, head_module
from .model import Regressor
from .saved_schema import FIX, MODEL_FORMAT, SavedModelError, validate_meta
from .training import fit
from .training_types import TensorInputs, TrainerSettings

#: Share of the rows ``fit`` holds out for early stopping (the paper's 85/15), when there are at least 10.
VALIDATION_FRACTION = 0.15
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: the estimator's settings a saved model's ``config.trainer`` restores on ``load`` (the rest come from its
#: ``config.head`` and ``config.model``)
TRAINER_PARAMS = ("max_epochs", "patience", "batch_size", "lr", "random_state")


class SoftStepRegressor(RegressorMixin, BaseEstimator):
    """MLP → embedding → one of the library's heads, trained with Adam and early stopping.

    The paper's protocol (section 5) on one table: features standardised and labels min–max scaled on the
    training rows; a neighbour head's reference set is each training batch in training (Algorithm 1 line 10)
    and, at prediction, every row given to ``fit``, embedded by the best model.

    ``fit`` is the pipeline's final model (``python run.py ... final=true``) in Python: it trains on all the
    rows it is given but a validation fraction (15 %) that early stopping watches, with the pipeline's trainer
    (:func:`softstep.training.fit`), keeps the best epoch's weights, and predicts from all the rows (training
    and early-stopping ones) as the reference set. There is no test split: measure the estimator with
    scikit-learn's ``cross_val_score`` or a held-out set of your own.

    ``save(path)`` writes, and ``SoftStepRegressor.load(path)`` reads, the format a pipeline run saves its
    models in (:mod:`softstep.saved_format`): ``scripts/predict.py`` predicts and explains with an estimator's
    save, and ``load`` reads a pipeline table run's model. A saved neighbour model contains its reference set:
    the training rows' labels and embeddings (``save(path, reference=False)`` leaves them out). Pickling works too.

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
    patience : int, default=10
        Epochs without a lower validation MSE before stopping; the best epoch's weights are kept. ``fit``
        holds out 15 % of the rows for it (with fewer than 10 rows it trains ``max_epochs`` on all).
    batch_size : int or None, default=None
        None: the paper's tuned value (32).
    lr : float, default=1e-3
        Adam's learning rate.
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
        Per epoch: ``epoch``, ``val_mse`` (on the [0, 1] label scale), ``epoch_time_s`` (training and validation).
    fit_time_s_ : float
        Wall-clock seconds of ``fit``'s training loop.
    reference_indices_ : ndarray of int
        The rows of ``fit``'s ``X`` that form the reference set (all of them; after ``set_reference``, the
        rows of its ``X``).

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
    >>> bool((again.predict(X[300:305]) == model.predict(X[300:305])).all())
    True
    """

    def __init__(
        self,
        head="nca_i",
        similarity=None,
        embed_dim=None,
        hidden=200,
        max_epochs=200,
        patience=10,
        batch_size=None,
        lr=1e-3,
        device="auto",
        dtype="float32",
        n_jobs=None,
        verbose=0,
        random_state=None,
    ):
        self.head = head
        self.similarity = similarity
        self.embed_dim = embed_dim
        self.hidden = hidden
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.lr = lr
        self.device = device
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.multi_output = False
        return tags

    # ------------------------------------------------------------------ settings
    def _settings(self):
        """(similarity, embed_dim, batch_size): the given values, else the paper's tuned ones; checks the others."""
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; allowed: {', '.join(HEADS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        tuned = TUNED[self.head]
        sim, embed, batch = tuned["similarity"], tuned["embed_dim"], tuned["batch_size"]
        sim = self.similarity if self.similarity is not None else sim
        embed = self.embed_dim if self.embed_dim is not None else embed
        batch = self.batch_size if self.batch_size is not None else batch
        for name, value, lo in (
            ("embed_dim", embed, 1),
            ("hidden", self.hidden, 0),
            ("max_epochs", self.max_epochs, 1),
            ("patience", self.patience, 1),
            ("batch_size", batch, 2),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise ValueError(f"lr must be a number > 0; got {self.lr!r}")
        return sim, int(embed), int(batch)

    def _torch_device(self) -> torch.device:
        """The torch device ``device`` names (``"auto"``: CUDA when available)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _threads(self) -> int:
        """The CPU threads ``n_jobs`` asks for (None: 1; -1: every core; -2: all but one; …)."""
        n = self.n_jobs
        if n is None:
            return 1
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n == 0:
            raise ValueError(f"n_jobs must be None or a non-zero integer (-1: every core); got {n!r}")
        return int(n) if n > 0 else max(1, (os.cpu_count() or 1) + 1 + int(n))

    @contextlib.contextmanager
    def _thread_limit(self):
        """torch's intra-op threads set to :meth:`_threads` for the call, and set back to what they were after."""
        before, want = torch.get_num_threads(), self._threads()
        if want != before:
            torch.set_num_threads(want)
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

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
        if y is not None and np.asarray(y).dtype.kind in "USO":  # scikit-learn fails inside a NumPy ufunc on strings
            try:
                np.asarray(y, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"y must hold numbers (a regression target); got {np.asarray(y).dtype} values"
                ) from None
        _check_numeric_columns(X)
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        self._threads()  # a bad n_jobs fails before any work
        with self._thread_limit():
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
        device, dtype = self._torch_device(), DTYPES[self.dtype]

        self.x_scaler_ = StandardScaler().fit(X[train_rows])
        y_lo, y_hi = float(y[train_rows].min()), float(y[train_rows].max())
        self.y_lo_, self.y_hi_, self.y_span_ = y_lo, y_hi, (y_hi - y_lo if y_hi > y_lo else 1.0)
        xs = torch.as_tensor(self.x_scaler_.transform(X), dtype=dtype, device=device)
        ys = (y - y_lo) / self.y_span_

        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            kwargs = {"similarity": similarity} if similarity is not None else {}
            head = build_head(self.head, embed_dim, **kwargs)
            self.model_ = Regressor(X.shape[1], self.hidden, embed_dim, head, arch=self._arch()).to(device, dtype)
            settings = TrainerSettings(self.max_epochs, self.patience, batch_size, self.lr, device=str(device))
            # the pipeline's loop (softstep.training.fit): the batch as the reference set, early stopping on val_rows
            res = fit(
                self.model_,
                TensorInputs(xs),
                ys,
                train_rows,
                val_rows,
                None,
                settings,
                seed=seed,
                on_epoch=self._progress(),
            )
        self.history_ = [
            {"epoch": h["epoch"], "val_mse": h["val_mse"], "epoch_time_s": h["epoch_time_s"]} for h in res.history
        ]
        self.best_epoch_, self.n_epochs_, self.fit_time_s_ = res.best_epoch, res.epochs_run, res.wall_time_s
        if self.verbose:
            print(
                f"SoftStepRegressor: {res.epochs_run} epochs in {res.wall_time_s:.1f} s "
                f"({res.wall_time_s / max(res.epochs_run, 1):.2f} s per epoch); best epoch {res.best_epoch + 1}",
                flush=True,
            )
        self.model_.eval()
        # the final model's reference set: every row given, the training and the early-stopping ones
        self.reference_indices_ = np.arange(n)
        self._set_reference(xs, ys)
        return self

    def _arch(self) -> str:
        return "mlp" if self.hidden > 0 else "linear"

    def _progress(self):
        """``fit``'s per-epoch callback: one line per epoch with ``verbose`` (None when silent)."""
        if not self.verbose:
            return None
        last = [time.perf_counter()]

        def report(epoch, entry, best):
            now = time.perf_counter()
            seconds, last[0] = now - last[0], now
            val = f"val MSE {entry['val_mse']:.5f} (best {best:.5f})" if entry else "not validated"
            print(f"epoch {epoch + 1}/{self.max_epochs}: {val}, {seconds:.2f} s", flush=True)

        return report

    def _set_reference(self, x_scaled: torch.Tensor | None, y_scaled) -> None:
        """The reference set a neighbour head predicts from: the embeddings of ``x_scaled`` and their [0, 1] labels."""
        dtype = next(self.model_.parameters()).dtype
        device = next(self.model_.parameters()).device
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
        X, y = validate_data(self, X, y, reset=False, y_numeric=True, dtype=np.float64)
        with self._thread_limit():
            xs = torch.as_tensor(self.x_scaler_.transform(X), dtype=self._dtype(), device=self._device())
            self.reference_indices_ = np.arange(len(X))
            self._set_reference(xs, (y - self.y_lo_) / self.y_span_)
        return self

    def _dtype(self) -> torch.dtype:
        return next(self.model_.parameters()).dtype

    def _device(self) -> torch.device:
        return next(self.model_.parameters()).device

    def _embed(self, X) -> torch.Tensor:
        """The fitted MLP's embeddings of ``X`` (in the model's dtype)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        xs = torch.as_tensor(self.x_scaler_.transform(X), dtype=self._dtype(), device=self._device())
        self.model_.eval()
        with torch.no_grad():
            return self.model_.mlp(xs)

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
        with self._thread_limit():
            z = self._embed(X)
            with torch.no_grad():
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
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= len(self.reference_indices_):
            raise ValueError(
                f"k must be an integer in 1..{len(self.reference_indices_)} (the reference rows); got {k!r}"
            )
        with self._thread_limit():
            z = self._embed(X)
            rows = max(1, 2**22 // len(self.reference_indices_))
            idx, wts = [], []
            with torch.no_grad():
                for i in range(0, len(z), rows):
                    w, j = head.neighbor_weights(z[i : i + rows], self.z_ref_).topk(int(k), dim=-1)
                    idx.append(j.cpu())
                    wts.append(w.cpu())
        j = torch.cat(idx).numpy() if idx else np.zeros((0, k), dtype=np.int64)
        w = torch.cat(wts).double().numpy() if wts else np.zeros((0, k))
        return self.reference_indices_[j], w

    # ------------------------------------------------------------------ save and load
    def _feature_names(self) -> list[str]:
        """The columns ``save`` names: ``feature_names_in_`` when fitted on a DataFrame, else ``x0``, ``x1``, …"""
        names = getattr(self, "feature_names_in_", None)
        return [str(c) for c in names] if names is not None else [f"x{i}" for i in range(self.n_features_in_)]

    def save(self, path, *, reference=True):
        """Write the fitted model as ``<path>.safetensors`` and ``<path>.json``, the pipeline's saved-model format.

        ``scripts/predict.py PATH.json --input new.csv`` then predicts (and ``--explain K`` names the rows of
        ``fit``'s ``X``): the table's columns are the ``X`` columns' names (``x0``, ``x1``, … for an array).
        The format is :mod:`softstep.saved_format`'s (no pickle), written by the library itself, so the estimator
        needs no research code; the pipeline writes the same files (``experiments/models/saved.py``). The dtype
        is the model's (float32 unless ``dtype="float64"``).

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
        similarity, embed_dim, batch_size = self._settings()
        keep = bool(reference) and self.model_.uses_reference and self.z_ref_ is not None
        sc = self.x_scaler_
        constant = (sc.scale_ == 1.0) & (sc.var_ != 1.0)  # treated as constant by StandardScaler: saved as var 0
        numeric = {
            c: [float(m), 0.0 if k else float(v)]
            for c, m, v, k in zip(self._feature_names(), sc.mean_, sc.var_, constant)
        }
        name = "SoftStepRegressor"
        meta = {
            "format_version": MODEL_FORMAT,
            "dataset": name,
            "modality": "table",
            "head": self.head,
            "split": 0,
            "run_id": "",
            "in_dim": int(self.n_features_in_),
            "extractor_saved": False,
            "label": {"lo": self.y_lo_, "hi": self._y_hi(), "log_target": self._log_target()},
            "features": {"numeric": numeric, "categorical": {}},
            "reference_items": [int(i) for i in self.reference_indices_] if keep else None,
            "config": {
                "head": {
                    "name": self.head,
                    "similarity": similarity,
                    "module": getattr(self, "head_module_", None) or head_module(self.head, embed_dim, similarity),
                },
                "model": {
                    "arch": getattr(self, "arch_", None) or self._arch(),
                    "hidden": int(self.hidden),
                    "embed_dim": embed_dim,
                    "dropout": float(getattr(self, "dropout_", 0.0)),
                },
                "trainer": {
                    "max_epochs": self.max_epochs,
                    "patience": self.patience,
                    "batch_size": batch_size,
                    "lr": self.lr,
                    # an int seed is kept (a RandomState instance is not a plain value)
                    "random_state": int(self.random_state)
                    if isinstance(self.random_state, (int, np.integer))
                    else None,
                },
                "extractor": {
                    "name": "identity",
                    "builder": {"_target_": "extractors.identity.build"},
                    "finetune": False,
                },
                "dataset": {"name": name, "loader": {}},
            },
        }
        return saved_format.write(path, self.model_, meta, (self.z_ref_, self.y_ref_) if keep else None)

    def _y_hi(self) -> float:
        return float(getattr(self, "y_hi_", self.y_lo_ + self.y_span_))  # estimators pickled before y_hi_ existed

    def _log_target(self):
        how = getattr(self, "log_target_", False)
        return "log1p" if how == "log1p" else bool(how)

    @classmethod
    def load(cls, path, *, device="cpu"):
        """A fitted estimator from a saved model's files: an estimator's ``save``, or a pipeline table run's
        ``<run>/models/model_<s>`` (numeric feature columns only; ``scripts/predict.py`` reads the others).

        Loading is data only (:mod:`softstep.saved_format`): the JSON is validated, the head is built from the
        library's own head classes, and the tensors are checked before they are loaded. The estimator's
        settings (head, similarity, embed_dim, hidden, and max_epochs, patience, batch_size, lr, an integer
        random_state) are the saved
        model's, so ``clone`` and ``fit`` train a model like it; a loaded model has no ``history_``.

        Parameters
        ----------
        path : str or path-like
            ``<stem>``, ``<stem>.json`` or ``<stem>.safetensors``.
        device : str, default="cpu"

        Returns
        -------
        SoftStepRegressor
        """
        from sklearn.preprocessing import StandardScaler

        loaded = saved_format.load(path, validate=cls._loadable, device=device)
        meta, meta_file, model = loaded.meta, loaded.meta_file, loaded.model
        features = meta["features"]
        dtype = next(model.parameters()).dtype
        cfg = meta["config"]
        est = cls(
            **cls._saved_params(cfg, meta_file), device=device, dtype="float64" if dtype == torch.float64 else "float32"
        )
        try:
            est._settings()
        except ValueError as e:
            raise SavedModelError(f"{meta_file}: field config: {e}; {FIX}") from None
        names = list(features["numeric"])
        mean = np.array([features["numeric"][c][0] for c in names], dtype=np.float64)
        var = np.array([features["numeric"][c][1] for c in names], dtype=np.float64)
        est.x_scaler_ = StandardScaler()
        est.x_scaler_.mean_, est.x_scaler_.var_ = mean, var
        est.x_scaler_.scale_ = np.where(var > 0, np.sqrt(var), 1.0)
        est.x_scaler_.n_features_in_ = est.n_features_in_ = len(names)
        est.x_scaler_.n_samples_seen_ = 2
        if names != [f"x{i}" for i in range(len(names))]:
            est.feature_names_in_ = np.asarray(names, dtype=object)
        lo, hi = meta["label"]["lo"], meta["label"]["hi"]
        est.y_lo_, est.y_hi_, est.y_span_ = lo, hi, (hi - lo if hi > lo else 1.0)
        est.log_target_ = meta["label"]["log_target"]
        est.model_ = model
        est.head_module_, est.arch_, est.dropout_ = cfg["head"]["module"], cfg["model"]["arch"], cfg["model"]["dropout"]
        est.reference_indices_ = np.asarray(meta["reference_items"] or [], dtype=np.int64)
        est.z_ref_, est.y_ref_ = loaded.z_ref, loaded.y_ref
        return est

    @staticmethod
    def _loadable(meta, meta_file) -> dict:
        """The saved model's JSON, validated, if the estimator can take it: numeric columns in, no extractor."""
        validate_meta(meta, meta_file)
        features = meta.get("features")
        if meta.get("extractor_saved") or meta.get("modality") != "table" or not features or features["categorical"]:
            what = "categorical columns" if features and features["categorical"] else f"{meta.get('modality')} inputs"
            raise SavedModelError(
                f"{meta_file}: this model reads {what}; SoftStepRegressor loads models of numeric columns only "
                f"(predict with scripts/predict.py {meta_file} --input ...)"
            )
        if len(features["numeric"]) != meta["in_dim"]:
            raise SavedModelError(
                f"{meta_file}: field in_dim: {meta['in_dim']} where features.numeric lists "
                f"{len(features['numeric'])} columns; {FIX}"
            )
        return meta

    @staticmethod
    def _saved_params(cfg: dict, file) -> dict:
        """The estimator settings a validated saved ``config`` gives (plain values only)."""
        module = cfg["head"]["module"]
        params = {
            "head": cfg["head"]["name"],
            "similarity": module.get("similarity"),
            "embed_dim": cfg["model"]["embed_dim"],
            "hidden": cfg["model"]["hidden"],
        }
        trainer = cfg.get("trainer") or {}
        if not isinstance(trainer, dict):
            raise SavedModelError(f"{file}: field config.trainer: expected a mapping; {FIX}")
        params.update({k: trainer[k] for k in TRAINER_PARAMS if k in trainer})
        return params


def _check_numeric_columns(X) -> None:
    """A DataFrame column of text or categories is one ValueError saying what to do (scikit-learn's own message
    is a float conversion error deep in NumPy)."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(dtypes, "items"):
        return
    for name, dtype in dtypes.items():
        if dtype.kind not in "biuf":
            raise ValueError(
                f"X's column {name!r} holds {dtype} values: SoftStepRegressor takes numeric columns only; one-hot "
                f"encode it first (pandas.get_dummies, the same way for new rows), or train through the pipeline "
                f"(python run.py dataset=table ...), which encodes categorical columns itself"
            )
