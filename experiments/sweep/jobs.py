"""An experiment → its jobs: the sweep grid, one :class:`Job` per result identity and split, and the
resources of a Hydra launcher config.

The grid comes from the experiment's ``hydra.sweeper.params`` (the same grid ``python run.py -m
experiment=...`` sweeps), crossed with sweeps given on the command line (``head=nca,linear``; the command
line wins for a key it names). Each line is composed to its result identity (dataset, extractor, head,
``run_id``, split), and lines with the same identity collapse to one (e.g. the linear head ignores
``head.similarity``).

**Parts.** An experiment may list ``parts``: grids of their own (each a mapping of key to swept values, as
``hydra.sweeper.params``), each crossed with the experiment's grid and the command line and unioned, e.g. the
offline study's protocols with different split counts, and controls only where a head has a step: a line whose
``head.control`` does not apply to its head (a control of a head without a step) is left out of a part. Hydra's
``-m`` sweeps the base grid only; ``scripts/submit.py`` expands the parts.

**Same resources as the Hydra path.** sbatch flags are read from a Hydra launcher config
(``configs/hydra/launcher/submitit_h100.yaml`` by default), so per-cluster values live in one place.
"""

from __future__ import annotations

import ast
import itertools
import shlex
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from experiments.protocol.compose import compose, hydra_context
from experiments.store.results import RunKey

REPO = Path(__file__).resolve().parents[2]
DEFAULT_LAUNCHER = "submitit_h100"


class SweepError(ValueError):
    """A bad experiment, override or cluster answer; the message says what and how to fix it."""


@dataclass(frozen=True)
class Job:
    """One manifest line and the result it will write."""

    line: str  # run.py arguments, shell-quoted
    dataset: str
    extractor: str
    head: str
    run_id: str
    split: int
    results_root: str

    @property
    def key(self) -> tuple:
        return (self.dataset, self.extractor, self.head, self.run_id, self.split)

    @property
    def run_key(self) -> RunKey:
        return RunKey(self.results_root, self.dataset, self.extractor, self.head, self.run_id)

    def result_path(self) -> Path:
        return self.run_key.split_path(self.split)

    def done(self) -> bool:
        return self.split in self.run_key.finished()


def _parse(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except Exception as e:  # noqa: BLE001 - hydra's parser errors are several types; say which override
        raise SweepError(f"cannot parse overrides {overrides}: {e}") from None


def _item(o, value: str) -> str:
    return o.input_line if o.is_delete() else f"{o.get_key_element()}={value}"


def grid(experiment: str, overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(fixed overrides, {key: [``key=value`` per swept value]}) for an experiment plus command-line overrides.

    The experiment's ``hydra.sweeper.params`` come first; a command-line override of the same key
    replaces that key's sweep, as in ``python run.py -m``.
    """
    plain = [o for o in _parse(overrides) if not o.is_sweep_override()]
    try:
        base = compose([f"experiment={experiment}", *[o.input_line for o in plain]], hydra=True)
    except Exception as e:  # noqa: BLE001 - composition errors: missing group option, bad key
        raise SweepError(f"experiment {experiment!r} with {overrides}: {e}") from None
    params = OmegaConf.to_container(base.hydra.sweeper.params, resolve=False) or {}
    merged: dict[str, list[str]] = {}
    for o in _parse([f"{k}={v}" for k, v in params.items()] + list(overrides)):
        key = o.get_key_element()
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        merged[key] = [_item(o, v) for v in values]
    fixed = [f"experiment={experiment}"]
    swept = {}
    for key, items in merged.items():
        if len(items) == 1:
            fixed.append(items[0])
        else:
            swept[key] = items
    return fixed, swept


def _splits_of(items: list[str]) -> list[int]:
    out: list[int] = []
    for item in items:
        value = ast.literal_eval(item.split("=", 1)[1])
        out.extend(value if isinstance(value, (list, tuple)) else [value])
    return out


def _root(path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else REPO / p)  # jobs run in the repository root (sbatch --chdir)


def experiment_parts(experiment: str) -> list[list[str]]:
    """The experiment's ``parts`` as override lists (``[[]]``: one part, the experiment's grid itself)."""
    try:
        base = compose([f"experiment={experiment}"], hydra=True)
    except Exception as e:  # noqa: BLE001 - composition errors: missing group option, bad key
        raise SweepError(f"experiment {experiment!r}: {e}") from None
    node = OmegaConf.select(base, "parts", default=None)
    parts = [] if node is None else OmegaConf.to_container(node, resolve=False)
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise SweepError(f"configs/experiment/{experiment}.yaml: parts must be a list of mappings key: values")
    return [[f"{k}={v}" for k, v in part.items()] for part in parts] or [[]]


def expand(experiment: str, overrides: list[str] = (), only: list[int] | None = None) -> list[Job]:
    """Every job of an experiment: one per distinct (dataset, extractor, head, run_id, split), in grid order (part
    by part where the experiment has ``parts``; the command line wins over a part for a key it names). ``only``:
    the parts to keep, numbered from 1 as listed (``submit.py --part``)."""
    parts = experiment_parts(experiment)
    count = 0 if parts == [[]] else len(parts)
    bad = [str(n) for n in only or () if not 1 <= n <= count]
    if bad:
        has = f"parts 1 to {count}" if count else "no parts"
        raise SweepError(f"--part {','.join(bad)}: configs/experiment/{experiment}.yaml has {has}")
    jobs: dict[tuple, Job] = {}
    for number, part in enumerate(parts, 1):
        lines = None if only and number not in only else _in_part(part, list(overrides))
        if lines is not None:
            _expand_grid(jobs, experiment, lines, in_part=len(parts) > 1 or bool(part))
    return list(jobs.values())


def _in_part(part: list[str], overrides: list[str]) -> list[str] | None:
    """A part's overrides with the command line's. Where both name a key, the command line's values filter the
    part's (``dataset=vader`` keeps a part's vader lines; a part without any is left out: None); the command
    line's other keys apply as given."""
    if not part:
        return overrides
    mine = {o.get_key_element(): o for o in _parse(part)}
    out = []
    for o in _parse(overrides):
        key = o.get_key_element()
        if key not in mine or o.is_delete():
            out.append(o.input_line)
            continue
        theirs, ours = _values(o), _values(mine.pop(key))
        kept = [v for v in ours if v in theirs]
        if not kept:
            return None
        out.append(f"{key}=[{','.join(kept)}]" if key == "splits" else f"{key}={','.join(kept)}")
    return [o.input_line for o in mine.values()] + out


def _values(o) -> list[str]:
    values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
    if o.get_key_element() == "splits":
        return [str(s) for s in _splits_of([f"splits={v}" for v in values])]
    return values


def _expand_grid(jobs: dict, experiment: str, overrides: list[str], in_part: bool) -> None:
    fixed, swept = grid(experiment, overrides)
    split_items = swept.pop("splits", None)
    if split_items is None:
        split_items = [i for i in fixed if i.startswith("splits=")]
        fixed = [i for i in fixed if not i.startswith("splits=")]
    try:
        explicit = _splits_of(split_items) if split_items else None
    except (ValueError, SyntaxError) as e:
        raise SweepError(f"splits {split_items}: {e}") from None
    if explicit is not None and not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in explicit):
        raise SweepError(f"bad splits {split_items}: each split is an integer seed >= 0")
    with hydra_context():
        for combo in itertools.product(*swept.values()):
            _add_jobs(jobs, fixed + list(combo), explicit, in_part)


def _add_jobs(jobs: dict, items: list[str], explicit: list[int] | None, in_part: bool = False) -> None:
    """Compose one grid point and add a job per split (the first line of each result identity wins); in a part,
    a control of a head without a step is left out."""
    from experiments.protocol.settings import ConfigError, check_config, control_without_step
    from experiments.store.identity import run_key

    try:
        cfg = compose(items)
        if in_part and control_without_step(cfg):
            return
        splits = check_config(cfg) if explicit is None else explicit
    except ConfigError as e:
        raise SweepError(f"{' '.join(items)}: {e}") from None
    except Exception as e:  # noqa: BLE001 - a missing dataset config etc.: name the line
        raise SweepError(f"cannot compose {' '.join(items)}: {e}") from None
    key = run_key(cfg)
    root = _root(key.results_root)
    for s in splits:
        line = " ".join(shlex.quote(i) for i in items + [f"splits={s}"])
        job = Job(line, key.dataset, key.extractor, key.head, key.run_id, int(s), root)
        jobs.setdefault(job.key, job)


def launcher_settings(experiment: str, overrides: list[str] = (), launcher: str = DEFAULT_LAUNCHER) -> dict:
    """The resolved resource fields of a Hydra launcher config (the same values ``-m`` would submit with)."""
    plain = [o.input_line for o in _parse(list(overrides)) if not o.is_sweep_override()]
    try:
        cfg = compose([f"experiment={experiment}", f"hydra/launcher={launcher}", *plain], hydra=True)
    except Exception as e:  # noqa: BLE001
        raise SweepError(f"launcher {launcher!r}: {e}") from None
    node = cfg.hydra.launcher
    keys = (
        "partition",
        "account",
        "qos",
        "constraint",
        "timeout_min",
        "cpus_per_task",
        "mem_gb",
        "gres",
        "gpus_per_node",
        "signal_delay_s",
        "array_parallelism",
        "additional_parameters",
        "setup",
    )
    return {
        k: OmegaConf.to_container(node, resolve=True)[k]
        if k in ("additional_parameters", "setup")
        else OmegaConf.select(node, k)
        for k in keys
    }
