"""What a saved model's JSON may hold: its fields, their types and ranges, checked before any is used.

The common fields (label, features, reference items, head and network) are checked here (:func:`validate_meta`);
:mod:`experiments.models.schema` adds the pipeline's own (dataset, extractor, folder loader) with the same field
checks (:func:`required_field`, :func:`int_field`, :func:`plain`) and the same lookup of a config node's
``_target_`` in a fixed table (:func:`config_target`, :func:`config_arguments`): nothing named in a file is
imported. Every problem is one :class:`SavedModelError` line naming the file and the field
(:mod:`softstep.saved_format` reads and writes the files).
"""

from __future__ import annotations

import math

from .saved_fields import (  # noqa: F401 - the field checks, also importable from here
    FIX,
    SavedModelError,
    config_arguments,
    config_target,
    field_error,
    finite_field,
    int_field,
    one_line,
    plain,
    required_field,
    signature_arguments,
)

MODEL_FORMAT = 1
#: the largest label of a log target (``label.hi``): exp of it is a finite float64
LOG_LABEL_MAX = 700.0
#: float32's largest value: a feature's mean and variance are within it (the model computes in float32)
FLOAT32_MAX = 3.4028234663852886e38
META_MAX_BYTES = 1 << 28  # 256 MiB: a million reference paths fit many times over
#: every field a saved model's JSON may have; the pipeline's own (dataset … extractor_saved) are checked by
#: :mod:`experiments.models.schema`
META_KEYS = {
    "format_version",
    "dataset",
    "modality",
    "head",
    "split",
    "run_id",
    "in_dim",
    "extractor_saved",
    "label",
    "features",
    "reference_items",
    "config",
    "tensors_sha256",
    "extractor_sha256",
}


def validate_meta(meta, file) -> dict:
    """``meta`` if its common fields are a saved model's of format :data:`MODEL_FORMAT`: known keys, types,
    ranges, finite numbers, and a head and network the library can build; else a :class:`SavedModelError`.

    Parameters
    ----------
    meta : object
        The parsed JSON.
    file : path-like
        The file, for messages.

    Returns
    -------
    dict
        ``meta`` itself.

    Examples
    --------
    >>> validate_meta({"format_version": 1, "head": "knn"}, "m.json")
    Traceback (most recent call last):
    ...
    softstep.saved_fields.SavedModelError: m.json: field head: 'knn' is not one of linear, nca, ...
    """
    from .heads import HEADS

    if not isinstance(meta, dict):
        raise field_error(file, "(top level)", f"expected a JSON object, got {type(meta).__name__}")
    unknown = sorted(set(meta) - META_KEYS)
    if unknown:
        raise field_error(file, unknown[0], "not a field of a saved model")
    if meta.get("format_version") != MODEL_FORMAT or isinstance(meta.get("format_version"), bool):
        raise SavedModelError(
            f"{file}: field format_version: {str(meta.get('format_version'))[:20]!r} is not {MODEL_FORMAT}; "
            f"save the model again with this version"
        )
    if required_field(meta, "head", str, file) not in HEADS:
        raise field_error(file, "head", f"{meta['head'][:20]!r} is not one of {', '.join(HEADS)}")
    int_field(meta, "in_dim", 1, 1 << 24, file)
    label = required_field(meta, "label", dict, file)
    lo, hi = (finite_field(label.get(k), f"label.{k}", file) for k in ("lo", "hi"))
    if hi < lo or not math.isfinite(hi - lo):
        raise field_error(file, "label.hi", f"{hi} is below label.lo {lo}, or the range is not a finite number")
    if label.get("log_target") != "log1p":  # false, true (label = ln target) or log1p (ln(1 + target))
        required_field(label, "log_target", bool, file, "label.log_target")
    if label["log_target"] and hi > LOG_LABEL_MAX:
        raise field_error(file, "label.hi", f"{hi} is a log label whose exp overflows (at most {LOG_LABEL_MAX})")
    width = _features(meta.get("features"), file)
    if width is not None and width != meta["in_dim"]:
        raise field_error(file, "in_dim", f"{meta['in_dim']} where features make {width} columns")
    _reference_items(meta.get("reference_items"), meta.get("modality") == "table", file)
    _config(required_field(meta, "config", dict, file), meta, file)
    return meta


def _reference_items(items, rows: bool, file) -> None:
    """Distinct row numbers in [0, 2**53] (a table's rows, ``rows``) or distinct file names (a folder's)."""
    if items is None:
        return
    kinds = (int,) if rows else (int, str)
    if not isinstance(items, list) or not all(isinstance(v, kinds) and not isinstance(v, bool) for v in items):
        raise field_error(file, "reference_items", f"expected a list of {'row numbers' if rows else 'file names'}")
    if any(isinstance(v, int) and not 0 <= v <= 2**53 for v in items):
        raise field_error(file, "reference_items", "a row number outside [0, 2**53]")
    if len(set(items)) != len(items):
        raise field_error(file, "reference_items", "an item is listed twice (each training row is one item)")


def _features(state, file) -> int | None:
    """The width a table's ``features`` give the model's input (numeric columns + one-hot categories), checked:
    column names printable and each in one group, numbers finite, categories distinct strings."""
    if state is None:
        return None
    if not isinstance(state, dict) or set(state) != {"numeric", "categorical"}:
        raise field_error(
            file, "features", "expected {numeric: {column: [mean, variance]}, categorical: {column: [category, ...]}}"
        )
    for col, mv in required_field(state, "numeric", dict, file, "features.numeric").items():
        if not isinstance(mv, list) or len(mv) != 2:
            raise field_error(file, f"features.numeric.{col}", "expected [mean, variance]")
        for i, value in enumerate(finite_field(v, f"features.numeric.{col}[{k}]", file) for k, v in enumerate(mv)):
            if not (-FLOAT32_MAX <= value <= FLOAT32_MAX and (i == 0 or value >= 0)):
                raise field_error(
                    file,
                    f"features.numeric.{col}[{i}]",
                    f"{value:g}: expected a {'mean' if i == 0 else 'variance >= 0'} within float32's range",
                )
    categorical = required_field(state, "categorical", dict, file, "features.categorical")
    for col, cats in categorical.items():
        if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats):
            raise field_error(file, f"features.categorical.{col}", "expected a non-empty list of category names")
        if len(set(cats)) != len(cats):
            raise field_error(file, f"features.categorical.{col}", "a category is listed twice")
    for col in [*state["numeric"], *categorical]:
        if one_line(col) != col or not col:
            raise field_error(file, f"features.{col}", "a column name must be non-empty, without control characters")
        if col in state["numeric"] and col in categorical:
            raise field_error(file, f"features.categorical.{col}", "a column is numeric or categorical, not both")
    return len(state["numeric"]) + sum(len(c) for c in categorical.values())


def _config(cfg: dict, meta: dict, file) -> None:
    """``config.head`` and ``config.model`` (what building the model reads), checked before any is used."""
    from .model import ARCHS

    for group in ("head", "model"):
        required_field(cfg, group, dict, file, f"config.{group}")
    if cfg["head"].get("name") != meta["head"]:
        raise field_error(
            file, "config.head.name", f"{str(cfg['head'].get('name'))[:20]!r} disagrees with head {meta['head']!r}"
        )
    _head_module(required_field(cfg["head"], "module", dict, file, "config.head.module"), meta["head"], file)
    model = cfg["model"]
    if required_field(model, "arch", str, file, "config.model.arch") not in ARCHS:
        raise field_error(file, "config.model.arch", f"{model['arch'][:20]!r} is not one of {', '.join(ARCHS)}")
    int_field(model, "hidden", 0, 1 << 16, file, "config.model.hidden")  # 0: the estimator's hidden=0 (arch linear)
    embed_dim = int_field(model, "embed_dim", 1, 1 << 16, file, "config.model.embed_dim")
    if cfg["head"]["module"].get("embed_dim", embed_dim) != embed_dim:
        raise field_error(file, "config.head.module.embed_dim", f"disagrees with config.model.embed_dim {embed_dim}")
    if not 0 <= finite_field(model.get("dropout"), "config.model.dropout", file) < 1:
        raise field_error(file, "config.model.dropout", "outside [0, 1)")
    if "trainer" in cfg:
        plain(cfg["trainer"], "config.trainer", file)


def _head_module(node: dict, head: str, file) -> None:
    """``config.head.module`` is head ``head``'s (:data:`~softstep.heads.HEAD_SPECS`): its class, its fixed
    arguments (nca_i's ``step: instance``), and, for a neighbour head, ``similarity`` and ``gamma`` named, not left
    to a default: each changes every prediction."""
    import inspect

    from .heads import HEAD_SPECS, head_classes

    spec = HEAD_SPECS[head]
    cls = head_classes().get(node.get("_target_")) if isinstance(node.get("_target_"), str) else None
    if cls is None:  # not a head class: head_from_saved names the _target_
        return
    if cls is not spec.cls:
        raise field_error(file, "config.head.module._target_", f"{node['_target_']!r} is not head {head!r}'s class")
    config_arguments(node, "config.head.module", file, signature_arguments(cls.__init__), {})  # names a stray one
    defaults = inspect.signature(spec.cls.__init__).parameters
    for key, value in spec.keywords.items():
        if node.get(key, defaults[key].default) != value:
            raise field_error(file, f"config.head.module.{key}", f"{node.get(key)!r} where head {head!r} has {value!r}")
    for key in ("similarity", "gamma") if spec.needs_reference else ():
        if key not in node:
            raise field_error(file, f"config.head.module.{key}", "missing (it changes every prediction)")
