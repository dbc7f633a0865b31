"""Benchmark the six heads: a training step, and evaluation against a large reference set.

    python -m benchmarks.heads            # full run (about 10 minutes on 2 cores) → results/benchmarks/scratch/heads.md
    python -m benchmarks.heads --write    # the same, written to the committed results/benchmarks/heads.md
    python -m benchmarks.heads --quick    # a smoke run of the same code (small sizes, few repeats)

1. Training step: forward + backward of MLP(64 → 200 → d) + head, the batch as its own reference
   set (exclude_self=True). Median ms per step over repeats after warm-up, and the ratio to the
   linear head.
2. Rank error: mean |soft rank − hard rank| of DiffKNN's training ranks (torchsort, strength in
   units of each row's mean gap) at B ∈ {32, 128, 1024}, for l2, cos and rbf, on random embeddings
   and on embeddings of a briefly trained model; beside it the error of the earlier choice (strength
   0.1 on the raw similarities), and how often the k floor (the row's best soft rank) acts.
3. Evaluation: Q queries against N reference items (d = 100). ``head.predict`` (the
   memory-bounded path, default ``max_elements``) against the dense one-shot ``head(...)`` and
   scikit-learn's ``KNeighborsRegressor(algorithm="brute")``. Every measurement runs in a fresh
   subprocess, time and memory in separate ones. Peak extra memory is measured by the kernel, not
   estimated: the child resets its peak resident set size (``/proc/self/clear_refs`` ← 5) after
   building its inputs, makes one call, and reports VmHWM (peak RSS) − VmRSS (before the call).
   For that child only, glibc's dynamic mmap threshold is pinned (``MALLOC_MMAP_THRESHOLD_``) so
   that large tensors go back to the kernel when freed (otherwise freed heap pages would hide
   later allocations from RSS); the timing child runs with the default allocator, since the
   pinned threshold adds page-fault cost to every large allocation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _output
from softstep import HEADS as HEAD_REGISTRY

ROOT = Path(__file__).resolve().parents[1]
HEADS = tuple(HEAD_REGISTRY)  # the paper's six, in Table 1 order
#: (label, head, σ of DiffKNN's k): a fresh DiffKNN head has σ = 0.5 (half the reference set), a trained one far less
EVAL_HEADS = (
    ("nca", "nca", None),
    ("nca_i", "nca_i", None),
    ("diffknn_i", "diffknn_i", None),
    ("diffknn_i k=1%", "diffknn_i", 0.01),
)
SKLEARN_K = 10  # n_neighbors of the scikit-learn baseline (the heads' own k is learned; this is a typical k)
TIME_GOAL = 1.5  # predict may take at most 1.5× the dense forward


# ---------------------------------------------------------------- 1. training step


def bench_train(batch_sizes, dims, repeats, warmup, steps_per_repeat):
    """Times the six heads round-robin (one repeat of each head in turn), so that load from other
    processes on a shared machine falls on all heads alike; reports the median per head."""
    import torch
    from torch import nn

    from softstep import build_head

    rows = []
    for b in batch_sizes:
        for d in dims:
            steps = {}
            for name in HEADS:
                torch.manual_seed(0)
                mlp = nn.Sequential(nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, d))
                head = build_head(name, d)
                x, y = torch.randn(b, 64), torch.randn(b)

                def step(mlp=mlp, head=head, x=x, y=y):
                    z = mlp(x)
                    loss = nn.functional.mse_loss(head(z, z, y, exclude_self=True), y)
                    mlp.zero_grad(set_to_none=True)
                    head.zero_grad(set_to_none=True)
                    loss.backward()

                for _ in range(warmup):
                    step()
                steps[name] = step
            samples = {name: [] for name in HEADS}
            for _ in range(repeats):
                for name in HEADS:
                    t0 = time.perf_counter()
                    for _ in range(steps_per_repeat):
                        steps[name]()
                    samples[name].append((time.perf_counter() - t0) / steps_per_repeat * 1e3)
            times = {name: statistics.median(v) for name, v in samples.items()}
            for name in HEADS:
                rows.append(
                    {
                        "B": b,
                        "d": d,
                        "head": name,
                        "ms": times[name],
                        "ratio": times[name] / times["linear"],
                        "min_ms": min(samples[name]),
                    }
                )
            print(f"  train B={b} d={d}: " + ", ".join(f"{h} {times[h]:.2f} ms" for h in HEADS), flush=True)
    return rows


# ---------------------------------------------------------------- 2. rank error


def trained_embeddings(n: int, d: int = 25, epochs: int = 3):
    """Embeddings of a briefly trained model: MLP(2 → 200 → d) + diffknn_g on the sinusoidal target, B = 32."""
    import torch
    from torch import nn

    from data.synthetic import target
    from softstep import build_head

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, 2, generator=g) * 2 - 1
    y = torch.as_tensor(target("sinusoidal", x[:, 0].numpy(), x[:, 1].numpy()), dtype=torch.float32)
    y = (y - y.min()) / (y.max() - y.min())
    torch.manual_seed(0)
    mlp, head = nn.Sequential(nn.Linear(2, 200), nn.ReLU(), nn.Linear(200, d)), build_head("diffknn_g", d)
    opt = torch.optim.Adam([*mlp.parameters(), *head.parameters()], lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(2000, generator=g).split(32):
            z = mlp(x[idx])
            loss = nn.functional.mse_loss(head(z, z, y[idx], exclude_self=True), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return mlp(x[torch.randperm(2000, generator=g)[:n]])


def bench_rank_error(batch_sizes, kinds=("l2", "cos", "rbf")):
    """Mean |soft − hard| rank over the off-diagonal entries of one B × B training batch."""
    import torch
    import torchsort

    from softstep import build_head

    embeddings = {
        "random": torch.randn(max(batch_sizes), 25, generator=torch.Generator().manual_seed(1)),
        "trained": trained_embeddings(max(batch_sizes)),
    }
    rows = []
    for source, all_z in embeddings.items():
        for b in batch_sizes:
            z = all_z[:b].double()
            mask = torch.eye(b, dtype=torch.bool)
            for kind in kinds:
                head = build_head("diffknn_g", 25, similarity=kind, learn_scale=False).double()
                sim = head.sim(z, z)
                hard = (-sim.masked_fill(mask, -torch.inf)).argsort(dim=-1, stable=True).argsort(dim=-1).double()
                soft = head.soft_ranks(sim, mask)
                old = (
                    torchsort.soft_rank(
                        -(sim - sim.masked_fill(mask, -torch.inf).amax(-1, keepdim=True)).masked_fill(mask, -1e6),
                        regularization_strength=0.1,
                    )
                    - 1
                )
                best = soft.masked_fill(mask, torch.inf).amin(-1)
                rows.append(
                    {
                        "source": source,
                        "B": b,
                        "similarity": kind,
                        "error": float((soft - hard).abs()[~mask].mean()),
                        "error_old": float((old - hard).abs()[~mask].mean()),
                        "floor_rows": float((best > 1.0).double().mean()),
                    }
                )
            print(
                f"  rank error {source} B={b}: "
                + ", ".join(
                    f"{r['similarity']} {r['error']:.3f} (was {r['error_old']:.1f})" for r in rows[-len(kinds) :]
                ),
                flush=True,
            )
    return rows


# ---------------------------------------------------------------- 3. evaluation (one measurement per child)


def _status_kib(key: str) -> int:
    return int(re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def child(spec: dict) -> dict:
    """Runs in a fresh process: build inputs, reset the peak RSS, time the calls, report."""
    import gc

    import numpy as np
    import torch

    from softstep import build_head

    n, q, d, method, name, repeats = spec["N"], spec["Q"], spec["d"], spec["method"], spec["head"], spec["repeats"]
    g = torch.Generator().manual_seed(0)
    z_ref, y_ref = torch.randn(n, d, generator=g), torch.randn(n, generator=g)
    z = torch.randn(q, d, generator=g)
    if method == "sklearn":
        from sklearn.neighbors import KNeighborsRegressor

        zr, yr, zq = z_ref.numpy(), y_ref.numpy(), z.numpy()

        def call():
            return KNeighborsRegressor(n_neighbors=SKLEARN_K, algorithm="brute").fit(zr, yr).predict(zq)

        warm = lambda: KNeighborsRegressor(n_neighbors=SKLEARN_K, algorithm="brute").fit(zr, yr).predict(zq[:2])  # noqa: E731
    else:
        head = build_head(name, d).eval()
        if spec.get("k_frac"):  # σ of the k parameter (instance bias; its weights start at zero)
            with torch.no_grad():
                head.kstep.params.linear.bias.fill_(float(np.log(spec["k_frac"] / (1 - spec["k_frac"]))))
        if method == "predict":
            call = lambda: head.predict(z, z_ref, y_ref)  # noqa: E731
        else:

            def call():
                with torch.no_grad():
                    return head(z, z_ref, y_ref)

        warm = lambda: head.predict(z[:2], z_ref[:50], y_ref[:50])  # noqa: E731
    warm()
    gc.collect()
    base = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t0)
        out = np.asarray(out)
    peak = _status_kib("VmHWM")
    return {
        "seconds": min(times),
        "median_s": statistics.median(times),
        "peak_mib": (peak - base) / 1024,
        "finite": bool(np.isfinite(out).all()),
    }


def run_child(spec: dict, timeout: float) -> dict:
    """Time (``spec["repeats"]`` calls, default allocator) and peak memory (one call, pinned mmap
    threshold) in two fresh processes; returns seconds, peak_mib and finite, or error."""
    timing = _run_one(spec, timeout, {})
    if "error" in timing:
        return timing
    memory = _run_one(dict(spec, repeats=1), timeout, {"MALLOC_MMAP_THRESHOLD_": "131072"})
    if "error" in memory:
        return memory
    return {
        "seconds": timing["seconds"],
        "median_s": timing["median_s"],
        "peak_mib": memory["peak_mib"],
        "finite": timing["finite"] and memory["finite"],
    }


def _run_one(spec: dict, timeout: float, extra_env: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra_env)
    try:
        res = subprocess.run(
            [sys.executable, "-m", "benchmarks.heads", "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
        return {"error": f"exit {res.returncode}: {tail}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_eval(ns, q, d, repeats_for, timeout):
    rows = []
    for n in ns:
        sk = run_child({"N": n, "Q": q, "d": d, "method": "sklearn", "head": None, "repeats": repeats_for(n)}, timeout)
        print(f"  eval N={n}: sklearn {sk}", flush=True)
        for label, name, k_frac in EVAL_HEADS:
            res = {}
            for method in ("predict", "dense"):
                res[method] = run_child(
                    {
                        "N": n,
                        "Q": q,
                        "d": d,
                        "method": method,
                        "head": name,
                        "k_frac": k_frac,
                        "repeats": repeats_for(n),
                    },
                    timeout,
                )
            print(f"  eval N={n} {label}: {res}", flush=True)
            rows.append({"N": n, "head": label, "predict": res["predict"], "dense": res["dense"], "sklearn": sk})
    return rows


# ---------------------------------------------------------------- report


def _fmt(x, spec=".2f"):
    return "n/a" if x is None else format(x, spec)


def rank_error_lines(rows) -> list[str]:
    kinds = sorted({r["similarity"] for r in rows}, key=("l2", "cos", "rbf").index)
    lines = [
        "## 2. Rank error",
        "",
        "DiffKNN's training ranks: mean |soft rank − hard rank| over the off-diagonal entries of one B × B batch "
        "(the batch its own reference set). Soft ranks: torchsort L2 soft rank of each row in units of the row's "
        "mean gap (max − min)/(B − 2), strength 0.1 (the library's default). In brackets: the earlier choice, "
        "strength 0.1 on the raw similarities. `random`: 25-d Gaussian embeddings; `trained`: embeddings of "
        "MLP(2 → 200 → 25) + diffknn_g after 3 epochs on the sinusoidal target. Floor: share of rows whose best "
        "soft rank exceeds 1 (only there can the k floor act, for k < that rank). Goal: ≤ 0.5 rank.",
        "",
        "| embeddings | B | " + " | ".join(kinds) + " | floor rows |",
        "|---|---|" + "---|" * (len(kinds) + 1),
    ]
    for source in ("random", "trained"):
        for b in sorted({r["B"] for r in rows}):
            cells = {r["similarity"]: r for r in rows if r["source"] == source and r["B"] == b}
            lines.append(
                f"| {source} | {b} | "
                + " | ".join(f"{cells[k]['error']:.3f} ({cells[k]['error_old']:.1f})" for k in kinds)
                + f" | {max(c['floor_rows'] for c in cells.values()):.1%} |"
            )
    worst = max(r["error"] for r in rows)
    lines += ["", f"Largest mean error: {worst:.3f} rank ({'goal met' if worst <= 0.5 else 'goal NOT met'}).", ""]
    return lines


def report(train_rows, rank_rows, eval_rows, args, q, d, wall) -> str:
    import sklearn
    import torch

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    lines = [
        "# Head benchmarks",
        "",
        f"Generated by `python -m benchmarks.heads{' --quick' if args.quick else ''}` on "
        f"{dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, Python {platform.python_version()}; "
        f"no GPU used. Total benchmark wall time {wall / 60:.1f} min. Load average (1 min) at start "
        f"{args.load[0]:.1f}, at end {os.getloadavg()[0]:.1f}: the machine is shared, so absolute times are noisy; "
        "the ratios compare runs made side by side.",
        "",
        "## 1. Training step (forward + backward)",
        "",
        "MLP(64 → 200 → d) + head, the batch as its own reference set (`exclude_self=True`). "
        f"Median of {args.train_repeats} repeats of {args.train_steps} steps each, after {args.train_warmup} warm-up steps, "
        "the heads timed in turn within each repeat; ratio = median / the linear head's median at the same B and d. "
        "In brackets: the fastest repeat (least disturbed by other load).",
        "",
        "| B | d | " + " | ".join(HEADS) + " |",
        "|---|---|" + "---|" * len(HEADS),
    ]
    for b in sorted({r["B"] for r in train_rows}):
        for dd in sorted({r["d"] for r in train_rows}):
            cells = {r["head"]: r for r in train_rows if r["B"] == b and r["d"] == dd}
            lines.append(
                f"| {b} | {dd} | "
                + " | ".join(
                    f"{cells[h]['ms']:.2f} ms, {cells[h]['ratio']:.1f}× [{cells[h]['min_ms']:.2f}]" for h in HEADS
                )
                + " |"
            )
    lines += [""] + rank_error_lines(rank_rows)
    lines += [
        "## 3. Evaluation against a large reference set",
        "",
        f"Q = {q} queries, d = {d}, random Gaussian embeddings. `predict` = `head.predict(z, z_ref, y_ref)` "
        "(memory-bounded, default `max_elements` = 2²² entries per block); `dense` = `head(z, z_ref, y_ref)` under "
        '`torch.no_grad()` (one Q × N matrix); `sklearn` = `KNeighborsRegressor(algorithm="brute", '
        f"n_neighbors={SKLEARN_K}).fit(...).predict(...)` on the same arrays. DiffKNN evaluates with exact ranks: "
        "the ⌈k + q⌉ nearest references per query (`torch.topk`); a fresh head has σ = 0.5, k = half the reference "
        "set (the costliest case), and `k=1%` sets σ = 0.01 as a trained head might. Time: the fastest of "
        f"{args.eval_repeats}, in seconds (the machine is shared; bursts of other load made single calls up to 10× "
        "slower, and the fastest call is the least disturbed estimate; medians are in the script's log). Peak: extra resident memory during one call (VmHWM − VmRSS, measured by the kernel "
        "in a fresh process; the inputs themselves are not counted).",
        "",
        "| N | head | predict s | dense s | sklearn s | predict / dense time | predict / sklearn time "
        "| predict peak MiB | dense peak MiB | sklearn peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in eval_rows:
        p, dn, sk = r["predict"], r["dense"], r["sklearn"]
        ps, ds, ss = p.get("seconds"), dn.get("seconds"), sk.get("seconds")
        lines.append(
            f"| {r['N']:.0e} | {r['head']} | {_fmt(ps, '.3f')} | {_fmt(ds, '.3f') if ds else dn.get('error', 'n/a')} "
            f"| {_fmt(ss, '.3f')} | {_fmt(ps / ds if ps and ds else None)} | {_fmt(ps / ss if ps and ss else None)} "
            f"| {_fmt(p.get('peak_mib'), '.0f')} | {_fmt(dn.get('peak_mib'), '.0f')} | {_fmt(sk.get('peak_mib'), '.0f')} |"
        )
        for label, res in (("predict", p), ("dense", dn), ("sklearn", sk)):
            if "error" in res:
                notes.append(f"- N = {r['N']:.0e}, {r['head']}, {label}: {res['error']}.")
            elif not res["finite"]:
                notes.append(f"- N = {r['N']:.0e}, {r['head']}, {label}: non-finite predictions.")
        if ps and ds and ps > TIME_GOAL * ds:
            notes.append(
                f"- Goal not met: N = {r['N']:.0e}, {r['head']}: predict takes {ps / ds:.2f}× the dense time "
                f"(goal ≤ {TIME_GOAL}×)."
            )
        if ps and ss and ps >= ss:
            notes.append(
                f"- Goal not met: N = {r['N']:.0e}, {r['head']}: predict is {ps / ss:.2f}× scikit-learn's brute "
                f"k-NN time (goal < 1×)."
            )
    # peak memory flat in N: compare the N at which predict's blocks are full-sized (Q·N ≥ 2²²);
    # below that the whole Q × N matrix is one block, smaller than the bound
    ns = sorted(n for n in {r["N"] for r in eval_rows} if q * n >= 2**22)
    if len(ns) < 2:
        notes.append("- Memory flatness not checked: fewer than two N with full-sized blocks (Q·N ≥ 2²²).")
    for name, _, _ in EVAL_HEADS:
        peaks = {r["N"]: r["predict"].get("peak_mib") for r in eval_rows if r["head"] == name}
        if len(ns) >= 2 and all(peaks.get(n) for n in ns[-2:]):
            grow = peaks[ns[-1]] / peaks[ns[-2]]
            ok = grow <= 1.5
            lines_note = (
                f"- Memory: {name} predict peak {peaks[ns[-2]]:.0f} MiB at N = {ns[-2]:.0e} → "
                f"{peaks[ns[-1]]:.0f} MiB at N = {ns[-1]:.0e} ({grow:.2f}×): "
                + ("flat in N." if ok else "goal not met (grows with N).")
            )
            notes.append(lines_note)
    for n in sorted({r["N"] for r in eval_rows}):
        t = {r["head"]: r["predict"].get("seconds") for r in eval_rows if r["N"] == n}
        if t.get("nca_i"):
            ratios = ", ".join(f"{h} {t[h] / t['nca_i']:.2f}×" for h in t if h.startswith("diffknn") and t[h])
            notes.append(f"- DiffKNN evaluation against nca_i at N = {n:.0e}: {ratios} (goal ≤ 2×).")
    lines += [
        "",
        "### Goals",
        "",
        f"Peak memory of `predict` flat in N (bounded by the block size); time within {TIME_GOAL}× of dense; "
        "faster than scikit-learn's brute k-NN; DiffKNN's evaluation within 2× of nca_i's.",
        "",
    ]
    lines += notes or ["- All goals met."]
    lines += [""]
    lines += explain(eval_rows)
    return "\n".join(lines) + "\n"


def explain(eval_rows) -> list[str]:
    """Plain-language reasons for the misses the numbers show."""
    out = ["### Notes", ""]
    slower = [
        r
        for r in eval_rows
        if r["predict"].get("seconds")
        and r["sklearn"].get("seconds")
        and r["predict"]["seconds"] >= r["sklearn"]["seconds"]
    ]
    if slower:
        out.append(
            "- Slower than scikit-learn: its brute k-NN (≥ 1.1) is a chunked Cython reduction that computes "
            f"distances tile by tile and keeps a {SKLEARN_K}-element heap per query; it does nothing else "
            "per reference, which is also why its peak memory is a few MiB. The heads must do more per "
            "(query, reference) pair by definition: nca a softmax (exp) over every reference, nca_i also "
            "the row min–max and the SoftStep transform (log, logsigmoid), and diffknn a partial sort "
            "(topk) of every row for its ⌈k + q⌉ nearest before SoftKStep. "
            "These are elementwise passes over the Q × N matrix in eager PyTorch, each reading and writing "
            "memory, so the goal is not met by construction, not by the chunking: predict is as fast as "
            "the dense forward."
        )
    if any("error" in r["dense"] for r in eval_rows):
        out.append("- dense did not run where it needs more memory or time than the benchmark allows.")
    return out + ([] if len(out) > 2 else ["- None."])


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (smoke test of the script)")
    _output.add_arguments(ap, "heads")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    args.load = os.getloadavg()
    t0 = time.perf_counter()
    if args.quick:
        args.train_repeats, args.train_steps, args.train_warmup = 3, 3, 2
        batch_sizes, dims, ns, q = (32,), (25,), (1000, 3000), 200
        repeats_for = lambda n: 1  # noqa: E731
        args.eval_repeats = "1 call"
    else:
        args.train_repeats, args.train_steps, args.train_warmup = 31, 5, 10
        batch_sizes, dims, ns, q = (32, 128), (25, 100), (1000, 10_000, 100_000), 1000
        repeats_for = lambda n: 7 if n <= 10_000 else 3  # noqa: E731
        args.eval_repeats = "7 calls for N ≤ 1e4, 3 for N = 1e5"
    d = 100
    print("1. training step", flush=True)
    train_rows = bench_train(batch_sizes, dims, args.train_repeats, args.train_warmup, args.train_steps)
    print("2. rank error", flush=True)
    rank_rows = bench_rank_error((32, 128) if args.quick else (32, 128, 1024))
    print("3. evaluation", flush=True)
    eval_rows = bench_eval(ns, q, d, repeats_for, timeout=300)
    text = report(train_rows, rank_rows, eval_rows, args, q, d, time.perf_counter() - t0)
    print(text)
    _output.write(args, text)


if __name__ == "__main__":
    main()
