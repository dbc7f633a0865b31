"""The paper's tables from result files: Table 1, Table 1 beside the paper, and appendix A's tuning tables.

Everything here reads the dicts that :func:`experiments.results.read_results` returns, never the
trainer. Definitions used in every table:

- **Cell value**: ``metrics.test_mse_x1e3`` (test MSE on labels min–max scaled on the training
  split, × 10³: the paper's unit), as *mean ± std over the splits* of one run, where std is the
  **sample** standard deviation (ddof = 1). A cell of one split has no std and shows the mean only.
- **Numbers** are printed with 3 significant digits, trailing zeros kept (``0.360``, ``303``).
- **(n=k)** follows a value whose number of splits k differs from the expected one (10 for
  Table 1, 3 for the tuning tables).
- **Bold**: the lowest mean of a Table 1 row (of a tuning table), ties all bold.
- **Significance** (Table 1): each neighbour head is compared with the linear head of the same
  dataset over the splits both have, by a two-sided paired Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon`` with its defaults: exact null distribution for n ≤ 50 pairs without
  ties or zero differences). ``†`` marks p < 0.05 with a lower mean than linear over those
  splits, ``‡`` p < 0.05 with a higher one. With fewer than :data:`MIN_PAIRS` pairs no test is
  made (p_value empty, no mark): below 6 pairs even a unanimous sign gives p ≥ 2/2⁵ = 0.0625.
- **One configuration per cell**: all files of a Table 1 cell (dataset, head) must share one
  ``run_id``, and a split may appear once; a tuning cell (head, similarity, embed_dim,
  batch_size) likewise, and the runs of one head in a tuning table may differ in nothing but
  those hparams. Anything else raises :class:`~experiments.results.ResultError` naming two files.
"""
from __future__ import annotations

import csv
import io
import math
import statistics
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from experiments.results import ResultError

HEADS = ("linear", "nca", "nca_g", "nca_i", "diffknn_g", "diffknn_i")
NEIGHBOUR_HEADS = HEADS[1:]
HEAD_LABELS = {
    "linear": "Linear", "nca": "NCA", "nca_g": "NCA g", "nca_i": "NCA i",
    "diffknn_g": "DiffKNN g", "diffknn_i": "DiffKNN i",
}
#: Table 1's row order; other datasets follow alphabetically.
DATASET_ORDER = ("rsna", "medsegbench", "adresso", "coughvid", "nosemic", "udacity", "pitchfork", "houses", "books", "austin")
DATASET_LABELS = {
    "rsna": "RSNA", "medsegbench": "MedSegBench", "adresso": "ADReSSo", "coughvid": "CoughVid",
    "nosemic": "NoseMic", "udacity": "Udacity", "pitchfork": "Pitchfork", "houses": "Houses",
    "books": "Books", "austin": "Austin",
}
SIMILARITY_ORDER = ("l2", "cos", "rbf", "dot")
METRIC = "test_mse_x1e3"
TABLE1_SPLITS = 10
TUNING_SPLITS = 3
TUNING_KEYS = ("similarity", "embed_dim", "batch_size")
ALPHA = 0.05
#: The fewest paired splits for which the two-sided exact Wilcoxon test can reach p < 0.05 (2/2⁶).
MIN_PAIRS = 6
BETTER, WORSE = "†", "‡"
MISSING = "–"

NOTES = (
    "Test MSE × 10³ (labels min–max scaled on the training split): mean ± sample standard deviation "
    "(ddof = 1) over the splits of one run; 3 significant digits; (n=k) when a cell has k ≠ {expected} splits. "
    "Bold: lowest mean of the row. "
    f"{BETTER} / {WORSE}: lower / higher than the linear head with p < {ALPHA} "
    "(two-sided paired Wilcoxon signed-rank test over the splits both heads share; "
    f"no test with fewer than {MIN_PAIRS} pairs). {MISSING}: no results."
)


# ----------------------------------------------------------------------------- formatting

def sig(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, trailing zeros kept: 0.36 → ``0.360``, 303.4 → ``303``."""
    if x is None or not math.isfinite(x):
        return "nan"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = digits - 1 - mag
    text = _fixed(x, decimals)
    if abs(float(text)) >= 10 ** (mag + 1):  # rounding carried into the next digit: 9.996 → 10.0
        text = _fixed(x, decimals - 1)
    return text


def _fixed(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}" if decimals >= 0 else str(int(round(x, decimals)))


def mean_std(mean: float, std: float) -> str:
    """``mean ± std`` (or the mean alone when std is undefined, i.e. one split)."""
    return sig(mean) if math.isnan(std) else f"{sig(mean)} ± {sig(std)}"


def _num(x: float | None) -> str:
    """A number for CSV: 12 significant digits, empty for missing."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, ".12g")


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def dataset_sort_key(dataset: str) -> tuple:
    return (DATASET_ORDER.index(dataset), "") if dataset in DATASET_ORDER else (len(DATASET_ORDER), dataset)


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text (dataset and head names)."""
    text = text.replace("\\", "\0")
    for ch in "&%$#_{}":
        text = text.replace(ch, "\\" + ch)
    return text.replace("\0", r"\textbackslash{}")


def head_sort_key(head: str) -> tuple:
    return (HEADS.index(head), "") if head in HEADS else (len(HEADS), head)


# ----------------------------------------------------------------------------- cells

@dataclass(frozen=True)
class Cell:
    """One Table 1 cell: a (dataset, head) and the per-split values of its one run."""

    dataset: str
    head: str
    run_id: str
    values: dict  # split -> metric value
    p_value: float | None = None  # vs linear; None: linear itself, or too few pairs
    n_pairs: int = 0
    lower_than_linear: bool | None = None
    best: bool = False

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values())

    @property
    def std(self) -> float:
        return statistics.stdev(self.values.values()) if self.n > 1 else math.nan

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA

    @property
    def marker(self) -> str:
        if not self.significant:
            return ""
        return BETTER if self.lower_than_linear else WORSE


def _metric(result: dict) -> float:
    return float(result["metrics"][METRIC])


def _one_configuration(files: list[dict], what: str, hint: str) -> dict[int, dict]:
    """Check that ``files`` (one cell) share one run_id and hold each split once; return split -> file."""
    first = files[0]
    for r in files[1:]:
        if r["run_id"] != first["run_id"]:
            raise ResultError(
                f"{what} mixes two configurations: {first['_path']} (run_id {first['run_id']}) and "
                f"{r['_path']} (run_id {r['run_id']}); {hint}"
            )
    by_split: dict[int, dict] = {}
    for r in files:
        if r["split"] in by_split:
            raise ResultError(
                f"{what} holds split {r['split']} twice: {by_split[r['split']]['_path']} and {r['_path']}; "
                "move one aside"
            )
        by_split[r["split"]] = r
    return by_split


def _group(results: Iterable[dict], key) -> dict:
    groups: dict = defaultdict(list)
    for r in results:
        groups[key(r)].append(r)
    return groups


def paired_wilcoxon(a: dict[int, float], b: dict[int, float]) -> tuple[float | None, int, bool | None]:
    """Two-sided paired Wilcoxon signed-rank test of ``a`` vs ``b`` over their shared splits.

    Returns (p_value, n_pairs, a_lower): p_value is None with fewer than :data:`MIN_PAIRS`
    pairs; all-zero differences give p = 1. ``a_lower`` says whether a's mean over the shared
    splits is below b's.
    """
    shared = sorted(set(a) & set(b))
    if len(shared) < MIN_PAIRS:
        return None, len(shared), None
    x = [a[s] for s in shared]
    y = [b[s] for s in shared]
    lower = statistics.fmean(x) < statistics.fmean(y)
    if all(u == v for u, v in zip(x, y)):
        return 1.0, len(shared), lower
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when ties or zeros force the normal approximation
        p = float(wilcoxon(x, y).pvalue)
    return p, len(shared), lower


MIXED_HINT = (
    "keep one: move the other's run folder aside, pass --run-id RUN_ID to pick one, or "
    "--hparams-from results/paper/tuned_hparams.csv to keep each head's tuned configuration"
)


def select_runs(results: list[dict], run_ids: Iterable[str] = (), hparams_by_head: dict | None = None) -> list[dict]:
    """Filter results before Table 1.

    ``run_ids``: in each (dataset, head) cell holding one of these run_ids, keep only those
    (cells holding none are kept whole). ``hparams_by_head``: head -> {hparam: value}; keep a
    result only if its hparams match its head's entry (heads without an entry are kept; an empty
    value matches anything).
    """
    run_ids = set(run_ids)
    out = results
    if hparams_by_head:
        def matches(r: dict) -> bool:
            want = hparams_by_head.get(r["head"])
            if not want:
                return True
            return all(v in ("", None) or str(r["hparams"].get(k)) == str(v) for k, v in want.items())
        out = [r for r in out if matches(r)]
    if run_ids:
        cells = _group(out, lambda r: (r["dataset"], r["head"]))
        keep = []
        for files in cells.values():
            chosen = [r for r in files if r["run_id"] in run_ids]
            keep.extend(chosen or files)
        out = keep
    return out


def read_hparams_csv(path: str | Path) -> dict[str, dict]:
    """``head,similarity,embed_dim,batch_size`` rows (results/paper/tuned_hparams.csv) → head -> hparams."""
    with open(path, newline="") as f:
        return {row.pop("head"): row for row in csv.DictReader(f)}


def table1_cells(results: list[dict]) -> list[Cell]:
    """Table 1's cells, in row (dataset) then column (head) order, with best and significance filled in."""
    raw: dict[tuple[str, str], Cell] = {}
    for (dataset, head), files in _group(results, lambda r: (r["dataset"], r["head"])).items():
        by_split = _one_configuration(files, f"Table 1 cell ({dataset}, {head})", MIXED_HINT)
        raw[dataset, head] = Cell(dataset, head, files[0]["run_id"], {s: _metric(r) for s, r in sorted(by_split.items())})

    cells = []
    for dataset in sorted({d for d, _ in raw}, key=dataset_sort_key):
        row = [raw[dataset, h] for h in _head_order({h for d, h in raw if d == dataset})]
        best = min(c.mean for c in row)
        linear = raw.get((dataset, "linear"))
        for c in row:
            p, n_pairs, lower = (None, 0, None)
            if linear is not None and c.head != "linear":
                p, n_pairs, lower = paired_wilcoxon(c.values, linear.values)
            cells.append(Cell(c.dataset, c.head, c.run_id, c.values, p, n_pairs, lower, c.mean == best))
    return cells


def _head_order(heads: Iterable[str]) -> list[str]:
    heads = set(heads)
    return [h for h in HEADS if h in heads] + sorted(heads - set(HEADS))


def _columns(cells: list[Cell]) -> list[str]:
    return _head_order(set(HEADS) | {c.head for c in cells})


def _n_note(n: int, expected: int) -> str:
    return "" if n == expected else f" (n={n})"


def _cell_md(c: Cell | None, expected: int = TABLE1_SPLITS) -> str:
    if c is None:
        return MISSING
    text = mean_std(c.mean, c.std)
    if c.best:
        text = f"**{text}**"
    return text + c.marker + _n_note(c.n, expected)


def _cell_tex(c: Cell | None, expected: int = TABLE1_SPLITS) -> str:
    if c is None:
        return "--"
    bold = (lambda s: rf"\textbf{{{s}}}") if c.best else (lambda s: s)
    text = bold(sig(c.mean)) if math.isnan(c.std) else rf"{bold(sig(c.mean))} $\pm$ {bold(sig(c.std))}"
    marker = {BETTER: r"$^{\dagger}$", WORSE: r"$^{\ddagger}$", "": ""}[c.marker]
    return text + marker + _n_note(c.n, expected)


def _md_table(header: list[str], rows: list[list[str]], align: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _by_row(cells: list[Cell]) -> tuple[list[str], dict]:
    datasets = sorted({c.dataset for c in cells}, key=dataset_sort_key)
    return datasets, {(c.dataset, c.head): c for c in cells}


def table1_markdown(cells: list[Cell]) -> str:
    datasets, at = _by_row(cells)
    heads = _columns(cells)
    rows = [[dataset_label(d)] + [_cell_md(at.get((d, h))) for h in heads] for d in datasets]
    table = _md_table(["Dataset"] + [HEAD_LABELS.get(h, h) for h in heads], rows, ["---"] + ["---:"] * len(heads))
    return "# Table 1: test MSE × 10³\n\n" + table + "\n" + NOTES.format(expected=TABLE1_SPLITS) + "\n"


def table1_latex(cells: list[Cell]) -> str:
    datasets, at = _by_row(cells)
    heads = _columns(cells)
    notes = NOTES.format(expected=TABLE1_SPLITS).replace("×", r"$\times$").replace("10³", r"10$^3$")
    notes = notes.replace("≠", r"$\neq$").replace("±", r"$\pm$").replace(BETTER, r"$^{\dagger}$")
    notes = notes.replace(WORSE, r"$^{\ddagger}$").replace("–", "--").replace("<", "$<$")
    lines = [
        "% Generated by scripts/make_tables.py from result files; do not edit by hand.",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{l" + "c" * len(heads) + "}",
        r"\toprule",
        "Dataset & " + " & ".join(latex_escape(HEAD_LABELS.get(h, h)) for h in heads) + r" \\",
        r"\midrule",
    ]
    for d in datasets:
        lines.append(latex_escape(dataset_label(d)) + " & " + " & ".join(_cell_tex(at.get((d, h))) for h in heads) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{notes}}}", r"\label{tab:table1}", r"\end{table}"]
    return "\n".join(lines) + "\n"


TABLE1_CSV_COLUMNS = ("dataset", "head", "n", "mean", "std", "p_value", "significant", "best", "n_pairs", "run_id")


def table1_csv(cells: list[Cell]) -> str:
    """One row per cell: mean and std (ddof=1) of test MSE × 10³, p_value vs linear (empty: no test)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(TABLE1_CSV_COLUMNS)
    for c in cells:
        w.writerow([c.dataset, c.head, c.n, _num(c.mean), _num(c.std), _num(c.p_value), c.significant, c.best,
                    c.n_pairs if c.head != "linear" else "", c.run_id])
    return buf.getvalue()


def write_table1(cells: list[Cell], out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, render in (("md", table1_markdown), ("tex", table1_latex), ("csv", table1_csv)):
        path = out_dir / f"table1.{ext}"
        path.write_text(render(cells))
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- beside the paper

def read_paper_table1(path: str | Path) -> dict[tuple[str, str], tuple[float, float]]:
    """results/paper/table1.csv (dataset,head,mse_x1e3_mean,mse_x1e3_std) → (dataset, head) -> (mean, std)."""
    with open(path, newline="") as f:
        return {(r["dataset"], r["head"]): (float(r["mse_x1e3_mean"]), float(r["mse_x1e3_std"])) for r in csv.DictReader(f)}


def compare_with_paper(cells: list[Cell], paper: dict) -> list[dict]:
    """Every (dataset, head) in ours or the paper's: our n, mean, std, the paper's mean, std, and ours/paper."""
    ours = {(c.dataset, c.head): c for c in cells}
    keys = sorted(set(ours) | set(paper), key=lambda k: (dataset_sort_key(k[0]), head_sort_key(k[1])))
    rows = []
    for d, h in keys:
        c, p = ours.get((d, h)), paper.get((d, h))
        rows.append({
            "dataset": d, "head": h,
            "n": c.n if c else None, "mean": c.mean if c else None, "std": c.std if c else None,
            "paper_mean": p[0] if p else None, "paper_std": p[1] if p else None,
            "ratio": c.mean / p[0] if c and p and p[0] else None,
        })
    return rows


def comparison_markdown(rows: list[dict]) -> str:
    body = []
    for r in rows:
        ours = MISSING if r["mean"] is None else mean_std(r["mean"], r["std"]) + _n_note(r["n"], TABLE1_SPLITS)
        paper = MISSING if r["paper_mean"] is None else mean_std(r["paper_mean"], r["paper_std"])
        ratio = MISSING if r["ratio"] is None else sig(r["ratio"])
        body.append([dataset_label(r["dataset"]), HEAD_LABELS.get(r["head"], r["head"]), ours, paper, ratio])
    table = _md_table(["Dataset", "Head", "ours", "paper", "ours / paper"], body, ["---", "---", "---:", "---:", "---:"])
    return ("# Table 1: ours beside the paper (test MSE × 10³)\n\n" + table +
            "\nours: mean ± sample std (ddof = 1) over our splits; paper: its Table 1. "
            "ours / paper: ratio of the means (< 1: lower MSE than the paper).\n")


def comparison_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ("dataset", "head", "n", "mean", "std", "paper_mean", "paper_std", "ratio")
    w.writerow(cols)
    for r in rows:
        w.writerow([r["dataset"], r["head"], "" if r["n"] is None else r["n"]] + [_num(r[k]) for k in cols[3:]])
    return buf.getvalue()


def write_comparison(rows: list[dict], out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, cs = out_dir / "table1_vs_paper.md", out_dir / "table1_vs_paper.csv"
    md.write_text(comparison_markdown(rows))
    cs.write_text(comparison_csv(rows))
    return [md, cs]


# ----------------------------------------------------------------------------- tuning (appendix A)

@dataclass(frozen=True)
class TuningCell:
    """One grid point of the appendix-A search: (head, similarity, embed_dim, batch_size)."""

    head: str
    similarity: str | None  # None for the linear head
    embed_dim: int
    batch_size: int
    run_id: str
    values: dict  # split -> metric value
    best: bool = False

    n = Cell.n
    mean = Cell.mean
    std = Cell.std
    marker = ""

    @property
    def label(self) -> str:
        """The paper's tick label: ``(rbf, 100, 32)``; ``(25, 32)`` for the linear head."""
        parts = ([self.similarity] if self.similarity else []) + [str(self.embed_dim), str(self.batch_size)]
        return "(" + ", ".join(parts) + ")"


def _tuning_key(r: dict) -> tuple:
    hp = r["hparams"]
    for k in ("embed_dim", "batch_size") + (() if r["head"] == "linear" else ("similarity",)):
        if hp.get(k) is None:
            raise ResultError(f"{r['_path']}: hparams.{k} is missing; a tuning result needs {', '.join(TUNING_KEYS)}")
    sim = None if r["head"] == "linear" else str(hp["similarity"])
    return r["head"], sim, int(hp["embed_dim"]), int(hp["batch_size"])


def tuning_cells(results: list[dict], dataset: str = "rsna") -> list[TuningCell]:
    """The grid of appendix A on ``dataset``, one cell per (head, similarity, embed_dim, batch_size)."""
    results = [r for r in results if r["dataset"] == dataset]
    _same_apart_from_grid(results)
    raw = []
    for key, files in _group(results, _tuning_key).items():
        head, sim, embed, batch = key
        what = f"tuning cell ({dataset}, {head}, similarity={sim}, embed_dim={embed}, batch_size={batch})"
        by_split = _one_configuration(files, what, "they differ in a setting other than the grid's; move one aside")
        raw.append(TuningCell(head, sim, embed, batch, files[0]["run_id"], {s: _metric(r) for s, r in sorted(by_split.items())}))
    best = {h: min(c.mean for c in raw if c.head == h) for h in {c.head for c in raw}}
    cells = [TuningCell(c.head, c.similarity, c.embed_dim, c.batch_size, c.run_id, c.values, c.mean == best[c.head]) for c in raw]
    return sorted(cells, key=lambda c: (head_sort_key(c.head), _sim_key(c.similarity), c.embed_dim, c.batch_size))


def _sim_key(sim: str | None) -> tuple:
    return (0, "") if sim is None else ((1, SIMILARITY_ORDER.index(sim)) if sim in SIMILARITY_ORDER else (2, sim))


def _same_apart_from_grid(results: list[dict]) -> None:
    """Within one head, runs may differ only in the grid's hparams (and so in run_id), not in extractor or others."""
    for head, files in _group(results, lambda r: r["head"]).items():
        ref = files[0]
        for r in files[1:]:
            for field in ("extractor",):
                if r[field] != ref[field]:
                    raise ResultError(
                        f"tuning results of head {head} differ in {field}: {ref['_path']} ({ref[field]}) and "
                        f"{r['_path']} ({r[field]}); keep one {field} (move the others aside)"
                    )
            keys = (set(ref["hparams"]) | set(r["hparams"])) - set(TUNING_KEYS)
            for k in sorted(keys):
                if ref["hparams"].get(k) != r["hparams"].get(k):
                    raise ResultError(
                        f"tuning results of head {head} differ in hparams.{k} (not a grid setting): {ref['_path']} "
                        f"({ref['hparams'].get(k)!r}) and {r['_path']} ({r['hparams'].get(k)!r}); move one aside"
                    )


def _tuning_md_cell(c: TuningCell | None) -> str:
    if c is None:
        return MISSING
    text = mean_std(c.mean, c.std)
    return (f"**{text}**" if c.best else text) + _n_note(c.n, TUNING_SPLITS)


def tuning_markdown(cells: list[TuningCell], head: str, dataset: str = "rsna") -> str:
    """Linear: embed_dim rows × batch_size columns (the paper's Table 2); neighbour heads: (similarity, embed_dim) rows."""
    cells = [c for c in cells if c.head == head]
    batches = sorted({c.batch_size for c in cells})
    at = {(c.similarity, c.embed_dim, c.batch_size): c for c in cells}
    rows_keys = sorted({(c.similarity, c.embed_dim) for c in cells}, key=lambda k: (_sim_key(k[0]), k[1]))
    if head == "linear":
        header = ["Embed \\ Batch"] + [str(b) for b in batches]
        rows = [[str(e)] + [_tuning_md_cell(at.get((s, e, b))) for b in batches] for s, e in rows_keys]
        align = ["---"] + ["---:"] * len(batches)
    else:
        header = ["Similarity", "Embed \\ Batch"] + [str(b) for b in batches]
        rows = [[s, str(e)] + [_tuning_md_cell(at.get((s, e, b))) for b in batches] for s, e in rows_keys]
        align = ["---", "---"] + ["---:"] * len(batches)
    title = f"# Tuning ({dataset}): {HEAD_LABELS.get(head, head)} head, test MSE × 10³\n\n"
    notes = (f"\nMean ± sample std (ddof = 1) over splits; (n=k) when a cell has k ≠ {TUNING_SPLITS} splits. "
             "Bold: the head's best mean.\n")
    return title + _md_table(header, rows, align) + notes


def tuning_csv(cells: list[TuningCell]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("head", "similarity", "embed_dim", "batch_size", "n", "mean", "std", "best", "run_id"))
    for c in cells:
        w.writerow([c.head, c.similarity or "", c.embed_dim, c.batch_size, c.n, _num(c.mean), _num(c.std), c.best, c.run_id])
    return buf.getvalue()


def write_tuning(cells: list[TuningCell], out_dir: str | Path, dataset: str = "rsna") -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for head in _head_order({c.head for c in cells}):
        path = out_dir / f"tuning_{head}.md"
        path.write_text(tuning_markdown(cells, head, dataset))
        paths.append(path)
    path = out_dir / "tuning.csv"
    path.write_text(tuning_csv(cells))
    return paths + [path]
