"""How much signal each real dataset that ships in a package holds: a scaled k-NN and gradient boosting on one split.

    python -m benchmarks.datasets [--only NAME ...] [--write | --out PATH] [--cache DIR]

(default output results/benchmarks/scratch/datasets.md, git-ignored; --write: the committed
results/benchmarks/datasets.md)

Each dataset is loaded through its config (``dataset=NAME``). Tables: numeric columns standardised and
categorical ones one-hot encoded (``TablePreprocessor``, fitted on the training rows, as the pipeline does).
Text: the frozen MiniLM embeddings of each token (``extractor=minilm``, the real packaged weights, mean
pooling), standardised; they are cached under ``--cache`` (default ``results/cache/datasets``, git-ignored).
One seeded 80/20 split (``train_test_split(random_state=0)``); R² on the 20 %:

- ``KNeighborsRegressor(n_neighbors=10, weights="distance")`` on the standardised features;
- ``HistGradientBoostingRegressor(random_state=0)`` on the same features.

A dataset is kept when either reaches R² ≥ 0.3 (issue 32).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from benchmarks import _output

TEXT = ("vader", "afinn", "textblob_polarity", "textblob_subjectivity", "wordfreq")
TABLES = (
    "gapminder",
    "abalone",
    "seattle_weather",
    "airfare",
    "catholic",
    "fertil2",
    "meap01",
    "elem94_95",
    "computers",
    "diamonds",
)
THRESHOLD = 0.3
ROOT = Path(__file__).resolve().parents[1]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="*", default=None, help="datasets to measure (default: all)")
    p.add_argument("--cache", type=Path, default=ROOT / "results" / "cache" / "datasets")
    return _output.add_arguments(p, "datasets")


def text_features(cfg, data, cache: Path) -> np.ndarray:
    """(n, 384) MiniLM embeddings of the items, computed once per (dataset, items, extractor)."""
    import torch
    from hydra.utils import instantiate

    key = hashlib.sha1(f"{data.name}|{data.preprocessing}|{list(data.items)}|{cfg.extractor.name}".encode()).hexdigest()
    path = cache / f"{data.name}-{key[:12]}.npy"
    if path.is_file():
        return np.load(path)
    ext = instantiate(cfg.extractor.builder, finetune=False, in_dim=None).eval()
    items = list(data.items)
    with torch.no_grad():
        x = torch.cat([ext(items[i : i + 256]) for i in range(0, len(items), 256)]).numpy()
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def measure(name: str, cache: Path) -> dict:
    """Load ``dataset=name``, split 80/20, fit both models; the row of the table."""
    from hydra.utils import instantiate
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.preprocessing import StandardScaler

    from experiments.inputs.tabular import TablePreprocessor
    from experiments.protocol.compose import compose

    cfg = compose([f"dataset={name}"])
    data = instantiate(cfg.dataset.loader)
    train, test = train_test_split(np.arange(len(data)), test_size=0.2, random_state=0)
    y = data.labels
    if data.columns is not None:
        frame, num, cat = data.columns["frame"], data.columns["numeric"], data.columns["categorical"]
        prep = TablePreprocessor(num, cat).fit(frame.iloc[train])
        x_train, x_test = prep.transform(frame.iloc[train]), prep.transform(frame.iloc[test])
        width = f"{len(num)} num, {len(cat)} cat → {prep.width}"
    else:
        x = text_features(cfg, data, cache)
        scaler = StandardScaler().fit(x[train])
        x_train, x_test = scaler.transform(x[train]), scaler.transform(x[test])
        width = f"MiniLM {x.shape[1]}"
    knn = KNeighborsRegressor(n_neighbors=10, weights="distance").fit(x_train, y[train])
    hgb = HistGradientBoostingRegressor(random_state=0).fit(x_train, y[train])
    r2_knn, r2_hgb = r2_score(y[test], knn.predict(x_test)), r2_score(y[test], hgb.predict(x_test))
    return {
        "name": name,
        "modality": data.modality,
        "n": len(data),
        "expected_n": cfg.dataset.get("expected_n"),
        "label": f"{y.min():.3g} … {y.max():.3g}",
        "features": width,
        "knn": r2_knn,
        "hgb": r2_hgb,
        "kept": max(r2_knn, r2_hgb) >= THRESHOLD,
    }


def table(rows: list[dict], seconds: float) -> str:
    lines = [
        "# Signal in the real datasets that packages ship",
        "",
        f"`python -m benchmarks.datasets --write` ({seconds:.0f} s on 2 CPU cores). One seeded 80/20 split; R² on the "
        "test 20 %. k-NN: 10 neighbours, distance-weighted, on standardised features (tables: one-hot categories; "
        "text: frozen MiniLM embeddings). HGB: `HistGradientBoostingRegressor(random_state=0)`. A dataset is kept "
        f"when either reaches R² ≥ {THRESHOLD}. Sources, versions and licences: "
        "[docs/datasets.md](../../docs/datasets.md#real-data-from-packages).",
        "",
        "| dataset | modality | rows | expected_n | label range | features | k-NN R² | HGB R² | kept |",
        "|---|---|---:|---:|---|---|---:|---:|---|",
    ]
    for r in rows:
        expected = f"{r['expected_n']:,}" if r["expected_n"] else "—"
        lines.append(
            f"| {r['name']} | {r['modality']} | {r['n']:,} | {expected} | {r['label']} | {r['features']} "
            f"| {r['knn']:.3f} | {r['hgb']:.3f} | {'yes' if r['kept'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    names = args.only or [*TEXT, *TABLES]
    start, rows = time.perf_counter(), []
    for name in names:
        rows.append(measure(name, args.cache))
        r = rows[-1]
        print(f"{name}: n={r['n']} knn R2={r['knn']:.3f} hgb R2={r['hgb']:.3f}", flush=True)
    _output.write(args, table(rows, time.perf_counter() - start))


if __name__ == "__main__":
    main()
