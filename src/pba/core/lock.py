"""One process owns a run directory: an advisory lock held for the life of the process.

    with owned(run_dir, "pba search"):
        ...  # nobody else searches, resumes or trains into run_dir meanwhile

The lock is `fcntl.flock` on DIR/.lock, which the kernel releases when the owner exits, however
it exits (SIGKILL included): a lock left by a killed process is free, and the next owner takes
it over, saying whose it was. The file names the owner (pid, host, command, start time) so that
a refused process can say who holds it. Where `fcntl` is missing (Windows), the file alone is
the lock and a stale one is recognised by its pid no longer running on this host.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pba.core.errors import UserError

LOCK = ".lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


@contextmanager
def owned(directory: str | Path, what: str) -> Iterator[None]:
    """Hold `directory`'s lock for the block (the directory is created if needed); refuse with
    a UserError naming the owner when a live process holds it."""
    path = Path(directory) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        previous = _read(fd)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise UserError(_refusal(directory, previous)) from None
        elif previous and _alive(previous):
            raise UserError(_refusal(directory, previous))
        if previous and previous.get("pid") != os.getpid():
            print(f"{what}: taking over {directory} from {_owner(previous)}, which is no "
                  "longer running", file=sys.stderr)
        _write(fd, {"pid": os.getpid(), "host": socket.gethostname(), "command": what,
                    "started": time.time()})
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # released: nothing to take over
    finally:
        os.close(fd)  # releases the flock


def owner(directory: str | Path) -> dict | None:
    """Who holds or last held `directory`'s lock: {"pid", "host", "command", "started"}."""
    path = Path(directory) / LOCK
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        return _read(fd)
    finally:
        os.close(fd)


def _read(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        doc = json.loads(raw) if raw.strip() else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _write(fd: int, doc: dict) -> None:
    data = (json.dumps(doc) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _alive(doc: dict) -> bool:
    if doc.get("host") != socket.gethostname():
        return True  # cannot tell: assume it runs
    try:
        os.kill(int(doc["pid"]), 0)
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return True


def _owner(doc: dict | None) -> str:
    if not doc:
        return "another process"
    return f"{doc.get('command', 'pba')} (pid {doc.get('pid')} on {doc.get('host')})"


def _refusal(directory: str | Path, doc: dict | None) -> str:
    since = ""
    if doc and isinstance(doc.get("started"), (int, float)):
        since = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(doc["started"]))
    return (f"{directory} is in use by {_owner(doc)}{since}: one process at a time may write a "
            "run directory. Wait for it to finish, or stop it and run this again")
