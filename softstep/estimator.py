""":class:`SoftStepRegressor`, the library's heads on an MLP as a scikit-learn estimator, for tabular data.

The only module that imports scikit-learn; ``import softstep`` loads it on first use of the estimator.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .heads import HEADS, TUNED, build_head
from .model import Regressor
from .training import fit
from .training_types import TensorInputs, TrainerSettings

#: Share of the rows ``fit`` holds out for early stopping (the paper's 85/15), when there are at least 10.
VALIDATION_FRACTION = 0.15


class SoftStepRegressor(RegressorMixin, BaseEstimator):
    """MLP → embedding → one of the library's heads, trained with Adam and early stopping.

    The paper's protocol (section 5) on one table: features standardised and labels min–max scaled on the
    training rows; a neighbour head's reference set is each training batch in training (Algorithm 1 line 10)
    and the training rows, embedded by the best model, at prediction.

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
        Per epoch: ``epoch``, ``val_mse`` (on the [0, 1] label scale).
    reference_indices_ : ndarray of int
        The rows of ``fit``'s ``X`` that form the reference set (the training rows).

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
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"lr must be a number > 0; got {self.lr!r}")
        return sim, int(embed), int(batch)

    def _torch_device(self) -> torch.device:
        """The torch device ``device`` names (``"auto"``: CUDA when available)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

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
            Trained in float32; predicts in float64, so a query's prediction does not depend on its batch.
        """
        if y is not None and np.asarray(y).dtype.kind in "USO":  # scikit-learn fails inside a NumPy ufunc on strings
            try:
                np.asarray(y, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"y must hold numbers (a regression target); got {np.asarray(y).dtype} values"
                ) from None
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        similarity, embed_dim, batch_size = self._settings()
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"SoftStepRegressor needs at least 2 samples; got n_samples = {n} (1 sample)")
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        order = rng.permutation(n)
        n_val = int(round(VALIDATION_FRACTION * n)) if n >= 10 else 0
        val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
        device = self._torch_device()

        self.x_scaler_ = StandardScaler().fit(X[train_rows])
        y_lo, y_hi = float(y[train_rows].min()), float(y[train_rows].max())
        self.y_lo_, self.y_span_ = y_lo, (y_hi - y_lo if y_hi > y_lo else 1.0)
        xs = torch.as_tensor(self.x_scaler_.transform(X), dtype=torch.float32, device=device)
        ys = (y - y_lo) / self.y_span_

        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            kwargs = {"similarity": similarity} if similarity is not None else {}
            head = build_head(self.head, embed_dim, **kwargs)
            arch = "mlp" if self.hidden > 0 else "linear"
            self.model_ = Regressor(X.shape[1], self.hidden, embed_dim, head, arch=arch).to(device)
            settings = TrainerSettings(self.max_epochs, self.patience, batch_size, self.lr, device=str(device))
            # the pipeline's loop (softstep.training.fit): the batch as the reference set, early stopping on val_rows
            res = fit(self.model_, TensorInputs(xs), ys, train_rows, val_rows, None, settings, seed=seed)
        self.history_ = [{"epoch": h["epoch"], "val_mse": h["val_mse"]} for h in res.history]
        self.best_epoch_, self.n_epochs_ = res.best_epoch, res.epochs_run
        needs_ref = self.model_.uses_reference
        # Trained in float32, predicts in float64: a query's prediction then does not depend on which
        # other queries share its batch (float32 matrix products of different shapes round differently).
        self.model_.double().eval()
        self.reference_indices_ = train_rows
        self.y_ref_ = torch.as_tensor(ys[train_rows], dtype=torch.float64, device=device)
        with torch.no_grad():
            self.z_ref_ = self.model_.mlp(xs[train_rows].double()) if needs_ref else None
        return self

    def _embed(self, X) -> torch.Tensor:
        """The fitted MLP's float64 embeddings of ``X``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        xs = torch.as_tensor(self.x_scaler_.transform(X), dtype=torch.float64, device=self.y_ref_.device)
        self.model_.eval()
        with torch.no_grad():
            return self.model_.mlp(xs)

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
        z = self._embed(X)
        with torch.no_grad():
            pred = self.model_.head.predict(z, self.z_ref_, self.y_ref_)
        return self.y_lo_ + pred.cpu().numpy() * self.y_span_

    def neighbors(self, X, k=5):
        """The ``k`` training rows with the largest weights in each query's prediction (neighbour heads only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        k : int, default=5
            How many rows, 1 to the number of training rows.

        Returns
        -------
        indices : ndarray of shape (n_samples, k)
            Rows of ``fit``'s ``X`` (the reference set is its training rows).
        weights : ndarray of shape (n_samples, k)
            Their weights (each query's weights over all training rows sum to 1), largest first.
        """
        check_is_fitted(self)
        head = self.model_.head
        if not head.needs_reference:
            raise ValueError(f"head={self.head!r} predicts without neighbours; choose a neighbour head")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= len(self.reference_indices_):
            raise ValueError(
                f"k must be an integer in 1..{len(self.reference_indices_)} (the training rows); got {k!r}"
            )
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
