"""Optional experiment tracking. ``logger=none`` (default) logs nothing; ``logger=wandb`` uses
Weights & Biases, offline by default. A split's wandb run id is derived from the run id and
the split, so a requeued split resumes its run instead of creating a duplicate.
"""

from __future__ import annotations

import hashlib

from omegaconf import DictConfig, OmegaConf


class NullTracker:
    def log(self, metrics: dict, step: int) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbTracker:
    def __init__(self, cfg: DictConfig, run_id: str, split: int):
        import wandb  # optional dependency, imported only when asked for

        lg = cfg.logger
        self.wandb_id = wandb_run_id(cfg, run_id, split)
        config = OmegaConf.to_container(cfg, resolve=True)
        self.run = wandb.init(
            project=lg.project,
            entity=lg.entity,
            mode=lg.mode,
            dir=lg.dir,
            id=self.wandb_id,
            resume="allow",
            name=f"{cfg.dataset.name}/{cfg.head.name}/{run_id}/split{split}",
            group=f"{cfg.dataset.name}/{cfg.head.name}/{run_id}",
            tags=list(lg.tags),
            config=config,
            reinit="create_new",
        )

    def log(self, metrics: dict, step: int) -> None:
        self.run.log(metrics, step=step)

    def finish(self) -> None:
        self.run.finish()


def wandb_run_id(cfg: DictConfig, run_id: str, split: int) -> str:
    raw = f"{cfg.dataset.name}|{cfg.extractor.name}|{cfg.head.name}|{run_id}|{split}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def make_tracker(cfg: DictConfig, run_id: str, split: int):
    name = cfg.logger.name
    if name == "none":
        return NullTracker()
    if name == "wandb":
        from pathlib import Path

        Path(cfg.logger.dir).mkdir(parents=True, exist_ok=True)
        return WandbTracker(cfg, run_id, split)
    raise ValueError(f"unknown logger {name!r}; allowed: none, wandb")
