"""DiffKNN's soft-rank strength (issue 20, point 7): rank error and how much gradient the ranks pass.

    python -m benchmarks.rank_strength            # → results/benchmarks/scratch/rank_strength.md
    python -m benchmarks.rank_strength --write    # → the "Rank strength" section of results/benchmarks/heads.md

For one training batch (B = 32, the demo's; the batch its own reference set, the query masked), each strength of
``DiffKNNHead(rank_strength=...)`` (units of each row's mean similarity gap; the default 0.1) and torchsort's default
strength 1.0 on the raw similarities: the mean |soft − hard| rank, and the fraction of non-zero entries of
∂rank/∂sim within a row (off the query's own entry), in all and off its diagonal (the entries that pass one
neighbour's similarity into another's rank). A separate generator from ``benchmarks.heads``: ``--write`` replaces
only the section between its markers in heads.md.
"""

from __future__ import annotations

import argparse
import re
import time

import torch

from benchmarks import _output

STRENGTHS = (0.1, 0.3, 1.0, 10.0)
BEGIN, END = "<!-- rank_strength: begin (python -m benchmarks.rank_strength --write) -->", "<!-- rank_strength: end -->"


def embeddings(b: int, d: int = 25) -> dict[str, torch.Tensor]:
    """A fresh authors-protocol embedding ([BatchNorm → Linear → Tanh] × 2 at init on random features) and a briefly
    trained one (benchmarks.heads.trained_embeddings)."""
    from benchmarks.heads import trained_embeddings
    from softstep.model import embedding_net

    torch.manual_seed(0)
    net = embedding_net("mlp_bn_tanh", 384, 200, d).train()
    with torch.no_grad():
        fresh = net(torch.randn(b, 384, generator=torch.Generator().manual_seed(1)))
    return {"fresh (authors' tanh MLP)": fresh.double(), "trained (sinusoidal, 3 epochs)": trained_embeddings(b, d)}


def measure(rank_fn, sim: torch.Tensor, mask: torch.Tensor, hard: torch.Tensor) -> dict:
    b = sim.shape[0]
    soft = rank_fn(sim)
    jac = torch.autograd.functional.jacobian(rank_fn, sim)  # (B, N, B, N); a row's ranks depend on its row only
    rows = torch.stack([jac[i, :, i, :] for i in range(b)])  # (B, N, N): ∂rank_ij / ∂sim_ik
    keep = ~(mask.unsqueeze(-1) | mask.unsqueeze(1))  # j, k both other than the query
    off = keep & ~torch.eye(sim.shape[1], dtype=torch.bool).unsqueeze(0)
    nz = rows != 0
    return {
        "error": float((soft - hard).abs()[~mask].mean()),
        "nonzero": float(nz[keep].double().mean()),
        "nonzero_off": float(nz[off].double().mean()),
    }


def run(kinds=("l2", "rbf"), b: int = 32) -> list[dict]:
    import torchsort

    from softstep import DiffKNNHead

    mask = torch.eye(b, dtype=torch.bool)
    out = []
    for source, z in embeddings(b).items():
        for kind in kinds:
            base = DiffKNNHead(z.shape[1], kind, learn_scale=False).double()
            sim = base.sim(z, z)
            hard = (-sim.masked_fill(mask, -torch.inf)).argsort(dim=-1, stable=True).argsort(dim=-1).double()
            other = sim.masked_fill(mask, torch.nan)
            gap = float(
                ((other.nan_to_num(-torch.inf).amax(-1) - other.nan_to_num(torch.inf).amin(-1)) / (b - 2)).median()
            )
            for s in STRENGTHS:
                head = DiffKNNHead(z.shape[1], kind, learn_scale=False, rank_strength=s).double()
                row = measure(lambda x, h=head: h.soft_ranks(x, mask), sim, mask, hard)
                out.append({"source": source, "similarity": kind, "strength": f"{s:g} × row gap", **row})

            def raw(x):  # torchsort's default strength 1.0 on the raw similarities, the query pushed last
                top = x.masked_fill(mask, -torch.inf).amax(-1, keepdim=True).detach()
                return torchsort.soft_rank(-(x - top).masked_fill(mask, -1e6), regularization_strength=1.0) - 1

            row = measure(raw, sim, mask, hard)
            out.append(
                {
                    "source": source,
                    "similarity": kind,
                    "strength": f"torchsort default 1.0 raw (= {1 / gap:.3g} × row gap)",
                    **row,
                }
            )
            print(
                f"  {source} {kind}: " + ", ".join(f"{r['strength']}: {r['error']:.2f}" for r in out[-5:]), flush=True
            )
    return out


def section(rows: list[dict], wall: float) -> str:
    lines = [
        BEGIN,
        "## Rank strength (DiffKNN's soft ranks in training)",
        "",
        "One training batch, B = 32 (the demo's), d = 25, float64; written by `python -m benchmarks.rank_strength "
        f"--write` ({wall:.0f} s). Error: mean |soft − hard| rank off the query's own entry. Non-zero: the fraction "
        "of non-zero entries of ∂rank_ij/∂sim_ik within a row (j, k other than the query); off-diagonal: with j ≠ k, "
        "the entries through which one neighbour's similarity moves another's rank (the gradient the ranks pass to "
        "the embedding). `rank_strength` is in units of each row's mean similarity gap (the default 0.1); torchsort's "
        "own default is 1.0 on the raw similarities.",
        "",
        "| embedding | similarity | strength | rank error | non-zero | non-zero off-diagonal |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['source']} | {r['similarity']} | {r['strength']} | {r['error']:.3f} | {100 * r['nonzero']:.1f} % "
            f"| {100 * r['nonzero_off']:.1f} % |"
        )
    return "\n".join(lines + ["", END]) + "\n"


def into_heads_md(text: str, old: str) -> str:
    """heads.md with its rank-strength section replaced by ``text`` (appended when it has none)."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    return pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text


def main(argv=None) -> int:
    p = _output.add_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), "rank_strength")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.process_time()
    text = section(run(), time.process_time() - t0)
    if args.write:
        heads = _output.COMMITTED / "heads.md"
        heads.write_text(into_heads_md(text, heads.read_text()))
        print(f"wrote the rank-strength section of {heads}", flush=True)
    else:
        _output.write(args, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
