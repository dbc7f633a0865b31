"""A saved model's JSON is data: the pipeline's fields on top of the format's core, and the fixed tables it builds from.

The format's common fields (label, features, reference items, head and network) and their validation live in
the library, :mod:`softstep.saved_schema` and :mod:`softstep.saved_format`, so that :class:`softstep.SoftStepRegressor` writes and reads the same
files without the research code. This module adds what only a pipeline run's model has: the dataset and its
modality, the split and run, and the extractor and folder loader that ``predict.py`` builds.

Loading a model never imports or instantiates a name stored in the file. A head's class, an extractor's builder
and a folder loader are looked up by their config ``_target_`` string in the tables below and in
:func:`softstep.heads.head_classes` (this project's own functions only), and every argument is checked
against the arguments that function takes and against a plain-value type
(:func:`softstep.saved_schema.plain`). Anything else is a :class:`SavedModelError` naming the file and the field.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from data.base import MODALITIES
from softstep.heads import head_classes
from softstep.saved_format import head_from_saved
from softstep.saved_schema import (
    META_MAX_BYTES,
    MODEL_FORMAT,
    SavedModelError,
    config_arguments,
    config_target,
    field_error,
    int_field,
    one_line,
    plain,
    required_field,
    signature_arguments,
)
from softstep.saved_schema import validate_meta as validate_common

__all__ = [
    "META_MAX_BYTES",
    "MODEL_FORMAT",
    "EXTRACTOR_BUILDERS",
    "FOLDER_LOADERS",
    "SavedModelError",
    "extractor_from_saved",
    "folder_data_from_saved",
    "head_classes",
    "head_from_saved",
    "plain",
    "validate_meta",
]

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
FOLDER_LOADERS = {  # the third entry: the settings a saved model must name (each changes every prediction)
    "data.image_folder.load": ("data.image_folder", "load", {"mode", "size", "crop", "mean", "std"}),
    "data.audio_folder.load": ("data.audio_folder", "load", {"sample_rate", "seconds", "window", "denoise"}),
}


def _function(table: dict, name: str):
    module, fn, _ = table[name]
    return getattr(importlib.import_module(module), fn)  # module and name come from the table above, never the file


SOURCE = "config.extractor.builder.source"
_VISION = {name for name in EXTRACTOR_BUILDERS if name.startswith("extractors.vision.")}
PLACE_WEIGHTS = (
    "copy the weights into the model's folder and set source to their name relative to it, or put them in the "
    "weights cache ($SOFTSTEP_WEIGHTS, filled by scripts/fetch_weights.py) and set source to their hub name"
)


def weights_source(value, file: Path) -> str:
    """The ``source`` of a saved extractor builder as predict may use it: ``random``, ``package``, a hub name (read
    from the weights cache only: predict never downloads), or a path inside the model's own folder (made absolute).
    An absolute path, ``~``, ``..``, or a path outside the model's folder is one :class:`SavedModelError` line."""
    if not isinstance(value, str) or not value or len(value) > 500:
        raise field_error(file, SOURCE, f"expected a weights name or a path inside the model's folder; {PLACE_WEIGHTS}")
    if value in ("random", "package"):
        return value
    folder = Path(file).parent.resolve()
    path = Path(value)
    outside = path.is_absolute() or value.startswith(("~", "…")) or ".." in path.parts or "\\" in value
    inside = (folder / path).resolve()
    if not outside and folder in inside.parents and inside.exists():
        return str(inside)
    if outside or path.exists():  # a path, or a name that would be read relative to the working folder
        raise field_error(file, SOURCE, f"{value[:80]!r} names weights outside the model's folder; {PLACE_WEIGHTS}")
    return value  # a hub name


def extractor_from_saved(node, file, **fixed):
    """The extractor a saved ``config.extractor.builder`` describes (one of :data:`EXTRACTOR_BUILDERS`), its
    weights from the model's folder or the weights cache only (:func:`weights_source`, offline: no download); a
    weight that is not there is one line saying where to put it."""
    import os

    from extractors.weights import WeightsNotFound

    name = config_target(node, "config.extractor.builder", file, EXTRACTOR_BUILDERS, "extractor builders")
    args = config_arguments(node, "config.extractor.builder", file, EXTRACTOR_BUILDERS[name][2] | set(fixed), fixed)
    if fixed.get("finetune") and name in _VISION:  # every weight is in the tensor file: no pretrained one is read
        args["source"] = "random"
    elif "source" in args:
        args["source"] = weights_source(args["source"], Path(file))
    before = os.environ.get("SOFTSTEP_OFFLINE")
    os.environ["SOFTSTEP_OFFLINE"] = "1"
    try:
        return _function(EXTRACTOR_BUILDERS, name)(**args, **fixed)
    except (WeightsNotFound, ValueError, TypeError) as e:  # TypeError: a seed of null or a list
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise field_error(file, SOURCE, f"{first[:200]}; {PLACE_WEIGHTS}") from None
    finally:
        if before is None:
            os.environ.pop("SOFTSTEP_OFFLINE", None)
        else:
            os.environ["SOFTSTEP_OFFLINE"] = before


def extractor_digest(extractor) -> str:
    """The SHA-256 of an extractor's weights (every state-dict tensor: name, dtype, shape, bytes), recorded as
    ``extractor_sha256`` when a model of a frozen extractor is saved and checked when predict rebuilds it."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for key, t in sorted(extractor.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_extractor(digest: str, meta: dict, file: Path) -> None:
    """A :class:`SavedModelError` line unless ``digest`` (:func:`extractor_digest` of the frozen extractor predict
    rebuilt) is the ``extractor_sha256`` the model was saved with: another source, seed or builder would change every
    prediction silently."""
    recorded = meta.get("extractor_sha256")
    if recorded is None:
        raise field_error(file, "extractor_sha256", "missing: the extractor's weights cannot be checked; save it again")
    if digest != recorded:
        raise field_error(
            file,
            SOURCE,
            "the extractor built from config.extractor.builder has other weights than the model was saved with "
            f"(SHA-256 differs from extractor_sha256); {PLACE_WEIGHTS}",
        )


def folder_data_from_saved(node, file, **fixed):
    """New files read by the saved run's folder loader (one of :data:`FOLDER_LOADERS`), with its settings."""
    from data.base import DataError

    name = config_target(node, "config.dataset.loader", file, FOLDER_LOADERS, "folder loaders")
    fn = _function(FOLDER_LOADERS, name)
    args = config_arguments(node, "config.dataset.loader", file, signature_arguments(fn), fixed)
    missing = sorted(FOLDER_LOADERS[name][2] - set(node))
    if missing:  # left to the loader's default, it would change the inputs silently
        raise field_error(file, f"config.dataset.loader.{missing[0]}", "missing (it changes every prediction)")
    try:
        return fn(**args, **fixed)
    except DataError as e:  # the transform's settings (the files are the ones predict listed itself)
        raise field_error(file, "config.dataset.loader", str(e).splitlines()[0][:300]) from None


def validate_meta(meta, file: Path) -> dict:
    """``meta`` if it is a saved model's JSON: the common fields (:func:`softstep.saved_schema.validate_meta`) and
    the pipeline's (dataset, modality, split, run, extractor, loader)."""
    validate_common(meta, file)
    for key in ("dataset", "run_id"):
        required_field(meta, key, str, file)
    if required_field(meta, "modality", str, file) not in MODALITIES:
        raise field_error(file, "modality", f"{meta['modality'][:20]!r} is not one of {', '.join(MODALITIES)}")
    int_field(meta, "split", 0, 10**6, file)
    required_field(meta, "extractor_saved", bool, file)
    cfg = meta["config"]
    for group in ("extractor", "dataset"):
        required_field(cfg, group, dict, file, f"config.{group}")
    required_field(cfg["extractor"], "builder", dict, file, "config.extractor.builder")
    required_field(cfg["extractor"], "finetune", bool, file, "config.extractor.finetune")
    builder = config_target(
        cfg["extractor"]["builder"], "config.extractor.builder", file, EXTRACTOR_BUILDERS, "builders"
    )
    identity = builder == "extractors.identity.build"
    if meta["extractor_saved"] and (identity or meta["modality"] == "table" or not cfg["extractor"]["finetune"]):
        raise field_error(file, "extractor_saved", "true only for a fine-tuned extractor (the file holds its weights)")
    loader = plain(cfg["dataset"].get("loader"), "config.dataset.loader", file)
    columns = [loader.get(k) for k in ("file_column", "target_column")] if isinstance(loader, dict) else [None]
    if any(c is not None for c in columns) and (
        not all(isinstance(c, str) and c and one_line(c) == c for c in columns) or columns[0] == columns[1]
    ):
        raise field_error(file, "config.dataset.loader.target_column", "expected a column name other than file_column")
    digest = meta.get("extractor_sha256")
    if digest is not None and (
        not isinstance(digest, str) or len(digest) != 64 or set(digest) - set("0123456789abcdef")
    ):
        raise field_error(file, "extractor_sha256", "expected the 64 hex digits of a SHA-256, or null")
    return meta
