"""A configuration's identity in the store: the settings that can change a result, hashed into its ``run_id``,
and its place (:func:`run_key`). The settings a result records (``hparams.similarity``) are read here too."""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from experiments.store.results import FinalKey, RunKey

#: Config keys that do not change a result: left out of the run id.
NOT_IN_RUN_ID = {"splits", "force", "progress", "paths", "logger", "hydra", "slurm", "save_model", "final", "parts"}
TRAINER_NOT_IN_RUN_ID = {
    "device",
    "threads",
    "workers",
    "num_workers",
    "checkpoint",
    "eval_batch_size",
    "max_elements",
    "precision",
    "compile",
    "decoded_cache",
}  # how it runs, like device: recorded in result files
#: Head arguments renamed since run ids were first hashed: hashed under the name they had, so ids do not move.
FIRST_NAMES = {"step": "softstep"}
#: Settings added after run ids were first hashed, left out at their default so earlier ids do not move.
LATER_DEFAULTS = {
    "trainer": {"head_lr": None, "embed_passes": 1},
    "module": {"power_floor": None},
    "head": {"control": "none"},
}


def run_id(cfg: DictConfig) -> str:
    """``<sim>-e<embed>-b<batch>-<hash>``: the hash covers every setting that can change a result.

    Of the head it covers its name and what is built (``head.module``), so a value no head reads
    (``head.similarity`` of the linear head) does not split one configuration into several."""
    c = OmegaConf.to_container(cfg, resolve=True)
    key = {k: v for k, v in c.items() if k not in NOT_IN_RUN_ID}
    key["trainer"] = {
        k: v
        for k, v in key["trainer"].items()
        if k not in TRAINER_NOT_IN_RUN_ID and not _later_default("trainer", k, v)
    }
    key["dataset"] = {
        k: v for k, v in key["dataset"].items() if k not in ("expected_n", "expected_n_note")
    }  # checks only
    module = {
        FIRST_NAMES.get(k, k): v for k, v in (key["head"]["module"] or {}).items() if not _later_default("module", k, v)
    }
    control = key["head"].get("control", "none")
    key["head"] = {"name": key["head"]["name"], "module": module}
    if not _later_default("head", "control", control):
        key["head"]["control"] = control
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{head_similarity(cfg) or cfg.head.name}-e{cfg.model.embed_dim}-b{cfg.trainer.batch_size}-{digest}"


def _later_default(group: str, k: str, v) -> bool:
    defaults = LATER_DEFAULTS[group]
    return k in defaults and v == defaults[k]


def head_similarity(cfg: DictConfig) -> str | None:
    """The similarity the built head uses (None for a head without one, e.g. linear)."""
    return OmegaConf.select(cfg, "head.module.similarity", default=None)


def run_key(cfg: DictConfig) -> RunKey:
    """Where this configuration's results live (see :class:`experiments.store.results.RunKey`); with ``final=true``
    its final model's folder (:class:`experiments.store.results.FinalKey`)."""
    kind = FinalKey if OmegaConf.select(cfg, "final", default=False) is True else RunKey
    return kind(str(cfg.paths.results_root), cfg.dataset.name, cfg.extractor.name, cfg.head.name, run_id(cfg))
