"""SLURM sweeps that submit and exit: an experiment → a manifest of ``run.py`` override lines → ``sbatch --array``.

One manifest line is one job: one (dataset, head, hyperparameters, split). The grid comes from the
experiment's ``hydra.sweeper.params`` (the same grid ``python run.py -m experiment=...`` sweeps), crossed
with sweeps given on the command line (``head=nca,linear``; the command line wins for a key it names).

- **Idempotent.** Each line is composed to its result identity (dataset, extractor, head, ``run_id``,
  split). Lines with the same identity collapse to one (e.g. the linear head ignores ``head.similarity``),
  lines whose result file exists are left out, and so are lines queued or running now. Submitting twice
  submits nothing the second time.
- **Chunked.** Arrays larger than the cluster's ``MaxArraySize`` are split; each chunk reads its lines
  from the one manifest at an offset.
- **Same resources as the Hydra path.** sbatch flags are read from a Hydra launcher config
  (``configs/hydra/launcher/submitit_h100.yaml`` by default), so per-cluster values live in one place.
- **Findable logs.** Every task logs to ``<log_dir>/<array job>_<task>.out`` (stderr too), and
  ``<log_dir>/submissions.tsv`` maps each array to its manifest, so :func:`status` can tie a log or a
  queue entry to its line.

The sbatch template is ``slurm/array.sbatch``; preemption and requeueing: :mod:`experiments.preemption`.
"""
from __future__ import annotations

import ast
import itertools
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "slurm" / "array.sbatch"
DEFAULT_MAX_ARRAY_SIZE = 1000
DEFAULT_LAUNCHER = "submitit_h100"
#: run.py's exit status after a preemption checkpoint: the template requeues the task (experiments.preemption).
REQUEUE_EXIT = 75
EXIT_LINE = re.compile(r"^\[softstep\] exit status (-?\d+)", re.M)


class SweepError(ValueError):
    """A bad experiment, override or cluster answer; the message says what and how to fix it."""


@dataclass(frozen=True)
class Job:
    """One manifest line and the result it will write."""

    line: str            # run.py arguments, shell-quoted
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
    def run_key(self):
        from experiments.results import RunKey

        return RunKey(self.results_root, self.dataset, self.extractor, self.head, self.run_id)

    def result_path(self) -> Path:
        return self.run_key.split_path(self.split)

    def done(self) -> bool:
        return self.split in self.run_key.finished()


# ---------------------------------------------------------------- configs
def compose(overrides: list[str], hydra: bool = False):
    """The config ``python run.py <overrides>`` would run (``hydra=True`` keeps the ``hydra`` node)."""
    from hydra import compose as _compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside _hydra_context(), or a caller's own
        return _compose("config", overrides=list(overrides), return_hydra_config=hydra)
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return _compose("config", overrides=list(overrides), return_hydra_config=hydra)


class _hydra_context:
    """Initialise Hydra once for many compositions (each ``initialize`` costs as much as a compose)."""

    def __enter__(self):
        from hydra import initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra

        self.ctx = None if GlobalHydra.instance().is_initialized() else \
            initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3")
        if self.ctx is not None:
            self.ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


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


def expand(experiment: str, overrides: list[str] = ()) -> list[Job]:
    """Every job of an experiment: one per distinct (dataset, extractor, head, run_id, split), in grid order."""
    fixed, swept = grid(experiment, list(overrides))
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
    jobs: dict[tuple, Job] = {}
    with _hydra_context():
        for combo in itertools.product(*swept.values()):
            _add_jobs(jobs, fixed + list(combo), explicit)
    return list(jobs.values())


def _add_jobs(jobs: dict, items: list[str], explicit: list[int] | None) -> None:
    """Compose one grid point and add a job per split (the first line of each result identity wins)."""
    from experiments.pipeline import ConfigError, run_id, validate

    try:
        cfg = compose(items)
        splits = validate(cfg) if explicit is None else explicit
    except ConfigError as e:
        raise SweepError(f"{' '.join(items)}: {e}") from None
    except Exception as e:  # noqa: BLE001 - a missing dataset config etc.: name the line
        raise SweepError(f"cannot compose {' '.join(items)}: {e}") from None
    rid, root = run_id(cfg), _root(str(cfg.paths.results_root))
    for s in splits:
        line = " ".join(shlex.quote(i) for i in items + [f"splits={s}"])
        job = Job(line, cfg.dataset.name, cfg.extractor.name, cfg.head.name, rid, int(s), root)
        jobs.setdefault(job.key, job)


def launcher_settings(experiment: str, overrides: list[str] = (), launcher: str = DEFAULT_LAUNCHER) -> dict:
    """The resolved resource fields of a Hydra launcher config (the same values ``-m`` would submit with)."""
    plain = [o.input_line for o in _parse(list(overrides)) if not o.is_sweep_override()]
    try:
        cfg = compose([f"experiment={experiment}", f"hydra/launcher={launcher}", *plain], hydra=True)
    except Exception as e:  # noqa: BLE001
        raise SweepError(f"launcher {launcher!r}: {e}") from None
    node = cfg.hydra.launcher
    keys = ("partition", "account", "qos", "constraint", "timeout_min", "cpus_per_task", "mem_gb", "gres",
            "gpus_per_node", "signal_delay_s", "array_parallelism", "additional_parameters", "setup")
    return {k: OmegaConf.to_container(node, resolve=True)[k] if k in ("additional_parameters", "setup") else
            OmegaConf.select(node, k) for k in keys}


# ---------------------------------------------------------------- the cluster
def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def slurm_available() -> bool:
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def max_array_size(default: int = DEFAULT_MAX_ARRAY_SIZE) -> int:
    """Tasks one array may hold: the cluster's ``MaxArraySize`` (indices run 0..MaxArraySize-1), else ``default``."""
    if shutil.which("scontrol") is None:
        return default
    try:
        out = _run(["scontrol", "show", "config"], timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return default
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.M)
    return int(m.group(1)) if m else default


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """(offset, count) of each array when ``n`` lines go into arrays of at most ``size`` tasks."""
    if size < 1:
        raise SweepError(f"max array size must be >= 1, got {size}")
    return [(o, min(size, n - o)) for o in range(0, n, size)]


def sbatch_command(settings: dict, *, experiment: str, manifest: Path, setup: Path, log_dir: Path, offset: int,
                   count: int, parallel: int, python: str = sys.executable) -> list[str]:
    """The ``sbatch`` call for one array of ``count`` manifest lines starting at line ``offset`` (0-based)."""
    s = settings
    cmd = ["sbatch", "--parsable", f"--job-name=softstep-{experiment}", f"--array=0-{count - 1}%{parallel}",
           f"--output={log_dir}/%A_%a.out", "--open-mode=append", "--requeue",
           f"--signal=B:USR1@{s.get('signal_delay_s') or 120}", f"--chdir={REPO}",
           f"--time={s['timeout_min']}", "--nodes=1", "--ntasks=1"]
    for key, flag in (("partition", "partition"), ("account", "account"), ("qos", "qos"), ("constraint", "constraint"),
                      ("cpus_per_task", "cpus-per-task"), ("gres", "gres"), ("gpus_per_node", "gpus-per-node")):
        if s.get(key) not in (None, ""):
            cmd.append(f"--{flag}={s[key]}")
    if s.get("mem_gb"):
        cmd.append(f"--mem={s['mem_gb']}G")
    for key, value in (s.get("additional_parameters") or {}).items():
        cmd.append(f"--{key.replace('_', '-')}" + ("" if value is True else f"={value}"))
    env = dict(SOFTSTEP_MANIFEST=manifest, SOFTSTEP_OFFSET=offset, SOFTSTEP_SETUP=setup, SOFTSTEP_PYTHON=python)
    for k, v in env.items():
        if "," in str(v):
            raise SweepError(f"{k}={v}: sbatch --export cannot carry a comma; choose another path")
    cmd.append("--export=ALL," + ",".join(f"{k}={v}" for k, v in env.items()))
    cmd.append(str(TEMPLATE))
    return cmd


@dataclass
class Submission:
    array_job_id: str
    manifest: Path
    offset: int
    count: int


@dataclass
class Plan:
    """What a submit would do (or did): the jobs left to run and the sbatch commands."""

    experiment: str
    jobs: list[Job]
    skipped_done: int
    skipped_active: int
    manifest: Path
    setup: Path
    setup_lines: list[str]
    arrays: list[tuple[int, int]] = field(default_factory=list)       # (offset, count) per sbatch command
    commands: list[list[str]] = field(default_factory=list)
    submitted: list[Submission] = field(default_factory=list)


def default_log_dir(experiment: str) -> Path:
    return REPO / "logs" / experiment


def plan(experiment: str, overrides: list[str] = (), *, log_dir: Path | None = None, launcher: str = DEFAULT_LAUNCHER,
         max_array: int | None = None, parallel: int | None = None, resources: dict | None = None,
         python: str = sys.executable) -> Plan:
    """Expand, leave out done and active jobs, and build the sbatch commands (nothing is written)."""
    log_dir = Path(log_dir or default_log_dir(experiment)).resolve()
    all_jobs = expand(experiment, list(overrides))
    todo = [j for j in all_jobs if not j.done()]
    active = set(active_lines(log_dir, experiment)) if slurm_available() else set()
    left = [j for j in todo if j.line not in active]
    settings = launcher_settings(experiment, list(overrides), launcher)
    settings.update({k: v for k, v in (resources or {}).items() if v is not None})
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    manifest, setup = log_dir / f"manifest-{stamp}.txt", log_dir / f"setup-{stamp}.sh"
    p = Plan(experiment, left, len(all_jobs) - len(todo), len(todo) - len(left), manifest, setup,
             list(settings["setup"] or []))
    size = max_array or max_array_size()
    par = parallel or settings.get("array_parallelism") or 64
    for offset, count in chunks(len(left), size):
        p.arrays.append((offset, count))
        p.commands.append(sbatch_command(settings, experiment=experiment, manifest=manifest, setup=setup, log_dir=log_dir,
                                         offset=offset, count=count, parallel=min(par, count), python=python))
    return p


def submit(p: Plan) -> Plan:
    """Write the manifest and setup file, run the sbatch commands, record each array in submissions.tsv."""
    if not p.jobs:
        return p
    if not slurm_available():
        raise SweepError("sbatch/squeue not found: submit from a SLURM login node, or use --dry-run")
    log_dir = p.manifest.parent
    log_dir.mkdir(parents=True, exist_ok=True)
    if not (log_dir.parent / ".gitignore").exists() and log_dir.parent == REPO / "logs":
        (log_dir.parent / ".gitignore").write_text("*\n")
    p.manifest.write_text("".join(j.line + "\n" for j in p.jobs))
    p.setup.write_text("# sourced by slurm/array.sbatch before each task (from the launcher config's setup lines)\n"
                     + "".join(f"{line}\n" for line in p.setup_lines))
    for cmd, (offset, count) in zip(p.commands, p.arrays):
        out = _run(cmd, timeout=120)
        if out.returncode != 0:
            raise SweepError(f"sbatch failed ({out.returncode}): {out.stderr.strip()}\n  command: {shlex.join(cmd)}")
        job_id = out.stdout.strip().split(";")[0]
        sub = Submission(job_id, p.manifest, offset, count)
        p.submitted.append(sub)
        with open(log_dir / "submissions.tsv", "a") as f:
            f.write(f"{sub.array_job_id}\t{sub.manifest}\t{sub.offset}\t{sub.count}\n")
    return p


# ---------------------------------------------------------------- status
def submissions(log_dir: Path) -> list[Submission]:
    path = Path(log_dir) / "submissions.tsv"
    if not path.exists():
        return []
    out = []
    for row in path.read_text().splitlines():
        if row.strip():
            job_id, manifest, offset, count = row.split("\t")
            out.append(Submission(job_id, Path(manifest), int(offset), int(count)))
    return out


def _manifest_lines(path: Path, cache: dict) -> list[str]:
    if path not in cache:
        cache[path] = path.read_text().splitlines() if path.exists() else []
    return cache[path]


def _task_ids(spec: str) -> list[int]:
    """squeue's %K: ``3``, or for a pending block ``0-9%2`` / ``1,4-6``."""
    ids: list[int] = []
    for part in spec.split("%")[0].strip("[]").split(","):
        if "-" in part:
            a, b = part.split("-")
            ids.extend(range(int(a), int(b) + 1))
        elif part.isdigit():
            ids.append(int(part))
    return ids


def queue(experiment: str) -> list[tuple[str, int, str]]:
    """(array job id, task id, state) of this experiment's tasks in squeue; [] where SLURM is absent."""
    if not slurm_available():
        return []
    try:
        out = _run(["squeue", "-h", "-r", f"--name=softstep-{experiment}", "-o", "%F|%K|%T"], timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    rows = []
    for row in out.stdout.splitlines():
        parts = row.strip().split("|")
        if len(parts) == 3 and parts[1] not in ("", "N/A"):
            rows.extend((parts[0], t, parts[2]) for t in _task_ids(parts[1]))
    return rows


def active_lines(log_dir: Path, experiment: str) -> dict[str, str]:
    """Manifest line → squeue state, for this log folder's tasks that are pending or running."""
    subs = {s.array_job_id: s for s in submissions(log_dir)}
    cache: dict = {}
    out = {}
    for array_id, task, state in queue(experiment):
        s = subs.get(array_id)
        if s is None:
            continue
        lines = _manifest_lines(s.manifest, cache)
        if s.offset + task < len(lines):
            out[lines[s.offset + task]] = state
    return out


def log_verdict(text: str) -> str | None:
    """'failed', 'ok', 'requeued' from a task log, or None when it has not ended."""
    codes = EXIT_LINE.findall(text)
    if codes:
        code = int(codes[-1])
        return "ok" if code == 0 else "requeued" if code == REQUEUE_EXIT else "failed"
    return "failed" if "Traceback (most recent call last)" in text else None


def latest_logs(log_dir: Path) -> dict[str, Path]:
    """Manifest line → its most recent task log (later submissions win)."""
    cache: dict = {}
    out = {}
    for s in submissions(log_dir):
        lines = _manifest_lines(s.manifest, cache)
        for task in range(s.count):
            log = Path(log_dir) / f"{s.array_job_id}_{task}.out"
            if log.exists() and s.offset + task < len(lines):
                out[lines[s.offset + task]] = log
    return out


@dataclass
class Status:
    jobs: list[Job]
    state: dict[tuple, str]            # job key → done | running | pending | failed | missing
    failures: dict[tuple, Path]        # job key → its log

    def table(self) -> list[dict]:
        rows: dict[tuple, dict] = {}
        for j in self.jobs:
            r = rows.setdefault((j.dataset, j.head), dict(dataset=j.dataset, head=j.head, total=0, done=0, running=0,
                                                          pending=0, failed=0, missing=0))
            r["total"] += 1
            r[self.state[j.key]] += 1
        return list(rows.values())

    def missing(self) -> list[Job]:
        return [j for j in self.jobs if self.state[j.key] in ("failed", "missing")]


RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}


def status(experiment: str, overrides: list[str] = (), *, log_dir: Path | None = None) -> Status:
    """Each job's state from the result files, the queue (when SLURM answers) and the task logs."""
    log_dir = Path(log_dir or default_log_dir(experiment)).resolve()
    jobs = expand(experiment, list(overrides))
    active = active_lines(log_dir, experiment)
    logs = latest_logs(log_dir)
    state, failures = {}, {}
    for j in jobs:
        if j.done():
            state[j.key] = "done"
        elif j.line in active:
            state[j.key] = "running" if active[j.line] in RUNNING else "pending"
        elif j.line in logs and log_verdict(logs[j.line].read_text(errors="replace")) in ("failed", None):
            # ended with an error, or ended without saying so (killed, out of memory, time limit)
            state[j.key], failures[j.key] = "failed", logs[j.line]
        else:
            state[j.key] = "missing"
    return Status(jobs, state, failures)


def format_status(st: Status) -> str:
    cols = ("dataset", "head", "done", "running", "pending", "failed", "missing", "total")
    rows = st.table()
    width = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in cols}
    out = ["  ".join(c.ljust(width[c]) for c in cols)]
    out += ["  ".join(str(r[c]).ljust(width[c]) for c in cols) for r in rows]
    tot = {c: sum(r[c] for r in rows) for c in cols[2:]}
    out.append("  ".join(["all".ljust(width["dataset"]), "".ljust(width["head"])] + [str(tot[c]).ljust(width[c]) for c in cols[2:]]))
    if st.failures:
        out.append("\nfailed (log, then the job's overrides):")
        by_key = {j.key: j for j in st.jobs}
        for key, log in st.failures.items():
            out.append(f"  {log}\n      {by_key[key].line}")
    return "\n".join(out)
