"""The set-up of a run, before any split trains: load the data, check it against the config, prepare the inputs
(the cached features of a frozen extractor, or the raw items to fine-tune on), size the parallelism, and hold what
every step of a run needs in one :class:`RunContext` (:func:`start_run`)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from data.base import DataError, RegressionData
from experiments import labels
from experiments.inputs.batches import Inputs, decoded_cache, resolve_num_workers
from experiments.inputs.features import cache_key, cached_features, extract
from experiments.models import schema
from experiments.protocol import preemption
from experiments.protocol.device import resolve_device
from experiments.protocol.settings import ConfigError, head_from_config
from experiments.protocol.splits import split_indices
from experiments.store.run_store import RunStore
from softstep.model import Regressor


@dataclass
class RunContext:
    """What every step of a run needs, built once (:func:`start_run`) and handed down whole: the config, the data and
    its inputs (``in_dim``: the feature width, None when each split builds its own extractor or preprocesses a
    table), the store's folder and chores (:class:`experiments.store.run_store.RunStore`), the device, the threads
    and worker processes, whether to keep the trained models, and, in a worker process, its stop request and the
    file its epoch progress is written to (``stop`` None: :data:`experiments.protocol.preemption.STOP`)."""

    cfg: DictConfig
    data: RegressionData
    inputs: Inputs
    in_dim: int | None
    store: RunStore
    device: torch.device
    threads: int | None = None
    workers: int = 1
    keep_models: bool = False
    stop: object | None = None
    report: Path | None = None

    def stop_request(self):
        """What stops this run's loop: a worker's own stop (``stop``), else the process's :data:`preemption.STOP`."""
        return self.stop if self.stop is not None else preemption.STOP


def start_run(
    cfg: DictConfig,
    data: RegressionData,
    store: RunStore,
    todo: list[int],
    *,
    splits: list[int],
    started: float,
    keep_models: bool = False,
) -> RunContext:
    """Check what the splits ``todo`` need before any of them trains (labels that min-max scaling can divide by, the
    extractor's modality, its pretrained weights, a writable folder clear of leftovers), then build the inputs once."""
    source = OmegaConf.select(cfg, "dataset.loader.path") or OmegaConf.select(cfg, "dataset.loader.root")
    labels.check_labels(data, {s: data.labels[split_indices(cfg, data.labels, s)[0]] for s in todo}, source)
    device = resolve_device(cfg.trainer.device)
    check_modality(cfg, data)
    check_weights(cfg, data)  # missing pretrained weights: said before any item is decoded
    store.prepare(splits, started, cfg.paths.results_root)
    inputs, in_dim = prepare_inputs(cfg, data, device)
    workers, threads = parallel_splits(cfg, device, len(todo)), thread_count(cfg, device)
    return RunContext(cfg, data, inputs, in_dim, store, device, threads, workers, keep_models)


def load_data(cfg: DictConfig) -> RegressionData:
    """The configured dataset (``dataset.loader``), with a warning where its size differs from the paper's."""
    data = instantiate_clearly(cfg.dataset.loader)
    if not isinstance(data, RegressionData):
        raise DataError(
            f"dataset {cfg.dataset.name!r}: loader {cfg.dataset.loader._target_} returned {type(data).__name__}, not RegressionData"
        )
    check_expected_count(cfg, data)
    return data


def instantiate_clearly(node, **kwargs):
    """hydra's instantiate, re-raising our own clear errors instead of its wrapper around them."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, (DataError, ConfigError, FileNotFoundError, ValueError)):
            raise e.__cause__ from None
        raise


def check_expected_count(cfg: DictConfig, data: RegressionData) -> str | None:
    """One warning line on stderr when the loaded count differs from the paper's (``dataset.expected_n``).

    Not an error: releases change. The line names both counts, the likely cause (the dataset's own
    ``expected_n_note`` where it has one, else what fewer or more items usually mean) and, where the
    loader reports them, the counts after each of its filters. Returns the line (None: no check or
    the counts agree)."""
    expected = OmegaConf.select(cfg, "dataset.expected_n", default=None)
    if expected is None or len(data) == int(expected):
        return None
    n, expected = len(data), int(expected)
    cause = OmegaConf.select(cfg, "dataset.expected_n_note", default=None) or (
        "a filter, missing files or only part of the release"
        if n < expected
        else "a newer or different release, or a filter the paper applied that is off here"
    )
    steps = "; ".join(f"{k} {v:,}" for k, v in (getattr(data, "counts", None) or {}).items())
    line = (
        f"[softstep] warning: dataset {cfg.dataset.name!r} loaded {n:,} items, the paper counts {expected:,}; "
        f"likely cause: {cause}" + (f" (here: {steps})" if steps else "") + f"; see data/{cfg.dataset.name}/README.md"
    )
    print(line, file=sys.stderr, flush=True)
    return line


def check_modality(cfg: DictConfig, data: RegressionData) -> None:
    """The extractor config's ``modality`` must match the data's, checked before any model or cache is touched."""
    if cfg.extractor.modality != data.modality:
        raise ConfigError(
            f"extractor {cfg.extractor.name!r} reads {cfg.extractor.modality} but dataset {cfg.dataset.name!r} "
            f"holds {data.modality}; choose an extractor for {data.modality} (extractor=NAME)"
        )


def check_weights(cfg: DictConfig, data: RegressionData) -> None:
    """Pretrained weights the run will load, before any item is decoded: where they are not on this machine
    (:func:`extractors.weights.present`) the extractor is built once now, so that a download happens, or a missing
    weight is reported (:class:`extractors.weights.WeightsNotFound`, naming scripts/fetch_weights.py and
    ``extractor.builder.source=random``), before minutes of decoding. A frozen extractor whose features are cached
    needs none."""
    from extractors import weights

    if not cfg.extractor.finetune and feature_cache_path(cfg, data).is_file():
        return
    builder = cfg.extractor.builder
    try:
        need = weights.hub_weight(cfg.extractor.name, str(builder._target_), OmegaConf.select(builder, "source"))
    except ValueError:  # a builder of the user's own: it loads its weights its own way
        return
    if need is not None and not weights.present(need):
        build_extractor(cfg, data)


def feature_cache_path(cfg: DictConfig, data: RegressionData) -> Path:
    """Where a frozen extractor's features of ``data`` are cached."""
    builder = OmegaConf.to_container(cfg.extractor.builder, resolve=True)
    key = cache_key(data, cfg.extractor.name, json.dumps(builder, sort_keys=True))
    return Path(cfg.paths.cache_dir) / "features" / f"{key}.pt"


def prepare_inputs(cfg: DictConfig, data: RegressionData, device) -> tuple[Inputs, int | None]:
    """(inputs, feature width): cached features of a frozen extractor (none is built on a cache hit),
    or the raw items when fine-tuning (width None: each split builds its own extractor). A table's columns
    are preprocessed per split instead (:func:`experiments.inputs.tabular.split_inputs`)."""
    if data.columns is not None:
        return Inputs(), None
    if cfg.extractor.finetune:
        workers = resolve_num_workers(cfg.trainer.num_workers)
        cache = decoded_cache(
            Path(cfg.paths.cache_dir) / "decoded",
            data,
            cfg.trainer.decoded_cache,
            num_workers=workers,
            progress=cfg.progress,
        )
        return Inputs(data=data, num_workers=workers, cache=cache), None
    path = feature_cache_path(cfg, data)

    def compute():
        return extract(
            build_extractor(cfg, data),
            data,
            batch_size=cfg.trainer.eval_batch_size,
            device=device,
            progress=cfg.progress,
        )

    feats = cached_features(path, compute)
    if len(feats) != len(data):
        raise DataError(
            f"feature cache {path} holds {len(feats)} rows but the dataset has {len(data)}; delete the file"
        )
    return Inputs(features=feats), feats.shape[1]


def build_model(cfg: DictConfig, data: RegressionData, in_dim: int | None) -> Regressor:
    """The configured model: the MLP, its head and, when fine-tuning, the pretrained extractor (every split starts
    again from the same weights; ``in_dim``: the width of the cached features, unused then)."""
    head = head_from_config(cfg)
    extractor = None
    if cfg.extractor.finetune:
        extractor = build_extractor(cfg, data)
        in_dim = extractor.out_dim
    return Regressor(in_dim, cfg.model.hidden, cfg.model.embed_dim, head, extractor, cfg.model.dropout, cfg.model.arch)


def build_extractor(cfg: DictConfig, data: RegressionData):
    """The configured extractor (its modality was checked against the data by :func:`check_modality`)."""
    in_dim = int(np.prod(np.shape(data.load(data.items[0])))) if data.modality == "table" else None
    return instantiate_clearly(cfg.extractor.builder, finetune=bool(cfg.extractor.finetune), in_dim=in_dim)


_DIGESTS: dict[str, str] = {}


def frozen_extractor_sha256(cfg: DictConfig, data: RegressionData) -> str | None:
    """The SHA-256 of the frozen extractor's weights (:func:`experiments.models.schema.extractor_digest`), which a
    saved model records and predict checks; built once a process. None when the model file holds the extractor
    (fine-tuned) or a table's columns need none."""
    if cfg.extractor.finetune or data.columns is not None:
        return None
    key = json.dumps(OmegaConf.to_container(cfg.extractor.builder, resolve=True), sort_keys=True)
    if key not in _DIGESTS:
        _DIGESTS[key] = schema.extractor_digest(build_extractor(cfg, data))
    return _DIGESTS[key]


def parallel_splits(cfg: DictConfig, device: torch.device, n_todo: int) -> int:
    """How many splits train at once: ``trainer.workers``, where ``auto`` means one process per CPU
    core (one thread each) for cached features on the CPU outside SLURM, else 1. A SLURM job runs its
    splits in one process, so that the pre-termination signal reaches the training loop."""
    workers = cfg.trainer.workers
    if workers == "auto":
        frozen_cpu = device.type == "cpu" and not cfg.extractor.finetune
        workers = (os.cpu_count() or 1) if frozen_cpu and "SLURM_JOB_ID" not in os.environ else 1
    return max(1, min(int(workers), n_todo))


def thread_count(cfg: DictConfig, device: torch.device) -> int | None:
    """``trainer.threads``: ``auto`` is one thread for a small MLP on cached features on the CPU (least overhead)."""
    threads = cfg.trainer.threads
    if threads == "auto":
        threads = 1 if (device.type == "cpu" and not cfg.extractor.finetune) else None
    return int(threads) if threads else None
