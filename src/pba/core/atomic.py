"""Atomic, durable file writes: readers (and a resumed run) never see half a file, and a file
that has been renamed into place holds its bytes even after a power cut.

Every write of a run directory goes through `atomic_path` (or the helpers over it). A failed
write (a full disk, a quota, a vanished mount) leaves the previous file, if any, untouched and
raises the OSError; the run directory that called it turns that into advice (`pba.core.directory`).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds, flush it to the disk and
    rename it over `path` (then flush the directory, which records the rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    # mkstemp makes the file private (0600); give it the mode a plain open() would have.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def save_torch_atomic(obj: object, path: str | Path) -> None:
    """`torch.save` made atomic. The object is serialised in memory first: torch's own file
    writer reports a full disk as a RuntimeError ("unexpected pos ..."), a plain write as the
    OSError it is."""
    import torch  # not at the top: the JSON writers above serve light readers too

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getbuffer())


def _fsync(path: str | Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    try:
        _fsync(directory, os.O_RDONLY)
    except OSError:  # some systems (Windows, some network mounts) cannot open a directory
        pass
