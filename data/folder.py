"""The folder types (``image_folder``, ``audio_folder`` and the paper datasets built on them): a CSV of (file,
target) next to the files → :class:`~data.base.RegressionData` whose items are the files' paths.
"""

from __future__ import annotations

from pathlib import Path

from . import checks
from .base import DataError, RegressionData
from .media import check_files


def load_folder(
    root,
    csv: str,
    file_column: str,
    target_column: str,
    *,
    name: str,
    modality: str,
    load,
    describe: str,
    doc: Path,
    log_target: bool | str = False,
    dropna: bool = False,
) -> RegressionData:
    """The files listed in ``csv`` with their targets; ``load`` decodes one file, ``describe`` names its settings.

    The cache tag names the CSV, its content digest, ``describe`` and the target transform.
    """
    root = Path(root).expanduser()
    table, files, y = file_table(
        root, csv, file_column, target_column, name=name, what=modality, doc=doc, log=log_target, dropna=dropna
    )
    tag = f"{table.name}-{checks.file_digest(table)}-{describe}-{checks.log_tag(log_target)}"
    return RegressionData(name, modality, [str(f) for f in files], y, load=load, preprocessing=tag)


def file_table(
    root: Path,
    csv: str,
    file_column: str,
    target_column: str,
    *,
    name: str,
    what: str,
    doc: Path,
    log: bool = False,
    dropna: bool = False,
):
    """The folder types' CSV of (file, target): returns (csv path, listed files, targets), each checked.

    ``what`` names the files in messages ("image", "audio"). The files must exist (see ``media.check_files``).
    """
    table = Path(csv) if Path(csv).is_absolute() else root / csv
    checks.require(
        name, root, {f"{csv} (columns {file_column!r}, {target_column!r})": table, f"the {what} files": root}, doc=doc
    )
    df = checks.read_table(table, name=name)
    checks.check_columns(df, table, {"file_column": file_column, "target_column": target_column}, name=name)
    if dropna:
        df = checks.drop_missing(df, [file_column, target_column])
    y = checks.numeric(df, target_column, table, name=name)
    if log:
        y = checks.log_target(y, table, target_column, name=name, how=log)
    files = [root / str(f).strip() for f in df[file_column]]
    if not files:
        raise DataError(f"dataset {name!r}: {table} lists no {what} files")
    check_files(files, name=name, table=table, column=file_column, root=root)
    return table, files, y
