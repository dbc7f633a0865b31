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
FOLDER_LOADERS = {
    "data.image_folder.load": ("data.image_folder", "load", None),
    "data.audio_folder.load": ("data.audio_folder", "load", None),
}


def _function(table: dict, name: str):
    module, fn, _ = table[name]
    return getattr(importlib.import_module(module), fn)  # module and name come from the table above, never the file


def extractor_from_saved(node, file, **fixed):
    """The extractor a saved ``config.extractor.builder`` describes (one of :data:`EXTRACTOR_BUILDERS`)."""
    name = config_target(node, "config.extractor.builder", file, EXTRACTOR_BUILDERS, "extractor builders")
    args = config_arguments(node, "config.extractor.builder", file, EXTRACTOR_BUILDERS[name][2] | set(fixed), fixed)
    return _function(EXTRACTOR_BUILDERS, name)(**args, **fixed)


def folder_data_from_saved(node, file, **fixed):
    """New files read by the saved run's folder loader (one of :data:`FOLDER_LOADERS`), with its settings."""
    name = config_target(node, "config.dataset.loader", file, FOLDER_LOADERS, "folder loaders")
    fn = _function(FOLDER_LOADERS, name)
    return fn(**config_arguments(node, "config.dataset.loader", file, signature_arguments(fn), fixed), **fixed)


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
    plain(cfg["dataset"].get("loader"), "config.dataset.loader", file)
    return meta
