"""Figure 3 from real runs: the six heads and a k-NN reference on the synthetic targets, then plot.

    python scripts/run_figure3.py                       # every variant (about an hour on 2 cores), then the report
    python scripts/run_figure3.py --variant raw         # one variant; run the others in parallel processes
    python scripts/run_figure3.py --report              # only (re)write figure3.{md,csv} from the variants' files
    python scripts/run_figure3.py --quick               # a smoke run of the same code (small data, 3 epochs)

Variants (``experiments/report/figure3.py``): ``raw``, the heads on the raw coordinates (the paper's claim: the
main result); ``raw_sample``, the same with ``trainer.reference=sample`` (each batch's reference set adds
30 % of the training split); ``mlp``, ours: the 200-wide ReLU MLP before the head. Each variant writes
results/figure3_<variant>.json (test MSE) and results/figure3_surfaces_<variant>.npz, and
results/figures/figure3_<variant>.{png,pdf}; the report is results/figure3.md with results/figure3.csv
(setup,target,head,test_mse_x1e3: raw and mlp, the batch reference set),
results/figure3_reference_sample.csv (raw, trainer.reference=sample) and results/figure3_scale_init.csv
(raw, β from the older `std` start, batch and sample reference: variants raw_std and raw_sample_std).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from experiments.report import figure3
from experiments.report.surfaces import plot_figure3, save_surfaces, write_figure3_table

ROOT = Path(__file__).resolve().parents[1]
#: variant → (setup, extra overrides, heading)
VARIANTS = {
    "raw": ("raw", (), "Raw coordinates (the main result): no MLP, the heads on (x₁, x₂)"),
    "raw_sample": (
        "raw",
        ("trainer.reference=sample",),
        "Raw coordinates, `trainer.reference=sample` (the batch plus 30 % of the training split)",
    ),
    "mlp": ("mlp", (), "Ours: the 200-wide ReLU MLP before the head"),
    "raw_std": (
        "raw",
        (),
        "Raw coordinates, β from the `std` start (`head.module.scale_init=std`: unit-std rows "
        "on the first batch instead of perplexity 5)",
    ),
    "raw_sample_std": (
        "raw",
        ("trainer.reference=sample",),
        "Raw coordinates, `trainer.reference=sample`, `head.module.scale_init=std`",
    ),
    "authors": (
        "raw",
        ("experiment=figure3_authors",),
        "As the authors' notebook ran it (`experiment=figure3_authors`: n = 1,470 (about 1,000 in training), noise "
        "0.1, l2, β = 1, SoftStep drawn as nona_anon draws it, Adam 1e-3, 800 epochs, no early stopping)",
    ),
}
#: variant → (n, targets) where not the default (2000, every target)
DATA = {"authors": (1470, ("checkerboard", "sinusoidal"))}
#: variant → overrides for the neighbour heads only (the linear head has no β)
NEIGHBOUR_OVERRIDES = {"raw_std": ("head.module.scale_init=std",), "raw_sample_std": ("head.module.scale_init=std",)}
#: where each variant's rows go (figure3.csv holds the paper's two setups, raw and mlp)
CSV_OF = {
    "raw_sample": "figure3_reference_sample.csv",
    "raw_std": "figure3_scale_init.csv",
    "raw_sample_std": "figure3_scale_init.csv",
    "authors": "figure3_authors.csv",
}


def run_variant(variant: str, results_root: str, out: Path, quick: bool) -> None:
    setup, overrides, _ = VARIANTS[variant]
    n, targets = DATA.get(variant, (2000, None))
    kw = (
        dict(n=200, grid_size=20, overrides=(*overrides, "trainer.max_epochs=3"))
        if quick
        else dict(n=n, overrides=overrides)
    )
    if targets:
        kw["targets"] = targets
    surfaces, mse = figure3.run(
        f"{results_root}/{variant}", setup=setup, neighbour_overrides=NEIGHBOUR_OVERRIDES.get(variant, ()), **kw
    )
    save_surfaces(surfaces, out / f"figure3_surfaces_{variant}.npz")
    plot_figure3(surfaces, out / "figures", mse=mse, mse_label="test MSE×10³", stem=f"figure3_{variant}")
    noise = 0.1 if "experiment=figure3_authors" in overrides else 0.0  # configs/experiment/figure3_authors.yaml
    (out / f"figure3_{variant}.json").write_text(
        json.dumps({"n": kw.get("n", 2000), "noise": noise, "mse": mse}, indent=1) + "\n"
    )


def write_report(out: Path) -> str:
    sections, rows = [], {"figure3.csv": [], **{name: [] for name in CSV_OF.values()}}
    for variant, (setup, _, heading) in VARIANTS.items():
        path = out / f"figure3_{variant}.json"
        if not path.exists():
            continue
        saved = json.loads(path.read_text())
        noise = saved.get("noise", 0.0)
        mse, variance = saved["mse"], {t: figure3.label_variance_x1e3(t, saved["n"], noise) for t in saved["mse"]}
        scratch = write_figure3_table(mse, out / f".figure3_{variant}.md")
        table = scratch.read_text().split("\n", 2)[2].split("\n\n")[0]
        scratch.unlink()
        sections.append(f"## {heading}\n\n{table}\n\n" + "\n".join(figure3.verdict(mse, variance)) + "\n")
        extra = (
            ["sample" if "trainer.reference=sample" in VARIANTS[variant][1] else "batch", "std"]
            if CSV_OF.get(variant) == "figure3_scale_init.csv"
            else []
        )
        rows[CSV_OF.get(variant, "figure3.csv")] += [
            (setup, t, h, v, *extra) for t, row in mse.items() for h, v in row.items()
        ]
    for name, data in rows.items():
        if not data:
            continue
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(
            ["setup", "target", "head", "test_mse_x1e3"]
            + (["reference", "scale_init"] if name == "figure3_scale_init.csv" else [])
        )
        writer.writerows((s, t, h, format(v, ".6g"), *rest) for s, t, h, v, *rest in data)
        (out / name).write_text(buf.getvalue())
    text = (
        "# Figure 3: synthetic targets\n\n"
        "Test MSE × 10³ (labels min–max scaled on the training split; bold: lowest of the row) of split 0, "
        "n = 2000 points uniform on [−1, 1]², each head with its tuned settings (`protocol=tuned`), trained "
        "through the pipeline by `python scripts/run_figure3.py`; `knn` is scikit-learn's KNeighborsRegressor "
        "on the same split and coordinates, k (1–50) chosen on the validation split. The paper's claim, target "
        f"by target: every neighbour head below the linear head, and none at the mean (above {figure3.AT_MEAN:.0%} "
        "of the label variance, which is the mean predictor's score). The data are in `results/figure3.csv` "
        "and `results/figure3_reference_sample.csv` (and, for β's older `std` start, "
        "`results/figure3_scale_init.csv`).\n\n" + "\n".join(sections)
    )
    (out / "figure3.md").write_text(text)
    return text


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results-root", default=str(ROOT / "results" / "figure3"))
    ap.add_argument("--out", default=str(ROOT / "results"))
    ap.add_argument("--variant", choices=list(VARIANTS), action="append", help="run only these variants")
    ap.add_argument("--report", action="store_true", help="only write the report from the variants' files")
    ap.add_argument("--quick", action="store_true", help="small data and 3 epochs (a smoke run, not the figure)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    if not args.report:
        for variant in args.variant or VARIANTS:
            run_variant(variant, args.results_root, out, args.quick)
    print(write_report(out))


if __name__ == "__main__":
    main()
