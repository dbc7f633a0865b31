"""Files written and read defensively: an atomic write (a reader sees the old file or the whole new one) and a JSON
reader whose every failure is one line. Saved models use both, and so do the experiments' result files, caches,
checkpoints, locks and progress files.
"""

from __future__ import annotations

import json
import os
import stat
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


#: The size cap of :func:`read_json` when the caller gives none, in MiB; the environment variable
#: ``SOFTSTEP_MAX_JSON_MB`` sets it (a result file is a few kB, a saved model's JSON a few MB).
DEFAULT_MAX_JSON_MB = 256


def max_json_bytes() -> int:
    """The default size cap of :func:`read_json`: ``SOFTSTEP_MAX_JSON_MB`` MiB (default 256).

    Returns
    -------
    int

    Examples
    --------
    >>> max_json_bytes() >= 1 << 20
    True
    """
    raw = os.environ.get("SOFTSTEP_MAX_JSON_MB", "")
    try:
        mb = float(raw) if raw else DEFAULT_MAX_JSON_MB
    except ValueError:
        raise UnreadableJSON(f"SOFTSTEP_MAX_JSON_MB={raw[:20]!r} is not a number of MiB (e.g. 256)") from None
    if not mb > 0:
        raise UnreadableJSON(f"SOFTSTEP_MAX_JSON_MB={raw[:20]!r} must be a positive number of MiB (e.g. 256)")
    return int(mb * (1 << 20))


def _unique_keys(pairs):
    """An object's pairs as a dict, refusing a key given twice (plain ``json`` keeps the last silently)."""
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k[:60]!r}")
        out[k] = v
    return out


def read_regular_bytes(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; a FIFO, device or folder is refused
    without blocking (it is opened non-blocking and checked before a byte is read).

    Parameters
    ----------
    path : str or pathlib.Path
    max_bytes : int

    Returns
    -------
    bytes
        An ``OSError`` or ``ValueError`` says why not, in one line.

    Examples
    --------
    >>> import os, pathlib, tempfile
    >>> fifo = pathlib.Path(tempfile.mkdtemp()) / "split_1.json"
    >>> os.mkfifo(fifo)
    >>> try:
    ...     read_regular_bytes(fifo, 1000)
    ... except ValueError as e:
    ...     print(e)
    not a regular file (a FIFO)
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else "a device"
            raise ValueError(f"not a regular file ({kind})")
        if st.st_size > max_bytes:
            raise ValueError(f"{st.st_size} bytes, over the {max_bytes / (1 << 20):g} MiB such a file may have")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while read
        raise ValueError(f"over the {max_bytes / (1 << 20):g} MiB such a file may have")
    return data


def read_json(path: str | Path, max_bytes: int | None = None):
    """The JSON value in ``path``, read defensively (saved models; result files, locks and progress files in the
    experiments).

    Parameters
    ----------
    path : str or pathlib.Path
    max_bytes : int, optional
        A larger file is refused before it is read; default :func:`max_json_bytes` (``SOFTSTEP_MAX_JSON_MB``).

    Returns
    -------
    object
        The parsed value. Any way it cannot be read (missing, not a regular file (a FIFO is never opened for a
        blocking read), over ``max_bytes``, not UTF-8, not JSON, a key twice in one object, nested too deeply for
        the parser) is an :class:`UnreadableJSON` whose message says why, in one line.

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
    >>> _ = p.write_text('{"lo": 0, "lo": 1}')
    >>> try:
    ...     read_json(p)
    ... except UnreadableJSON as e:
    ...     print(e)
    ValueError: duplicate key 'lo'
    """
    try:
        data = read_regular_bytes(path, max_json_bytes() if max_bytes is None else max_bytes)
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (OSError, ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e).splitlines()[0][:200]
        raise UnreadableJSON(f"{type(e).__name__}: {why}") from None


def _umask() -> int:
    """The process's umask: from /proc where Linux has it (reading it there changes nothing for other threads),
    else by setting it and setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
        The file's mode follows the umask, as ``open`` would create it. An ``OSError`` (a full disk, a read-only folder) names ``path``; no temporary file is left behind.

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
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it (mkstemp makes 0600)
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
