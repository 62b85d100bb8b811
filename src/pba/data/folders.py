"""Image folders read into memory (`read_image_folder`): a subfolder per class, or train/,
test/ and optional val/ subfolders of those; their files decoded on every core
(`pba.data.image_files.decode_images`), and the result cached (`pba.data.cache`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from pba.core.errors import UserError
from pba.data import cache as image_cache
from pba.data.image_files import IMAGE_EXTENSIONS, Progress, decode_images
from pba.data.imageset import ImageSet


@dataclass(frozen=True)
class FolderImages:
    """An image folder read into memory: its parts (POOL for a folder to split at random, or
    the TRAIN, TEST and optional VAL subfolders it came with), its classes and what was
    skipped."""

    parts: dict[str, ImageSet]
    classes: list[str]
    skipped: tuple[str, ...] = ()  # unreadable files left out (skip_unreadable)


POOL = "pool"
SPLITS = ("train", "val", "test")  # subfolders a folder may come split into
MIN_IMAGES_PER_CLASS = 5  # for a random 70/10/20 split to leave each class a training image
MAX_LISTED = 20


def read_image_folder(
    folder: Path, image_size: int, *, skip_unreadable: bool = False, cache: bool = True,
    workers: int | None = None, progress: Progress | None = None,
) -> FolderImages:
    """Every image under `folder/<class>/` (or `folder/{train,val,test}/<class>/` when it comes
    split), fitted to image_size x image_size (`image_files.fit_image`), and the classes.

    Classes are the subfolders in sorted order (label i = i-th name; in a split folder, those of
    train/). Files without an image extension are ignored. Unreadable images (any file Pillow
    refuses, images over `Image.MAX_IMAGE_PIXELS` included) are listed in one error, or left
    out with `skip_unreadable`. Images that would not fit in the available memory are refused
    before any is decoded. `workers` threads decode (default: `image_files.usable_cores()`),
    and `progress(done, total)` hears how far they are (after every `image_files.MAX_RUN`
    images or fewer; not at all when they come from the cache). With `cache`, the decoded
    images are kept in, and read back from, `pba.data.cache`.
    """
    folder = folder.resolve()  # so the messages, cached ones too, hold whole paths
    if not folder.is_dir():
        raise UserError(f"image folder {folder} does not exist")
    subfolders = {p.name.lower(): p for p in _subfolders(folder)}
    split = "train" in subfolders and "test" in subfolders
    roots = {s: subfolders[s] for s in SPLITS if s in subfolders} if split else {POOL: folder}
    classes = [p.name for p in _subfolders(roots.get("train", folder))]
    if not classes:
        raise UserError(f"image folder {folder} has no class subfolders (one per class)")
    if len(classes) < 2:
        raise UserError(f"image folder {folder} has one class ({classes[0]}): a "
                       "classifier needs at least two class subfolders")
    files: dict[str, list[tuple[Path, int]]] = {}
    for part, root in roots.items():
        names = [p.name for p in _subfolders(root)]
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise UserError(f"{root} has class folders that train/ lacks: {', '.join(unknown)}")
        files[part] = [(path, classes.index(name)) for name in names
                       for path in _image_files(root / name)]
    paths = [path for entries in files.values() for path, _ in entries]
    _check_memory(len(paths), image_size)
    if cache:
        entry = image_cache.entry_path(folder, paths, image_size)
        decoded = image_cache.load(entry, len(paths), image_size)
        if decoded is None:
            decoded = decode_images(paths, image_size, workers=workers, progress=progress)
            image_cache.save(entry, decoded)
    else:
        decoded = decode_images(paths, image_size, workers=workers, progress=progress)
    images = torch.from_numpy(decoded.images)
    parts, start, end = {}, 0, 0  # each part's files, and its readable images, come in order
    for part, entries in files.items():
        labels = [label for i, (_, label) in enumerate(entries, start) if i not in decoded.failed]
        if not labels:
            raise UserError(f"{roots[part]} holds no readable images (looked for "
                           f"{', '.join(IMAGE_EXTENSIONS)} in its class subfolders)")
        parts[part] = ImageSet(images[end:end + len(labels)],
                               torch.tensor(labels, dtype=torch.int64))
        start, end = start + len(entries), end + len(labels)
    bad = tuple(decoded.failed[i] for i in sorted(decoded.failed))
    if bad and not skip_unreadable:
        listed = "; ".join(bad[:MAX_LISTED])
        more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise UserError(f"{len(bad)} unreadable image(s) in {folder}: {listed}{more}. "
                       "Fix or remove them, or leave them out with --skip-unreadable")
    _check_class_sizes(parts, classes, folder)
    return FolderImages(parts, classes, bad)


def _check_memory(count: int, image_size: int) -> None:
    needed = count * 3 * image_size * image_size
    available = _available_memory()
    if available is not None and needed > available:
        raise UserError(
            f"{count:,} images at {image_size} x {image_size} need {needed / 2**30:.1f} GiB "
            f"({needed:,} bytes) of memory, and {available / 2**30:.1f} GiB ({available:,} "
            "bytes) is available. Pass a smaller --image-size, keep fewer images in the "
            "folder, or augment with pba.PBAugment in a DataLoader of your own, which reads "
            "the images as it goes")


def _available_memory() -> int | None:
    """Bytes a load may take: Linux's MemAvailable (free memory plus the page cache the kernel
    can drop), else the free pages sysconf reports, else None (not known: no check)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf, or not these names
        return None


def _check_class_sizes(parts: dict[str, ImageSet], classes: list[str], folder: Path) -> None:
    counts = torch.bincount(parts.get(POOL, parts.get("train")).labels, minlength=len(classes))
    need = MIN_IMAGES_PER_CLASS if POOL in parts else 1
    short = [f"{classes[i]} ({int(n)})" for i, n in enumerate(counts) if n < need]
    if short:
        where = ("to split at random into train, validation and test" if POOL in parts
                 else "in train/")
        raise UserError(f"image folder {folder}: each class needs at least {need} "
                       f"image(s) {where}; too few in {', '.join(short)}")


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))

