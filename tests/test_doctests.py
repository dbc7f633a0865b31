"""The docstrings of ``softstep/`` run and follow one form.

Every module's doctests pass (``softstep/isotonic.py`` only where Triton is installed, ``softstep/estimator.py``
only with scikit-learn); every public function and class has an ``Examples`` section with at least one example,
``Parameters`` where it takes any and ``Returns`` (functions); a pointer ``docs/paper-choices.md#anchor`` names
a heading of that page; no docstring quotes a timing (those belong in ``results/benchmarks/``).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(f"softstep.{p.stem}" if p.stem != "__init__" else "softstep" for p in (ROOT / "softstep").glob("*.py"))
NEEDS = {"softstep.isotonic": "triton", "softstep.estimator": "sklearn", "softstep.estimator_files": "sklearn"}


def _module(name: str):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name], reason=f"{name}'s doctests need {NEEDS[name]}")
    return importlib.import_module(name)


def _public(mod):
    """(name, object) of the public functions and classes defined in ``mod`` itself."""
    return [
        (n, o)
        for n, o in vars(mod).items()
        if not n.startswith("_") and (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == mod.__name__
    ]


def _docstrings(mod):
    """(qualified name, docstring) of the module, its functions, classes and their methods and properties."""
    out = [(mod.__name__, mod.__doc__ or "")]
    for n, o in vars(mod).items():
        if (inspect.isfunction(o) or inspect.isclass(o)) and getattr(o, "__module__", None) == mod.__name__:
            out.append((n, o.__doc__ or ""))
            if inspect.isclass(o):
                out += [
                    (f"{n}.{m}", v.__doc__ or "")
                    for m, v in vars(o).items()
                    if inspect.isfunction(v) or isinstance(v, property)
                ]
    return out


@pytest.mark.parametrize("name", MODULES)
def test_doctests_pass(name):
    mod = _module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples of {name} failed (output above)"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_function_and_class_has_numpydoc_sections_and_an_example(name):
    mod = _module(name)
    finder = doctest.DocTestFinder(recurse=False)
    problems = []
    for n, obj in _public(mod):
        doc = inspect.getdoc(obj) or ""
        examples = sum(len(t.examples) for t in finder.find(obj, n, module=mod, globs={}))
        if examples == 0 or "Examples\n--------" not in doc:
            problems.append(f"{n}: no Examples section with an example")
        takes = (
            inspect.signature(obj).parameters
            if inspect.isfunction(obj)
            else [p for p in inspect.signature(obj.__init__).parameters if p != "self"]
        )
        if takes and "Parameters\n----------" not in doc:
            problems.append(f"{n}: no Parameters section")
        if inspect.isfunction(obj) and "Returns\n-------" not in doc:
            problems.append(f"{n}: no Returns section")
    assert not problems, "\n".join(problems)


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_docstring_pointers_name_headings_of_paper_choices():
    text = (ROOT / "docs" / "paper-choices.md").read_text(encoding="utf-8")
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    bad = []
    for name in MODULES:
        if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
            continue
        for qual, doc in _docstrings(importlib.import_module(name)):
            bad += [
                f"{name}:{qual} -> #{a}"
                for a in re.findall(r"docs/paper-choices\.md#([\w\-]+)", doc)
                if a not in anchors
            ]
    assert not bad, "pointers to missing headings of docs/paper-choices.md:\n" + "\n".join(bad)


def test_slug_matches_githubs():
    assert _slug("Soft-rank kernels") == "soft-rank-kernels"
    assert _slug("Every setting with its source") == "every-setting-with-its-source"


def test_no_timings_in_docstrings():
    timing = re.compile(r"\bH100\b|\bA100\b|\d\s?(ms|µs|us|s)\b(?! *=)")
    found = []
    for name in MODULES:
        if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
            continue
        found += [f"{name}:{q}" for q, doc in _docstrings(importlib.import_module(name)) if timing.search(doc)]
    assert not found, "timings belong in results/benchmarks/, not in docstrings: " + ", ".join(found)
