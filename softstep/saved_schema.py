"""What a saved model's JSON may hold: its fields, their types and ranges, checked before any is used.

The common fields (label, features, reference items, head and network) are checked here (:func:`validate_meta`);
:mod:`experiments.models.schema` adds the pipeline's own (dataset, extractor, folder loader) with the same field
checks (:func:`required_field`, :func:`int_field`, :func:`plain`) and the same lookup of a config node's
``_target_`` in a fixed table (:func:`config_target`, :func:`config_arguments`): nothing named in a file is
imported. Every problem is one :class:`SavedModelError` line naming the file and the field
(:mod:`softstep.saved_format` reads and writes the files).
"""

from __future__ import annotations

import inspect
import math

MODEL_FORMAT = 1
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
FIX = "the file was changed or is not a saved model; save it again (SoftStepRegressor.save, or save_model=true)"


class SavedModelError(ValueError):
    """A saved model that cannot be read, or cannot do what was asked; the message names the file and field.

    Parameters
    ----------
    *args
        The one-line message.

    Examples
    --------
    >>> isinstance(SavedModelError("m.json: field head: missing"), ValueError)
    True
    """


def field_error(file, field: str, problem: str) -> SavedModelError:
    """The :class:`SavedModelError` for one field's problem: the file, the field, what is wrong, and what to do.

    Parameters
    ----------
    file : path-like
    field : str
        The field's dotted name in the file.
    problem : str

    Returns
    -------
    SavedModelError
        To raise.

    Examples
    --------
    >>> str(field_error("m.json", "label.lo", "missing"))[:32]
    'm.json: field label.lo: missing;'
    """
    return SavedModelError(f"{file}: field {field}: {problem}; {FIX}")


def plain(value, field: str, file, depth: int = 0):
    """``value`` if it is a plain JSON value, else a :class:`SavedModelError` naming the field.

    Plain: None, bool, int, a finite float, a string without an interpolation (``${``), or a list or dict of
    those (at most 100,000 entries, nested at most 4 deep).

    Parameters
    ----------
    value : object
    field : str
        Its name in the file, for the message.
    file : path-like
        The file, for the message.
    depth : int, default=0

    Returns
    -------
    object
        ``value`` itself.

    Examples
    --------
    >>> plain({"size": 224, "mean": [0.5]}, "config.dataset.loader", "m.json")
    {'size': 224, 'mean': [0.5]}
    """
    if value is None or isinstance(value, (bool, str, int)):
        if isinstance(value, str) and "${" in value:
            raise field_error(file, field, f"{value[:40]!r} is an interpolation, not a plain value")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise field_error(file, field, f"{value} is not a finite number")
        return value
    if isinstance(value, (list, dict)) and depth < 4 and len(value) <= 100_000:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            if isinstance(value, dict) and not isinstance(k, str):
                raise field_error(file, field, "keys must be strings")
            plain(v, f"{field}.{k}" if isinstance(value, dict) else f"{field}[{k}]", file, depth + 1)
        return value
    raise field_error(file, field, f"a {type(value).__name__} is not a plain setting")


def required_field(meta: dict, key: str, types, file, field: str | None = None):
    """``meta[key]`` if it is there and of ``types`` (a bool is not an int here), else a :class:`SavedModelError`.

    Parameters
    ----------
    meta : dict
    key : str
    types : type or tuple of types
    file : path-like
        The file, for the message.
    field : str, optional
        The field's dotted name in the file (default ``key``).

    Returns
    -------
    object
        ``meta[key]``.

    Examples
    --------
    >>> required_field({"in_dim": 3}, "in_dim", int, "m.json")
    3
    """
    field, types = field or key, types if isinstance(types, tuple) else (types,)
    if key not in meta:
        raise field_error(file, field, "missing")
    value = meta[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = "/".join(t.__name__ for t in types)
        raise field_error(file, field, f"expected {names}, got {type(value).__name__} {str(value)[:40]!r}")
    return value


def int_field(meta: dict, key: str, lo: int, hi: int, file, field: str | None = None) -> int:
    """``meta[key]`` if it is an integer in [lo, hi] (:func:`required_field`), else a :class:`SavedModelError`.

    Parameters
    ----------
    meta : dict
    key : str
    lo, hi : int
    file : path-like
    field : str, optional

    Returns
    -------
    int

    Examples
    --------
    >>> int_field({"split": 2}, "split", 0, 9, "m.json")
    2
    """
    value = required_field(meta, key, int, file, field)
    if not lo <= value <= hi:
        raise field_error(file, field or key, f"{value} is outside [{lo}, {hi}]")
    return value


def finite_field(value, field: str, file) -> float:
    """``value`` as a float if it is a finite number (not a bool), else a :class:`SavedModelError`.

    Parameters
    ----------
    value : object
    field : str
    file : path-like

    Returns
    -------
    float

    Examples
    --------
    >>> finite_field(3, "label.lo", "m.json")
    3.0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise field_error(file, field, f"{str(value)[:40]!r} is not a finite number")
    return float(value)


def signature_arguments(fn) -> set:
    """The names ``fn`` takes by keyword (a config node may pass only these).

    Parameters
    ----------
    fn : callable

    Returns
    -------
    set of str

    Examples
    --------
    >>> sorted(signature_arguments(lambda a, *, b=1: None))
    ['a', 'b']
    """
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    }


def config_arguments(node, field: str, file, allowed: set, fixed: dict) -> dict:
    """The plain arguments of a config node (without ``_target_``), each one the function takes.

    Parameters
    ----------
    node : dict
    field : str
        The node's dotted name in the file.
    file : path-like
    allowed : set of str
        The arguments the function takes (:func:`signature_arguments`).
    fixed : dict
        The caller's own values, which replace stored ones.

    Returns
    -------
    dict
        The stored arguments that ``fixed`` does not replace.

    Examples
    --------
    >>> config_arguments({"_target_": "f", "size": 2, "seed": 0}, "n", "m.json", {"size", "seed"}, {"seed": 1})
    {'size': 2}
    """
    if not isinstance(node, dict):
        raise field_error(file, field, f"expected a mapping, got {type(node).__name__}")
    args = {k: plain(v, f"{field}.{k}", file) for k, v in node.items() if k != "_target_"}
    for k in args:
        if k not in allowed:
            raise field_error(
                file, f"{field}.{k}", f"not an argument it takes (allowed: {', '.join(sorted(allowed)) or 'none'})"
            )
    return {k: v for k, v in args.items() if k not in fixed}  # the caller's values replace the stored ones


def config_target(node, field: str, file, table: dict, what: str) -> str:
    """The node's ``_target_`` if it is a key of ``table``, else a :class:`SavedModelError` listing the keys.

    Parameters
    ----------
    node : object
    field : str
    file : path-like
    table : dict
        The targets allowed.
    what : str
        What they are, for the message.

    Returns
    -------
    str

    Examples
    --------
    >>> config_target({"_target_": "a.b"}, "config.x", "m.json", {"a.b": None}, "builders")
    'a.b'
    """
    name = node.get("_target_") if isinstance(node, dict) else None
    if name not in table:
        raise field_error(
            file,
            f"{field}._target_",
            f"{str(name)[:80]!r} is not one of this project's {what} ({', '.join(sorted(table))})",
        )
    return name


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
    softstep.saved_schema.SavedModelError: m.json: field head: 'knn' is not one of linear, nca, ...
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
    if hi < lo:
        raise field_error(file, "label.hi", f"{hi} is below label.lo {lo}")
    if label.get("log_target") != "log1p":  # false, true (label = ln target) or log1p (ln(1 + target))
        required_field(label, "log_target", bool, file, "label.log_target")
    _features(meta.get("features"), file)
    items = meta.get("reference_items")
    if items is not None and (
        not isinstance(items, list) or not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in items)
    ):
        raise field_error(file, "reference_items", "expected a list of row numbers or file names")
    _config(required_field(meta, "config", dict, file), meta, file)
    return meta


def _features(state, file) -> None:
    if state is None:
        return
    if not isinstance(state, dict) or set(state) != {"numeric", "categorical"}:
        raise field_error(
            file, "features", "expected {numeric: {column: [mean, variance]}, categorical: {column: [category, ...]}}"
        )
    for col, mv in required_field(state, "numeric", dict, file, "features.numeric").items():
        if not isinstance(mv, list) or len(mv) != 2:
            raise field_error(file, f"features.numeric.{col}", "expected [mean, variance]")
        finite_field(mv[0], f"features.numeric.{col}[0]", file)
        if finite_field(mv[1], f"features.numeric.{col}[1]", file) < 0:
            raise field_error(file, f"features.numeric.{col}[1]", "a variance is not negative")
    for col, cats in required_field(state, "categorical", dict, file, "features.categorical").items():
        if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats):
            raise field_error(file, f"features.categorical.{col}", "expected a non-empty list of category names")


def _config(cfg: dict, meta: dict, file) -> None:
    """``config.head`` and ``config.model`` (what building the model reads), checked before any is used."""
    from .model import ARCHS

    for group in ("head", "model"):
        required_field(cfg, group, dict, file, f"config.{group}")
    if cfg["head"].get("name") != meta["head"]:
        raise field_error(
            file, "config.head.name", f"{str(cfg['head'].get('name'))[:20]!r} disagrees with head {meta['head']!r}"
        )
    required_field(cfg["head"], "module", dict, file, "config.head.module")
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
