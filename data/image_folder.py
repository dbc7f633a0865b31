"""Bring your own images: a folder of image files plus a CSV of file names and targets.

``dataset=image_folder dataset.loader.root=DIR`` with ``DIR/labels.csv`` holding the columns
``file`` (a path relative to ``DIR``) and ``target``; column names, the CSV path, image size and
normalisation are config fields. Default extractor: resnet18.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from . import files as io
from .base import DataError, RegressionData
from .media import IMAGENET_MEAN, IMAGENET_STD, ImageFile, ImageTransform, check_files

DOC = io.REPO_README


def load(root: str, csv: str = "labels.csv", file_column: str = "file", target_column: str = "target",
         name: str = "image_folder", mode: str = "RGB", size: int | None = 224, crop: int | None = None,
         mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, log_target: bool = False,
         dropna: bool = False) -> RegressionData:
    """Images listed in ``csv`` (relative to ``root`` unless absolute), each resized/cropped/normalised."""
    root = Path(root).expanduser()
    table = Path(csv) if Path(csv).is_absolute() else root / csv
    io.require(name, root, {f"{csv} (columns {file_column!r}, {target_column!r})": table, "the image files": root}, doc=DOC)
    df = io.read_table(table, name=name)
    io.check_columns(df, table, {"file_column": file_column, "target_column": target_column}, name=name)
    if dropna:
        df = io.drop_missing(df, [file_column, target_column])
    y = io.numeric(df, target_column, table, name=name)
    if log_target:
        y = io.log_target(y, table, target_column, name=name)
    files = [root / str(f).strip() for f in df[file_column]]
    check_files(files, name=name, table=table, column=file_column, root=root)
    transform = ImageTransform(mode=mode, size=size, crop=crop, mean=mean, std=std)
    tag = f"{table.name}-{io.file_digest(table)}-{transform.describe()}-log{int(log_target)}"
    if len(files) == 0:
        raise DataError(f"dataset {name!r}: {table} lists no images")
    return RegressionData(name, "image", [str(f) for f in files], y, load=ImageFile(transform), preprocessing=tag)
