"""A saved model's JSON is data: the schema it must meet, and the fixed tables it builds from.

Loading a model never imports or instantiates a name stored in the file. A head's class, an
extractor's builder and a folder loader are looked up by their config ``_target_`` string in the
tables below (this project's own functions only), and every argument is checked against the
arguments that function takes and against a plain-value type: None, bool, int, a finite float, a
string without an interpolation (``${``), or a short list or dict of those. Anything else is a
:class:`SavedModelError` naming the file and the field.
"""

from __future__ import annotations

import importlib
import inspect
import math
from pathlib import Path

from data.base import MODALITIES

MODEL_FORMAT = 1
META_MAX_BYTES = 1 << 28  # 256 MiB: a million reference paths fit many times over

_HF = {"source", "random_size", "tiny", "seed"}
#: config ``_target_`` → (module, function, the arguments a saved config may pass)
EXTRACTOR_BUILDERS = {
    "extractors.identity.build": ("extractors.identity", "build", set()),
    "extractors.vision.resnet18": ("extractors.vision", "resnet18", {"source", "seed"}),
    "extractors.vision.resnet34": ("extractors.vision", "resnet34", {"source", "seed"}),
    "extractors.vision.efficientnet_b0": ("extractors.vision", "efficientnet_b0", {"source", "seed"}),
    "extractors.text.minilm": ("extractors.text", "minilm", {"source", "pooling", "max_length"}),
    "extractors.text.distilbert": ("extractors.text", "distilbert", {"pooling", "max_length"} | _HF),
    "extractors.text.bert_base": ("extractors.text", "bert_base", {"pooling", "max_length"} | _HF),
    "extractors.audio.hubert_base": ("extractors.audio", "hubert_base", {"normalize"} | _HF),
    "extractors.audio.whisper_tiny": ("extractors.audio", "whisper_tiny", {"pool_frames"} | _HF),
}
#: the loaders ``predict.py`` reads a folder of new files with (``dataset=image_folder | audio_folder``)
FOLDER_LOADERS = {
    "data.image_folder.load": ("data.image_folder", "load", None),
    "data.audio_folder.load": ("data.audio_folder", "load", None),
}


class SavedModelError(ValueError):
    """A run without a saved model, or a saved model that cannot be read; the message names the file and field."""


def head_classes() -> dict:
    """config ``_target_`` → head class: the library's three head classes under their two public paths."""
    from softstep import heads

    return {
        f"{mod}.{cls.__name__}": cls
        for cls in (heads.LinearHead, heads.NCAHead, heads.DiffKNNHead)
        for mod in ("softstep", "softstep.heads")
    }


def _fail(file, field: str, problem: str) -> SavedModelError:
    return SavedModelError(
        f"{file}: field {field}: {problem}; the file was changed or is not a saved model "
        f"(rerun the split with save_model=true)"
    )


def plain(value, field: str, file, depth: int = 0):
    """``value`` if it is a plain JSON value (see the module docstring), else a :class:`SavedModelError`."""
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


def _arguments(node, field: str, file, allowed: set, fixed: dict) -> dict:
    if not isinstance(node, dict):
        raise _fail(file, field, f"expected a mapping, got {type(node).__name__}")
    args = {k: plain(v, f"{field}.{k}", file) for k, v in node.items() if k != "_target_"}
    for k in args:
        if k not in allowed:
            raise _fail(
                file, f"{field}.{k}", f"not an argument it takes (allowed: {', '.join(sorted(allowed)) or 'none'})"
            )
    return {k: v for k, v in args.items() if k not in fixed}  # the caller's values replace the stored ones


def _signature_args(fn) -> set:
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    }


def _target(node, field: str, file, table: dict, what: str) -> str:
    target = node.get("_target_") if isinstance(node, dict) else None
    if target not in table:
        raise _fail(
            file,
            f"{field}._target_",
            f"{str(target)[:80]!r} is not one of this project's {what} ({', '.join(sorted(table))})",
        )
    return target


def head_from_saved(node, file):
    """The head a saved ``config.head.module`` describes, built from :func:`head_classes` only."""
    table = head_classes()
    cls = table[_target(node, "config.head.module", file, table, "head classes")]
    args = _arguments(node, "config.head.module", file, _signature_args(cls.__init__), {})
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise _fail(file, "config.head.module", str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def _function(table: dict, target: str):
    module, name, _ = table[target]
    return getattr(importlib.import_module(module), name)  # module and name come from the table above, never the file


def extractor_from_saved(node, file, **fixed):
    """The extractor a saved ``config.extractor.builder`` describes (one of :data:`EXTRACTOR_BUILDERS`)."""
    target = _target(node, "config.extractor.builder", file, EXTRACTOR_BUILDERS, "extractor builders")
    args = _arguments(node, "config.extractor.builder", file, EXTRACTOR_BUILDERS[target][2] | set(fixed), fixed)
    return _function(EXTRACTOR_BUILDERS, target)(**args, **fixed)


def folder_data_from_saved(node, file, **fixed):
    """New files read by the saved run's folder loader (one of :data:`FOLDER_LOADERS`), with its settings."""
    target = _target(node, "config.dataset.loader", file, FOLDER_LOADERS, "folder loaders")
    fn = _function(FOLDER_LOADERS, target)
    return fn(**_arguments(node, "config.dataset.loader", file, _signature_args(fn), fixed), **fixed)


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


def validate_meta(meta, file: Path) -> dict:
    """``meta`` if it is a saved model's JSON of format :data:`MODEL_FORMAT`: known keys, types, ranges, finite numbers."""
    from softstep import HEADS

    if not isinstance(meta, dict):
        raise _fail(file, "(top level)", f"expected a JSON object, got {type(meta).__name__}")
    unknown = sorted(set(meta) - META_KEYS)
    if unknown:
        raise _fail(file, unknown[0], "not a field of a saved model")
    if meta.get("format_version") != MODEL_FORMAT or isinstance(meta.get("format_version"), bool):
        raise SavedModelError(
            f"{file}: field format_version: {str(meta.get('format_version'))[:20]!r} is not {MODEL_FORMAT}; "
            f"rerun the split with this version"
        )
    for key in ("dataset", "run_id"):
        _need(meta, key, str, file)
    if _need(meta, "modality", str, file) not in MODALITIES:
        raise _fail(file, "modality", f"{meta['modality'][:20]!r} is not one of {', '.join(MODALITIES)}")
    if _need(meta, "head", str, file) not in HEADS:
        raise _fail(file, "head", f"{meta['head'][:20]!r} is not one of {', '.join(HEADS)}")
    _int_in(meta, "split", 0, 10**6, file)
    _int_in(meta, "in_dim", 1, 1 << 24, file)
    _need(meta, "extractor_saved", bool, file)
    label = _need(meta, "label", dict, file)
    lo, hi = (_finite(label.get(k), f"label.{k}", file) for k in ("lo", "hi"))
    if hi < lo:
        raise _fail(file, "label.hi", f"{hi} is below label.lo {lo}")
    if label.get("log_target") != "log1p":  # false, true (ln), or log1p (ln(1 + target))
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
    """The parts of the resolved config that loading and predicting read, checked before any is used."""
    from softstep.model import ARCHS

    for group in ("head", "model", "extractor", "dataset"):
        _need(cfg, group, dict, file, f"config.{group}")
    if cfg["head"].get("name") != meta["head"]:
        raise _fail(
            file, "config.head.name", f"{str(cfg['head'].get('name'))[:20]!r} disagrees with head {meta['head']!r}"
        )
    _need(cfg["head"], "module", dict, file, "config.head.module")
    model = cfg["model"]
    if _need(model, "arch", str, file, "config.model.arch") not in ARCHS:
        raise _fail(file, "config.model.arch", f"{model['arch'][:20]!r} is not one of {', '.join(ARCHS)}")
    _int_in(model, "hidden", 1, 1 << 16, file, "config.model.hidden")
    embed_dim = _int_in(model, "embed_dim", 1, 1 << 16, file, "config.model.embed_dim")
    if cfg["head"]["module"].get("embed_dim", embed_dim) != embed_dim:
        raise _fail(file, "config.head.module.embed_dim", f"disagrees with config.model.embed_dim {embed_dim}")
    if not 0 <= _finite(model.get("dropout"), "config.model.dropout", file) < 1:
        raise _fail(file, "config.model.dropout", "outside [0, 1)")
    _need(cfg["extractor"], "builder", dict, file, "config.extractor.builder")
    _need(cfg["extractor"], "finetune", bool, file, "config.extractor.finetune")
    plain(cfg["dataset"].get("loader"), "config.dataset.loader", file)
