"""The image cache: a folder's images are decoded once, and read back in seconds after.

Where: `$PBA_CACHE_DIR` if set, else `$XDG_CACHE_HOME/pba`, else `~/.cache/pba`; each folder
and image size has its own subfolder, `folders/<folder name>-<hash of its path>-<size>px/`,
holding one entry: `<key>.npy` (the readable images, uint8 N x 3 x size x size, in the order
of the folder's files) and `<key>.json` (which files were unreadable, and why). The key is
the sha256 of the folder's resolved path, every image file's path in it, size and
modification time, the image size and FORMAT_VERSION: a file added, removed or changed (in
size or time) makes a new entry, and writing one deletes the older entries of that folder and
size, so the cache holds one entry per folder and size (as much disk as those images take in
memory). A folder that is moved or deleted leaves its entries behind.

Anything here may be deleted at any time (`rm -r ~/.cache/pba`); an entry that cannot be read
back whole is ignored and written again. `load_dataset(..., cache=False)` (and
`pba.data.folders.read_image_folder(cache=False)`) neither reads nor writes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pba.core.atomic import atomic_path, write_text_atomic

# Raised whenever what a decoded image holds changes (the resize, the crop, the decoder's
# scaling), so that entries written before are not taken for the new kind.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Decoded:
    """The decoded files of a folder load: the readable images, in order, as uint8
    (N, 3, size, size), and why each unreadable file (by its index in the list) was refused."""

    images: np.ndarray
    failed: dict[int, str]


def cache_root() -> Path:
    """`$PBA_CACHE_DIR`, else `$XDG_CACHE_HOME/pba`, else `~/.cache/pba`."""
    if os.environ.get("PBA_CACHE_DIR"):
        return Path(os.environ["PBA_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "pba"


def entry_path(folder: Path, files: Sequence[Path], image_size: int) -> Path:
    """Where the entry for these files of `folder` at `image_size` lives (without its
    suffixes .npy and .json). Reads every file's size and modification time."""
    root = folder.resolve()
    key = hashlib.sha256(b"%d\0%d\0%s" % (FORMAT_VERSION, image_size, os.fsencode(root)))
    for path in files:
        stat = path.stat()
        key.update(b"\0%s\0%d\0%d" % (os.fsencode(path.relative_to(folder)), stat.st_size,
                                      stat.st_mtime_ns))
    place = hashlib.sha256(os.fsencode(root)).hexdigest()[:12]
    return cache_root() / "folders" / f"{root.name}-{place}-{image_size}px" / key.hexdigest()


def load(entry: Path, count: int, image_size: int) -> Decoded | None:
    """The entry for `count` files at `image_size`, or None when there is none, or none that
    reads back whole and of that shape."""
    try:
        meta = json.loads(entry.with_suffix(".json").read_text())
        failed = {int(i): str(reason) for i, reason in meta["failed"]}
        # Read whole (about 3 GB/s from the page cache): memory-mapping saved that, but the
        # split that follows reads every image anyway, and a mapped file can vanish under it.
        images = np.load(entry.with_suffix(".npy"))
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    shape = (count - len(failed), 3, image_size, image_size)
    if (meta.get("files") != count or images.dtype != np.uint8 or images.shape != shape
            or not all(0 <= i < count for i in failed)):
        return None
    return Decoded(images, failed)


def save(entry: Path, decoded: Decoded) -> None:
    """Write the entry (each file atomically, the .json last: `load` wants both) and delete
    the other entries beside it. A cache that cannot be written is warned about, not fatal."""
    count = len(decoded.images) + len(decoded.failed)
    meta = {"files": count, "failed": sorted(decoded.failed.items())}
    try:
        with atomic_path(entry.with_suffix(".npy")) as tmp, tmp.open("wb") as f:
            np.save(f, decoded.images)
        write_text_atomic(entry.with_suffix(".json"), json.dumps(meta))
        for old in entry.parent.glob("[!.]*"):  # not the temporary files of another writer
            if old.stem != entry.name:
                old.unlink(missing_ok=True)
    except OSError as err:
        warnings.warn(f"the decoded images could not be cached at {entry}: {err}", stacklevel=2)
