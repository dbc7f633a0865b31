"""Bring your own images: a folder of image files plus a CSV of file names and targets.

``dataset=image_folder dataset.loader.root=DIR`` with ``DIR/labels.csv`` holding the columns
``file`` (a path relative to ``DIR``) and ``target``; column names, the CSV path, image size and
normalisation are config fields. Default extractor: resnet18.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import checks
from .base import RegressionData
from .folder import load_folder
from .media import IMAGENET_MEAN, IMAGENET_STD, ImageFile, ImageTransform

DOC = checks.BYO_DOC


def load(
    root: str,
    csv: str = "labels.csv",
    file_column: str = "file",
    target_column: str = "target",
    name: str = "image_folder",
    mode: str = "RGB",
    size: int | None = 224,
    crop: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    log_target: bool | str = False,
    dropna: bool = False,
) -> RegressionData:
    """Images listed in ``csv`` (relative to ``root`` unless absolute), each resized/cropped/normalised."""
    transform = ImageTransform(mode=mode, size=size, crop=crop, mean=mean, std=std)
    return load_folder(
        root,
        csv,
        file_column,
        target_column,
        name=name,
        modality="image",
        load=ImageFile(transform),
        describe=transform.describe(),
        doc=DOC,
        log_target=log_target,
        dropna=dropna,
    )
