"""The saved-model format: one safetensors file of tensors and one JSON file of plain values, read as data.

A saved model is two files with one stem: ``<stem>.safetensors`` holds the weights (``model.<name>``) and, for a
neighbour head, its reference set, ``reference.z`` (N, d) (the training rows embedded by the best model) and
``reference.y`` (N,) (their labels on the [0, 1] scale); ``<stem>.json`` holds the label's min and max, the
feature columns' standardisation (``features``), the reference items (row numbers, or files relative to the
dataset root) and the settings the model was built from (``config.head.module``, ``config.model``,
``config.trainer``). The pipeline (:mod:`experiments.models.saved`, ``<run>/models/model_<s>``) and
:meth:`softstep.SoftStepRegressor.save` both write this format, and each reads the other's files.

Why it lives here: the library is installed without the research code (``pip install softstep[sklearn]``) and
never imports it, so the estimator's ``save``/``load`` need the format in the library. This module holds what
every saved model has (the JSON's common fields and their validation, the head registry, the tensors' checks,
the atomic write); :mod:`experiments.models.schema` adds the pipeline's own fields (dataset, extractor, folder
loader) on top of :func:`validate_meta`.

Reading treats both files as data: nothing named in them is imported or instantiated. A head is built from
:func:`head_classes` only (the library's three head classes), with arguments checked against the class's
signature and against plain values. A model saved without its reference set (``reference_items`` null for a
neighbour head) loads, and cannot predict until it is given one.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

MODEL_FORMAT = 1
META_MAX_BYTES = 1 << 28  # 256 MiB: a million reference paths fit many times over
SUFFIXES = (".safetensors", ".json")
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


def paths(path: str | Path) -> tuple[Path, Path]:
    """The two files of the saved model ``path`` names, by their stem or either file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    (weights, meta) : tuple of pathlib.Path

    Examples
    --------
    >>> [p.name for p in paths("runs/models/model_0.json")]
    ['model_0.safetensors', 'model_0.json']
    >>> [p.name for p in paths("house.v2")]
    ['house.v2.safetensors', 'house.v2.json']
    """
    path = Path(path).expanduser()
    stem = path.with_suffix("") if path.suffix in SUFFIXES else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _fail(file, field: str, problem: str) -> SavedModelError:
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
            raise _fail(file, field, f"{value[:40]!r} is an interpolation, not a plain value")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(file, field, f"{value} is not a finite number")
        return value
    if isinstance(value, (list, dict)) and depth < 4 and len(value) <= 100_000:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            if isinstance(value, dict) and not isinstance(k, str):
                raise _fail(file, field, "keys must be strings")
            plain(v, f"{field}.{k}" if isinstance(value, dict) else f"{field}[{k}]", file, depth + 1)
        return value
    raise _fail(file, field, f"a {type(value).__name__} is not a plain setting")


def _need(meta: dict, key: str, types, file, field: str | None = None):
    """``meta[key]`` if it is there and of ``types`` (a bool is not an int here)."""
    field, types = field or key, types if isinstance(types, tuple) else (types,)
    if key not in meta:
        raise _fail(file, field, "missing")
    value = meta[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = "/".join(t.__name__ for t in types)
        raise _fail(file, field, f"expected {names}, got {type(value).__name__} {str(value)[:40]!r}")
    return value


def _int_in(meta: dict, key: str, lo: int, hi: int, file, field: str | None = None) -> int:
    value = _need(meta, key, int, file, field)
    if not lo <= value <= hi:
        raise _fail(file, field or key, f"{value} is outside [{lo}, {hi}]")
    return value


def _finite(value, field: str, file) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(file, field, f"{str(value)[:40]!r} is not a finite number")
    return float(value)


# ---------------------------------------------------------------------------------------------------- heads
def head_classes() -> dict:
    """The only head classes a saved model can build: the library's three, under their two public paths.

    Returns
    -------
    dict of str to type
        config ``_target_`` → head class.

    Examples
    --------
    >>> sorted(head_classes())[:2]
    ['softstep.DiffKNNHead', 'softstep.LinearHead']
    """
    from . import heads

    return {
        f"{mod}.{cls.__name__}": cls
        for cls in (heads.LinearHead, heads.NCAHead, heads.DiffKNNHead)
        for mod in ("softstep", "softstep.heads")
    }


def head_module(name: str, embed_dim: int, similarity: str | None) -> dict:
    """The ``config.head.module`` that builds the head :func:`softstep.build_head` gives for these arguments.

    Parameters
    ----------
    name : str
        One of :data:`softstep.HEADS`.
    embed_dim : int
    similarity : str or None
        Ignored by the linear head.

    Returns
    -------
    dict

    Examples
    --------
    >>> head_module("nca_i", 100, "rbf")
    {'_target_': 'softstep.NCAHead', 'embed_dim': 100, 'softstep': 'instance', 'similarity': 'rbf'}
    """
    from .heads import HEADS

    factory = HEADS[name]
    node = {"_target_": f"softstep.{factory.func.__name__}", "embed_dim": int(embed_dim), **factory.keywords}
    if factory.func.needs_reference and similarity is not None:
        node["similarity"] = similarity
    return node


def _signature_args(fn) -> set:
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    }


def _arguments(node, field: str, file, allowed: set, fixed: dict) -> dict:
    """The plain arguments of a config node (without ``_target_``), each one the function takes."""
    if not isinstance(node, dict):
        raise _fail(file, field, f"expected a mapping, got {type(node).__name__}")
    args = {k: plain(v, f"{field}.{k}", file) for k, v in node.items() if k != "_target_"}
    for k in args:
        if k not in allowed:
            raise _fail(
                file, f"{field}.{k}", f"not an argument it takes (allowed: {', '.join(sorted(allowed)) or 'none'})"
            )
    return {k: v for k, v in args.items() if k not in fixed}  # the caller's values replace the stored ones


def _target(node, field: str, file, table: dict, what: str) -> str:
    """The node's ``_target_`` if it is a key of ``table``, else a :class:`SavedModelError` listing the keys."""
    name = node.get("_target_") if isinstance(node, dict) else None
    if name not in table:
        raise _fail(
            file,
            f"{field}._target_",
            f"{str(name)[:80]!r} is not one of this project's {what} ({', '.join(sorted(table))})",
        )
    return name


def head_from_saved(node, file):
    """The head a saved ``config.head.module`` describes, built from :func:`head_classes` only, with plain
    arguments the class takes.

    Parameters
    ----------
    node : dict
        ``{"_target_": <a key of head_classes()>, <argument>: <plain value>, ...}``.
    file : path-like
        The file, for messages.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> type(head_from_saved({"_target_": "softstep.LinearHead", "embed_dim": 4}, "m.json")).__name__
    'LinearHead'
    >>> head_from_saved({"_target_": "os.system", "command": "ls"}, "m.json")
    Traceback (most recent call last):
    ...
    softstep.saved_format.SavedModelError: m.json: field config.head.module._target_: 'os.system' is not one of ...
    """
    table = head_classes()
    cls = table[_target(node, "config.head.module", file, table, "head classes")]
    args = _arguments(node, "config.head.module", file, _signature_args(cls.__init__), {})
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise _fail(file, "config.head.module", str(e).splitlines()[0] if str(e) else type(e).__name__) from None


# ---------------------------------------------------------------------------------------------------- the JSON
class UnreadableJSON(ValueError):
    """A file that holds no JSON value :func:`read_json` can return; the message says why in one line.

    Parameters
    ----------
    *args
        The one-line message.

    Examples
    --------
    >>> isinstance(UnreadableJSON("JSONDecodeError: Expecting value"), ValueError)
    True
    """


def read_json(path: str | Path, max_bytes: int | None = None):
    """The JSON value in ``path``, read defensively (saved models here; result files, locks and progress files in the
    experiments).

    Parameters
    ----------
    path : str or pathlib.Path
    max_bytes : int, optional
        A larger file is refused before it is read.

    Returns
    -------
    object
        The parsed value. Any way it cannot be read (missing, over ``max_bytes``, not UTF-8, not JSON, nested too
        deeply for the parser) is an :class:`UnreadableJSON` whose message says why, in one line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> _ = p.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    >>> try:
    ...     read_json(p)
    ... except UnreadableJSON as e:
    ...     print(e)
    RecursionError: nested too deeply
    """
    path = Path(path)
    try:
        if max_bytes is not None and (size := path.stat().st_size) > max_bytes:
            raise ValueError(f"{size} bytes, over the {max_bytes >> 20} MiB such a file may have")
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e).splitlines()[0][:200]
        raise UnreadableJSON(f"{type(e).__name__}: {why}") from None


def _read_json(path: Path):
    """The JSON value of a saved model's file (:func:`read_json`); any way it cannot be read is one
    :class:`SavedModelError` line naming the file."""
    try:
        return read_json(path, META_MAX_BYTES)
    except UnreadableJSON as e:
        raise SavedModelError(f"{path}: not a saved model's JSON ({e}); {FIX}") from None


def validate_meta(meta, file: Path) -> dict:
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
    softstep.saved_format.SavedModelError: m.json: field head: 'knn' is not one of linear, nca, ...
    """
    from .heads import HEADS

    if not isinstance(meta, dict):
        raise _fail(file, "(top level)", f"expected a JSON object, got {type(meta).__name__}")
    unknown = sorted(set(meta) - META_KEYS)
    if unknown:
        raise _fail(file, unknown[0], "not a field of a saved model")
    if meta.get("format_version") != MODEL_FORMAT or isinstance(meta.get("format_version"), bool):
        raise SavedModelError(
            f"{file}: field format_version: {str(meta.get('format_version'))[:20]!r} is not {MODEL_FORMAT}; "
            f"save the model again with this version"
        )
    if _need(meta, "head", str, file) not in HEADS:
        raise _fail(file, "head", f"{meta['head'][:20]!r} is not one of {', '.join(HEADS)}")
    _int_in(meta, "in_dim", 1, 1 << 24, file)
    label = _need(meta, "label", dict, file)
    lo, hi = (_finite(label.get(k), f"label.{k}", file) for k in ("lo", "hi"))
    if hi < lo:
        raise _fail(file, "label.hi", f"{hi} is below label.lo {lo}")
    if label.get("log_target") != "log1p":  # false, true (label = ln target) or log1p (ln(1 + target))
        _need(label, "log_target", bool, file, "label.log_target")
    _features(meta.get("features"), file)
    items = meta.get("reference_items")
    if items is not None and (
        not isinstance(items, list) or not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in items)
    ):
        raise _fail(file, "reference_items", "expected a list of row numbers or file names")
    _config(_need(meta, "config", dict, file), meta, file)
    return meta


def _features(state, file) -> None:
    if state is None:
        return
    if not isinstance(state, dict) or set(state) != {"numeric", "categorical"}:
        raise _fail(
            file, "features", "expected {numeric: {column: [mean, variance]}, categorical: {column: [category, ...]}}"
        )
    for col, mv in _need(state, "numeric", dict, file, "features.numeric").items():
        if not isinstance(mv, list) or len(mv) != 2:
            raise _fail(file, f"features.numeric.{col}", "expected [mean, variance]")
        _finite(mv[0], f"features.numeric.{col}[0]", file)
        if _finite(mv[1], f"features.numeric.{col}[1]", file) < 0:
            raise _fail(file, f"features.numeric.{col}[1]", "a variance is not negative")
    for col, cats in _need(state, "categorical", dict, file, "features.categorical").items():
        if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats):
            raise _fail(file, f"features.categorical.{col}", "expected a non-empty list of category names")


def _config(cfg: dict, meta: dict, file) -> None:
    """``config.head`` and ``config.model`` (what building the model reads), checked before any is used."""
    from .model import ARCHS

    for group in ("head", "model"):
        _need(cfg, group, dict, file, f"config.{group}")
    if cfg["head"].get("name") != meta["head"]:
        raise _fail(
            file, "config.head.name", f"{str(cfg['head'].get('name'))[:20]!r} disagrees with head {meta['head']!r}"
        )
    _need(cfg["head"], "module", dict, file, "config.head.module")
    model = cfg["model"]
    if _need(model, "arch", str, file, "config.model.arch") not in ARCHS:
        raise _fail(file, "config.model.arch", f"{model['arch'][:20]!r} is not one of {', '.join(ARCHS)}")
    _int_in(model, "hidden", 0, 1 << 16, file, "config.model.hidden")  # 0: the estimator's hidden=0 (arch linear)
    embed_dim = _int_in(model, "embed_dim", 1, 1 << 16, file, "config.model.embed_dim")
    if cfg["head"]["module"].get("embed_dim", embed_dim) != embed_dim:
        raise _fail(file, "config.head.module.embed_dim", f"disagrees with config.model.embed_dim {embed_dim}")
    if not 0 <= _finite(model.get("dropout"), "config.model.dropout", file) < 1:
        raise _fail(file, "config.model.dropout", "outside [0, 1)")
    if "trainer" in cfg:
        plain(cfg["trainer"], "config.trainer", file)


def to_target(label, log_target):
    """Labels → the target column's units: the label itself, exp of it (``log_target`` true) or exp of it minus 1
    (``log1p``).

    Parameters
    ----------
    label : array-like
    log_target : bool or "log1p"

    Returns
    -------
    numpy.ndarray of float64

    Examples
    --------
    >>> to_target([0.0, 1.0], "log1p").round(4).tolist()
    [0.0, 1.7183]
    """
    import numpy as np

    label = np.asarray(label, dtype=np.float64)
    if log_target == "log1p":
        return np.expm1(label)
    return np.exp(label) if log_target else label


def _has_reference(meta: dict) -> bool:
    """Whether the model was saved with its reference set (a neighbour head's ``reference_items`` are listed)."""
    return meta.get("reference_items") is not None


# ---------------------------------------------------------------------------------------------------- the model
def _build_model(meta: dict, file, extractor=None):
    """The untrained :class:`~softstep.model.Regressor` a validated ``meta`` describes (float32)."""
    from .model import Regressor

    cfg = meta["config"]
    head = head_from_saved(cfg["head"]["module"], file)
    in_dim = extractor.out_dim if extractor is not None else meta["in_dim"]
    mc = cfg["model"]
    try:
        return Regressor(in_dim, mc["hidden"], mc["embed_dim"], head, extractor, mc["dropout"], mc["arch"])
    except (ValueError, TypeError) as e:
        raise SavedModelError(f"{file}: field config.model: {e}") from None


_FLOATS = {"F32": torch.float32, "F64": torch.float64}


def _read_tensors(path: Path, model, meta: dict) -> tuple[dict, torch.dtype]:
    """(tensors, float dtype) of ``path`` once their names, shapes and dtypes match ``model`` (and the reference
    set's rows match ``reference_items``). The model's floating tensors are all float32 or all float64 (the
    estimator's ``dtype``); a float tensor with NaN or inf is refused."""
    from safetensors import safe_open

    path = Path(path)
    state = model.state_dict()
    want = {f"model.{k}": (tuple(v.shape), v.is_floating_point(), v.dtype) for k, v in state.items()}
    if model.uses_reference and _has_reference(meta):
        n = len(meta["reference_items"])
        if n < 1:
            raise SavedModelError(f"{path.with_suffix('.json')}: field reference_items: an empty reference set")
        want["reference.z"] = ((n, meta["config"]["model"]["embed_dim"]), True, None)
        want["reference.y"] = ((n,), True, None)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            have = set(f.keys())
            odd = sorted(have ^ set(want))  # missing from the file, or not part of this model
            if odd:
                key = odd[0]
                raise SavedModelError(
                    f"{path}: tensor {key}: " + ("missing" if key in want else "not part of this model") + f"; {FIX}"
                )
            first = next((k for k in sorted(want) if want[k][1]), None)
            dtype = _FLOATS.get(f.get_slice(first).get_dtype()) if first else torch.float32
            if dtype is None:
                raise SavedModelError(f"{path}: tensor {first}: dtype {f.get_slice(first).get_dtype()}; {FIX}")
            tensors = {}
            for key, (shape, is_float, int_dtype) in want.items():
                got = tuple(f.get_slice(key).get_shape())
                if got != shape:
                    raise SavedModelError(f"{path}: tensor {key}: shape {got} where the model needs {shape}; {FIX}")
                t = f.get_tensor(key)
                need_dtype = dtype if is_float else int_dtype
                if t.dtype != need_dtype:
                    raise SavedModelError(
                        f"{path}: tensor {key}: dtype {t.dtype} where the model needs {need_dtype}; {FIX}"
                    )
                if t.is_floating_point() and not torch.isfinite(t).all():
                    raise SavedModelError(f"{path}: tensor {key}: holds NaN or inf; {FIX}")
                tensors[key] = t
    except SavedModelError:
        raise
    except Exception as e:  # noqa: BLE001 - safetensors' own errors: any unreadable file is one line naming it
        raise SavedModelError(
            f"{path}: not a safetensors file of a saved model ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else ''}); {FIX}"
        ) from None
    return tensors, dtype


def _load_weights(model, tensors: dict, dtype: torch.dtype):
    """``model`` in ``dtype`` with the ``model.*`` tensors loaded, in eval mode."""
    model.to(dtype)
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    return model.eval()


# ---------------------------------------------------------------------------------------------------- writing
def _model_tensors(model, *, with_extractor: bool = False) -> dict:
    """The ``model.*`` tensors of ``model`` (without its extractor's unless asked), on the CPU."""
    return {
        f"model.{k}": v.detach().cpu().contiguous().clone()
        for k, v in model.state_dict().items()
        if with_extractor or not k.startswith("extractor.")
    }


def write(path: str | Path, model, meta: dict, reference=None, *, with_extractor: bool = False) -> tuple[Path, Path]:
    """Write a model as ``<stem>.safetensors`` and ``<stem>.json``, each atomically (a reader sees the old file or
    the whole new one).

    Parameters
    ----------
    path : str or path-like
        The stem (a ``.json`` or ``.safetensors`` suffix is dropped).
    model : softstep.model.Regressor
    meta : dict
        The JSON (:func:`validate_meta`'s fields); ``reference_items`` lists the reference set's items, or is None.
    reference : (torch.Tensor, torch.Tensor) or None
        A neighbour head's reference set: embeddings (N, d) and labels (N,) on the [0, 1] scale, in the model's
        dtype; None leaves it out (the weights alone).
    with_extractor : bool, default=False
        Also write the weights of ``model.extractor`` (a fine-tuned one).

    Returns
    -------
    (weights, meta) : tuple of pathlib.Path

    Examples
    --------
    >>> import tempfile, torch
    >>> from softstep import build_head
    >>> from softstep.model import Regressor
    >>> model = Regressor(3, 8, 4, build_head("nca", 4))
    >>> meta = {"format_version": MODEL_FORMAT, "head": "nca", "in_dim": 3,
    ...         "label": {"lo": 0.0, "hi": 10.0, "log_target": False}, "features": None, "reference_items": [7, 9],
    ...         "config": {"head": {"name": "nca", "module": head_module("nca", 4, "l2")},
    ...                    "model": {"arch": "mlp", "hidden": 8, "embed_dim": 4, "dropout": 0.0}}}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     w, m = write(f"{d}/tiny", model, meta, (torch.zeros(2, 4), torch.tensor([0.2, 0.9])))
    ...     back = load(m)
    >>> w.name, back.model.head.__class__.__name__, back.y_ref.shape
    ('tiny.safetensors', 'NCAHead', torch.Size([2]))
    """
    from safetensors.torch import save as st_save

    tensors = _model_tensors(model, with_extractor=with_extractor)
    if reference is not None:
        z, y = reference
        tensors["reference.z"] = z.detach().cpu().contiguous().clone()
        tensors["reference.y"] = y.detach().cpu().contiguous().clone()
    w, m = paths(path)
    atomic_write_bytes(w, st_save(tensors))
    atomic_write_bytes(m, (json.dumps(meta, indent=1, default=str) + "\n").encode("utf-8"))
    return w, m


@dataclass
class Loaded:
    """A saved model as :func:`load` reads it.

    Parameters
    ----------
    meta : dict
        The validated JSON.
    model : softstep.model.Regressor
        In eval mode, in the file's dtype (float32, or float64 for an estimator saved with ``dtype="float64"``).
    z_ref, y_ref : torch.Tensor or None
        The reference set (embeddings, [0, 1] labels); None when the model was saved without it, or has no use
        for one (the linear head).
    meta_file : pathlib.Path
        The JSON file, which messages name.

    Examples
    --------
    >>> Loaded({}, None, None, None, Path("m.json")).z_ref is None
    True
    """

    meta: dict
    model: object
    z_ref: torch.Tensor | None
    y_ref: torch.Tensor | None
    meta_file: Path


def load(path: str | Path, *, validate=None, extractor=None, device="cpu") -> Loaded:
    """Read a saved model as data: validate the JSON, build the model from the library's head classes, check the
    tensors' names, shapes, dtypes and finiteness against it, then load them.

    Parameters
    ----------
    path : str or path-like
        ``<stem>``, ``<stem>.json`` or ``<stem>.safetensors``.
    validate : callable (meta, file) -> dict, optional
        The JSON's validation; default :func:`validate_meta` (the pipeline passes one that also checks its fields).
    extractor : callable (meta, file) -> torch.nn.Module or None, optional
        The untrained extractor whose saved weights the file holds (the pipeline's fine-tuned ones).
    device : str or torch.device, default="cpu"

    Returns
    -------
    Loaded

    Examples
    --------
    >>> load("no/such/model")
    Traceback (most recent call last):
    ...
    softstep.saved_format.SavedModelError: no/such/model.json: no such file (a saved model is model.safetensors and model.json)
    """
    w, m = paths(path)
    for f in (m, w):
        if not f.is_file():
            raise SavedModelError(f"{f}: no such file (a saved model is {w.name} and {m.name})")
    meta = (validate or validate_meta)(_read_json(m), m)
    model = _build_model(meta, m, extractor(meta, m) if extractor is not None else None)
    tensors, dtype = _read_tensors(w, model, meta)
    _load_weights(model, tensors, dtype).to(device)
    ref = [tensors[k].to(device) if k in tensors else None for k in ("reference.z", "reference.y")]
    return Loaded(meta, model, ref[0], ref[1], m)


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a reader sees either no file, the old one or the whole new one (the
    experiments' result files, caches and checkpoints use it too).

    Parameters
    ----------
    path : str or pathlib.Path
        The file; its folder is created. A temporary file beside it is written, flushed and renamed over it.
    payload : bytes

    Returns
    -------
    None
        An ``OSError`` (a full disk, a read-only folder) names ``path``; no temporary file is left behind.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sub" / "x.bin"
    >>> atomic_write_bytes(p, b"abc")
    >>> p.read_bytes(), sorted(q.name for q in p.parent.iterdir())
    (b'abc', ['x.bin'])
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(e.filename or path.parent)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # a full disk names no file: name the one we wrote
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise
