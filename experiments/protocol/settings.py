"""A run's settings, checked at the door, and what they build and name: validation (every field the
pipeline reads, before any data or model is touched), the head (:func:`head_from_config`) and the trainer's
settings (:func:`trainer_settings`). A run's identity (``run_id``, ``run_key``) is the store's:
:mod:`experiments.store.identity`."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.models import saved
from experiments.protocol import device
from experiments.protocol.compose import CONFIGS
from experiments.protocol.device import resolve_compile, resolve_max_elements, resolve_precision
from softstep import SIMILARITIES
from softstep.model import ARCHS
from softstep.training_types import TrainerSettings


class ConfigError(ValueError):
    """A bad config value; the message names the field and what is allowed."""


def check_config(cfg: DictConfig) -> list[int]:
    """Check the values the pipeline relies on, before any data or model is touched. Returns the splits."""

    def bad(field, value, allowed):
        raise ConfigError(f"bad config value {field}={value!r}: {allowed}")

    check_missing(cfg)
    splits = OmegaConf.to_container(cfg.splits) if OmegaConf.is_list(cfg.splits) else cfg.splits
    if isinstance(splits, int) and not isinstance(splits, bool):
        splits = [splits]
    if (
        not isinstance(splits, list)
        or not splits
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in splits)
    ):
        bad("splits", cfg.splits, "a non-empty list of split seeds >= 0, e.g. splits=[0,1,2] (default 0-9)")
    if len(set(splits)) != len(splits):
        bad("splits", splits, "each split seed once")
    if cfg.head.similarity is not None and cfg.head.similarity not in SIMILARITIES:
        bad("head.similarity", cfg.head.similarity, f"one of {', '.join(SIMILARITIES)}")
    if cfg.model.arch not in ARCHS:
        bad("model.arch", cfg.model.arch, f"one of {', '.join(ARCHS)}")
    if cfg.trainer.reference not in ("batch", "sample"):
        bad("trainer.reference", cfg.trainer.reference, "batch (the paper) or sample")
    if not isinstance(cfg.trainer.reference_fraction, (int, float)) or not 0 < cfg.trainer.reference_fraction <= 1:
        bad("trainer.reference_fraction", cfg.trainer.reference_fraction, "a number in (0, 1]")
    for field, value, lo in (
        ("model.embed_dim", cfg.model.embed_dim, 1),
        ("model.hidden", cfg.model.hidden, 1),
        ("trainer.eval_from_epoch", cfg.trainer.eval_from_epoch, 0),
        ("trainer.batch_size", cfg.trainer.batch_size, 2),
        ("trainer.max_epochs", cfg.trainer.max_epochs, 1),
        ("trainer.patience", cfg.trainer.patience, 1),
        ("trainer.eval_batch_size", cfg.trainer.eval_batch_size, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            bad(field, value, f"an integer >= {lo}")
    check_more(cfg, bad)
    check_paths(cfg, bad)
    try:
        saved.wanted(cfg)
        device.check(
            cfg.trainer
        )  # the device knobs (trainer.precision, compile, max_elements, num_workers, decoded_cache)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    head_from_config(cfg)  # the head's own arguments, checked by its constructor (the head is not kept)
    return splits


def check_more(cfg: DictConfig, bad) -> None:
    """Trainer, model and device fields, checked at the door (each would otherwise fail late, or run for hours)."""

    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def count_or_auto(field, value):
        if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            bad(field, value, "auto or an integer >= 1")

    t = cfg.trainer
    for group in ("trainer", "model"):  # a key no code reads (e.g. +trainer.bogus=1) is a typo, not a setting
        known = known_settings(group)
        unknown = sorted(set(cfg[group]) - known)
        if unknown:
            bad(
                f"{group}.{unknown[0]}",
                cfg[group][unknown[0]],
                f"not a {group} setting; the settings are {', '.join(sorted(known))}",
            )
    if t.max_elements != "auto" and (
        not isinstance(t.max_elements, int) or isinstance(t.max_elements, bool) or t.max_elements < 1024
    ):
        bad(
            "trainer.max_elements",
            t.max_elements,
            "auto or an integer >= 1024 (query x reference entries evaluated at once; auto: sized from the device)",
        )
    count_or_auto("trainer.threads", t.threads)
    count_or_auto("trainer.workers", t.workers)
    if t.num_workers != "auto" and (
        not isinstance(t.num_workers, int) or isinstance(t.num_workers, bool) or t.num_workers < 0
    ):
        bad("trainer.num_workers", t.num_workers, "auto or an integer >= 0 (DataLoader worker processes)")
    if not isinstance(t.stratify_bins, int) or isinstance(t.stratify_bins, bool) or t.stratify_bins < 1:
        bad("trainer.stratify_bins", t.stratify_bins, "an integer >= 1")
    if not number(t.weight_decay) or t.weight_decay < 0:
        bad("trainer.weight_decay", t.weight_decay, "a finite number >= 0")
    for field, value in (("trainer.lr", t.lr), ("trainer.extractor_lr", t.extractor_lr)):
        if not number(value) or value <= 0:
            bad(field, value, "a finite number > 0")
    if t.head_lr is not None and (not number(t.head_lr) or t.head_lr <= 0):
        bad("trainer.head_lr", t.head_lr, "null (= trainer.lr) or a finite number > 0")
    if not number(cfg.model.dropout) or not 0 <= cfg.model.dropout < 1:
        bad("model.dropout", cfg.model.dropout, "a number in [0, 1)")
    for field in ("force", "progress", "trainer.checkpoint", "final"):
        if not isinstance(OmegaConf.select(cfg, field), bool):
            bad(field, OmegaConf.select(cfg, field), "true or false")
    if t.embed_passes not in (1, 2) or isinstance(t.embed_passes, bool):
        bad("trainer.embed_passes", t.embed_passes, "1 (the batch embedded once) or 2 (twice, as nona_anon)")
    if t.embed_passes == 2 and t.reference != "batch":
        bad("trainer.embed_passes", t.embed_passes, "2 only with trainer.reference=batch (nona_anon's training)")
    control = saved.head_control(cfg)
    if control not in CONTROLS:
        bad("head.control", control, f"one of {', '.join(CONTROLS)}")
    if control_without_step(cfg):
        bad("head.control", control, f"none: head {cfg.head.name!r} has no step to freeze or leave out")
    check_device(t.device, bad)


#: What to say where a mandatory value (``???``) is missing, by field.
MISSING_HINTS = {
    "dataset.loader.path": "your CSV, TSV, Parquet or Excel file (docs/datasets.md, 'Bring your own data')",
    "dataset.loader.target": "the label column of your table",
    "dataset.loader.root": "the folder of your files and their CSV (docs/datasets.md, 'Bring your own data')",
}


def check_missing(cfg: DictConfig) -> None:
    """A mandatory value (``???``) left unset is one :class:`ConfigError` naming it, not OmegaConf's traceback."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        field = missing[0]
        hint = MISSING_HINTS.get(field, "the value this setting needs")
        more = f" (also unset: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise ConfigError(f"missing config value {field} ({hint}): set it on the command line, {field}=...{more}")


#: The config file that lists each group's settings; a key outside it is a typo.
SETTING_FILES = {"trainer": "trainer/default.yaml", "model": "model/mlp.yaml"}


@functools.cache
def known_settings(group: str) -> frozenset:
    """The keys of ``group`` that code reads (read once from :data:`SETTING_FILES`)."""
    return frozenset(OmegaConf.load(CONFIGS / SETTING_FILES[group]))


def check_paths(cfg: DictConfig, bad) -> None:
    """``paths.results_root`` and ``paths.cache_dir``: set (an empty value, e.g. ``SOFTSTEP_RESULTS=``, would put the
    cache at the filesystem's root) and not the filesystem's root itself; relative ones are under the working folder."""
    for field, env in (("paths.results_root", "SOFTSTEP_RESULTS"), ("paths.cache_dir", "SOFTSTEP_CACHE")):
        value = OmegaConf.select(cfg, field)
        if not isinstance(value, str) or not value.strip():
            bad(field, value, f"a folder (set it, or unset or set the {env} environment variable)")
        resolved = Path(value).expanduser().resolve()
        if resolved.parent == resolved:  # the filesystem's root is its own parent
            bad(field, value, "a folder below the filesystem's root, not the root itself")


def check_device(name, bad) -> None:
    """``trainer.device``: auto, cpu, cuda, cuda:N or mps, and present on this machine."""
    allowed = "auto, cpu, cuda, cuda:N or mps"
    if name == "auto":
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        bad("trainer.device", name, allowed)
    if dev.type not in ("cpu", "cuda", "mps"):
        bad("trainer.device", name, allowed)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            bad("trainer.device", name, "no CUDA GPU is visible on this machine; use trainer.device=cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            bad(
                "trainer.device",
                name,
                f"this machine has {torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1}",
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        bad("trainer.device", name, "MPS is not available on this machine; use trainer.device=cpu or auto")


#: ``head.control`` (ours): the step learned (none), kept at its initial draw, or left out of the same head.
CONTROLS = ("none", "frozen_step", "no_step")


def control_without_step(cfg: DictConfig) -> bool:
    """Whether a control (``frozen_step``, ``no_step``) is asked of a head that has no step (linear, nca)."""
    return saved.head_control(cfg) != "none" and OmegaConf.select(cfg, "head.module.step", default=None) is None


def head_from_config(cfg: DictConfig) -> torch.nn.Module:
    """The configured head: ``instantiate(head.module)``; a bad argument is a :class:`ConfigError` naming it.

    ``head.control``: ``frozen_step`` keeps the step's parameters (SoftStep's l, u, t or SoftKStep's k) at their
    initial draw; ``no_step`` builds the same head without its step (a DiffKNN head without SoftKStep weighs every
    reference by softmax(β·Sim): NCA with DiffKNN's similarity)."""
    try:
        head = instantiate(saved.head_module(cfg))
    except InstantiationException as e:
        why = str(e.__cause__ or e).strip().splitlines()[0]
        keys = [str(k) for k in cfg.head.module if k != "_target_"]
        named = [k for k in keys if re.search(rf"\b{re.escape(k)}\b", why)] or [
            k for k in keys if repr(OmegaConf.select(cfg.head.module, k)) in why
        ]  # named by its value
        field = (
            f"head.module.{named[0]}={OmegaConf.select(cfg.head.module, str(named[0]))!r}" if named else "head.module"
        )
        raise ConfigError(
            f"bad config {field} for head {cfg.head.name!r} ({cfg.head.module.get('_target_')}): {why}"
        ) from None
    if saved.head_control(cfg) == "frozen_step":
        for name in ("step", "kstep"):
            if getattr(head, name, None) is not None:
                getattr(head, name).requires_grad_(False)
    return head


def trainer_settings(trainer: DictConfig, device: torch.device, head) -> TrainerSettings:
    """The settings of ``cfg.trainer`` (validated by :mod:`experiments.protocol.settings`) on ``device`` for ``head``."""
    t = trainer
    return TrainerSettings(
        max_epochs=t.max_epochs,
        patience=t.patience,
        batch_size=t.batch_size,
        lr=t.lr,
        extractor_lr=t.extractor_lr,
        head_lr=t.head_lr,
        weight_decay=t.weight_decay,
        eval_batch_size=t.eval_batch_size,
        max_elements=resolve_max_elements(t.max_elements, device, head),
        device=str(device),
        precision=resolve_precision(t.precision, device),
        compile=resolve_compile(t.compile, device),
        eval_from_epoch=t.eval_from_epoch,
        reference=t.reference,
        reference_fraction=t.reference_fraction,
        embed_passes=t.embed_passes,
    )
