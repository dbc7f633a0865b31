"""The markdown of ``benchmarks.tables``: per table the test-MSE and fit-CPU ratios to HistGradientBoosting, the
neighbourhoods the heads learn, and issue 29's goals, each met or its measured gap."""

from __future__ import annotations

import numpy as np

from benchmarks.tables import BASELINES, GOALS, HEADS, LARGE_TABLES, PAPER, SAMPLED, SMALL_ONLY


def _mean(found, table, model, key):
    cs = [c[key] for c in found.get((table, model), []) if c.get(key) is not None]
    return float(np.mean(cs)) if cs else None


def _ratio(found, table, model, key):
    a, b = _mean(found, table, model, key), _mean(found, table, "HGB", key)
    return None if a is None or not b else a / b


def _fmt(v, spec=".2f"):
    return "–" if v is None else format(v, spec)


def _grid(found, tables, models, key, title) -> list[str]:
    lines = [
        f"| table | fitted rows | HGB {title} | " + " | ".join(models) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(models),
    ]
    for t in tables:
        base = _mean(found, t, "HGB", key)
        rows = _mean(found, t, "HGB", "n_fit")
        ratios = [_fmt(_ratio(found, t, m, key)) for m in models]
        lines.append(f"| {t} | {_fmt(rows, ',.0f')} | {_fmt(base, '.4g')} | " + " | ".join(ratios) + " |")
    geo = []
    for m in models:
        rs = [_ratio(found, t, m, key) for t in tables]
        rs = [r for r in rs if r]
        geo.append(_fmt(float(np.exp(np.mean(np.log(rs)))) if rs else None))
    lines.append("| **geometric mean** | | | " + " | ".join(geo) + " |")
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
        f"- **Accuracy.** `SoftStepRegressor()` (its default head, `nca_i`) matches or beats HGB on "
        f"**{sum(r <= GOALS['mse'] for r in default.values())} of {len(default)}** tables (goal: half) and is within "
        f"5 % on **{sum(r <= GOALS['mse_all'] for r in default.values())} of {len(default)}** (goal: all): "
        + ", ".join(f"{t} {r:.2f}" for t, r in default.items())
        + f". The best of the six heads on each table (chosen on the test split, so optimistic): ≤ HGB on {wins}, "
        f"within 5 % on {within}: " + ", ".join(f"{t} {h} {r:.2f}" for t, (h, r) in best.items()) + ".",
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
    val = [c["validation_share"] for (t, m), cs in found.items() if m in heads for c in cs if "validation_share" in c]
    if val:
        lines.append(
            f"- **Where fit time goes**: validation (a full `predict` of the early-stopping rows each epoch) is "
            f"{np.median(val):.0%} of a head's training loop (median over cells; {np.percentile(val, 90):.0%} at "
            "the 90th percentile), training steps the rest."
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
    lines += _frontier(found, tables)
    return lines


def _frontier(found, tables) -> list[str]:
    """The default against the sampled reference set where they differ (below 4,096 fitted rows): accuracy and
    top-3 share, each head's geometric mean of MSE ratios and median share over those tables."""
    small = [t for t in tables if t not in LARGE_TABLES]
    parts = []
    for head in ("nca_i", "diffknn_i"):
        pair = []
        for model in (head, f"{head} (sampled reference)"):
            rs = [_ratio(found, t, model, "mse") for t in small]
            top = [c["top3"] for t in small for c in found.get((t, model), []) if "top3" in c]
            if not all(rs) or not top:
                break
            pair.append((float(np.exp(np.mean(np.log(rs)))), float(np.median(top))))
        if len(pair) == 2:
            (m0, s0), (m1, s1) = pair
            parts.append(f"{head}: MSE ratio {m0:.2f} → {m1:.2f}, top-3 share {s0:.2f} → {s1:.2f}")
    if not parts:
        return []
    return [
        f"- **Accuracy against sparsity** on the {len(small)} tables below 4,096 fitted rows, the default (the batch "
        "as the reference set) → the sampled reference set (geometric mean of MSE ratios to HGB; median top-3 "
        "share): " + "; ".join(parts) + "."
    ]


def render(found: dict, tables, models, splits: int) -> str:
    heads = [m for m in models if m in HEADS]
    models = [m for m in models if m != "HGB"]
    paper = ", ".join(f"{k}={v}" for k, v in PAPER.items())
    counts = sorted(
        {len(found.get((t, m), [])) for t in tables for m in models if not (m in SMALL_ONLY and t in LARGE_TABLES)}
    )
    cpu_h = sum(c["fit_cpu_s"] + c["predict_cpu_s"] for cs in found.values() for c in cs) / 3600
    return "\n".join(
        [
            "# SoftStepRegressor on ten tables, against gradient boosting",
            "",
            f"`python -m benchmarks.tables --splits {splits} --jobs 2 --write` (splits per cell: "
            f"{', '.join(map(str, counts))}; {cpu_h:.1f} CPU-hours of fitting and predicting in all, on this "
            "machine's CPU). One thread, process CPU time; ratios are "
            "of means over splits, to `HistGradientBoostingRegressor` (native categoricals) on the same splits. "
            "Heads at the estimator's defaults; “(paper settings)”: "
            + paper
            + "; “(sampled reference)”: "
            + ", ".join(f"{k}={v}" for k, v in SAMPLED.items())
            + f", measured below 4,096 fitted rows only (on {', '.join(LARGE_TABLES)} it is the default). "
            f"Baselines: {', '.join(BASELINES)}. How each number is measured: `benchmarks/tables.py`.",
            "",
            "## Goals (issue 29)",
            "",
            *_goals(found, tables, heads),
            "",
            "## What the gaps wait on",
            "",
            "- *Accuracy* where HGB wins (airfare, computers, diamonds): the MLP and k-NN lose there too; trees' "
            "axis-aligned splits on a few strong columns suit these labels, and no head setting measured here closes "
            "the gap (see the per-head columns).",
            "- *Fit time*: the training steps (validation is the share above). A step computes the B × (B + 1,024) "
            "similarity matrix and its step through autograd, on one thread; from 4,096 rows the sampled reference "
            "set costs more per epoch than the paper's batch-only steps (compare the “(paper settings)” columns). "
            "HGB's fit is 0.1–0.2 s, so 20× leaves 2–4 s, a few hundred steps.",
            "- *Predict*: every query meets every reference row; NCA + SoftStep passes over the reference set twice "
            "(the row min–max of Algorithm 2 line 13, then the weights) and takes a power per entry.",
            "- *Sparsity*: SoftStep's zeros fall where the learned temperature has left no mass, so it removes none and "
            "its parameters barely move; the top-3 share is set by the reference set the head trained against "
            "(the frontier line above).",
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
