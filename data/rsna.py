"""RSNA Pediatric Bone Age Challenge (2017): hand radiographs → bone age in months.

Appendix B: 14,036 images (the 12,611 training + 1,425 validation images of the challenge),
grey, resized to 224 × 224, normalised with mean = std = 0.5 on the single channel, then
ResNet-18 (the extractor repeats the grey channel three times). Layout: ``data/rsna/README.md``.

Reads ``boneage-training-dataset.csv`` (columns ``id``, ``boneage``) with the PNGs named
``<id>.png`` anywhere below ``boneage-training-dataset/``, and, with ``include_validation``,
the validation set's ``Validation Dataset.csv`` (columns ``Image ID``, ``Bone Age (months)``)
with its PNGs anywhere below ``Bone Age Validation Set/``.
"""

from __future__ import annotations

from pathlib import Path

from . import checks
from .base import DataError, RegressionData
from .media import ImageFile, ImageTransform

NAME = "rsna"


def _part(root: Path, csv: str, images: str, id_column: str, target_column: str):
    table, folder = root / csv, root / images
    df = checks.read_table(table, name=NAME)
    checks.check_columns(df, table, {"id_column": id_column, "target_column": target_column}, name=NAME)
    y = checks.numeric(df, target_column, table, name=NAME)
    found = checks.index_files(folder, checks.IMAGE_EXTENSIONS)
    ids = [str(i).strip().removesuffix(".0") for i in df[id_column]]
    absent = [i for i in ids if i not in found]
    if absent:
        raise DataError(
            f"dataset {NAME!r}: {len(absent)} of {len(ids)} images listed in {table} (column {id_column!r}) "
            f"are not below {folder} as <id>.png, e.g. {absent[:5]}; see {checks.readme(NAME)}"
        )
    return [str(found[i]) for i in ids], list(y)


def load(
    root: str = "data/rsna",
    train_csv: str = "boneage-training-dataset.csv",
    train_images: str = "boneage-training-dataset",
    train_columns=("id", "boneage"),
    include_validation: bool = True,
    val_csv: str = "Bone Age Validation Set/Validation Dataset.csv",
    val_images: str = "Bone Age Validation Set",
    val_columns=("Image ID", "Bone Age (months)"),
    size: int = 224,
    mean: float = 0.5,
    std: float = 0.5,
) -> RegressionData:
    """Training (+ validation) radiographs; label = bone age in months."""
    root = Path(root).expanduser()
    expected = {
        f"{train_csv} (columns {', '.join(train_columns)})": root / train_csv,
        f"{train_images}/ (the <id>.png radiographs, any depth)": root / train_images,
    }
    if include_validation:
        expected |= {
            f"{val_csv} (columns {', '.join(val_columns)}; or set dataset.loader.include_validation=false)": root
            / val_csv,
            f"{val_images}/ (validation <Image ID>.png, any depth)": root / val_images,
        }
    checks.require(NAME, root, expected)
    items, labels = _part(root, train_csv, train_images, *train_columns)
    if include_validation:
        v_items, v_labels = _part(root, val_csv, val_images, *val_columns)
        items, labels = items + v_items, labels + v_labels
    transform = ImageTransform(mode="L", size=size, crop=None, mean=mean, std=std)
    tag = f"train{'+val' if include_validation else ''}-{transform.describe()}"
    return RegressionData(NAME, "image", items, labels, load=ImageFile(transform), preprocessing=tag)
