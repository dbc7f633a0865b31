"""float32 against float64 for the authors' Figure 3 run (nona_anon ``synthetic_regression_manifolds.ipynb``).

    python -m benchmarks.precision            # → results/benchmarks/scratch/precision.md
    python -m benchmarks.precision --write    # → results/benchmarks/precision.md

The notebook's loop with the library's head: 1,000 points uniform on [−1, 1]² (numpy seed 42), its checkerboard
target sin(6x₁)cos(6x₂) + N(0, 0.1²), nca_i on the raw coordinates (l2, β = 1, SoftStep drawn as nona_anon draws it,
torch seed 0), Adam at 1e-3, batch 32 shuffled, 800 epochs, the whole set as the reference at prediction. The same
run in float64 (the notebook's) and float32 (ours): the largest difference of their predictions on the notebook's
100 × 100 grid, and each one's MSE against the noiseless target there.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks import _output


def train(dtype: torch.dtype, epochs: int) -> tuple[torch.Tensor, dict]:
    from softstep import NCAHead

    rng = np.random.default_rng(42)
    x = rng.uniform(-1, 1, (1000, 2))
    y = np.sin(6 * x[:, 0]) * np.cos(6 * x[:, 1]) + rng.normal(0, 0.1, 1000)
    x, y = torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    torch.manual_seed(0)
    head = NCAHead(2, "l2", step="instance", learn_scale=False, param_init="authors").to(dtype)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(1000, generator=g).split(32):
            loss = torch.nn.functional.mse_loss(head(x[idx], x[idx], y[idx], exclude_self=True), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    grid = np.linspace(-1, 1, 100)
    g1, g2 = np.meshgrid(grid, grid)
    pts = torch.tensor(np.c_[g1.ravel(), g2.ravel()], dtype=dtype)
    pred = head.eval().predict(pts, x, y).double()
    truth = torch.tensor(np.sin(6 * g1.ravel()) * np.cos(6 * g2.ravel()))
    l0, u0, t = torch.sigmoid(head.step.params.linear(pts)).double().median(0).values.tolist()
    return pred, {"mse": float(((pred - truth) ** 2).mean()), "l0": l0, "u0": u0, "t": t}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.process_time()
    runs = {name: train(dtype, args.epochs) for name, dtype in (("float64", torch.float64), ("float32", torch.float32))}
    diff = float((runs["float64"][0] - runs["float32"][0]).abs().max())
    lines = [
        "# float32 against float64: the authors' Figure 3 run",
        "",
        f"Written by `python -m benchmarks.precision` ({args.epochs} epochs, {time.process_time() - t0:.0f} s CPU, "
        "one thread). The notebook's checkerboard, nca_i on raw coordinates, Adam 1e-3, batch 32 (the module "
        "docstring has the rest).",
        "",
        "| precision | grid MSE vs the noiseless target | median σ(l₀, u₀, t) on the grid |",
        "| --- | ---: | --- |",
        *(f"| {n} | {r['mse']:.5f} | {r['l0']:.3f}, {r['u0']:.3f}, {r['t']:.3f} |" for n, (_, r) in runs.items()),
        "",
        f"Largest difference of the two predictions on the grid: {diff:.2e} (targets span about 2).",
        "",
    ]
    text = "\n".join(lines)
    _output.write(args, text)
    print(text)
    return 0


def parser() -> argparse.ArgumentParser:
    p = _output.add_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), "precision")
    p.add_argument("--epochs", type=int, default=800, help="the notebook's 800")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
