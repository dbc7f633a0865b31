"""Imports run one way inside ``experiments/`` (docs/layout.md): ``metrics.py``, ``labels.py`` and ``store/`` at the
bottom, then ``inputs/``, ``models/``, ``protocol/``, and ``report/`` and ``sweep/`` on top. Every import of every
module is read from its source (imports inside functions too), so a lazy import cannot hide an upward one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
#: Each room's floor: a module may import its own room and rooms on a lower floor, never a higher or a level one.
FLOOR = {"metrics": 0, "labels": 0, "store": 1, "inputs": 2, "models": 3, "protocol": 4, "report": 5, "sweep": 5}


def room(module: str) -> str | None:
    """``experiments.store.results`` → ``store``; ``experiments`` itself (its ``__init__``) → None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "experiments" and len(parts) > 1 else None


def imported(path: Path, root: Path = EXPERIMENTS) -> list[tuple[str, int]]:
    """(module, line) of every import in ``path`` (a module of the package ``root``), relative ones resolved."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            out += [(f"{base}.{a.name}" if base == "experiments" else base, node.lineno) for a in node.names]
    return out


def upward_imports(root: Path = EXPERIMENTS) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        here = room(".".join(path.relative_to(root.parent).with_suffix("").parts))
        if here is None or here == "__init__":
            continue
        for module, line in imported(path, root):
            there = room(module)
            if there is None or there == here or there == "__init__":
                continue
            if there not in FLOOR or here not in FLOOR or FLOOR[there] >= FLOOR[here]:
                bad.append(f"{path.relative_to(root.parent)}:{line} ({here}) imports {module} ({there})")
    return bad


def test_every_room_of_experiments_is_placed():
    rooms = {p.stem if p.is_file() else p.name for p in EXPERIMENTS.iterdir() if not p.name.startswith(("_", "."))}
    assert rooms <= set(FLOOR), f"place {sorted(rooms - set(FLOOR))} in FLOOR (and in docs/layout.md)"


def test_imports_inside_experiments_run_one_way():
    assert upward_imports() == []


@pytest.mark.parametrize(
    "source",
    [
        "from experiments.protocol.splits import paper_split\n",
        "def f():\n    from experiments.report import paper\n",
        "from ..protocol import settings\n",
        "import experiments.sweep.jobs\n",
    ],
)
def test_an_upward_import_is_found(tmp_path, source):
    (tmp_path / "experiments" / "store").mkdir(parents=True)
    (tmp_path / "experiments" / "store" / "x.py").write_text(source)
    assert len(upward_imports(tmp_path / "experiments")) == 1
