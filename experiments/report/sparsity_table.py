"""results/sparsity.md from result files: how sparse the similarity each neighbour head learned is, as the paper
means it (its title: SoftStep learns sparse similarity).

Per run (one results root, one head): test MSE × 10³ (mean ± sample std over splits) and, from each split's
``sparsity`` block (:mod:`experiments.protocol.sparsity`, test queries against the training split), the median over
queries, averaged over splits, of: the fraction of exact zero weights, the softmax mass the step removes, the
effective neighbourhood 1/Σw², and the learned l, u, t (NCA + SoftStep) or k (DiffKNN). Files written before a block
had ``zero_fraction`` give it from ``nonzero`` (1 − nonzero/N, the same median); ``removed_mass`` they lack.
"""

from __future__ import annotations

from statistics import mean, stdev

from experiments.report.names import HEADS

#: Columns of the sparsity table: (block key, header, format).
COLUMNS = (
    ("zero_fraction", "exact zeros", "{:.1%}"),
    ("removed_mass", "mass removed", "{:.3g}"),
    ("effective", "1/Σw²", "{:.0f}"),
    ("l", "l", "{:.2f}"),
    ("u", "u", "{:.2f}"),
    ("t", "t", "{:.2f}"),
    ("k", "k", "{:.0f}"),
)


def median_of(block: dict, key: str) -> float | None:
    """The median over queries of ``key`` in one split's sparsity block (zero_fraction derived from nonzero)."""
    if key in block:
        return float(block[key]["median"])
    if key == "zero_fraction" and "nonzero" in block and block.get("n_reference"):
        return 1.0 - float(block["nonzero"]["median"]) / float(block["n_reference"])
    return None


def summarise(records: list[dict]) -> dict:
    """Test MSE × 10³ and the per-split sparsity medians of one run's records, averaged over splits."""
    mse = [r["metrics"]["test_mse_x1e3"] for r in records]
    out = {"n": len(records), "mse": mean(mse) if mse else None, "mse_sd": stdev(mse) if len(mse) > 1 else None}
    for key, _, _ in COLUMNS:
        values = [v for r in records if (v := median_of(r.get("sparsity") or {}, key)) is not None]
        out[key] = mean(values) if values else None
    return out


def cell(value, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def table(rows: list[tuple[str, str, dict]]) -> list[str]:
    """Markdown rows of (setting, head, summary)."""
    lines = [
        "| setting | head | test MSE × 10³ (splits) | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "| --- | --- | --- | " + " | ".join("---:" for _ in COLUMNS) + " |",
    ]
    for setting, head, s in rows:
        mse = "—" if s["mse"] is None else f"{s['mse']:.1f}" + ("" if s["mse_sd"] is None else f" ± {s['mse_sd']:.1f}")
        lines.append(
            f"| {setting} | {head} | {mse} ({s['n']}) | "
            + " | ".join(cell(s[key], fmt) for key, _, fmt in COLUMNS)
            + " |"
        )
    return lines


def by_head(results: list[dict], heads=HEADS, splits=None) -> dict[str, list[dict]]:
    """The records of each neighbour head (one run per head and root: the run with most splits), optionally only
    ``splits``."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        if r["head"] in heads and r["head"] != "linear" and (splits is None or r["split"] in splits):
            runs.setdefault((r["head"], r["run_id"]), []).append(r)
    out: dict[str, list[dict]] = {}
    for (head, _), recs in sorted(runs.items(), key=lambda kv: -len(kv[1])):
        out.setdefault(head, sorted(recs, key=lambda r: r["split"]))
    return {h: out[h] for h in heads if h in out}
