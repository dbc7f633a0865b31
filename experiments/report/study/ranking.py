"""Heads compared over datasets, by the field's procedure (Demšar 2006; shared notes: comparing-over-datasets.md).

One ranking per block (protocol, setting; :attr:`.grid.StudyCell.block`): the heads' plain cells of that setting,
and the protocol's linear cell, which joins every setting.

- **One observation per dataset**: a cell's mean test MSE × 10³ over its splits.
- **Heads and datasets**: a head with cells on fewer than half of the block's datasets is left out; then only
  datasets where every remaining head has a cell are ranked (both said in ``dropped``).
- **Ranks**: per dataset, 1 = lowest MSE, ties share the mean rank (``scipy.stats.rankdata``), averaged over datasets.
- **Friedman** (``scipy.stats.friedmanchisquare``): with at least 3 heads and 2 datasets.
- **Against linear**: each head's two-sided paired Wilcoxon over datasets on the means
  (:func:`experiments.report.cells.paired_wilcoxon`: no test under 6 datasets), p adjusted by Holm's step-down
  over the heads tested (``statsmodels.stats.multitest.multipletests``).
- **Nemenyi** (``scikit_posthocs.posthoc_nemenyi_friedman``): all pairs, for the critical-difference diagram.
- **Wins / ties / losses against linear**: per dataset where the head and linear have cells (not only the ranked
  ones), from the cell's own test over that dataset's splits (:attr:`.grid.Test.outcome`; tie: p ≥ 0.05).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from experiments.report.cells import paired_wilcoxon
from experiments.report.names import dataset_sort_key, head_sort_key

from .grid import ALPHA, BASELINE, StudyCell
from .variants import protocol_sort_key


@dataclass
class Ranking:
    protocol: str
    setting: tuple
    heads: list[str]
    datasets: list[str]  # the ranked datasets (complete)
    means: np.ndarray  # datasets × heads
    dropped: list[str] = field(default_factory=list)  # one line per head or dataset left out
    friedman: tuple[float, float] | None = None  # (statistic, p)
    holm: dict = field(default_factory=dict)  # head -> (p, p_holm, n_datasets, lower than linear)
    wtl: dict = field(default_factory=dict)  # head -> Counter(win, tie, loss, untested) against linear
    nemenyi: object = None  # pandas DataFrame of pairwise p, heads × heads

    @property
    def name(self) -> str:
        return self.protocol + "".join(f", {s}" for s in self.setting)

    @property
    def mean_ranks(self) -> dict[str, float]:
        if not len(self.datasets):
            return {}
        from scipy.stats import rankdata

        ranks = np.vstack([rankdata(row) for row in self.means]).mean(axis=0)
        return dict(zip(self.heads, ranks.tolist()))


def block_cells(cells: list[StudyCell]) -> dict[tuple, list[StudyCell]]:
    """(protocol, setting) → the plain cells ranked in it (linear of the protocol in each of its settings)."""
    plain = [c for c in cells if not c.variant.control]
    blocks: dict[tuple, list[StudyCell]] = {}
    for c in plain:
        if c.head != BASELINE or c.variant.setting:
            blocks.setdefault(c.block, []).append(c)
    for c in plain:
        if c.head == BASELINE and not c.variant.setting:
            for key in [k for k in blocks if k[0] == c.protocol] or [c.block]:
                blocks.setdefault(key, []).append(c)
    return {k: blocks[k] for k in sorted(blocks, key=lambda k: (protocol_sort_key(k[0]), k[1]))}


def rank_block(protocol: str, setting: tuple, cells: list[StudyCell]) -> Ranking:
    by = {(c.dataset, c.head): c for c in cells}
    all_datasets = sorted({c.dataset for c in cells}, key=dataset_sort_key)
    heads = sorted({c.head for c in cells}, key=head_sort_key)
    dropped = []
    for h in list(heads):
        n = sum((d, h) in by for d in all_datasets)
        if 2 * n < len(all_datasets):
            heads.remove(h)
            dropped.append(f"{h}: cells on {n} of {len(all_datasets)} datasets, too few to rank")
    datasets = []
    for d in all_datasets:
        missing = [h for h in heads if (d, h) not in by]
        if missing:
            dropped.append(f"{d}: no cell of {', '.join(missing)}")
        else:
            datasets.append(d)
    means = np.array([[by[d, h].mean for h in heads] for d in datasets]).reshape(len(datasets), len(heads))
    r = Ranking(protocol, setting, heads, datasets, means, dropped)
    r.wtl = {h: Counter(_outcome(by.get((d, h))) for d in all_datasets if (d, h) in by) for h in heads if h != BASELINE}
    if len(heads) >= 3 and len(datasets) >= 2:
        from scipy.stats import friedmanchisquare

        res = friedmanchisquare(*means.T)
        r.friedman = (float(res.statistic), float(res.pvalue))
        r.nemenyi = nemenyi(means, heads)
    if BASELINE in heads:
        r.holm = holm_against(r, heads.index(BASELINE))
    return r


def _outcome(c: StudyCell) -> str:
    test = c.tests.get("linear")
    return "untested" if test is None else test.outcome


def holm_against(r: Ranking, control: int) -> dict:
    """head → (p, Holm-adjusted p, datasets, lower than the control): Wilcoxon over datasets on the means."""
    base = dict(zip(r.datasets, r.means[:, control]))
    raw = {}
    for j, h in enumerate(r.heads):
        if j != control:
            raw[h] = paired_wilcoxon(dict(zip(r.datasets, r.means[:, j])), base)
    tested = [h for h, (p, _, _) in raw.items() if p is not None]
    adjusted = dict(zip(tested, holm([raw[h][0] for h in tested])))
    return {h: (p, adjusted.get(h), n, lower) for h, (p, n, lower) in raw.items()}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order."""
    if not pvalues:
        return []
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(pvalues, alpha=ALPHA, method="holm")[1]]


def nemenyi(means: np.ndarray, heads: list[str]):
    """The Nemenyi post-hoc p-values after Friedman, heads × heads (``scikit_posthocs``)."""
    import pandas as pd
    import scikit_posthocs as sp

    p = sp.posthoc_nemenyi_friedman(pd.DataFrame(means, columns=heads))
    p.index, p.columns = heads, heads
    return p


def rankings(cells: list[StudyCell]) -> list[Ranking]:
    return [rank_block(protocol, setting, group) for (protocol, setting), group in block_cells(cells).items()]
