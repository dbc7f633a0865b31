"""The saved-model format: one safetensors file of tensors and one JSON file of plain values, read as data.

A saved model is two files with one stem: ``<stem>.safetensors`` holds the weights (``model.<name>``) and, for a
neighbour head, its reference set, ``reference.z`` (N, d) (the training rows embedded by the best model) and
``reference.y`` (N,) (their labels on the [0, 1] scale); ``<stem>.json`` holds the label's min and max, the
feature columns' standardisation (``features``), the reference items (row numbers, or files relative to the
dataset root) and the settings the model was built from (``config.head.module``, ``config.model``,
``config.trainer``). The pipeline (:mod:`experiments.models.saved`, ``<run>/models/model_<s>``) and
:meth:`softstep.SoftStepRegressor.save` both write this format, and each reads the other's files.

Why it lives here: the library is installed without the research code (``pip install softstep[sklearn]``) and
never imports it, so the estimator's ``save``/``load`` need the format in the library. This module reads and
writes the files and checks the tensors; the JSON's fields are checked by :mod:`softstep.saved_schema`
(:func:`~softstep.saved_schema.validate_meta`, on which :mod:`experiments.models.schema` adds the pipeline's own
fields), and both files are written atomically (:func:`softstep.safe_io.atomic_write_bytes`).

Reading treats both files as data: nothing named in them is imported or instantiated. A head is built from
:func:`~softstep.heads.head_classes` only (the registry's head classes), with arguments checked against the class's
signature and against plain values. A model saved without its reference set (``reference_items`` null for a
neighbour head) loads, and cannot predict until it is given one.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .heads import head_classes
from .nca import current_key
from .safe_io import UnreadableJSON, atomic_write_bytes, read_json
from .saved_schema import (
    FIX,
    SavedModelError,
    config_arguments,
    config_target,
    field_error,
    signature_arguments,
    validate_meta,
)
from .saved_seal import SEAL_FIELD, check_seal, check_sizes, sha256_bytes, tensor_metadata

SUFFIXES = (".safetensors", ".json")


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
    softstep.saved_fields.SavedModelError: m.json: field config.head.module._target_: 'os.system' is not one of ...
    """
    table = head_classes()
    cls = table[config_target(node, "config.head.module", file, table, "head classes")]
    args = config_arguments(node, "config.head.module", file, signature_arguments(cls.__init__), {})
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise field_error(file, "config.head.module", str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def _read_json(path: Path):
    """The JSON value of a saved model's file (:func:`read_json`); any way it cannot be read is one
    :class:`SavedModelError` line naming the file."""
    try:
        return read_json(path)  # capped at SOFTSTEP_MAX_JSON_MB
    except UnreadableJSON as e:
        raise SavedModelError(f"{path}: not a saved model's JSON ({e}); {FIX}") from None


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
#: the largest magnitude a saved weight may have (a trained model's are many orders below; 3e38 gives inf)
WEIGHT_MAX = 1e15


def _read_tensors(path: Path, model, meta: dict) -> tuple[dict, torch.dtype]:
    """(tensors, float dtype) of ``path`` once their names, shapes and dtypes match ``model`` (and the reference
    set's rows match ``reference_items``). The model's floating tensors are all float32 or all float64 (the
    estimator's ``dtype``); a float tensor with NaN, inf or a value beyond :data:`WEIGHT_MAX` is refused."""
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
            stored = {current_key(k, "model.head."): k for k in f.keys()}  # a file saved before a renaming
            have = set(stored)
            odd = sorted(have ^ set(want))  # missing from the file, or not part of this model
            if odd:
                key = odd[0]
                raise SavedModelError(
                    f"{path}: tensor {key}: " + ("missing" if key in want else "not part of this model") + f"; {FIX}"
                )
            first = next((k for k in sorted(want) if want[k][1]), None)
            dtype = _FLOATS.get(f.get_slice(stored[first]).get_dtype()) if first else torch.float32
            if dtype is None:
                raise SavedModelError(f"{path}: tensor {first}: dtype {f.get_slice(stored[first]).get_dtype()}; {FIX}")
            tensors = {}
            for key, (shape, is_float, int_dtype) in want.items():
                got = tuple(f.get_slice(stored[key]).get_shape())
                if got != shape:
                    raise SavedModelError(f"{path}: tensor {key}: shape {got} where the model needs {shape}; {FIX}")
                t = f.get_tensor(stored[key])
                need_dtype = dtype if is_float else int_dtype
                if t.dtype != need_dtype:
                    raise SavedModelError(
                        f"{path}: tensor {key}: dtype {t.dtype} where the model needs {need_dtype}; {FIX}"
                    )
                if t.is_floating_point() and t.numel() and not t.abs().max() <= WEIGHT_MAX:  # False for NaN too
                    raise SavedModelError(
                        f"{path}: tensor {key}: holds NaN, inf or a value beyond ±{WEIGHT_MAX:g}; {FIX}"
                    )
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


def write_model(
    path: str | Path, model, meta: dict, reference=None, *, with_extractor: bool = False
) -> tuple[Path, Path]:
    """Write a model as ``<stem>.safetensors`` and ``<stem>.json``, each atomically (a reader sees the old file or
    the whole new one), sealed (:mod:`softstep.saved_seal`: the JSON records the tensor file's SHA-256).

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
    >>> from softstep.heads import head_module
    >>> from softstep.model import Regressor
    >>> from softstep.saved_schema import MODEL_FORMAT
    >>> model = Regressor(3, 8, 4, build_head("nca", 4))
    >>> meta = {"format_version": MODEL_FORMAT, "head": "nca", "in_dim": 3,
    ...         "label": {"lo": 0.0, "hi": 10.0, "log_target": False}, "features": None, "reference_items": [7, 9],
    ...         "config": {"head": {"name": "nca", "module": head_module("nca", 4, "l2")},
    ...                    "model": {"arch": "mlp", "hidden": 8, "embed_dim": 4, "dropout": 0.0}}}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     w, m = write_model(f"{d}/tiny", model, meta, (torch.zeros(2, 4), torch.tensor([0.2, 0.9])))
    ...     back = read_model(m)
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
    payload = st_save(tensors, metadata=tensor_metadata(meta))
    atomic_write_bytes(w, payload)
    sealed = {**meta, SEAL_FIELD: sha256_bytes(payload)}  # the JSON names the tensor file it belongs to
    atomic_write_bytes(m, (json.dumps(sealed, indent=1, default=str) + "\n").encode("utf-8"))
    return w, m


@dataclass
class Loaded:
    """A saved model as :func:`read_model` reads it.

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


def read_model(path: str | Path, *, validate=None, extractor=None, device="cpu") -> Loaded:
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
    >>> read_model("no/such/model")
    Traceback (most recent call last):
    ...
    softstep.saved_fields.SavedModelError: no/such/model.json: no such file (a saved model is model.safetensors and model.json)
    """
    w, m = paths(path)
    for f in (m, w):
        if not f.is_file():
            raise SavedModelError(f"{f}: no such file (a saved model is {w.name} and {m.name})")
    meta = (validate or validate_meta)(_read_json(m), m)
    check_sizes(meta, w, m)  # before the model those sizes describe is allocated
    model = _build_model(meta, m, extractor(meta, m) if extractor is not None else None)
    tensors, dtype = _read_tensors(w, model, meta)
    check_seal(meta, w, m)  # after the tensor check, which names a tampered tensor; the seal catches the rest
    _load_weights(model, tensors, dtype).to(device)
    ref = [tensors[k].to(device) if k in tensors else None for k in ("reference.z", "reference.y")]
    return Loaded(meta, model, ref[0], ref[1], m)


#: Old names of this module's functions (deprecated: a ``DeprecationWarning``; they go in a later release).
RENAMED = {"load": "read_model", "write": "write_model"}


def __getattr__(name: str):
    """``load`` and ``write``, the old names of :func:`read_model` and :func:`write_model`, with a warning."""
    if name in RENAMED:
        warnings.warn(
            f"softstep.saved_format.{name} is now softstep.saved_format.{RENAMED[name]}; the old name goes in a later "
            "release",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[RENAMED[name]]
    raise AttributeError(f"module 'softstep.saved_format' has no attribute {name!r}")
