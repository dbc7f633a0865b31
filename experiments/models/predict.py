"""Predictions of saved models for new data (``scripts/predict.py``): a run's splits, or one saved model's files.

A saved model is a pipeline run's split (``<run>/models/model_<s>``), its final model (``<run>/final/``,
``final=true``) or a :class:`softstep.SoftStepRegressor`'s ``save`` (same format, :mod:`softstep.saved_format`).
The new data is of the model's type: a table file (a ``dataset=table`` run on feature columns, or an estimator:
the columns it was fitted on, preprocessed with the fitted standardisation / ``ColumnTransformer``), a text table
(``text_column``), or a folder of image or audio files (``image_folder``, ``audio_folder``: every such file below
it, read with the run's loader settings). Predictions are in the target column's units (with ``log_target``, exp
of the predicted label; with ``log_target=log1p``, exp of it minus 1). ``split="all"`` uses the run's final model
where it has one, else averages the saved splits' predictions (on the label scale), and their neighbour weights,
each split's weights counted 1/S. ``explain`` K adds each prediction's K heaviest training items, their targets
and weights, the weight share they cover and the effective number of neighbours (:func:`explain_neighbors`).
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data import checks
from data.base import DataError, RegressionData, collate
from data.table import categorical
from experiments.inputs.features import extract
from experiments.models import saved, schema
from softstep import new_rows, saved_format
from softstep.similarities import MagnitudeError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".xlsx", ".xlsm", ".xls", ".json", ".jsonl")


class PredictError(ValueError):
    """Bad input for a prediction: one line naming the file, the column or the run."""


def load_models(run_dir, split="all", device="cpu") -> list[saved.SavedModel]:
    """The saved models of a run folder (``split``: see :func:`choose_models`), or the one model a path to a saved
    model's files names (``<stem>``, ``<stem>.json`` or ``<stem>.safetensors``, e.g. an estimator's save)."""
    if saved.is_model_file(Path(run_dir).expanduser()):
        return [saved.load_model_file(Path(run_dir).expanduser(), device=device)]
    folder, splits = choose_models(run_dir, split)
    return [saved.load_model(folder, s, device=device) for s in splits]


def choose_models(run_dir, split="all") -> tuple[Path, list[int]]:
    """(folder, splits) of the saved models a prediction uses: with ``split`` ``all`` (the default) the run's final
    model (``<run dir>/final/``, ``python run.py ... final=true``) where it has one, else every saved split
    (averaged); ``final`` only the final model; ``splits`` the saved splits even where there is a final model; a
    number that split's model."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise PredictError(
            f"{run_dir}: no such run folder (results/runs/<dataset>/<extractor>/<head>/<run_id>) "
            f"or saved model (<name>.json and <name>.safetensors)"
        )
    final = run_dir / "final"
    if str(split) in ("all", "final") and saved.saved_splits(final):
        return final, saved.saved_splits(final)
    if str(split) == "final":
        raise PredictError(
            f"{run_dir}: this run has no final model ({final}/models/); train one with python run.py ... final=true"
        )
    have = saved.saved_splits(run_dir)
    if not have:
        raise PredictError(
            f"{run_dir}: this run has no saved model (models/model_<s>.safetensors); rerun it with "
            f"save_model=true (and force=true for splits already finished), or train a final model (final=true)"
        )
    if str(split) in ("all", "splits"):
        splits = have
    else:
        try:
            splits = [int(split)]
        except ValueError:
            raise PredictError(f"--split must be all, final, splits or a split number; got {split!r}") from None
        if splits[0] not in have:
            raise PredictError(
                f"{run_dir}: no saved model for split {splits[0]}; saved splits: {', '.join(map(str, have))} (or --split all)"
            )
    return run_dir, splits


def models_line(run_dir, split="all") -> str:
    """Which saved model(s) a prediction uses, in one line (scripts/predict.py prints it)."""
    if saved.is_model_file(Path(run_dir).expanduser()):
        return f"using the saved model {run_dir}"
    folder, splits = choose_models(run_dir, split)
    if folder.name == "final" and folder != Path(run_dir):
        return f"using the final model, trained on every labelled row ({folder / 'models'})"
    if len(splits) == 1:
        return f"using the saved model of split {splits[0]} ({folder / 'models'})"
    return f"using the saved models of splits {', '.join(map(str, splits))}, averaged ({folder / 'models'})"


def _read_table(path: Path, what: str) -> pd.DataFrame:
    if path.is_dir():
        raise PredictError(f"{path} is a folder; this run predicts from a {what} file ({', '.join(TABLE_SUFFIXES)})")
    if not path.is_file():
        raise PredictError(f"no file at {path}")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise PredictError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r} for a {what}; "
            f"use one of {', '.join(TABLE_SUFFIXES)}"
        )
    return checks.read_table(path, name="predict")


def _need_columns(df: pd.DataFrame, path: Path, columns) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PredictError(
            f"{path} has no column {missing[0]!r}, which the model was trained on "
            f"(it needs {', '.join(map(repr, columns))})"
        )


def table_frame(path: Path, state: dict) -> pd.DataFrame:
    """The raw feature columns of a new table, converted as the loader converts them."""
    df = _read_table(path, "table")
    numeric, cats = list(state["numeric"]), list(state["categorical"])
    _need_columns(df, path, numeric + cats)
    frame = pd.DataFrame(index=range(len(df)))
    for c in numeric:
        frame[c] = checks.numeric(df, c, path, name="predict", what="feature")
    for c in cats:
        frame[c] = categorical(df, c, path, name="predict")
    frame.attrs["encoding"] = df.attrs.get("encoding")
    return frame


def standardised(frame: pd.DataFrame, state: dict) -> np.ndarray:
    """The numeric feature columns standardised with the training mean and variance (a zero variance: 1)."""
    cols = [
        (frame[c].to_numpy(np.float64) - m) / (np.sqrt(v) if v > 0 else 1.0) for c, (m, v) in state["numeric"].items()
    ]
    with np.errstate(over="ignore", invalid="ignore"):
        return np.stack(cols, axis=1) if cols else np.zeros((len(frame), 0))


def table_warnings(frame: pd.DataFrame, state: dict, path: Path) -> list[str]:
    """What is unlike the training rows, with counts (issue 28, finding 7): a file that is not UTF-8, categories the
    model never saw (their one-hot columns are all zero), values orders of magnitude beyond the training spread."""
    lines = []
    if frame.attrs.get("encoding") not in (None, "utf-8"):
        lines.append(f"{path} is not UTF-8; read as {frame.attrs['encoding']}: check that its text decoded as meant")
    for c, cats in state["categorical"].items():
        unseen = ~frame[c].isin(cats)
        if unseen.any():
            example = frame[c][unseen].iloc[0]
            lines.append(
                f"{path}: {int(unseen.sum()):,} of {len(frame):,} rows have a category in column {c!r} the model never saw "
                f"(e.g. {example!r}; it knows {len(cats)}): no category column is set for them"
            )
    far = new_rows.far_warning(standardised(frame, state), list(state["numeric"]))
    return lines + ([f"{path}: {far}"] if far else [])


def _folder_data(model: saved.SavedModel, folder: Path, modality: str) -> RegressionData:
    """Every image or audio file below ``folder``, read by the run's own loader (its size, window, …)."""
    exts = checks.IMAGE_EXTENSIONS if modality == "image" else checks.AUDIO_EXTENSIONS
    if not folder.is_dir():
        raise PredictError(
            f"{folder}: this run predicts a folder of {modality} files ({', '.join(exts)}); "
            + ("got a file" if folder.exists() else "no such folder")
        )
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    if not files:
        raise PredictError(f"{folder}: no {modality} files ({', '.join(exts)}) in it")
    loader = model.cfg["dataset"]["loader"]
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "files.csv"
        pd.DataFrame({loader["file_column"]: files, loader["target_column"]: 1.0}).to_csv(csv, index=False)
        return schema.folder_data_from_saved(
            loader,
            model.meta_file,
            root=str(folder),
            csv=str(csv),
            log_target=False,
            dropna=False,
        )


def _text_data(cfg: dict, path: Path) -> RegressionData:
    df = _read_table(path, "text table")
    col = cfg["dataset"]["loader"]["text_column"]
    _need_columns(df, path, [col])
    texts = checks.text_column(df, col)
    return RegressionData("predict", "text", texts, np.zeros(len(texts)))


def new_inputs(models: list[saved.SavedModel], path: Path, *, batch_size: int = 64, device="cpu"):
    """(per-model input tensors or batches, the item names for the output)."""
    m0 = models[0]
    meta, cfg = m0.meta, m0.cfg
    if meta.get("features"):
        frame = table_frame(path, meta["features"])
        if len(frame) == 0:
            raise PredictError(f"{path}: no rows to predict (the file has a header only)")
        for line in table_warnings(frame, meta["features"], path):
            print(f"[softstep] warning: {schema.one_line(line)}", file=sys.stderr, flush=True)
        with warnings.catch_warnings():  # an overflow is reported below as one line naming the row
            warnings.simplefilter("ignore", RuntimeWarning)
            xs = [torch.from_numpy(m.preprocessor.transform(frame)) for m in models]
        for x in xs:
            check_finite(x, path, list(frame.columns))
        return [x.to(device) for x in xs], {"row": np.arange(len(frame))}
    loader = cfg["dataset"].get("loader") or {}
    if meta["modality"] == "text" and isinstance(loader.get("text_column"), str):
        data = _text_data(cfg, path)
        names = {"row": np.arange(len(data))}
    elif meta["modality"] in ("image", "audio") and isinstance(loader.get("file_column"), str):
        data = _folder_data(m0, path, meta["modality"])
        names = {"file": [str(Path(f).relative_to(path)) for f in data.items]}
    else:
        raise PredictError(
            f"predict.py reads new data for dataset=table, image_folder or audio_folder runs; this run is "
            f"dataset={meta['dataset']!r} ({meta['modality']})"
        )
    if m0.model.extractor is None:  # frozen: one extractor pass, shared by every split's model
        extractor = schema.extractor_from_saved(cfg["extractor"]["builder"], m0.meta_file, finetune=False, in_dim=None)
        digest = schema.extractor_digest(extractor)
        for m in models:  # the weights each model was saved with: another source, seed or builder is refused
            schema.check_extractor(digest, m.meta, m.meta_file)
        feats = extract(extractor, data, batch_size=batch_size, device=device, progress=False).to(device)
        return [feats for _ in models], names
    loader = torch.utils.data.DataLoader(data.dataset(range(len(data))), batch_size=batch_size, collate_fn=collate)
    batches = [x for x, _ in loader]
    return [batches for _ in models], names


def check_finite(x: torch.Tensor, path: Path, columns: list) -> None:
    """A :class:`PredictError` naming the first row whose preprocessed features are not finite in the model's dtype
    (e.g. a cell of 1e308, which float32 cannot hold)."""
    bad = ~torch.isfinite(x)
    if bad.any():
        row = int(bad.any(dim=1).nonzero()[0])
        raise PredictError(
            f"{path}: row {row} (0-based data row): its features are not finite numbers the model can take "
            f"(a value too large for float32, e.g. 1e308, or NaN/inf in {', '.join(map(str, columns))}); fix or drop the row"
        )


@torch.no_grad()
def _embed(model: saved.SavedModel, x, device):
    if isinstance(x, list):
        return torch.cat([model.embed(b.to(device) if torch.is_tensor(b) else b) for b in x])
    return torch.cat([model.embed(x[i : i + 4096]) for i in range(0, len(x), 4096)])


@torch.no_grad()
def predict(run_dir, input_path, *, split="all", explain: int = 0, device="cpu") -> pd.DataFrame:
    """A frame with the item names, ``prediction`` and, with ``explain`` K, the explanation
    (:func:`explain_neighbors`): ``weight_share`` and ``effective_neighbors`` per prediction, and
    ``neighbor_k``, ``target_k``, ``weight_k`` for k = 1..K."""
    models = load_models(run_dir, split, device)
    if explain and not models[0].model.head.needs_reference:  # the predictions still come, without the columns
        print(
            f"[softstep] note: --explain: the {models[0].meta['head']} head predicts without neighbours, so the "
            "predictions are written without an explanation",
            file=sys.stderr,
            flush=True,
        )
        explain = 0
    if explain and explain < 1:
        raise PredictError(f"--explain must be >= 1; got {explain}")
    for m in models:
        m.check_reference()
    path = Path(input_path).expanduser()
    try:
        xs, names = new_inputs(models, path, device=device)
    except DataError as e:
        raise PredictError(str(e).replace("dataset 'predict': ", "")) from None
    zs = [_embed(m, x, device) for m, x in zip(models, xs)]
    try:
        scaled = [m.predict_scaled(z).double().cpu().numpy() for m, z in zip(models, zs)]
        extra = explain_neighbors(models, zs, int(explain)) if explain else None
    except MagnitudeError:
        raise PredictError(f"{path}: {_unrepresentable(models[0], zs[0], path, names)}") from None
    label = np.mean([m.to_label_units(s) for m, s in zip(models, scaled)], axis=0)
    out = pd.DataFrame(names)
    with np.errstate(over="ignore"):
        out["prediction"] = saved_format.to_target(label, models[0].meta["label"]["log_target"])
    bad = ~np.isfinite(out["prediction"].to_numpy())
    if bad.any():
        raise PredictError(
            f"{models[0].meta_file}: the prediction of row {int(np.argmax(bad))} (0-based) is not a finite number: the "
            "model's weights or label range are not a trained model's; save the model again"
        )
    out = out if extra is None else pd.concat([out, extra], axis=1)
    out.attrs["decimals"] = readable_decimals(models[0].meta["label"])  # what predict.py rounds the CSV to
    return out


#: the CSV's predictions resolve the label range to this fraction (4 digits of the range; the API keeps them all)
RESOLUTION = 1e-4


def readable_decimals(label: dict) -> int:
    """The decimals ``predict.py`` writes predictions with: enough to resolve :data:`RESOLUTION` of the label range
    in the target's units (a price range of 50,000: none, 18299.01 is written 18299; a rating of 1 to 5: four)."""
    lo, hi = (float(v) for v in saved_format.to_target([label["lo"], label["hi"]], label["log_target"]))
    span = hi - lo if np.isfinite(hi - lo) and hi > lo else 1.0
    return max(0, min(12, int(np.ceil(-np.log10(span * RESOLUTION)))))


def _unrepresentable(model: saved.SavedModel, z: torch.Tensor, path: Path, names: dict) -> str:
    """The row (and, for a table, the column) whose embedding the head cannot represent (finding 10)."""
    state = model.meta.get("features")
    if state:
        return new_rows.unrepresentable(z, standardised(table_frame(path, state), state), list(state["numeric"]))
    return new_rows.unrepresentable(z, None, [], "file" if "file" in names else "row")


def reference_targets(model: saved.SavedModel) -> np.ndarray:
    """The reference items' targets in the target column's units, rounded to the precision the saved float32
    [0, 1] labels hold (span × 2⁻²⁰, a few float32 steps), so that a label of 48 reads 48.0, not 48.000001."""
    lo, hi = model.meta["label"]["lo"], model.meta["label"]["hi"]
    decimals = max(0, int(np.ceil(-np.log10((hi - lo if hi > lo else 1.0) * 2.0**-20))))
    label = np.round(model.to_label_units(model.y_ref.double().cpu().numpy()), decimals)
    if not model.meta["label"]["log_target"]:
        return label
    return np.array([float(f"{v:.7g}") for v in saved_format.to_target(label, model.meta["label"]["log_target"])])


def explain_neighbors(models, zs, k: int, chunk: int = 1024) -> pd.DataFrame:
    """Each prediction's K training items with the largest weights (the splits' weights averaged, each 1/S; K is
    capped at the number of reference items), one row per query:

    - ``weight_share``: the weight the K items carry together (1: the prediction is their weighted mean);
    - ``effective_neighbors``: 1/Σw² over all reference items (the sparsity block's ``effective``);
    - ``neighbor_k``: the item (a table's row number in its file, counting data rows from 0; a file relative to
      the dataset root; a row of the estimator's ``fit`` X), ``target_k`` its target in the prediction's units,
      ``weight_k`` its weight.
    """
    if k < 1:
        raise PredictError(f"--explain must be >= 1; got {k}")
    union = sorted({item for m in models for item in m.meta["reference_items"]}, key=lambda v: (isinstance(v, str), v))
    pos = {item: i for i, item in enumerate(union)}
    cols = [torch.as_tensor([pos[item] for item in m.meta["reference_items"]]) for m in models]
    targets = np.zeros(len(union))
    for m, c in zip(models, cols):  # the same item has the same target in every split
        targets[c.numpy()] = reference_targets(m)
    k = min(k, len(union))
    n = len(zs[0])
    ids, wts, share, eff = [], [], [], []
    for s in range(0, n, chunk):
        acc = torch.zeros(min(chunk, n - s), len(union), dtype=torch.float64)
        for m, z, c in zip(models, zs, cols):
            w = m.model.head.neighbor_weights(z[s : s + chunk], m.z_ref).double().cpu()
            acc[:, c] += w / len(models)
        w, j = acc.topk(k, dim=-1)
        ids.append(j)
        wts.append(w)
        share.append(w.sum(dim=1))
        eff.append(1.0 / (acc**2).sum(dim=1))
    j, w = torch.cat(ids).numpy(), torch.cat(wts).numpy()
    ints = all(isinstance(v, int) for v in union)
    items = np.asarray(union, dtype=np.int64 if ints else object)[j]
    cols_out = {"weight_share": torch.cat(share).numpy(), "effective_neighbors": torch.cat(eff).numpy()}
    for r in range(k):
        cols_out[f"neighbor_{r + 1}"] = items[:, r]
        cols_out[f"target_{r + 1}"] = targets[j[:, r]]
        cols_out[f"weight_{r + 1}"] = w[:, r]
    return pd.DataFrame(cols_out)
