"""The result store: one JSON per finished split, written atomically. Result files are the interface.

Layout::

    <results_root>/runs/<dataset>/<extractor>/<head>/<run_id>/split_<s>.json

``run_id`` is ``<readable hparams>-<8-hex hash>`` of the config that matters (everything
but the splits, paths, logging and launch settings), so two configurations never share
a folder and a rerun of the same configuration finds its finished splits.

A result file holds (``format_version`` 1)::

    format_version, dataset, extractor, head, split, run_id,
    hparams     {similarity, embed_dim, batch_size, ...}   the head's tuned settings
    metrics     {test_mse, val_mse            (labels min–max scaled on train, [0, 1]),
                 test_mse_x1e3, val_mse_x1e3  (the paper's Table 1 unit),
                 test_mse_orig, val_mse_orig  (original label units)}
    best_epoch, epochs_run, wall_time_s, n_train, n_val, n_test,
    history     [{epoch, val_mse, epoch_time_s (optional: training plus validation, seconds), train_time_s (optional: training alone)}],
    runtime     (optional) {device, gpu, precision, compile, max_elements}: how the run used its device,
    config      the resolved config,  git_commit,  versions {python, torch, torchsort, transformers},
    finished_at ISO time

Optional fields (absent from older files; readers must not require them)::

    data_digest the content digest of the dataset the split was trained on (experiments.store.safety.data_digest):
                a rerun on changed data refuses to report the old numbers
    features    {numeric, categorical, width}   a table's feature columns (experiments/inputs/tabular.py)
    sparsity    {n_queries, n_reference, nonzero, effective, and l, u, t or k}: neighbour heads, on the
                test queries, each {p10, median, p90} (experiments/protocol/sparsity.py)
    saved_model {weights, meta, bytes}          the split's saved model files (experiments/models/saved.py)
    metrics     + test_rmse_orig, test_mae_orig, test_r2 (and val_*): RMSE and MAE in the label's units, and R²
                (experiments/metrics.py); finite, the errors >= 0
    hit_epoch_cap  true when training stopped at trainer.max_epochs while still improving (the best epoch within
                the last trainer.patience epochs): it had not converged
    final       true for a final model (``final=true``): trained on every labelled row, no test rows, so
                metrics hold the validation ones only; n_reference: the rows of its saved reference set.
                It lies in the run's ``final/`` folder (:class:`FinalKey`), where no table reads it

A final model's result lies one folder deeper, ``<run_id>/final/split_0.json``: :func:`iter_result_paths` (tables,
figures, status) never finds it, and the run folder's ``split_*.json`` stay the 10-split protocol's.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import metrics
from softstep.safe_io import UnreadableJSON, atomic_write_bytes, read_json

FORMAT_VERSION = 1
#: Every result file's fields and their types.
FIELD_TYPES = {
    "format_version": int,
    "dataset": str,
    "extractor": str,
    "head": str,
    "split": int,
    "run_id": str,
    "hparams": dict,
    "metrics": dict,
    "best_epoch": int,
    "epochs_run": int,
    "config": dict,
}


class ResultError(ValueError):
    """A malformed result file or an inconsistent set of them; the message names the file."""


@dataclass(frozen=True)
class RunKey:
    """Where one configuration's results live: ``<results_root>/runs/<dataset>/<extractor>/<head>/<run_id>/``."""

    results_root: str
    dataset: str
    extractor: str
    head: str
    run_id: str

    final = False  # a final model's key: FinalKey

    @property
    def dir(self) -> Path:
        return Path(self.results_root) / "runs" / self.dataset / self.extractor / self.head / self.run_id

    def split_path(self, split: int) -> Path:
        """The result file of one finished split."""
        return self.dir / f"split_{split}.json"

    def checkpoint(self, split: int) -> Path:
        """The checkpoint of a split in progress (deleted when its result file is written)."""
        return self.dir / f"split_{split}.ckpt.pt"

    def finished(self) -> set[int]:
        """Splits whose result file exists and is valid (the skip-if-done check); a corrupt file is not done."""
        return self.scan()[0]

    def scan(self) -> tuple[set[int], dict[Path, str]]:
        """(splits with a valid result file, {result file that cannot be read or validated: why, in one line}).
        A malformed file's split is not done: the next run moves the file aside and trains the split again."""
        done, malformed = set(), {}
        for p in self.dir.glob("split_*.json"):
            try:
                done.add(read_result(p)["split"])
            except ResultError as e:
                malformed[p] = str(e).splitlines()[0]
        return done, malformed


@dataclass(frozen=True)
class FinalKey(RunKey):
    """Where one configuration's final model lives (``final=true``): ``<run dir>/final/``, one ``split_0.json``
    (split 0: the seed of its train/validation cut) and ``models/model_0.*`` beside it."""

    final = True

    @property
    def dir(self) -> Path:
        return super().dir / "final"

    @property
    def run_dir(self) -> Path:
        """The run folder of the same configuration, where the 10-split results lie."""
        return super().dir


def atomic_torch_save(path: str | Path, obj) -> None:
    """``torch.save`` to ``path`` atomically (features, checkpoints)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    check_result(result, path)
    atomic_write_text(path, json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")


def check_result(result: Any, path: str | Path = "<memory>") -> dict:
    """Check one result's fields and types; raise :class:`ResultError` naming the file and the field."""
    if not isinstance(result, dict):
        raise ResultError(f"{path}: a result must be a JSON object, got {type(result).__name__}")
    for key, typ in FIELD_TYPES.items():
        if key not in result:
            raise ResultError(f"{path}: missing field {key!r} (a result file needs {', '.join(FIELD_TYPES)})")
        if not isinstance(result[key], typ) or (typ is int and isinstance(result[key], bool)):
            raise ResultError(f"{path}: field {key!r} must be {typ.__name__}, got {result[key]!r}")
    if result["format_version"] != FORMAT_VERSION:
        raise ResultError(
            f"{path}: format_version {result['format_version']} is not {FORMAT_VERSION}; rerun or convert it"
        )
    final = result.get("final", False)
    if not isinstance(final, bool) or not isinstance(result.get("hit_epoch_cap", False), bool):
        field = "final" if not isinstance(final, bool) else "hit_epoch_cap"
        raise ResultError(f"{path}: field {field!r} must be true or false, got {result[field]!r}")
    optional = [f"{s}_{k}" for s in ("test", "val") for k in metrics.LABEL_UNITS]
    for key in (metrics.REQUIRED_FINAL_METRICS if final else metrics.REQUIRED_METRICS) + tuple(optional):
        value = result["metrics"].get(key)
        if value is None and key in optional:
            continue  # written before these were recorded
        if not _number(value, nonneg=not key.endswith("_r2")):
            want = "a finite number" + ("" if key.endswith("_r2") else " >= 0")
            raise ResultError(f"{path}: metrics.{key} must be {want}, got {str(value)[:40]!r}")
    if result["split"] < 0:
        raise ResultError(f"{path}: field 'split' must be >= 0, got {result['split']}")
    _check_optional(result, path)
    return result


def _number(value, *, nonneg: bool = True) -> bool:
    """Whether ``value`` is a finite number (not a bool), and >= 0 when ``nonneg``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return False  # an integer float64 cannot hold (math.isfinite of a 400-digit integer overflows)
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 or not nonneg)
    )


#: Optional numeric fields (absent from older files) and of each ``history`` entry: finite numbers >= 0.
OPTIONAL_NUMBERS = ("wall_time_s", "n_train", "n_val", "n_test")
HISTORY_NUMBERS = ("epoch_time_s", "train_time_s")


def _check_optional(result: dict, path) -> None:
    """The optional fields the readers use (status, cost estimates, tables, figures): of the right type where
    present, so a reader never meets a string where it computes (one :class:`ResultError` line naming the field)."""
    for key in OPTIONAL_NUMBERS:
        if key in result and not _number(result[key]):
            raise ResultError(f"{path}: field {key!r} must be a finite number >= 0, got {str(result[key])[:40]!r}")
    history = result.get("history", [])
    if not isinstance(history, list):
        raise ResultError(f"{path}: field 'history' must be a list of epochs, got {type(history).__name__}")
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            raise ResultError(f"{path}: history[{i}] must be an object, got {type(entry).__name__}")
        epoch = entry.get("epoch", 0)
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ResultError(f"{path}: history[{i}].epoch must be an integer >= 0, got {str(epoch)[:40]!r}")
        val = entry.get("val_mse", 0.0)  # a diverged epoch's NaN is a number: the split's result is kept
        if not isinstance(val, (int, float)) or isinstance(val, bool):
            raise ResultError(f"{path}: history[{i}].val_mse must be a number, got {str(val)[:40]!r}")
        for key in HISTORY_NUMBERS:
            if key in entry and not _number(entry[key]):
                raise ResultError(
                    f"{path}: history[{i}].{key} must be a finite number >= 0, got {str(entry[key])[:40]!r}"
                )
    for key in ("sparsity", "runtime", "features", "saved_model"):
        if key in result and result[key] is not None and not isinstance(result[key], dict):
            raise ResultError(f"{path}: field {key!r} must be an object, got {type(result[key]).__name__}")


def read_result(path: str | Path) -> dict:
    """One result file, validated (:func:`check_result`) and checked against where it lies (:func:`check_location`);
    anything unreadable (bytes that are not UTF-8 JSON, nesting too deep, a wrong field) is a :class:`ResultError`."""
    try:
        result = read_json(path)
    except UnreadableJSON as e:
        raise ResultError(f"{path}: not a readable JSON result file ({e})") from None
    check_result(result, path)
    check_location(result, path)
    result["_path"] = str(path)
    return result


def check_location(result: dict, path: str | Path) -> None:
    """A result file in the store (``runs/<dataset>/<extractor>/<head>/<run_id>/split_<s>.json``) must record the
    dataset, extractor, head, run id and split its place names: a file copied or edited into another cell is refused."""
    path = Path(path)
    m = re.fullmatch(r"split_(\d+)\.json", path.name)
    if m is None or len(path.parents) < 5 or path.parents[4].name != "runs":
        return
    where = {
        "split": int(m.group(1)),
        "run_id": path.parents[0].name,
        "head": path.parents[1].name,
        "extractor": path.parents[2].name,
        "dataset": path.parents[3].name,
    }
    for key, value in where.items():
        if result[key] != value:
            raise ResultError(
                f"{path}: field {key!r} is {result[key]!r} but the file lies where {key} {value!r} "
                f"belongs; a result is read only from its own place"
            )


def iter_result_paths(root: str | Path) -> Iterable[Path]:
    return sorted((Path(root) / "runs").glob("*/*/*/*/split_*.json")) if (Path(root) / "runs").is_dir() else []


def read_results(root: str | Path, *, skip_bad: bool = False) -> list[dict]:
    """Every result under ``root`` (each validated, with ``_path`` added). With ``skip_bad`` a file that cannot be
    read or validated is left out with one warning line on stderr naming it; without, it is a :class:`ResultError`."""
    out = []
    for p in iter_result_paths(root):
        try:
            out.append(read_result(p))
        except ResultError as e:
            if not skip_bad:
                raise
            print(f"[softstep] warning: skipped {e}", file=sys.stderr, flush=True)
    return out
