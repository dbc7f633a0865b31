"""A saved model's seal: its JSON records the SHA-256 of its tensor file, and the tensor file's metadata records the
split, so the two files of one save are read together or not at all.

Without the seal, ``model_0.json`` beside ``model_1.safetensors`` predicted with exit 0, with the label range and
explained rows of another split. :func:`~softstep.saved_format.write_model` seals every model it writes;
:func:`~softstep.saved_format.read_model` checks the seal once the tensors fit the model, so a tampered tensor is
still named by the tensor check first. A model saved before the seal is refused with one line; ``python -m
softstep.saved_seal MODEL`` seals it again, for files you trust.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from .saved_schema import SavedModelError, field_error

#: the JSON field holding the tensor file's SHA-256 (64 lowercase hex digits)
SEAL_FIELD = "tensors_sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_bytes(payload: bytes) -> str:
    """The SHA-256 of ``payload``, in hex.

    Parameters
    ----------
    payload : bytes

    Returns
    -------
    str

    Examples
    --------
    >>> sha256_bytes(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(payload).hexdigest()


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of the file at ``path``, read in 1 MiB blocks.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    str

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p) == sha256_bytes(b"abc")
    True
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensor_metadata(meta: dict) -> dict:
    """The string metadata a sealed tensor file carries: the split it was saved for (``-`` for a model without one,
    such as an estimator's).

    Parameters
    ----------
    meta : dict
        The model's JSON.

    Returns
    -------
    dict of str to str

    Examples
    --------
    >>> tensor_metadata({"split": 3}), tensor_metadata({})
    ({'split': '3'}, {'split': '-'})
    """
    split = meta.get("split")
    return {"split": "-" if split is None else str(split)}


def least_tensor_bytes(meta: dict) -> int:
    """The fewest bytes a tensor file of the model ``meta`` describes can hold: its network's weight matrices and
    its reference set, in float32 (:func:`check_sizes` compares them with the file before anything is allocated).

    Parameters
    ----------
    meta : dict
        The validated JSON.

    Returns
    -------
    int

    Examples
    --------
    >>> least_tensor_bytes({"in_dim": 3, "config": {"model": {"arch": "mlp", "hidden": 200, "embed_dim": 100}}})
    82400
    """
    d, mc = meta["in_dim"], meta["config"]["model"]
    h, e = mc["hidden"], mc["embed_dim"]
    floats = {"mlp": d * h + h * e, "mlp_bn_tanh": d * h + h * e, "linear": d * e}.get(mc["arch"], 0)
    floats += len(meta.get("reference_items") or []) * e
    return 4 * floats


def check_sizes(meta: dict, weights: Path, meta_file: Path) -> None:
    """A :class:`SavedModelError` line when the sizes in ``meta`` (``in_dim``, ``hidden``, ``embed_dim``, the
    reference rows) need more bytes than ``weights`` holds: a tampered size is refused before the model it
    describes is allocated (``hidden = embed_dim = 65536`` would take 17 GB).

    Parameters
    ----------
    meta : dict
    weights, meta_file : pathlib.Path

    Returns
    -------
    None

    Examples
    --------
    >>> import pathlib, tempfile
    >>> w = pathlib.Path(tempfile.mkdtemp()) / "m.safetensors"
    >>> _ = w.write_bytes(bytes(1000))
    >>> check_sizes({"in_dim": 3, "config": {"model": {"arch": "linear", "hidden": 0, "embed_dim": 25}}}, w, "m.json")
    >>> check_sizes({"in_dim": 3, "config": {"model": {"arch": "mlp", "hidden": 65536, "embed_dim": 65536}}}, w, "m.json")
    Traceback (most recent call last):
    ...
    softstep.saved_fields.SavedModelError: m.json: fields in_dim, ... describe at least 17,180,655,616 bytes ...
    """
    need, have = least_tensor_bytes(meta), Path(weights).stat().st_size
    if need > have:
        raise SavedModelError(
            f"{meta_file}: fields in_dim, config.model.hidden, embed_dim and reference_items describe at least {need:,} bytes of "
            f"weights but {Path(weights).name} holds {have:,}; use the pair saved together, or save the model again"
        )


def check_seal(meta: dict, weights: Path, meta_file: Path) -> None:
    """A :class:`SavedModelError` line unless ``weights`` is the tensor file ``meta`` was sealed with: its SHA-256
    and its recorded split agree with the JSON.

    Parameters
    ----------
    meta : dict
        The validated JSON.
    weights, meta_file : pathlib.Path

    Returns
    -------
    None

    Examples
    --------
    >>> check_seal({}, Path("m.safetensors"), Path("m.json"))
    Traceback (most recent call last):
    ...
    softstep.saved_fields.SavedModelError: m.json: not sealed (no tensors_sha256: saved before models were sealed); ...
    """
    recorded = meta.get(SEAL_FIELD)
    if recorded is None:
        raise SavedModelError(
            f"{meta_file}: not sealed (no {SEAL_FIELD}: saved before models were sealed); save it again, or, if you "
            f"trust both files, seal them with: python -m softstep.saved_seal {meta_file}"
        )
    if not isinstance(recorded, str) or not _HEX64.fullmatch(recorded):
        raise field_error(meta_file, SEAL_FIELD, "expected the 64 hex digits of a SHA-256")
    actual = sha256_file(weights)
    if actual != recorded:
        raise SavedModelError(
            f"{weights}: SHA-256 {actual[:12]}… is not the {recorded[:12]}… that {meta_file.name} records: the two "
            f"files are not of one save (or one was changed); use the pair saved together, or save the model again"
        )
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt", device="cpu") as f:
        stored = (f.metadata() or {}).get("split")
    if stored != tensor_metadata(meta)["split"]:
        raise SavedModelError(
            f"{weights}: saved for split {stored!r} but {meta_file.name} is split "
            f"{tensor_metadata(meta)['split']!r}; use the pair saved together"
        )


def reseal(path: str | Path) -> tuple[Path, Path]:
    """Seal a saved model's two files as they are now (for files you trust: a model saved before the seal, or one
    you converted): the tensor file is rewritten with the split in its metadata, and its SHA-256 goes into the JSON.

    Parameters
    ----------
    path : str or path-like
        ``<stem>``, ``<stem>.json`` or ``<stem>.safetensors``.

    Returns
    -------
    (weights, meta) : tuple of pathlib.Path

    Examples
    --------
    >>> import json, pathlib, tempfile, numpy as np
    >>> from softstep import SoftStepRegressor
    >>> rows = np.random.default_rng(0).random((20, 3))
    >>> stem = pathlib.Path(tempfile.mkdtemp()) / "m"
    >>> _ = SoftStepRegressor(head="linear", max_epochs=1).fit(rows, rows.sum(1)).save(stem)
    >>> meta = json.loads(stem.with_suffix(".json").read_text())
    >>> _ = stem.with_suffix(".json").write_text(json.dumps({**meta, "tensors_sha256": None}))
    >>> SoftStepRegressor.load(stem)
    Traceback (most recent call last):
    ...
    softstep.saved_fields.SavedModelError: ...m.json: not sealed (no tensors_sha256: ...
    >>> _ = reseal(stem)
    >>> SoftStepRegressor.load(stem).head
    'linear'
    """
    from safetensors.torch import load_file
    from safetensors.torch import save as st_save

    from .safe_io import atomic_write_bytes, read_json
    from .saved_format import paths

    w, m = paths(path)
    meta = read_json(m)
    if not isinstance(meta, dict):
        raise SavedModelError(f"{m}: not a saved model's JSON")
    payload = st_save(load_file(str(w)), metadata=tensor_metadata(meta))
    atomic_write_bytes(w, payload)
    meta[SEAL_FIELD] = sha256_bytes(payload)
    atomic_write_bytes(m, (json.dumps(meta, indent=1) + "\n").encode("utf-8"))
    return w, m


def _main(argv=None) -> int:
    """``python -m softstep.saved_seal MODEL [MODEL ...]``: :func:`reseal` each."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m softstep.saved_seal MODEL [MODEL ...]  (seal saved models you trust)")
        return 0 if args else 2
    for a in args:
        try:
            w, m = reseal(a)
        except (OSError, ValueError) as e:
            print(f"saved_seal: error: {a}: {e}", file=sys.stderr)
            return 2
        print(f"sealed {w} and {m}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
