"""Every file path and every module of ours that a doc names in code (``softstep/estimator.py``,
``experiments.protocol.pipeline.run``) exists: docs stay true when code moves.

A path counts when it starts with one of the checkout's code folders; a dotted name when it starts with one
of our packages. Paths that a run writes or a user provides (``results/runs/...``, ``data/rsna/labels.csv``),
placeholders (``<run_id>``, ``*``, ``{...}``), the authors' own files (``finetune.py``, written
``nona_anon/...`` where they have a folder) and the changelog's history are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_docs import DOCS, FENCE, REPO

CODE_DIRS = ("softstep", "experiments", "extractors", "benchmarks", "scripts", "configs", "tests", "slurm", "docs")
PACKAGES = ("softstep", "experiments", "data", "extractors", "benchmarks")
CODE_SPAN = re.compile(r"(`+)((?:(?!\1).)+?)\1", re.S)
PATH = re.compile(r"(?<![\w./-])((?:\.ci|data|" + "|".join(CODE_DIRS) + r")/[\w./-]*)")
DOTTED = re.compile(r"(?<![\w./-])((?:" + "|".join(PACKAGES) + r")(?:\.\w+)+)")
PLACEHOLDER = re.compile(r"[<>*{}$]")
USERS_OWN = {"configs/local/default.yaml"}  # git-ignored: each machine writes its own from configs/local/example.yaml
CURRENT_DOCS = [d for d in DOCS if d.name != "CHANGELOG.md"]  # the changelog names files as they were then


def code_text(text: str) -> str:
    """The doc's code: fenced blocks and code spans, where paths and module names are written."""
    return "\n".join([m.group(0) for m in FENCE.finditer(text)] + [m.group(2) for m in CODE_SPAN.finditer(text)])


def named_paths(text: str) -> set[str]:
    code, out = code_text(text), set()
    for m in PATH.finditer(code):
        path = m.group(1).rstrip(".")
        if PLACEHOLDER.match(code, m.end()) or path.startswith("results/"):
            continue  # ``results/runs/<dataset>``: a placeholder follows
        if path.startswith("data/") and not (path.endswith((".py", "README.md")) or path == "data/"):
            continue  # a dataset's own files are the user's to put there
        if path not in USERS_OWN:
            out.add(path)
    return out


def missing_module(dotted: str) -> str | None:
    """Why ``dotted`` names nothing of ours (None: the module exists, and so does the attribute named after it)."""
    parts = dotted.split(".")
    here = REPO
    for i, part in enumerate(parts):
        if (here / part).is_dir():
            here = here / part
            continue
        if (here / f"{part}.py").is_file():
            source = (here / f"{part}.py").read_text(encoding="utf-8")
            attr = parts[i + 1] if i + 1 < len(parts) else None
            if attr and attr not in {"py", "md"} and not re.search(rf"\b{re.escape(attr)}\b", source):
                return f"{'.'.join(parts[: i + 1])} has no {attr}"
            return None
        if i >= 1 and here.is_dir() and (here / "__init__.py").is_file():
            source = (here / "__init__.py").read_text(encoding="utf-8")
            if re.search(rf"\b{re.escape(part)}\b", source):  # an attribute the package exports
                return None
        return f"no module {'.'.join(parts[: i + 1])}"
    return None


def stale_names(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    bad = [f"{path.name}: {p}: no such file or folder" for p in sorted(named_paths(text)) if not (REPO / p).exists()]
    for dotted in sorted({m.group(1) for m in DOTTED.finditer(code_text(text))}):
        if dotted.endswith((".py", ".md", ".yaml", ".json", ".csv")):
            continue
        why = missing_module(dotted)
        if why:
            bad.append(f"{path.name}: {dotted}: {why}")
    return bad


@pytest.mark.parametrize("path", CURRENT_DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_named_path_and_module_exists(path):
    assert stale_names(path) == []


def test_the_checker_finds_moved_files_and_modules(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Real: `softstep/heads.py`, `experiments/`, `softstep.build_head`, `experiments.metrics`.\n"
        "Placeholders: `results/runs/<dataset>/x.json`, `data/rsna/labels.csv`.\n"
        "Gone: `softstep/nowhere.py`, `experiments.nowhere.run`, `softstep.heads.no_such_function`.\n"
        "```\npython scripts/no_such_script.py\n```\n"
    )
    bad = stale_names(page)
    assert len(bad) == 4, bad
    for name in ("softstep/nowhere.py", "experiments.nowhere.run", "no_such_function", "no_such_script.py"):
        assert any(name in b for b in bad), (name, bad)


def test_the_layouts_file_list_names_every_module():
    """docs/layout.md's "File by file" names each module of the library, the experiments and the benchmarks."""
    text = (REPO / "docs" / "layout.md").read_text(encoding="utf-8")
    listing = text[text.index("## File by file") :]
    names = set(re.findall(r"[\w<>]+\.py", listing))
    missing = [
        str(p.relative_to(REPO))
        for folder in ("softstep", "experiments", "benchmarks", "data", "extractors")
        for p in sorted((REPO / folder).rglob("*.py"))
        if p.name != "__init__.py" and p.name not in names and not (REPO / folder / p.stem).is_dir()
    ]
    assert missing == [], f"docs/layout.md's file list leaves out {missing}"
