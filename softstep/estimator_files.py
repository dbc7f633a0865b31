"""The estimator as a saved model: the JSON a fitted :class:`~softstep.SoftStepRegressor` saves (the format
:mod:`softstep.saved_format` reads and writes), and a fitted estimator from a saved model's files."""

from __future__ import annotations

import numpy as np
import torch

from .estimator_columns import one_hot_mask
from .estimator_settings import resolved_settings
from .heads import head_module
from .saved_schema import FIX, MODEL_FORMAT, SavedModelError, validate_meta

#: the estimator's settings a saved model's ``config.trainer`` restores on ``load`` (the rest come from its
#: ``config.head`` and ``config.model``)
TRAINER_PARAMS = ("max_epochs", "patience", "batch_size", "lr", "reference", "reference_size", "random_state")


def architecture(hidden: int) -> str:
    """The network in front of the head: an MLP with a hidden layer of ``hidden`` units, or (0) one linear map.

    Parameters
    ----------
    hidden : int

    Returns
    -------
    {"mlp", "linear"}

    Examples
    --------
    >>> architecture(200), architecture(0)
    ('mlp', 'linear')
    """
    return "mlp" if hidden > 0 else "linear"


def estimator_meta(est, keep: bool) -> dict:
    """The saved-model JSON of a fitted estimator (:func:`~softstep.saved_schema.validate_meta`'s fields).

    Parameters
    ----------
    est : SoftStepRegressor
        Fitted.
    keep : bool
        Whether the reference set is saved with it (its rows are then listed).

    Returns
    -------
    dict

    Examples
    --------
    >>> from softstep import SoftStepRegressor
    >>> rows = np.random.default_rng(0).random((20, 3))
    >>> est = SoftStepRegressor(head="linear", max_epochs=1).fit(rows, rows.sum(1))
    >>> estimator_meta(est, keep=False)["config"]["model"]
    {'arch': 'mlp', 'hidden': 200, 'embed_dim': 25, 'dropout': 0.0}
    """
    similarity, embed_dim, batch_size = resolved_settings(est)
    sc, categories = est.x_scaler_, getattr(est, "categories_", {})
    constant = (sc.scale_ == 1.0) & (sc.var_ != 1.0)  # treated as constant by StandardScaler: saved as var 0
    hot = one_hot_mask(feature_names(est), categories)  # the one-hot columns: saved as their categories
    numeric = {
        c: [float(m), 0.0 if k else float(v)]
        for c, m, v, k, h in zip(feature_names(est), sc.mean_, sc.var_, constant, hot)
        if not h
    }
    name = "SoftStepRegressor"
    return {
        "format_version": MODEL_FORMAT,
        "dataset": name,
        "modality": "table",
        "head": est.head,
        "split": 0,
        "run_id": "",
        "in_dim": int(est.n_features_in_),
        "extractor_saved": False,
        "label": {"lo": est.y_lo_, "hi": _y_hi(est), "log_target": _log_target(est)},
        "features": {"numeric": numeric, "categorical": categories},
        "reference_items": [int(i) for i in est.reference_indices_] if keep else None,
        "config": {
            "head": {
                "name": est.head,
                "similarity": similarity,
                "module": getattr(est, "head_module_", None) or head_module(est.head, embed_dim, similarity),
            },
            "model": {
                "arch": getattr(est, "arch_", None) or architecture(est.hidden),
                "hidden": int(est.hidden),
                "embed_dim": embed_dim,
                "dropout": float(getattr(est, "dropout_", 0.0)),
            },
            "trainer": {
                "max_epochs": est.max_epochs,
                "patience": est.patience,
                "batch_size": batch_size,
                "lr": est.lr,
                "reference": est.reference,
                "reference_size": int(est.reference_size),
                # an int seed is kept (a RandomState instance is not a plain value)
                "random_state": int(est.random_state) if isinstance(est.random_state, (int, np.integer)) else None,
            },
            "extractor": {
                "name": "identity",
                "builder": {"_target_": "extractors.identity.build"},
                "finetune": False,
            },
            "dataset": {"name": name, "loader": {}},
        },
    }


def estimator_from_saved(cls, loaded, device):
    """A fitted ``cls`` (a :class:`~softstep.SoftStepRegressor`) from a saved model read by
    :func:`~softstep.saved_format.read_model` with :func:`loadable_meta`.

    Parameters
    ----------
    cls : type
    loaded : softstep.saved_format.Loaded
    device : str or torch.device

    Returns
    -------
    SoftStepRegressor

    Examples
    --------
    >>> import tempfile, os
    >>> from softstep import SoftStepRegressor, saved_format
    >>> est = SoftStepRegressor(head="linear", hidden=0, max_epochs=2).fit(np.eye(4), np.arange(4.0))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = est.save(os.path.join(d, "m"))
    ...     loaded = saved_format.read_model(os.path.join(d, "m"), validate=loadable_meta)
    >>> estimator_from_saved(SoftStepRegressor, loaded, "cpu").head
    'linear'
    """
    from sklearn.preprocessing import StandardScaler

    meta, meta_file, model = loaded.meta, loaded.meta_file, loaded.model
    features = meta["features"]
    dtype = next(model.parameters()).dtype
    cfg = meta["config"]
    est = cls(**_saved_params(cfg, meta_file), device=device, dtype="float64" if dtype == torch.float64 else "float32")
    try:
        resolved_settings(est)
    except ValueError as e:
        raise SavedModelError(f"{meta_file}: field config: {e}; {FIX}") from None
    est.categories_ = features["categorical"]  # one-hot columns after the numeric ones, mean 0 and variance 1
    hot = [f"{c}={v}" for c, values in est.categories_.items() for v in values]
    names = list(features["numeric"]) + hot
    mean = np.array([features["numeric"][c][0] for c in features["numeric"]] + [0.0] * len(hot), dtype=np.float64)
    var = np.array([features["numeric"][c][1] for c in features["numeric"]] + [1.0] * len(hot), dtype=np.float64)
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


def loadable_meta(meta, meta_file) -> dict:
    """The saved model's JSON, validated (:func:`~softstep.saved_schema.validate_meta`), if the estimator can take
    it: numeric columns in, no extractor; else a :class:`~softstep.saved_schema.SavedModelError`.

    Parameters
    ----------
    meta : object
        A saved model's parsed JSON.
    meta_file : path-like
        Its file, which messages name.

    Returns
    -------
    dict
        ``meta``, validated.

    Examples
    --------
    >>> loadable_meta({"format_version": 2}, "m.json")
    Traceback (most recent call last):
    ...
    softstep.saved_fields.SavedModelError: m.json: field format_version: '2' is not 1; save the model again ...
    """
    validate_meta(meta, meta_file)
    features = meta.get("features")
    if meta.get("extractor_saved") or meta.get("modality") != "table" or not features:
        raise SavedModelError(
            f"{meta_file}: this model reads {meta.get('modality')} inputs; SoftStepRegressor loads models of a "
            f"table's columns only (predict with scripts/predict.py {meta_file} --input ...)"
        )
    return meta


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
    params.setdefault("reference", "batch")  # what every model saved before the option was trained with
    return params


def feature_names(est) -> list[str]:
    """The columns ``save`` and messages name: ``feature_names_in_`` when fitted on a DataFrame, else ``x0``, ``x1``, …

    Parameters
    ----------
    est : SoftStepRegressor
        Fitted.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> feature_names(SimpleNamespace(n_features_in_=2))
    ['x0', 'x1']
    """
    names = getattr(est, "feature_names_in_", None)
    return [str(c) for c in names] if names is not None else [f"x{i}" for i in range(est.n_features_in_)]


def _y_hi(est) -> float:
    return float(getattr(est, "y_hi_", est.y_lo_ + est.y_span_))  # estimators pickled before y_hi_ existed


def _log_target(est):
    how = getattr(est, "log_target_", False)
    return "log1p" if how == "log1p" else bool(how)
