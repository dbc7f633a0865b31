"""The heads on three tables that packages ship, against scikit-learn on the same splits.

    python -m benchmarks.pipeline_tables [--splits 5] [--write | --out PATH] [--work DIR]

(default output results/benchmarks/scratch/pipeline_tables.md, git-ignored; --write: the committed
results/benchmarks/pipeline_tables.md)

Tables: scikit-learn's diabetes (disease progression from 10 numeric columns), palmerpenguins'
penguins (body mass from bill, flipper, year, species, island, sex; rows with a gap dropped) and
vega_datasets' cars (miles per gallon from cylinders, displacement, horsepower, weight,
acceleration, model year and origin; rows with a gap dropped). Each is written to a CSV and run
through the pipeline (``dataset=table features=all dropna=true``: numeric columns standardised,
categorical ones one-hot encoded, fitted on each split's training rows), every head at its tuned
settings. On the same splits (``paper_split``) and the same preprocessing:

- ``LinearRegression`` fitted on the training split;
- ``KNeighborsRegressor`` fitted on the training split, k ∈ 1…50 chosen by validation MSE.

Goals (issue 12): the linear head within 1.2× of LinearRegression, the best neighbour head within
1.2× of the tuned k-NN (ratios of mean test MSE). Test MSE × 10³ on the [0, 1] label scale.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import _output
from experiments.inputs.tabular import TablePreprocessor
from experiments.labels import MinMaxScaler
from experiments.protocol import pipeline
from experiments.protocol.baselines import tuned_knn
from experiments.protocol.compose import compose, hydra_context
from experiments.protocol.setup import load_data
from experiments.protocol.splits import paper_split
from experiments.report.names import HEADS
from experiments.store.results import read_result

REPO = Path(__file__).resolve().parents[1]

GOAL = 1.2


def tables() -> dict[str, tuple[pd.DataFrame, str, str]]:
    """name → (frame, target column, source)."""
    from palmerpenguins import load_penguins
    from sklearn.datasets import load_diabetes
    from vega_datasets import local_data

    diabetes = load_diabetes(as_frame=True).frame
    penguins = load_penguins()
    cars = local_data.cars().drop(columns=["Name"])
    cars["Year"] = pd.to_datetime(cars["Year"]).dt.year
    return {
        "diabetes": (diabetes, "target", "scikit-learn `load_diabetes`"),
        "penguins": (penguins, "body_mass_g", "palmerpenguins `load_penguins`"),
        "cars": (cars, "Miles_per_Gallon", "vega_datasets `local_data.cars`"),
    }


def baselines(data, splits) -> dict[str, list]:
    """Per split: LinearRegression and tuned k-NN test MSE (scaled labels), and the chosen k."""
    from sklearn.linear_model import LinearRegression

    cols = data.columns
    out = {"LinearRegression": [], "KNeighborsRegressor": [], "k": []}
    for s in splits:
        tr, va, te = paper_split(data.labels, s, 10)
        y = MinMaxScaler(data.labels[tr]).transform(data.labels)
        prep = TablePreprocessor(cols["numeric"], cols["categorical"]).fit(cols["frame"].iloc[tr])
        x = prep.transform(cols["frame"])
        lin = LinearRegression().fit(x[tr], y[tr])
        out["LinearRegression"].append(float(np.mean((lin.predict(x[te]) - y[te]) ** 2)))
        knn, k = tuned_knn(x, y, tr, va)
        out["k"].append(k)
        out["KNeighborsRegressor"].append(float(np.mean((knn.predict(x[te]) - y[te]) ** 2)))
    return out


def ms(values) -> str:
    v = 1e3 * np.asarray(values, dtype=float)
    return f"{v.mean():.3g} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2g}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--splits", type=int, default=5, help="split seeds 0..N-1 (default 5)")
    _output.add_arguments(p, "pipeline_tables")
    p.add_argument(
        "--work",
        type=Path,
        default=REPO / "results/benchmark_pipeline_tables",
        help="CSVs and run results (git-ignored)",
    )
    p.add_argument("--heads", nargs="+", default=list(HEADS))
    p.add_argument("--max-epochs", type=int, default=200)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    splits = list(range(args.splits))
    args.work.mkdir(parents=True, exist_ok=True)
    sections, summary = [], []
    start = time.time()
    for name, (frame, target, source) in tables().items():
        csv = args.work / f"{name}.csv"
        frame.to_csv(csv, index=False)
        common = [
            "dataset=table",
            f"dataset.loader.path={csv}",
            f"dataset.loader.target={target}",
            "dataset.loader.features=all",
            "dataset.loader.dropna=true",
            f"dataset.name={name}",
            f"splits=[{','.join(map(str, splits))}]",
            f"trainer.max_epochs={args.max_epochs}",
            f"paths.results_root={args.work}",
            "progress=false",
            f"paths.cache_dir={args.work}/cache",
            "save_model=false",
        ]
        with hydra_context():
            data = load_data(compose(common))
        base = baselines(data, splits)
        ours = {}
        for head in args.heads:
            t0 = time.time()
            with hydra_context():
                cfg = compose(common + [f"head={head}"])
            key = pipeline.run(cfg).key
            ours[head] = [read_result(key.split_path(s)) for s in splits]
            print(
                f"{name}/{head}: {ms([r['metrics']['test_mse'] for r in ours[head]])} ({time.time() - t0:.0f} s)",
                flush=True,
            )
        mse = {h: np.mean([r["metrics"]["test_mse"] for r in rs]) for h, rs in ours.items()}
        lin_ratio = mse["linear"] / np.mean(base["LinearRegression"]) if "linear" in mse else float("nan")
        neighbour = {h: v for h, v in mse.items() if h != "linear"}
        best = min(neighbour, key=neighbour.get) if neighbour else None
        knn_ratio = neighbour[best] / np.mean(base["KNeighborsRegressor"]) if best else float("nan")
        cols = data.columns
        lines = [
            f"## {name}",
            "",
            f"{source}: {len(data)} rows, label `{target}`; numeric {', '.join(cols['numeric'])}"
            + (f"; categorical (one-hot) {', '.join(cols['categorical'])}" if cols["categorical"] else "")
            + ".",
            "",
            "| model | test MSE × 10³ | effective neighbours (median) | nonzero (median) | notes |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| LinearRegression | {ms(base['LinearRegression'])} | | | |",
            f"| KNeighborsRegressor | {ms(base['KNeighborsRegressor'])} | | | k per split: {', '.join(map(str, base['k']))} |",
        ]
        for head, rs in ours.items():
            sp = [r.get("sparsity") for r in rs]
            eff = np.median([s["effective"]["median"] for s in sp]) if all(sp) else None
            nz = np.median([s["nonzero"]["median"] for s in sp]) if all(sp) else None
            epochs = np.median([r["best_epoch"] + 1 for r in rs])
            lines.append(
                f"| {head} | {ms([r['metrics']['test_mse'] for r in rs])} | {'' if eff is None else f'{eff:.3g}'} | "
                f"{'' if nz is None else f'{nz:.3g}'} | best epoch (median) {epochs:g} |"
            )
        lines += [
            "",
            f"- linear head / LinearRegression = **{lin_ratio:.2f}** ({'within' if lin_ratio <= GOAL else 'NOT within'} {GOAL}×)",
            f"- best neighbour head ({best}) / k-NN = **{knn_ratio:.2f}** ({'within' if knn_ratio <= GOAL else 'NOT within'} {GOAL}×)",
            "",
        ]
        sections.append("\n".join(lines))
        summary.append(f"| {name} | {len(data)} | {lin_ratio:.2f} | {best} | {knn_ratio:.2f} |")
    text = "\n".join(
        [
            "# The heads on tables that packages ship",
            "",
            f"`python -m benchmarks.pipeline_tables --splits {args.splits}` ({time.time() - start:.0f} s on this machine's CPU). "
            "Each table runs through the pipeline (`dataset=table dataset.loader.features=all dataset.loader.dropna=true`), every "
            "head at its tuned settings (`configs/head/`), MLP hidden 200, Adam 1e-3, early stopping on validation MSE "
            f"(patience 10, at most {args.max_epochs} epochs). Splits: `paper_split` seeds {splits[0]}–{splits[-1]} (80/20, then 85/15, "
            "stratified on the label). Numeric columns are standardised and categorical ones one-hot encoded, fitted on each "
            "split's training rows; the scikit-learn baselines get the same features and splits. LinearRegression is fitted on "
            "the training split; KNeighborsRegressor too, with k ∈ 1…50 chosen by validation MSE. Test MSE × 10³ on the label "
            "min–max scaled to [0, 1] on the training split (mean ± std over splits). Effective neighbours: the median over "
            "splits of each split's median 1/Σw² over test queries (the `sparsity` block of the result files); nonzero: "
            "neighbours with a weight > 0.",
            "",
            f"Goals: linear head ≤ {GOAL}× LinearRegression; best neighbour head ≤ {GOAL}× tuned k-NN (ratios of mean test MSE).",
            "",
            "| table | rows | linear / LinearRegression | best neighbour head | best neighbour / k-NN |",
            "| --- | ---: | ---: | --- | ---: |",
            *summary,
            "",
            *sections,
        ]
    )
    _output.write(args, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
