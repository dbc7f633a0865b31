"""The markdown of ``benchmarks.tables``: per table the test-MSE and fit-CPU ratios to HistGradientBoosting, the
neighbourhoods the heads learn, and issue 29's goals, each met or its measured gap."""

from __future__ import annotations

import numpy as np

from benchmarks.tables import BASELINES, GOALS, HEADS, PAPER


def _mean(found, table, model, key):
    cs = [c[key] for c in found.get((table, model), []) if c.get(key) is not None]
    return float(np.mean(cs)) if cs else None


def _ratio(found, table, model, key):
    a, b = _mean(found, table, model, key), _mean(found, table, "HGB", key)
    return None if a is None or not b else a / b


def _fmt(v, spec=".2f"):
    return "–" if v is None else format(v, spec)


def _grid(found, tables, models, key, title) -> list[str]:
    lines = [f"| table | HGB {title} | " + " | ".join(models) + " |", "| --- | ---: |" + " ---: |" * len(models)]
    for t in tables:
        base = _mean(found, t, "HGB", key)
        ratios = [_fmt(_ratio(found, t, m, key)) for m in models]
        lines.append(f"| {t} | {_fmt(base, '.4g')} | " + " | ".join(ratios) + " |")
    geo = []
    for m in models:
        rs = [_ratio(found, t, m, key) for t in tables]
        rs = [r for r in rs if r]
        geo.append(_fmt(float(np.exp(np.mean(np.log(rs)))) if rs else None))
    lines.append("| **geometric mean** | | " + " | ".join(geo) + " |")
    return lines


def _neighbourhoods(found, tables, heads) -> list[str]:
    lines = [
        "| table | head | top-3 share | 1/Σw² | zeroed | mass removed | learned |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for t in tables:
        for h in heads:
            cs = found.get((t, h), [])
            if not cs or "top3" not in cs[0]:
                continue
            keys = ("top3", "effective", "zero_fraction", "removed_mass", "k", "l", "u", "t")
            med = {k: float(np.median([c[k] for c in cs if k in c])) for k in keys if k in cs[0]}
            learned = (
                f"k = {med['k']:.0f} of {cs[0]['n_fit']} ({med['k'] / cs[0]['n_fit']:.2f} N)"
                if "k" in med
                else (f"l {med['l']:.2f}, u {med['u']:.2f}, t {med['t']:.2f}" if "t" in med else "")
            )
            lines.append(
                f"| {t} | {h} | {med['top3']:.3f} | {med['effective']:.0f} | {med.get('zero_fraction', 0):.2f} | "
                f"{_fmt(med.get('removed_mass'))} | {learned} |"
            )
    return lines


def _goals(found, tables, heads) -> list[str]:
    best = {}
    for t in tables:
        rs = {h: _ratio(found, t, h, "mse") for h in heads}
        rs = {h: r for h, r in rs.items() if r is not None}
        if rs:
            best[t] = min(rs.items(), key=lambda kv: kv[1])
    wins = sum(r <= GOALS["mse"] for _, r in best.values())
    within = sum(r <= GOALS["mse_all"] for _, r in best.values())
    default = {t: _ratio(found, t, "nca_i", "mse") for t in tables}
    default = {t: r for t, r in default.items() if r is not None}
    lines = [
        f"- **Accuracy.** The best SoftStep-estimator head matches or beats HGB on **{wins} of {len(best)}** tables "
        f"(goal: half) and is within 5 % on **{within} of {len(best)}** (goal: all); per table the best head and its "
        "ratio: " + ", ".join(f"{t} {h} {r:.2f}" for t, (h, r) in best.items()) + ". The default head (`nca_i`) alone: "
        f"≤ HGB on {sum(r <= 1 for r in default.values())}, within 5 % on {sum(r <= 1.05 for r in default.values())}.",
    ]
    if ("diamonds", "HGB") in found:
        fits = {h: _ratio(found, "diamonds", h, "fit_cpu_s") for h in heads}
        pred = {h: _mean(found, "diamonds", h, "predict_cpu_s") for h in heads}
        lines.append(
            "- **Fit time on 20,000 rows** (diamonds, 16,000 fitted): HGB "
            f"{_mean(found, 'diamonds', 'HGB', 'fit_cpu_s'):.2f} s; the heads "
            + ", ".join(f"{h} {r:.0f}×" for h, r in fits.items() if r)
            + f" (goal ≤ {GOALS['fit']:.0f}×). **Predicting 4,000 rows**: "
            + ", ".join(f"{h} {v:.2f} s" for h, v in pred.items() if v is not None)
            + f" (goal < {GOALS['predict_s']:.0f} s)."
        )
    shares = {
        h: [np.median([c["top3"] for c in found.get((t, h), []) if "top3" in c] or [np.nan]) for t in tables]
        for h in heads
    }
    removed = {
        h: [
            np.median([c["removed_mass"] for c in found.get((t, h), []) if "removed_mass" in c] or [np.nan])
            for t in tables
        ]
        for h in heads
    }
    lines.append(
        "- **Sparsity**, median over tables of each table's median top-3 share (goal ≥ 0.5) / mass removed "
        "(goal: most): "
        + ", ".join(
            f"{h} {np.nanmedian(shares[h]):.2f} / {np.nanmedian(removed[h]):.2f}"
            for h in heads
            if not np.isnan(shares[h]).all()
        )
        + "."
    )
    return lines


def render(found: dict, tables, models, splits: int, seconds: float) -> str:
    heads = [m for m in models if m in HEADS]
    models = [m for m in models if m != "HGB"]
    paper = ", ".join(f"{k}={v}" for k, v in PAPER.items())
    counts = sorted({len(found.get((t, m), [])) for t in tables for m in models})
    return "\n".join(
        [
            "# SoftStepRegressor on ten tables, against gradient boosting",
            "",
            f"`python -m benchmarks.tables --splits {splits}` ({seconds / 60:.0f} min wall for what this call "
            f"measured; splits per cell: {', '.join(map(str, counts))}). One thread, process CPU time; ratios are "
            "of means over splits, to `HistGradientBoostingRegressor` (native categoricals) on the same splits. "
            "Heads at the estimator's defaults; “(paper settings)”: " + paper + ". "
            f"Baselines: {', '.join(BASELINES)}. How each number is measured: `benchmarks/tables.py`.",
            "",
            "## Goals (issue 29)",
            "",
            *_goals(found, tables, heads),
            "",
            "## Test MSE, ratio to HGB (HGB: its test MSE in the label's units)",
            "",
            *_grid(found, tables, models, "mse", "MSE"),
            "",
            "## Fit CPU time, ratio to HGB (HGB: seconds)",
            "",
            *_grid(found, tables, models, "fit_cpu_s", "fit s"),
            "",
            "## The neighbourhoods (medians over up to 500 test rows, then over splits)",
            "",
            "Every fitted row is the reference set. top-3 share: the weight of the three largest; 1/Σw²: the "
            "effective number of neighbours; zeroed: the share of rows with weight exactly 0; mass removed: the "
            "softmax mass SoftStep takes away (0 for plain NCA).",
            "",
            *_neighbourhoods(found, tables, [m for m in models if m not in BASELINES]),
            "",
        ]
    )
