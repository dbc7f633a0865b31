"""The study's three answers, computed from the cells and rankings (never written by hand).

- **(a) Neighbour heads beat the linear head**: over the (ranking, neighbour head) pairs, the Holm-adjusted
  Wilcoxon over datasets (:mod:`.ranking`): better (p < 0.05, lower mean), worse, or no difference; beside it the
  per-dataset wins/ties/losses.
- **(b) SoftStep beats the same head without it**: per (protocol, setting, step head), a Wilcoxon over datasets of
  the head's means against its stepless reference's (:mod:`.grid`, test ``stepless``), Holm-adjusted over those
  pairs (:func:`over_datasets`); beside it the same against the frozen-step control, and the per-dataset
  wins/ties/losses against both.
- Both say **yes** when some pairs are better, none worse, and the better ones are at least half of those tested;
  **no** when none is better; **mixed** otherwise; **undecided** when nothing could be tested.
- **(c) SoftStep learns sparse similarity**: over the plain cells of step heads: exact zeros > 0
  (:data:`ZEROS_MIN`), mass removed ≥ :data:`MASS_MIN`, parameters moved beyond their initial spread in more than
  half of the splits (:mod:`.mechanism`). **yes** when each holds in more than half of the cells that measure it and
  movement is measured; **no** when one measured property holds in at most half; **undecided** otherwise.
"""

from __future__ import annotations

from collections import Counter

from experiments.report.cells import paired_wilcoxon

from .grid import ALPHA, StudyCell
from .ranking import Ranking, holm
from .variants import has_step

ZEROS_MIN = 0.0  # exact zeros: a fraction above this
MASS_MIN = 0.1  # "substantial": at least a tenth of the softmax mass removed


def decide(better: int, worse: int, tested: int) -> str:
    if tested == 0:
        return "undecided"
    if better == 0:
        return "no"
    return "yes" if worse == 0 and 2 * better >= tested else "mixed"


def _wtl(counts: Counter) -> str:
    return f"{counts['win']}/{counts['tie']}/{counts['loss']}" + (
        f" ({counts['untested']} untested)" if counts["untested"] else ""
    )


def verdict_linear(rankings: list[Ranking]) -> str:
    outcome, per_dataset = Counter(), Counter()
    for r in rankings:
        for _, p_holm, _, lower in r.holm.values():
            outcome[_significance(p_holm, lower)] += 1
        for counts in r.wtl.values():
            per_dataset.update(counts)
    tested = outcome["better"] + outcome["worse"] + outcome["same"]
    word = decide(outcome["better"], outcome["worse"], tested)
    return (
        f"(a) Neighbour heads beat the linear head: **{word}**. Of {tested} (protocol, head) pairs tested over "
        f"datasets (Wilcoxon, Holm-adjusted, p < {ALPHA}), {outcome['better']} better, {outcome['same']} no "
        f"difference, {outcome['worse']} worse ({outcome['untested']} untested: fewer than 6 datasets). Per dataset "
        f"over its splits, wins/ties/losses against linear: {_wtl(per_dataset)}."
    )


def _significance(p: float | None, lower: bool | None) -> str:
    if p is None:
        return "untested"
    if p >= ALPHA:
        return "same"
    return "better" if lower else "worse"


def over_datasets(cells: list[StudyCell], name: str) -> tuple[Counter, int]:
    """Per (protocol, setting, head), a Wilcoxon over datasets of the head's means against its ``name`` reference's,
    Holm-adjusted over those pairs: (Counter of better / same / worse, pairs untested for too few datasets)."""
    pairs: dict[tuple, tuple[dict, dict]] = {}
    for c in cells:
        test = c.tests.get(name)
        if test is not None:
            ours, ref = pairs.setdefault((c.protocol, c.variant.setting, c.head), ({}, {}))
            ours[c.dataset], ref[c.dataset] = c.mean, test.reference_mean
    raw = [paired_wilcoxon(ours, ref) for ours, ref in pairs.values()]
    tested = [(p, lower) for p, _, lower in raw if p is not None]
    adjusted = holm([p for p, _ in tested])
    return Counter(_significance(p, lower) for p, (_, lower) in zip(adjusted, tested)), len(raw) - len(tested)


def _over(outcome: Counter, untested: int) -> str:
    return (
        f"{outcome['better']} better, {outcome['same']} no difference, {outcome['worse']} worse "
        f"({untested} untested: fewer than 6 datasets)"
    )


def verdict_step(cells: list[StudyCell]) -> str:
    per_dataset = {
        name: Counter(c.tests[name].outcome for c in cells if c.tests.get(name)) for name in ("stepless", "frozen")
    }
    stepless, frozen = over_datasets(cells, "stepless"), over_datasets(cells, "frozen")
    tested = sum(stepless[0].values())
    word = decide(stepless[0]["better"], stepless[0]["worse"], tested)
    missing = sum(1 for c in cells if "stepless" in c.tests and c.tests["stepless"] is None)
    return (
        f"(b) SoftStep beats the same head without it: **{word}**. Of {tested} (protocol, head) pairs tested "
        f"over datasets against the head without a step (Wilcoxon, Holm-adjusted, p < {ALPHA}): "
        f"{_over(*stepless)}; against the frozen step: {_over(*frozen)}. Per dataset, wins/ties/losses against the "
        f"head without a step: {_wtl(per_dataset['stepless'])}; against the frozen step: {_wtl(per_dataset['frozen'])}"
        + (f"; {missing} cells have no stepless reference" if missing else "")
        + "."
    )


def verdict_sparse(cells: list[StudyCell]) -> str:
    step = [c for c in cells if has_step(c.head) and not c.variant.control]
    mech = [c.mechanism for c in step]
    zeros = [m["zero_fraction"] > ZEROS_MIN for m in mech if m["zero_fraction"] is not None]
    mass = [m["removed_mass"] >= MASS_MIN for m in mech if m["removed_mass"] is not None]
    moved = [any(v["moved"] > 0.5 for v in m["movement"].values()) for m in mech if m["movement"]]
    held = [(sum(x), len(x)) for x in (zeros, mass, moved)]
    if any(n and 2 * k <= n for k, n in held):
        word = "no"
    elif all(n for _, n in held):
        word = "yes"
    else:
        word = "undecided"
    (z, nz), (s, ns), (mv, nm) = held
    return (
        f"(c) SoftStep learns sparse similarity: **{word}**. Of {len(step)} cells of heads with a step: exact zeros "
        f"> 0 in {z} of {nz} that record them; mass removed ≥ {MASS_MIN} in {s} of {ns} that record it; parameters "
        f"moved beyond their initial spread in {mv} of {nm} that record `step_start`"
        + (f" ({len(step) - nm} do not record it)" if nm < len(step) else "")
        + "."
    )


def verdicts(cells: list[StudyCell], rankings: list[Ranking]) -> list[str]:
    return [verdict_linear(rankings), verdict_step(cells), verdict_sparse(cells)]
