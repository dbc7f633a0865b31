"""Kernels per training step of each head → results/benchmarks/ops.md.

    python -m benchmarks.ops                     # this tree, about a minute on 2 cores → results/benchmarks/scratch/ops.md
    python -m benchmarks.ops --write             # the same, written to the committed results/benchmarks/ops.md
    python -m benchmarks.ops --compare 0df4e0d   # beside the code of another commit (a git worktree)

At the paper's batch size (32) a GPU training step is bound by kernel launches, not arithmetic: on an
H100 (``results/benchmarks/gpu.md``) each head's step took the linear head's time plus 16–19 µs per
dispatched operator. Counting the operators needs no GPU, so this script counts them here: every ATen
call of one step (forward and backward of MLP(64 → 200 → d) + head + MSE, Adam excluded), views and
other metadata-only calls left out, each head with its paper similarity and embedding size
(``softstep.TUNED``). Two paths: ``cuda`` is the code a CUDA training step runs
(``softstep.distances.in_cuda_training`` patched on: no input scans, the dense near-pair correction),
``cpu`` the CPU's. Beside them, the CPU's median ms per step (B = 32, heads timed in turn) and its ratio to the linear head.
With ``--compare REV`` each tree runs in its own subprocesses, alternately, so load falls on both alike.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METADATA_ONLY = {
    "view",
    "_unsafe_view",
    "expand",
    "t",
    "transpose",
    "unsqueeze",
    "squeeze",
    "select",
    "slice",
    "as_strided",
    "alias",
    "detach",
    "permute",
    "unbind",
    "split",
    "_reshape_alias",
    "reshape",
    "lift_fresh",
    "unfold",
    "diagonal",
    "empty_like",
    "empty",
}


def paper_settings() -> dict[str, tuple[str | None, int]]:
    """head -> (similarity, embed_dim), the paper's tuned values (softstep.TUNED of this tree; a --child measuring
    another tree gets them from its parent, as older trees have no softstep.TUNED)."""
    if SETTINGS_ENV in os.environ:
        return {h: tuple(v) for h, v in json.loads(os.environ[SETTINGS_ENV]).items()}
    from softstep.heads import TUNED

    return {h: (t["similarity"], t["embed_dim"]) for h, t in TUNED.items()}


SETTINGS_ENV = "SOFTSTEP_OPS_PAPER_SETTINGS"


def heads() -> tuple[str, ...]:
    """The paper's heads in Table 1's order (the library's registry, :data:`softstep.heads.HEAD_SPECS`)."""
    return tuple(paper_settings())


def count_ops(step) -> collections.Counter:
    """ATen operators dispatched by ``step()`` (forward and backward), by name, metadata-only calls left out."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.namespace != "aten":  # not a kernel: profiler marks; a Python operator (softstep::isotonic_l2) is
                from torch._library.custom_ops import OPDEFS  # counted by the ATen calls inside it

                if func.name() not in OPDEFS:
                    return func(*args, **(kwargs or {}))
                with self:
                    return OPDEFS[func.name()]._init_fn(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            if name not in METADATA_ONLY:
                self.ops[name] += 1
            return func(*args, **(kwargs or {}))

    with Count() as c:
        step()
    return c.ops


def make_step(name: str, batch: int, seed: int = 0):
    """One training step's forward and backward (the trainer's call: the batch as its own reference set)."""
    import torch
    from torch import nn

    from softstep import build_head

    sim, d = paper_settings()[name]
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, d))
    head = build_head(name, d, **({"similarity": sim} if sim else {})).train()
    x, y = torch.randn(batch, 64), torch.randn(batch)

    def step():
        z = mlp(x)
        loss = torch.mean((head(z, z, y, exclude_self=True) - y) ** 2)
        loss.backward()

    step()  # the first batch sets a neighbour head's β
    return step


def child(batch: int, repeats: int) -> dict:
    import softstep.distances as Fn

    out = {}
    for name in heads():
        step = make_step(name, batch)
        cpu = sum(count_ops(step).values())
        real = Fn.in_cuda_training
        Fn.in_cuda_training = lambda z: __import__("torch").is_grad_enabled()
        try:
            cuda = sum(count_ops(step).values())
        finally:
            Fn.in_cuda_training = real
        out[name] = {"ops_cuda": cuda, "ops_cpu": cpu, "ms": []}
    steps = {name: make_step(name, batch) for name in heads()}
    for _ in range(repeats):  # the heads in turn, so that load falls on all alike
        for name, step in steps.items():
            for _ in range(3):
                step()
            t = time.perf_counter()
            for _ in range(5):
                step()
            out[name]["ms"].append((time.perf_counter() - t) / 5 * 1e3)
    return out


def run_tree(tree: Path, batch: int, repeats: int) -> dict:
    """This file's --child, run by path: its code counts and times, the tree's softstep (on PYTHONPATH) is measured."""
    env = dict(os.environ, PYTHONPATH=str(tree), **{SETTINGS_ENV: json.dumps(paper_settings())})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--batch", str(batch), "--repeats", str(repeats)]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def merge(runs: list[dict]) -> dict:
    out = {name: dict(runs[0][name]) for name in heads()}
    for name in heads():
        out[name]["ms"] = statistics.median([m for r in runs for m in r[name]["ms"]])
    return out


def table(label: str, res: dict, base: dict | None) -> list[str]:
    lines = [
        f"### {label}",
        "",
        "| head | similarity, d | ops (cuda path) | ops (cpu path) | CPU ms | × linear |"
        + (" ops (cuda) vs before |" if base else ""),
        "|---|---|---|---|---|---|" + ("---|" if base else ""),
    ]
    settings = paper_settings()
    for name in heads():
        r, (sim, d) = res[name], settings[name]
        row = (
            f"| {name} | {sim or '–'}, {d} | {r['ops_cuda']} | {r['ops_cpu']} | {r['ms']:.2f} | "
            f"{r['ms'] / res['linear']['ms']:.2f} |"
        )
        if base:
            row += f" {r['ops_cuda'] / base[name]['ops_cuda']:.2f} |"
        lines.append(row)
    ratio = lambda key: res["diffknn_i"][key] / res["nca"][key]  # noqa: E731
    lines += [
        "",
        f"diffknn_i / nca: {ratio('ops_cuda'):.2f} in operators (cuda path), {ratio('ms'):.2f} in CPU time.",
        "",
    ]
    return lines


def parser(output: bool = True) -> argparse.ArgumentParser:
    """The options; ``output=False`` leaves out --write and --out (the child's parser: see :func:`main`)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", help="a git revision to measure beside this tree (run in a temporary worktree)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=15, help="timed repeats per head in each subprocess")
    ap.add_argument("--rounds", type=int, default=3, help="subprocesses per tree, alternating between trees")
    ap.add_argument("--quick", action="store_true", help="one round of 2 repeats (a smoke run)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    if output:
        from benchmarks import _output

        _output.add_arguments(ap, "ops")
    return ap


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if (
        "--child" in argv
    ):  # run by path under the measured tree's PYTHONPATH (--compare), where benchmarks/ may not exist
        args = parser(output=False).parse_args(argv)
        print(json.dumps(child(args.batch, args.repeats)))
        return
    args = parser().parse_args(argv)
    if args.quick:
        args.rounds, args.repeats = 1, 2
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT}
        if args.compare:
            old = Path(tmp) / "before"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.compare],
                check=True,
                capture_output=True,
            )
            trees = {f"before ({args.compare})": old, "this tree": ROOT}
        try:
            runs = {label: [] for label in trees}
            for _ in range(args.rounds):
                for label, tree in trees.items():
                    runs[label].append(run_tree(tree, args.batch, args.repeats))
        finally:
            if args.compare:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    results = {label: merge(r) for label, r in runs.items()}
    import torch

    lines = [
        "# Operators per training step",
        "",
        f"Generated by `python -m benchmarks.ops{' --compare ' + args.compare if args.compare else ''}"
        f"{' --quick' if args.quick else ''}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), no GPU used; "
        f"{time.time() - start:.0f} s. B = {args.batch}. CPU ms: median over {args.rounds} subprocess(es) × "
        f"{args.repeats} repeats of 5 steps per tree.",
        "",
        "Operators: ATen calls of one step's forward and backward (MLP + head + MSE; views left out), on the path a "
        "CUDA training step takes (`cuda`) and the CPU's (`cpu`). On a GPU each costs a kernel launch: on an H100 "
        "a step of gpu.md's benchmark took the linear head's time plus 16–19 µs per operator at B = 32 (`results/benchmarks/gpu.md`).",
        "",
    ]
    labels = list(results)
    for i, label in enumerate(labels):
        lines += table(label, results[label], results[labels[0]] if i else None)
    text = "\n".join(lines)
    print(text)
    from benchmarks import _output

    _output.write(args, text)


if __name__ == "__main__":
    main()
