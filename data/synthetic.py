"""Synthetic 2-D regression targets on [−1, 1]² (the paper's Figure 3), for an identity extractor."""

from __future__ import annotations

import numpy as np
import torch

from .base import DataError, RegressionData

TARGETS = {
    "sinusoidal": lambda x1, x2: np.sin(3 * x1) * np.cos(3 * x2),
    "checkerboard": lambda x1, x2: np.sign(np.sin(2 * np.pi * x1) * np.sin(2 * np.pi * x2)) * 0.5 + 0.5,
    "spiral": lambda x1, x2: np.sin(5 * np.sqrt(x1**2 + x2**2) + np.arctan2(x2, x1)),
    "multiplicative": lambda x1, x2: x1 * x2,
}


def target(name: str, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    if name not in TARGETS:
        raise DataError(f"unknown synthetic target {name!r}; allowed: {', '.join(TARGETS)}")
    return TARGETS[name](x1, x2)


def load(target_name: str = "sinusoidal", n: int = 2000, noise: float = 0.0, seed: int = 0) -> RegressionData:
    """``n`` points uniform on [−1, 1]², label = target(x) + N(0, noise²). The sample is fixed by ``seed``."""
    for field, value, ok, allowed in (
        ("n", n, isinstance(n, int) and not isinstance(n, bool) and n >= 1, "an integer >= 1"),
        (
            "noise",
            noise,
            isinstance(noise, (int, float)) and not isinstance(noise, bool) and 0 <= noise < float("inf"),
            "a finite number >= 0 (the label noise's standard deviation)",
        ),
    ):
        if not ok:
            raise DataError(f"dataset 'synthetic': bad config value dataset.loader.{field}={value!r}: {allowed}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2))
    y = target(target_name, x[:, 0], x[:, 1]) + noise * rng.standard_normal(n)
    items = torch.from_numpy(x.astype(np.float32))
    return RegressionData(f"synthetic-{target_name}", "table", items, y, preprocessing=f"n{n}-noise{noise}-seed{seed}")
