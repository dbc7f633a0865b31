"""Saved models: a finished split's best model, with everything needed to predict new data.

``save_model: auto | true | false | weights`` (root config; ``auto`` saves when the extractor is frozen, whose
model is small, and not when it is fine-tuned; ``weights`` saves without the reference set, to share the
weights alone). A saved split has, in ``<run dir>/models/`` (named ``model_<s>``, not ``split_<s>``, so that
nothing globbing for result files ``split_*.json`` finds them), the two files of the format
:mod:`softstep.saved_format` describes (the one :meth:`softstep.SoftStepRegressor.save` writes too):

- ``model_<s>.safetensors``: the weights (``model.<name>``: MLP and head, and the extractor's
  when it was fine-tuned) and, for neighbour heads, the reference set: ``reference.z`` (N, d), the
  training split embedded by the best model, and ``reference.y`` (N,), its labels on the [0, 1] scale;
- ``model_<s>.json``: the label scaler (train min and max, ``log_target``), the table's fitted
  feature preprocessing (:meth:`experiments.inputs.tabular.TablePreprocessor.state`), the reference items
  (a table's file row numbers, a folder's files relative to the dataset root, a text table's row numbers),
  and the resolved config, whose paths are written relative to the dataset root (:func:`relative_paths`).

**A neighbour model contains its reference set**: the training split's labels and embeddings.

Nothing is pickled: weights load through safetensors and the rest is JSON. Loading treats both files as
data (:mod:`experiments.models.schema`): nothing named in them is imported or instantiated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from data.base import RegressionData
from experiments.inputs.tabular import TablePreprocessor
from experiments.labels import MinMaxScaler
from experiments.models import schema
from experiments.models.schema import MODEL_FORMAT, SavedModelError
from experiments.store.results import RunKey
from softstep import saved_format
from softstep.heads import stepless_module
from softstep.model import Regressor, embed_rows

SAVE_MODEL_CHOICES = ("auto", True, False, "weights")


def _setting(cfg: DictConfig):
    value = OmegaConf.select(cfg, "save_model", default="auto")
    if value not in SAVE_MODEL_CHOICES or isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"bad config value save_model={value!r}: auto, true, false or weights (without the reference set)"
        )
    return value


def wanted(cfg: DictConfig) -> bool:
    """Whether ``save_model`` asks for this run's models to be saved."""
    value = _setting(cfg)
    return (not cfg.extractor.finetune) if value == "auto" else bool(value)


def with_reference(cfg: DictConfig) -> bool:
    """Whether a saved model keeps its reference set (all but ``save_model=weights``)."""
    return _setting(cfg) != "weights"


def head_control(cfg: DictConfig) -> str:
    """``head.control`` (``none`` where a head config has no such key)."""
    return OmegaConf.select(cfg, "head.control", default="none")


def head_module(cfg: DictConfig) -> DictConfig:
    """The ``head.module`` the pipeline builds and saves: the configured one, or with ``head.control=no_step`` the
    same head without its step (:func:`softstep.heads.stepless_module`)."""
    if head_control(cfg) != "no_step":
        return cfg.head.module
    return OmegaConf.create(stepless_module(OmegaConf.to_container(cfg.head.module, resolve=True)))


def weights_path(run_dir: Path, split: int) -> Path:
    return Path(run_dir) / "models" / f"model_{split}.safetensors"


def meta_path(run_dir: Path, split: int) -> Path:
    return Path(run_dir) / "models" / f"model_{split}.json"


def dataset_root(loader: dict) -> Path | None:
    """The folder a dataset's files are named relative to: the loader's ``root``, else its table file's folder."""
    for key, parent in (("root", False), ("path", True)):
        value = loader.get(key) if isinstance(loader, dict) else None
        if isinstance(value, str) and value:
            path = Path(os.path.abspath(Path(value).expanduser()))
            return path.parent if parent else path
    return None


def relative_path(value: str, root: Path | None) -> str:
    """``value`` relative to the dataset root when it lies below it; another absolute path keeps its last part
    only (``…/name``), so that a saved model names no folder of the machine it was trained on."""
    path = os.path.abspath(Path(value).expanduser())
    if root is not None and (path == str(root) or path.startswith(str(root).rstrip(os.sep) + os.sep)):
        return os.path.relpath(path, root)
    return "…/" + os.path.basename(path.rstrip(os.sep))


def relative_paths(value, root: Path | None):
    """``value`` (a resolved config) with every absolute path string made relative (:func:`relative_path`)."""
    if isinstance(value, dict):
        return {k: relative_paths(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v, root) for v in value]
    if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~")):
        return relative_path(value, root)
    return value


def reference_items(data: RegressionData, idx, root: Path | None = None) -> list:
    """What ``--explain`` names a training item by: a table's row number in its file (0-based data rows),
    an image or audio file's path relative to the dataset root ``root``, else the item's row number in the
    dataset."""
    if data.columns is not None:
        return [int(data.items[j]) for j in idx]
    if data.modality in ("image", "audio"):
        if root is None:
            return [os.path.basename(str(data.items[j])) for j in idx]
        return [os.path.relpath(os.path.abspath(Path(str(data.items[j])).expanduser()), root) for j in idx]
    return [int(j) for j in idx]


def saved_log_target(how) -> bool | str:
    """The loader's ``log_target`` as a saved model records it: true, false, or ``log1p``."""
    return "log1p" if how == "log1p" else bool(how)


def save(
    cfg: DictConfig,
    key: RunKey,
    split: int,
    model: Regressor,
    inputs,
    data: RegressionData,
    scaler: MinMaxScaler,
    prep: TablePreprocessor | None,
    train_idx,
    device,
    extractor_sha256: str | None = None,
) -> dict:
    """Write the split's model files (atomically); returns ``{"weights", "meta", "bytes"}`` for the result file.
    With ``save_model=weights`` the reference set (``reference.*`` tensors, ``reference_items``) is left out;
    ``extractor_sha256``: the frozen extractor's weights (:func:`schema.extractor_digest`), which predict checks."""
    model.eval()
    keep_reference = model.uses_reference and with_reference(cfg)
    reference = None
    if keep_reference:
        with torch.no_grad():
            z = embed_rows(model, inputs, train_idx, cfg.trainer.eval_batch_size, device).float()
        reference = (z, torch.as_tensor(scaler.transform(data.labels[train_idx]), dtype=torch.float32))
    loader = OmegaConf.to_container(cfg.dataset.loader, resolve=True)
    root = dataset_root(loader)
    meta = {
        "format_version": MODEL_FORMAT,
        "dataset": cfg.dataset.name,
        "modality": data.modality,
        "head": cfg.head.name,
        "split": split,
        "run_id": key.run_id,
        "in_dim": model.in_dim,
        "extractor_saved": bool(cfg.extractor.finetune and model.extractor is not None),
        "extractor_sha256": extractor_sha256,
        "label": {"lo": scaler.lo, "hi": scaler.hi, "log_target": saved_log_target(loader.get("log_target", False))},
        "features": prep.state() if prep is not None else None,
        "reference_items": reference_items(data, train_idx, root) if keep_reference else None,
        "config": relative_paths(OmegaConf.to_container(cfg, resolve=True), root),
    }
    meta["config"]["head"]["module"] = OmegaConf.to_container(head_module(cfg), resolve=True)
    w, m = saved_format.write_model(
        weights_path(key.dir, split).with_suffix(""),
        model,
        meta,
        reference,
        with_extractor=bool(cfg.extractor.finetune),
    )
    return {"weights": f"models/{w.name}", "meta": f"models/{m.name}", "bytes": w.stat().st_size + m.stat().st_size}


@dataclass
class SavedModel:
    """One saved model, ready to predict: features → ŷ in label units (:meth:`predict_scaled`, :meth:`to_label_units`)."""

    meta: dict
    cfg: dict  # the run's resolved config as plain values (validated: only the parts prediction reads)
    model: Regressor
    z_ref: torch.Tensor | None
    y_ref: torch.Tensor | None
    preprocessor: TablePreprocessor | None
    run_dir: Path
    meta_file: Path | None = None  # its JSON, which messages name

    @property
    def scaler(self) -> MinMaxScaler:
        return MinMaxScaler([self.meta["label"]["lo"], self.meta["label"]["hi"]])

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.mlp.parameters(), torch.zeros(())).dtype

    @torch.no_grad()
    def embed(self, x) -> torch.Tensor:
        self.model.eval()
        if torch.is_tensor(x) and x.is_floating_point() and self.model.extractor is None:
            x = x.to(self.dtype)  # an estimator saved with dtype=float64
        return self.model.embed(x)

    def check_reference(self) -> None:
        """A :class:`SavedModelError` when a neighbour head's model was saved without its reference set."""
        if self.model.uses_reference and self.z_ref is None:
            raise SavedModelError(
                f"{self.meta_file}: saved without its reference set (save_model=weights, or save(reference=False)): "
                f"a {self.meta['head']} head predicts from its training rows' embeddings and labels and cannot "
                f"predict without them; give it a reference set with SoftStepRegressor.load(...).set_reference(X, y), "
                f"or save the model with its reference set"
            )

    @torch.no_grad()
    def predict_scaled(self, z: torch.Tensor, max_elements: int = 2**22) -> torch.Tensor:
        self.check_reference()
        return self.model.head.predict(z, self.z_ref, self.y_ref, max_elements=max_elements)

    def to_label_units(self, scaled: np.ndarray) -> np.ndarray:
        """[0, 1] predictions → the label's units (the loader's label, ln(target) with log_target)."""
        lo, hi = self.meta["label"]["lo"], self.meta["label"]["hi"]
        return lo + np.asarray(scaled, dtype=float) * (hi - lo if hi > lo else 1.0)

    def to_target_units(self, scaled: np.ndarray) -> np.ndarray:
        """[0, 1] predictions → the target column's units (with ``log_target``, exp of the label, or exp minus 1)."""
        return saved_format.to_target(self.to_label_units(scaled), self.meta["label"]["log_target"])


def saved_splits(run_dir: str | Path) -> list[int]:
    """Splits of ``run_dir`` that have a saved model (both files)."""
    run_dir = Path(run_dir)
    out = []
    for m in (run_dir / "models").glob("model_*.json"):
        s = m.stem[len("model_") :]
        if s.isdigit() and weights_path(run_dir, int(s)).exists():
            out.append(int(s))
    return sorted(out)


def load_model(run_dir: str | Path, split: int, *, device="cpu") -> SavedModel:
    """The saved model of ``split`` in ``run_dir`` (:func:`load_model_file`)."""
    run_dir = Path(run_dir)
    w, m = weights_path(run_dir, split), meta_path(run_dir, split)
    if not (w.is_file() and m.is_file()):
        have = saved_splits(run_dir)
        raise SavedModelError(
            f"{run_dir}: no saved model for split {split} (models/{w.name} and models/{m.name}); "
            + (f"saved splits: {have}" if have else "this run saved none: rerun it with save_model=true")
        )
    return load_model_file(m, device=device, run_dir=run_dir)


def is_model_file(path: str | Path) -> bool:
    """Whether ``path`` names a saved model's files (by either file or their common stem), not a run folder."""
    w, m = saved_format.paths(path)
    return not Path(path).is_dir() and (w.is_file() or m.is_file())


def load_model_file(path: str | Path, *, device="cpu", run_dir: Path | None = None) -> SavedModel:
    """The saved model whose files ``path`` names (``<stem>``, ``<stem>.json`` or ``<stem>.safetensors``: a
    pipeline split's or :meth:`softstep.SoftStepRegressor.save`'s), read as data
    (:mod:`experiments.models.schema`): the JSON is validated before any of it is used, the model is built from
    the project's own tables, and the tensors' names, shapes, dtypes and finiteness are checked against that
    model before they are loaded."""
    loaded = saved_format.read_model(path, validate=schema.validate_meta, extractor=_saved_extractor, device=device)
    meta, m = loaded.meta, loaded.meta_file
    prep = TablePreprocessor.from_state(meta["features"]) if meta.get("features") else None
    run = Path(run_dir) if run_dir is not None else m.parent
    return SavedModel(meta, meta["config"], loaded.model, loaded.z_ref, loaded.y_ref, prep, run, m)


def _saved_extractor(meta: dict, path: Path):
    """The untrained fine-tuned extractor whose weights the model file holds (None when it was frozen)."""
    if not meta["extractor_saved"]:
        return None
    return schema.extractor_from_saved(meta["config"]["extractor"]["builder"], path, finetune=True, in_dim=None)


def why_broken(run_dir: str | Path, split: int) -> tuple[list[Path], str] | None:
    """(its files, why) when the saved model of ``split`` in ``run_dir`` is present but does not load (its
    :class:`SavedModelError`); None when it loads or is gone, both files (deleted on purpose: not a broken one).
    For :meth:`experiments.store.run_store.RunStore.set_aside_broken`."""
    files = [p for p in (meta_path(run_dir, split), weights_path(run_dir, split)) if p.exists()]
    if not files:
        return None
    try:
        load_model(run_dir, split)
    except SavedModelError as e:
        return files, str(e)
    return None
