"""Per-split lock files, so that two runs on one results folder never train the same split.

A lock is a file created atomically (``O_CREAT | O_EXCL``, which also holds on NFS v3+) that
holds its owner's pid, host and start time. While it is held a background thread touches it
every ``heartbeat_s`` seconds. A lock is stale, and is taken over, when its owner is gone:

- on this host, when the owner's pid no longer runs, or runs a process that started after the lock was taken
  (the pid was reused: on Linux, from ``/proc/<pid>/stat``);
- on any host (a shared file system, where another host's pid cannot be checked), when it has
  not been touched for ``stale_after_s`` seconds.

A lock file that is well-formed JSON but not an owner record (e.g. a list) is stale at once; one that cannot be
read at all may be half-written and is stale once untouched for a few seconds.

A stale lock is first renamed to a unique name (one rename wins), so two runs that both see it
stale cannot both take it over.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from softstep.safe_io import UnreadableJSON, read_json

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


def _pid_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from /proc on Linux; None where that is not known."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


class FileLock:
    """``try_acquire()`` (non-blocking) or ``acquire(timeout)``; ``release()``; also a context manager."""

    def __init__(self, path: str | Path, *, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S):
        self.path = Path(path)
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
        self._stop: threading.Event | None = None
        self._held = False

    # ------------------------------------------------------------ owner
    def owner(self) -> dict | None:
        """The current owner's {pid, host, started}, or None when there is no (readable) lock."""
        record = self._record()
        return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None

    def _record(self):
        """The lock file's JSON (anything), or None when it cannot be read or parsed (missing, half-written)."""
        try:
            return read_json(self.path)
        except UnreadableJSON:
            return None

    def describe(self) -> str:
        o = self.owner() or {}
        return f"pid {o.get('pid', '?')} on {o.get('host', '?')}"

    def is_stale(self) -> bool:
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False  # gone: not stale, free
        record = self._record()
        if record is None:  # unreadable or half-written: stale only once it has not been touched for a while
            return age > min(self.stale_after_s, 10.0)
        if not (isinstance(record, dict) and isinstance(record.get("pid"), int)):
            return True  # well-formed JSON that is no owner record: nobody holds this
        o = record
        if o.get("host") == socket.gethostname():
            if not _pid_alive(o["pid"]) or age > self.stale_after_s:
                return True
            started, began = _pid_started(o["pid"]), o.get("started")
            return started is not None and isinstance(began, (int, float)) and started > began + 2.0  # pid reused
        return age > self.stale_after_s

    # ------------------------------------------------------------ acquire / release
    def try_acquire(self) -> bool:
        """Take the lock if it is free or stale; False when a live owner holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self.is_stale():
                    return False
                aside = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.stale")
                try:
                    os.rename(self.path, aside)  # one taker wins
                    os.unlink(aside)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, f)
            self._held = True
            self._start_heartbeat()
            return True
        return False

    def acquire(self, timeout: float | None = None, poll_s: float = 0.5) -> bool:
        """Wait until the lock is free (or stale) and take it; False after ``timeout`` seconds."""
        deadline = None if timeout is None else time.time() + timeout
        while not self.try_acquire():
            if deadline is not None and time.time() > deadline:
                return False
            time.sleep(poll_s)
        return True

    def release(self) -> None:
        if not self._held:
            return
        if self._stop is not None:
            self._stop.set()
        self._held = False
        o = self.owner()
        if o is not None and o.get("pid") == os.getpid() and o.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        self._stop = stop = threading.Event()
        path, every = self.path, self.heartbeat_s

        def beat():
            while not stop.wait(every):
                try:
                    os.utime(path)
                except OSError:
                    return

        threading.Thread(target=beat, name=f"lock-heartbeat-{path.name}", daemon=True).start()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
