"""MedSegBench BriFiSegMSBench: brightfield microscopy images → segmented (nuclei) area.

MedSegBench ships each dataset as one NumPy archive per resolution (``brifiseg_{128,256,512}.npz``
on Zenodo, record 13358372) with arrays ``{train,val,test}_images`` (N, H, W) uint8 and
``{train,val,test}_label`` (N, H, W) binary masks. Appendix B: estimate the mask area with
EfficientNet-B0 (ImageNet). Label: the fraction of foreground pixels (mask > 0) in the mask at
the archive's resolution, in [0, 1] (``target: pixels`` gives the count instead). All three
splits are pooled by default (1,360 images); the paper's own 80/20 → 85/15 splits are drawn later.

Images: grey → 3 equal channels, resized to 224 × 224, ImageNet mean/std (the normalisation
EfficientNet-B0's weights expect; appendix B does not say).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checks
from .base import DataError, RegressionData
from .media import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

NAME = "medsegbench"
TARGETS = ("fraction", "pixels")


@dataclass(frozen=True)
class ArrayImage:
    """Index into an in-memory (N, H, W[, C]) uint8 array → transformed tensor."""

    images: np.ndarray
    transform: ImageTransform

    def __call__(self, i) -> torch.Tensor:
        return self.finish(self.decode(i))

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform.finish(x)

    def decode(self, i) -> torch.Tensor:
        """Image ``i`` → uint8 (C, H, W) resized (cached by the decoded-sample cache); :meth:`finish` normalises."""
        from PIL import Image

        a = np.asarray(self.images[int(i)])
        if a.dtype != np.uint8:
            a = np.clip(a, 0, 255).astype(np.uint8)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        return self.transform.decode(Image.fromarray(a))


def load(
    root: str = "data/medsegbench",
    file: str = "brifiseg_256.npz",
    splits: Sequence[str] = ("train", "val", "test"),
    category: str | None = None,
    target: str = "fraction",
    size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> RegressionData:
    """Pool ``splits`` of ``file``; ``category`` (``C1`` … ``C5``) picks one cell line's arrays."""
    if target not in TARGETS:
        raise DataError(f"dataset {NAME!r}: target must be one of {', '.join(TARGETS)}; got {target!r}")
    root = Path(root).expanduser()
    path = root / file
    suffix = f"_{category}" if category else ""
    checks.require(
        NAME, root, {f"{file} (arrays {', '.join(f'{s}_images{suffix}, {s}_label{suffix}' for s in splits)})": path}
    )
    try:
        archive = np.load(path, allow_pickle=False)
        keys = set(archive.files)
    except Exception as e:
        raise DataError(f"dataset {NAME!r}: cannot read {path} ({type(e).__name__}: {e}); download it again") from e
    images, masks = [], []
    with archive:
        for s in splits:
            ik, lk = f"{s}_images{suffix}", f"{s}_label{suffix}"
            for k in (ik, lk):
                if k not in keys:
                    raise DataError(f"dataset {NAME!r}: {path} has no array {k!r}; it holds {sorted(keys)}")
            try:
                im, mk = archive[ik], archive[lk]
            except Exception as e:
                raise DataError(
                    f"dataset {NAME!r}: {path}: array {ik!r} or {lk!r} is corrupt ({e}); download it again"
                ) from e
            if len(im) != len(mk):
                raise DataError(f"dataset {NAME!r}: {path}: {ik} has {len(im)} images but {lk} has {len(mk)} masks")
            images.append(im)
            masks.append(mk)
    images, masks = np.concatenate(images), np.concatenate(masks)
    if images.ndim == 4 and images.shape[-1] == 3:
        pass
    elif images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    elif images.ndim != 3:
        raise DataError(
            f"dataset {NAME!r}: {path}: images have shape {images.shape}; expected (N, H, W) or (N, H, W, C)"
        )
    fg = masks.reshape(len(masks), -1) > 0
    y = fg.sum(1).astype(np.float64)
    if target == "fraction":
        y = y / fg.shape[1]
    transform = ImageTransform(mode="RGB", size=size, crop=None, mean=mean, std=std)
    tag = f"{file}-{'+'.join(splits)}{suffix}-{target}-{transform.describe()}"
    return RegressionData(NAME, "image", list(range(len(y))), y, load=ArrayImage(images, transform), preprocessing=tag)
