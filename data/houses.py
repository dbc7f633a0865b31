"""Houses (Ahmed & Moustafa 2016, github.com/emanhamed/Houses-dataset): house photo → log price.

``HousesInfo.txt`` has one line per house, space-separated, no header: bedrooms, bathrooms, area,
zipcode, price. House ``i`` (1-based line number) has four photos ``i_frontal.jpg``,
``i_bathroom.jpg``, ``i_bedroom.jpg``, ``i_kitchen.jpg``. Appendix B uses the 535 curbside
(``frontal``) photos, resized to 256 × 256, centre-cropped to 224 × 224, ImageNet-normalised →
ResNet-34. Label: natural log of the price (``log_target``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import checks
from .base import DataError, RegressionData
from .media import IMAGENET_MEAN, IMAGENET_STD, ImageFile, ImageTransform, check_files

NAME = "houses"
COLUMNS = ["bedrooms", "bathrooms", "area", "zipcode", "price"]
VIEWS = ("frontal", "bathroom", "bedroom", "kitchen")


def load(
    root: str = "data/houses",
    info: str = "HousesInfo.txt",
    view: str = "frontal",
    log_target: bool = True,
    size: int = 256,
    crop: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> RegressionData:
    if view not in VIEWS:
        raise DataError(f"dataset {NAME!r}: view must be one of {', '.join(VIEWS)}; got {view!r}")
    root = Path(root).expanduser()
    folder = root
    if not (root / info).exists() and (root / "Houses Dataset" / info).exists():
        folder = root / "Houses Dataset"  # the layout of a clone of the authors' repository
    table = folder / info
    checks.require(
        NAME,
        root,
        {
            f"{info} (bedrooms bathrooms area zipcode price, space-separated)": table,
            f"<i>_{view}.jpg for every line i of {info}": folder,
        },
    )
    df = checks.read_table(table, name=NAME, names=COLUMNS, sep=r"\s+")
    if df.shape[1] != len(COLUMNS) or df["price"].isna().all():
        raise DataError(f"dataset {NAME!r}: {table} should have 5 space-separated columns ({' '.join(COLUMNS)})")
    y = checks.numeric(df, "price", table, name=NAME)
    if log_target:
        y = checks.log_target(y, table, "price", name=NAME, how=log_target)
    files = [folder / f"{i}_{view}.jpg" for i in range(1, len(df) + 1)]
    check_files(files, name=NAME, table=table, column=f"line number → <i>_{view}.jpg", root=folder)
    transform = ImageTransform(mode="RGB", size=size, crop=crop, mean=mean, std=std)
    tag = f"{view}-{checks.log_tag(log_target)}-{transform.describe()}"
    return RegressionData(NAME, "image", [str(f) for f in files], y, load=ImageFile(transform), preprocessing=tag)
