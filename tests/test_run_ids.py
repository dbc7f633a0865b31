"""The result store's contract: a configuration keeps its run id across refactors, so a rerun finds and skips
the splits it finished before. The ids below are those the demo's six heads had before issue 31 moved the code
and renamed the heads' ``softstep`` argument to ``step`` (``make demo`` on commit e4dc94c)."""

from __future__ import annotations

import pytest

from experiments.protocol.compose import compose
from experiments.store.identity import run_id

DEMO_RUN_IDS = {
    "linear": "linear-e25-b32-cfa7a606",
    "nca": "rbf-e100-b32-bc0a639b",
    "nca_g": "l2-e100-b32-506f6daf",
    "nca_i": "rbf-e100-b32-cf8e7685",
    "diffknn_g": "rbf-e25-b32-c2bdb7ae",
    "diffknn_i": "l2-e25-b32-86210063",
}


@pytest.mark.parametrize("head", DEMO_RUN_IDS)
def test_the_demos_run_ids_are_those_it_had_before(head):
    assert run_id(compose(["experiment=demo", f"head={head}"])) == DEMO_RUN_IDS[head]


def test_a_changed_step_changes_the_run_id():
    base = run_id(compose(["experiment=demo", "head=nca_i"]))
    assert run_id(compose(["experiment=demo", "head=nca_i", "head.module.step=global"])) != base
