"""The one way to compose a run's config outside ``run.py``: figure scripts, sweeps, benchmarks and tests.

``compose(["dataset=rsna", "head=nca_i"])`` returns the config ``python run.py dataset=rsna head=nca_i``
would run. Inside ``with hydra_context():`` many compositions share one Hydra initialisation (each
``initialize`` costs about as much as a compose).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@contextmanager
def hydra_context() -> Iterator[None]:
    """Initialise Hydra on ``configs/`` unless it already is (a caller's own context is kept)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        yield


def compose(overrides: Iterable[str] = (), *, hydra: bool = False) -> DictConfig:
    """The config ``python run.py <overrides>`` would run (``hydra=True`` keeps the ``hydra`` node)."""
    from hydra import compose as _compose

    with hydra_context():
        return _compose("config", overrides=list(overrides), return_hydra_config=hydra)
