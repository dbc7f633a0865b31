"""Saved models: a finished split's best model, with everything needed to predict new data.

``save_model: auto | true | false`` (root config; ``auto`` saves when the extractor is frozen, whose
model is small, and not when it is fine-tuned). A saved split has, in ``<run dir>/models/`` (named
``model_<s>``, not ``split_<s>``, so that nothing globbing for result files ``split_*.json`` finds them):

- ``model_<s>.safetensors``: the weights (``model.<name>``: MLP and head, and the extractor's
  when it was fine-tuned) and, for neighbour heads, the reference set: ``reference.z`` (N, d), the
  training split embedded by the best model, and ``reference.y`` (N,), its labels on the [0, 1] scale;
- ``model_<s>.json``: the label scaler (train min and max, ``log_target``), the table's fitted
  feature preprocessing (:meth:`experiments.inputs.tabular.TablePreprocessor.state`), the reference items
  (a table's file row numbers, a folder's file paths, a text table's row numbers), and the resolved config.

Nothing is pickled: weights load through safetensors and the rest is JSON. Loading treats both files as
data (:mod:`experiments.models.schema`): nothing named in them is imported or instantiated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from data.base import RegressionData
from experiments.inputs.tabular import TablePreprocessor
from experiments.models import schema
from experiments.models.schema import MODEL_FORMAT, SavedModelError
from experiments.protocol.splits import MinMaxScaler
from experiments.store.results import RunKey, UnreadableJSON, atomic_write_bytes, atomic_write_text, read_json
from softstep.model import Regressor, embed_rows

SAVE_MODEL_CHOICES = ("auto", True, False)


def wanted(cfg: DictConfig) -> bool:
    """Whether ``save_model`` asks for this run's models to be saved."""
    value = OmegaConf.select(cfg, "save_model", default="auto")
    if value not in SAVE_MODEL_CHOICES or isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"bad config value save_model={value!r}: auto, true or false")
    return (not cfg.extractor.finetune) if value == "auto" else bool(value)


def weights_path(run_dir: Path, split: int) -> Path:
    return Path(run_dir) / "models" / f"model_{split}.safetensors"


def meta_path(run_dir: Path, split: int) -> Path:
    return Path(run_dir) / "models" / f"model_{split}.json"


def reference_items(data: RegressionData, idx) -> list:
    """What ``--explain`` names a training item by: a table's row number in its file (0-based data rows),
    an image or audio file's path, else the item's row number in the dataset."""
    if data.columns is not None:
        return [int(data.items[j]) for j in idx]
    if data.modality in ("image", "audio"):
        return [str(data.items[j]) for j in idx]
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
) -> dict:
    """Write the split's model files (atomically); returns ``{"weights", "meta", "bytes"}`` for the result file."""
    from safetensors.torch import save as st_save

    model.eval()
    state = {k: v for k, v in model.state_dict().items() if cfg.extractor.finetune or not k.startswith("extractor.")}
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in state.items()}
    if model.uses_reference:
        with torch.no_grad():
            tensors["reference.z"] = (
                embed_rows(model, inputs, train_idx, cfg.trainer.eval_batch_size, device).float().cpu().contiguous()
            )
        tensors["reference.y"] = torch.as_tensor(scaler.transform(data.labels[train_idx]), dtype=torch.float32)
    loader = OmegaConf.to_container(cfg.dataset.loader, resolve=True)
    meta = {
        "format_version": MODEL_FORMAT,
        "dataset": cfg.dataset.name,
        "modality": data.modality,
        "head": cfg.head.name,
        "split": split,
        "run_id": key.run_id,
        "in_dim": model.in_dim,
        "extractor_saved": bool(cfg.extractor.finetune and model.extractor is not None),
        "label": {"lo": scaler.lo, "hi": scaler.hi, "log_target": saved_log_target(loader.get("log_target", False))},
        "features": prep.state() if prep is not None else None,
        "reference_items": reference_items(data, train_idx) if model.uses_reference else None,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    w, m = weights_path(key.dir, split), meta_path(key.dir, split)
    atomic_write_bytes(w, st_save(tensors))
    atomic_write_text(m, json.dumps(meta, indent=1, default=str) + "\n")
    return {"weights": f"models/{w.name}", "meta": f"models/{m.name}", "bytes": w.stat().st_size + m.stat().st_size}


@dataclass
class SavedModel:
    """One split's saved model, ready to predict: features → ŷ in label units (:meth:`predict_features`)."""

    meta: dict
    cfg: dict  # the run's resolved config as plain values (validated: only the parts prediction reads)
    model: Regressor
    z_ref: torch.Tensor | None
    y_ref: torch.Tensor | None
    preprocessor: TablePreprocessor | None
    run_dir: Path

    @property
    def scaler(self) -> MinMaxScaler:
        return MinMaxScaler([self.meta["label"]["lo"], self.meta["label"]["hi"]])

    @torch.no_grad()
    def embed(self, x) -> torch.Tensor:
        self.model.eval()
        return self.model.embed(x)

    @torch.no_grad()
    def predict_scaled(self, z: torch.Tensor, max_elements: int = 2**22) -> torch.Tensor:
        return self.model.head.predict(z, self.z_ref, self.y_ref, max_elements=max_elements)

    def to_label_units(self, scaled: np.ndarray) -> np.ndarray:
        """[0, 1] predictions → the label's units (the loader's label, ln(target) with log_target)."""
        lo, hi = self.meta["label"]["lo"], self.meta["label"]["hi"]
        return lo + np.asarray(scaled, dtype=float) * (hi - lo if hi > lo else 1.0)


def saved_splits(run_dir: str | Path) -> list[int]:
    """Splits of ``run_dir`` that have a saved model (both files)."""
    run_dir = Path(run_dir)
    out = []
    for m in (run_dir / "models").glob("model_*.json"):
        s = m.stem[len("model_") :]
        if s.isdigit() and weights_path(run_dir, int(s)).exists():
            out.append(int(s))
    return sorted(out)


def load(run_dir: str | Path, split: int, *, device="cpu") -> SavedModel:
    """The saved model of ``split`` in ``run_dir``, read as data (:mod:`experiments.models.schema`): the JSON is
    validated before any of it is used, the model is built from the project's own tables, and the tensors'
    names, shapes, dtypes and finiteness are checked against that model before they are loaded."""
    run_dir = Path(run_dir)
    w, m = weights_path(run_dir, split), meta_path(run_dir, split)
    if not (w.is_file() and m.is_file()):
        have = saved_splits(run_dir)
        raise SavedModelError(
            f"{run_dir}: no saved model for split {split} (models/{w.name} and models/{m.name}); "
            + (f"saved splits: {have}" if have else "this run saved none: rerun it with save_model=true")
        )
    meta = read_meta(m)
    model = build_model(meta, m)
    tensors = read_tensors(w, model, meta)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(state)
    model.to(device).eval()
    prep = TablePreprocessor.from_state(meta["features"]) if meta.get("features") else None
    ref = {k: tensors[k].to(device) if k in tensors else None for k in ("reference.z", "reference.y")}
    return SavedModel(meta, meta["config"], model, ref["reference.z"], ref["reference.y"], prep, run_dir)


def read_meta(path: Path) -> dict:
    """A saved model's JSON, parsed and validated (:func:`saved_schema.validate_meta`: a NaN or Infinity is refused
    where the schema reads a number)."""
    try:
        meta = read_json(path, max_bytes=schema.META_MAX_BYTES)
    except UnreadableJSON as e:
        raise SavedModelError(f"{path}: not a saved model's JSON ({e}); rerun the split with save_model=true") from None
    return schema.validate_meta(meta, path)


def build_model(meta: dict, path: Path) -> Regressor:
    """The untrained model a validated ``meta`` describes (head, embedding network, and a fine-tuned extractor)."""
    cfg = meta["config"]
    head = schema.head_from_saved(cfg["head"]["module"], path)
    extractor = None
    if meta["extractor_saved"]:
        extractor = schema.extractor_from_saved(cfg["extractor"]["builder"], path, finetune=True, in_dim=None)
    in_dim = extractor.out_dim if extractor is not None else meta["in_dim"]
    mc = cfg["model"]
    try:
        return Regressor(in_dim, mc["hidden"], mc["embed_dim"], head, extractor, mc["dropout"], mc["arch"])
    except (ValueError, TypeError) as e:
        raise SavedModelError(f"{path}: field config.model: {e}") from None


def read_tensors(path: Path, model: Regressor, meta: dict) -> dict:
    """The tensors of ``path`` once their names, shapes and dtypes match ``model`` (and the reference set's
    rows match ``reference_items``); a float tensor with NaN or inf is refused."""
    from safetensors import safe_open

    want = {f"model.{k}": (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    if model.uses_reference:
        n = len(meta.get("reference_items") or [])
        if n < 1:
            raise SavedModelError(
                f"{path.with_suffix('.json')}: field reference_items: a {meta['head']} model needs its reference set"
            )
        want["reference.z"] = ((n, meta["config"]["model"]["embed_dim"]), torch.float32)
        want["reference.y"] = ((n,), torch.float32)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            have = set(f.keys())
            odd = sorted(have ^ set(want))  # missing from the file, or not part of this model
            if odd:
                key = odd[0]
                raise SavedModelError(
                    f"{path}: tensor {key}: "
                    + ("missing" if key in want else "not part of this model")
                    + "; the file was changed or is not this run's model (rerun the split with save_model=true)"
                )
            tensors = {}
            for key, (shape, dtype) in want.items():
                got = tuple(f.get_slice(key).get_shape())
                if got != shape:
                    raise SavedModelError(
                        f"{path}: tensor {key}: shape {got} where the model needs {shape}; rerun the split"
                    )
                t = f.get_tensor(key)
                if t.dtype != dtype:
                    raise SavedModelError(
                        f"{path}: tensor {key}: dtype {t.dtype} where the model needs {dtype}; rerun the split"
                    )
                if t.is_floating_point() and not torch.isfinite(t).all():
                    raise SavedModelError(f"{path}: tensor {key}: holds NaN or inf; rerun the split")
                tensors[key] = t
    except SavedModelError:
        raise
    except Exception as e:  # noqa: BLE001 - safetensors' own errors: any unreadable file is one line naming it
        raise SavedModelError(
            f"{path}: not a safetensors file of a saved model ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else ''}); rerun the split with save_model=true"
        ) from None
    return tensors
