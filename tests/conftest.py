"""Fixtures shared by the test files.

- ``tiny``: a run small enough for a unit test, composed with Hydra as ``python run.py`` would (the synthetic
  dataset, 120 items, 2 splits, 2 epochs, CPU, one process, no logger, no progress bars), its results under
  ``results_root``. ``tiny("head=nca")`` composes the config, ``tiny.overrides("head=nca")`` gives the override
  list (for ``experiments.sweep`` and ``run.py`` on a command line). An override replaces the tiny setting of
  the same key (``tiny("splits=[0]")``, ``tiny("logger=wandb")``), and another dataset (``tiny("dataset=table",
  ...)``) the synthetic one's size; ``tiny.at(path)`` is the same run with its results under ``path / "results"``.
- ``results_root``: ``tmp_path / "results"``.
- ``offline``: the Hugging Face hub and transformers in offline mode, as on a compute node.
- ``one_thread``: torch on one CPU thread during the test (a file opts in with ``pytest.mark.usefixtures``).

Data fixtures (tiny copies of each dataset in its release's format) are in ``tests/fixtures_data.py``:
``from tests import fixtures_data``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: the settings that make a run tiny; a test's own override of the same key replaces one
TINY = (
    "dataset=synthetic",
    "dataset.loader.n=120",
    "splits=[0,1]",
    "trainer.max_epochs=2",
    "trainer.patience=2",
    "trainer.device=cpu",
    "trainer.workers=1",
    "logger=none",
    "progress=false",
)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


class Tiny:
    """A tiny run whose results go under ``root / "results"`` (see the module docstring)."""

    n = 120  # items in the tiny synthetic dataset

    def __init__(self, root: Path):
        self.root = Path(root)
        self.results = self.root / "results"

    def at(self, root: Path) -> Tiny:
        return Tiny(root)

    def overrides(self, *extra: str) -> list[str]:
        mine = (*TINY, f"paths.results_root={self.results}")
        given = {_key(o) for o in extra}
        other_data = "dataset" in given  # another dataset: the synthetic one's settings go with it
        return [o for o in mine if _key(o) not in given and not (other_data and _key(o).startswith("dataset."))] + list(
            extra
        )

    def __call__(self, *extra: str):
        from experiments.protocol.compose import compose

        return compose(self.overrides(*extra))


@pytest.fixture
def results_root(tmp_path) -> Path:
    """Where a test's runs write their result files (not created: a run makes it)."""
    return tmp_path / "results"


@pytest.fixture
def tiny(tmp_path, results_root) -> Tiny:
    t = Tiny(tmp_path)
    assert t.results == results_root
    return t


@pytest.fixture
def offline(monkeypatch):
    """Networking off for Hugging Face as on a compute node; returns ``monkeypatch`` for more settings."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return monkeypatch


@pytest.fixture
def one_thread():
    """torch on one CPU thread for the test, then back (small MLPs train fastest so, and the suite shares its
    cores); a test file opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
