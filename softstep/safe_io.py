"""Files written and read defensively: an atomic write (a reader sees the old file or the whole new one) and a JSON
reader whose every failure is one line. Saved models use both, and so do the experiments' result files, caches,
checkpoints, locks and progress files.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class UnreadableJSON(ValueError):
    """A file that holds no JSON value :func:`read_json` can return; the message says why in one line.

    Parameters
    ----------
    *args
        The one-line message.

    Examples
    --------
    >>> isinstance(UnreadableJSON("JSONDecodeError: Expecting value"), ValueError)
    True
    """


def read_json(path: str | Path, max_bytes: int | None = None):
    """The JSON value in ``path``, read defensively (saved models; result files, locks and progress files in the
    experiments).

    Parameters
    ----------
    path : str or pathlib.Path
    max_bytes : int, optional
        A larger file is refused before it is read.

    Returns
    -------
    object
        The parsed value. Any way it cannot be read (missing, over ``max_bytes``, not UTF-8, not JSON, nested too
        deeply for the parser) is an :class:`UnreadableJSON` whose message says why, in one line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> _ = p.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    >>> try:
    ...     read_json(p)
    ... except UnreadableJSON as e:
    ...     print(e)
    RecursionError: nested too deeply
    """
    path = Path(path)
    try:
        if max_bytes is not None and (size := path.stat().st_size) > max_bytes:
            raise ValueError(f"{size} bytes, over the {max_bytes >> 20} MiB such a file may have")
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e).splitlines()[0][:200]
        raise UnreadableJSON(f"{type(e).__name__}: {why}") from None


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a reader sees either no file, the old one or the whole new one (the
    experiments' result files, caches and checkpoints use it too).

    Parameters
    ----------
    path : str or pathlib.Path
        The file; its folder is created. A temporary file beside it is written, flushed and renamed over it.
    payload : bytes

    Returns
    -------
    None
        An ``OSError`` (a full disk, a read-only folder) names ``path``; no temporary file is left behind.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "sub" / "x.bin"
    >>> atomic_write_bytes(p, b"abc")
    >>> p.read_bytes(), sorted(q.name for q in p.parent.iterdir())
    (b'abc', ['x.bin'])
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(e.filename or path.parent)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:  # a full disk names no file: name the one we wrote
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise
