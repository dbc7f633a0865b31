"""Modules by idea: no module of the library, the experiments, the loaders or the extractors is over 400 lines
(the size at which torchsort's and lightning-hydra-template's largest modules stop). A module that grows past it
holds two ideas: split it by idea, as softstep/functional.py became distances.py, similarities.py and
functional.py."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("softstep", "experiments", "data", "extractors")
MAX_LINES = 400


def sizes() -> dict[str, int]:
    return {
        str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for p in sorted((REPO / package).rglob("*.py"))
    }


def test_no_module_is_over_400_lines():
    found = sizes()
    assert len(found) > 50  # the packages were found
    over = {path: n for path, n in found.items() if n > MAX_LINES}
    assert over == {}, f"modules over {MAX_LINES} lines (split each by idea): {over}"
