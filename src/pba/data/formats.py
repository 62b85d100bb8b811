"""Readers for the on-disk formats: CIFAR python pickles, SVHN .mat files, image folders.

The CIFAR files are read directly rather than through `torchvision.datasets`: torchvision checks
the official checksums and so refuses re-encoded copies. torchvision is used only to download.

Image files become size x size RGB the same way everywhere (`fit_image`): the shorter side
resized to the size, then the centre crop. A folder's files are decoded on every core, JPEGs
at the reduced scale (1/2, 1/4 or 1/8) that keeps the shorter side at least twice the size,
and the result is cached (`pba.data.cache`).
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pba.data import cache as image_cache
from pba.data.imageset import ImageSet
from pba.errors import PBAError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
SVHN_TRAIN_FILE = "train_32x32.mat"
SVHN_TEST_FILE = "test_32x32.mat"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")

# A reader turns (data root, whether to download) into (training pool, test set).
Reader = Callable[[Path, bool], tuple[ImageSet, ImageSet]]
Progress = Callable[[int, int], None]  # (images done, images in all)


def read_cifar10(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 from `root/cifar-10-batches-py/` (data_batch_1..5, test_batch)."""
    folder = root / CIFAR10_DIR
    train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
    test_file = folder / "test_batch"
    _ensure_files(
        "CIFAR-10", root, [*train_files, test_file], download, _torchvision_fetch("CIFAR10")
    )
    train = _concat([_read_cifar_pickle(f, "labels") for f in train_files])
    return train, _read_cifar_pickle(test_file, "labels")


def read_cifar100(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    """CIFAR-100 (fine labels) from `root/cifar-100-python/` (train, test)."""
    folder = root / CIFAR100_DIR
    train_file, test_file = folder / "train", folder / "test"
    _ensure_files(
        "CIFAR-100", root, [train_file, test_file], download, _torchvision_fetch("CIFAR100")
    )
    train = _read_cifar_pickle(train_file, "fine_labels")
    return train, _read_cifar_pickle(test_file, "fine_labels")


def read_svhn(root: Path, download: bool) -> tuple[ImageSet, ImageSet]:
    """SVHN from torchvision's `root/train_32x32.mat` and `root/test_32x32.mat`.

    'train' is the 73,257-image split; the 531,131 'extra' images are not used.
    """
    train_file, test_file = root / SVHN_TRAIN_FILE, root / SVHN_TEST_FILE
    _ensure_files("SVHN", root, [train_file, test_file], download, _torchvision_fetch("SVHN"))
    return _read_svhn_mat(train_file), _read_svhn_mat(test_file)


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
MAX_RUN = 64  # files a decoding task takes at most: progress is reported after each task
DRAFT_GAP = 2  # a JPEG is decoded at no less than this many times the image size


def read_image_folder(
    folder: Path, image_size: int, *, skip_unreadable: bool = False, cache: bool = True,
    workers: int | None = None, progress: Progress | None = None,
) -> FolderImages:
    """Every image under `folder/<class>/` (or `folder/{train,val,test}/<class>/` when it comes
    split), fitted to image_size x image_size (`fit_image`), and the classes.

    Classes are the subfolders in sorted order (label i = i-th name; in a split folder, those of
    train/). Files without an image extension are ignored. Unreadable images (any file Pillow
    refuses, images over `Image.MAX_IMAGE_PIXELS` included) are listed in one error, or left
    out with `skip_unreadable`. Images that would not fit in the available memory are refused
    before any is decoded. `workers` threads decode (default: `usable_cores()`), and
    `progress(done, total)` hears how far they are (after every MAX_RUN images or fewer; not
    at all when they come from the cache). With `cache`, the decoded images are kept in, and
    read back from, `pba.data.cache`.
    """
    folder = folder.resolve()  # so the messages, cached ones too, hold whole paths
    if not folder.is_dir():
        raise PBAError(f"image folder {folder} does not exist")
    subfolders = {p.name.lower(): p for p in _subfolders(folder)}
    split = "train" in subfolders and "test" in subfolders
    roots = {s: subfolders[s] for s in SPLITS if s in subfolders} if split else {POOL: folder}
    classes = [p.name for p in _subfolders(roots.get("train", folder))]
    if not classes:
        raise PBAError(f"image folder {folder} has no class subfolders (one per class)")
    if len(classes) < 2:
        raise PBAError(f"image folder {folder} has one class ({classes[0]}): a "
                       "classifier needs at least two class subfolders")
    files: dict[str, list[tuple[Path, int]]] = {}
    for part, root in roots.items():
        names = [p.name for p in _subfolders(root)]
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise PBAError(f"{root} has class folders that train/ lacks: {', '.join(unknown)}")
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
            raise PBAError(f"{roots[part]} holds no readable images (looked for "
                           f"{', '.join(IMAGE_EXTENSIONS)} in its class subfolders)")
        parts[part] = ImageSet(images[end:end + len(labels)],
                               torch.tensor(labels, dtype=torch.int64))
        start, end = start + len(entries), end + len(labels)
    bad = tuple(decoded.failed[i] for i in sorted(decoded.failed))
    if bad and not skip_unreadable:
        listed = "; ".join(bad[:MAX_LISTED])
        more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise PBAError(f"{len(bad)} unreadable image(s) in {folder}: {listed}{more}. "
                       "Fix or remove them, or leave them out with --skip-unreadable")
    _check_class_sizes(parts, classes, folder)
    return FolderImages(parts, classes, bad)


def decode_images(
    paths: Sequence[Path], image_size: int, *, workers: int | None = None,
    progress: Progress | None = None,
) -> image_cache.Decoded:
    """`read_image` of every file, on `workers` threads (default: `usable_cores()`): Pillow
    releases the GIL while it decodes and resizes. The readable images, in order, as uint8
    (N, 3, image_size, image_size), and why each unreadable one was refused."""
    images = np.empty((len(paths), 3, image_size, image_size), dtype=np.uint8)
    failed: dict[int, str] = {}
    workers = workers or usable_cores()
    # A task per run of files, not per file: a million queued tasks would take a gigabyte.
    # Four runs a worker at least, so that a short load still spreads over every core.
    run = max(1, min(MAX_RUN, len(paths) // (4 * workers)))
    runs = [range(start, min(start + run, len(paths))) for start in range(0, len(paths), run)]

    def decode(indices: range) -> int:
        for i in indices:
            try:
                images[i] = _read_image(paths[i], image_size).transpose(2, 0, 1)
            except PBAError as err:
                failed[i] = str(err)
        return len(indices)

    done = 0
    with _refusing_bombs(), ThreadPoolExecutor(workers) as pool:
        for count in pool.map(decode, runs):
            done += count
            if progress is not None:
                progress(done, len(paths))
    # Close the gaps in place: a copy of the readable ones would need their memory twice.
    kept = [i for i in range(len(paths)) if i not in failed]
    for j, i in enumerate(kept):
        if i != j:
            images[j] = images[i]
    return image_cache.Decoded(images[:len(kept)], failed)


def usable_cores() -> int:
    """The cores this process may run on: the default number of threads that decode."""
    if hasattr(os, "sched_getaffinity"):  # Linux: what taskset or a container allows
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _check_memory(count: int, image_size: int) -> None:
    needed = count * 3 * image_size * image_size
    available = _available_memory()
    if available is not None and needed > available:
        raise PBAError(
            f"{count:,} images at {image_size} x {image_size} need {needed / 2**30:.1f} GiB "
            f"({needed:,} bytes) of memory, and {available / 2**30:.1f} GiB ({available:,} "
            "bytes) is available. Pass a smaller --image-size, keep fewer images in the "
            "folder, or augment with pba.transforms.PBAugment in a DataLoader of your own, "
            "which reads the images as it goes")


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
        raise PBAError(f"image folder {folder}: each class needs at least {need} "
                       f"image(s) {where}; too few in {', '.join(short)}")


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB: grayscale is repeated, palette images are expanded (with
    their transparency dropped), alpha is dropped, and 16- or 32-bit integer grayscale is
    scaled from its full range to 0..255 (Pillow's own conversion would clip it to white)."""
    if image.mode.startswith("I"):  # I, I;16, I;16B, ...: integer grayscale
        values = np.asarray(image).astype(np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.round(values.clip(0, top) * 255 / top).astype(np.uint8))
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def fit_image(image: Image.Image, size: int) -> np.ndarray:
    """A Pillow image as uint8 (size, size, 3) RGB (`to_rgb`): the shorter side resized to
    `size` (bilinear, antialiased when shrinking), then the centre size x size crop, so that
    the aspect ratio is kept and the ends of the longer side are cut off."""
    rgb = to_rgb(image)
    width, height = rgb.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    # Resampling only the centre square (`box`) is the resize-then-crop without resizing the
    # ends that the crop throws away.
    fitted = rgb.resize((size, size), Image.Resampling.BILINEAR,
                        box=(left, top, left + side, top + side))
    return np.asarray(fitted, dtype=np.uint8)


def read_image(path: Path, image_size: int) -> np.ndarray:
    """One image file as uint8 (image_size, image_size, 3) (`fit_image`): what every loader of
    image files here uses. Images over `Image.MAX_IMAGE_PIXELS` are refused (PBAError), as
    is any file Pillow cannot read."""
    with _refusing_bombs():
        return _read_image(path, image_size)


def _read_image(path: Path, image_size: int) -> np.ndarray:
    """`read_image`, for callers already inside `_refusing_bombs`."""
    try:
        with Image.open(path) as image:
            # A JPEG decoder can scale by 1/2, 1/4 or 1/8 as it decodes, far faster than
            # decoding it all; Pillow takes the largest that keeps both sides at least the
            # size asked. Asking twice the size (as Pillow's thumbnail does) leaves the resize
            # room to antialias: within 0.5 of 255 of a full decode, where asking for the
            # size itself gave up to 2.3. Other formats ignore the request.
            image.draft("RGB", (DRAFT_GAP * image_size, DRAFT_GAP * image_size))
            return fit_image(image, image_size)
    except (OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise PBAError(f"cannot read image {path}: {err}") from None


@contextmanager
def _refusing_bombs() -> Iterator[None]:
    # Pillow refuses images over twice MAX_IMAGE_PIXELS but only warns over MAX_IMAGE_PIXELS;
    # those are refused too (a warning per image is no way to learn that images are skipped).
    # Warning filters are process-wide and catch_warnings is not thread-safe: set this from the
    # calling thread around a whole load, never in the threads that decode.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def read_images(path: Path, limit: int, size: int) -> np.ndarray:
    """Up to `limit` RGB images from an image file or a folder (searched recursively), fitted
    to size x size (`fit_image`): uint8 (N, size, size, 3)."""
    if path.is_dir():
        files = sorted(f for f in path.rglob("*")
                       if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise PBAError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {path}")
    elif path.is_file():
        files = [path]
    else:
        raise PBAError(f"no such image file or folder: {path}")
    return np.stack([read_image(f, size) for f in files[:limit]])


def _ensure_files(
    dataset: str, root: Path, files: list[Path], download: bool, fetch: Callable[[Path], None]
) -> None:
    """Download when asked and something is missing; otherwise explain where we looked."""
    if all(f.is_file() for f in files):
        return
    root = root.resolve()
    if download:
        try:
            fetch(root)
        except (OSError, RuntimeError) as e:
            raise PBAError(f"downloading {dataset} into {root} failed: {e}") from e
        if all(f.is_file() for f in files):
            return
    missing = next(f for f in files if not f.is_file())
    raise PBAError(
        f"{dataset} not found: looked for {missing.resolve()} under data directory {root}. "
        f"Pass --download to fetch it, or point PBA_DATA_DIR (or --data-dir) at the folder "
        f"that holds it."
    )


def _torchvision_fetch(dataset_class: str) -> Callable[[Path], None]:
    def fetch(root: Path) -> None:
        # Imported here: torchvision is slow to import and only needed to download.
        from torchvision import datasets

        cls = getattr(datasets, dataset_class)
        if dataset_class == "SVHN":
            for split in ("train", "test"):
                cls(str(root), split=split, download=True)
        else:
            cls(str(root), train=True, download=True)  # one archive holds train and test

    return fetch


def _read_cifar_pickle(path: Path, label_key: str) -> ImageSet:
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="latin1")
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise PBAError(f"{path} is not a CIFAR python batch ({type(e).__name__}: {e})") from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise PBAError(
            f"{path}: expected 'data' of shape (N, 3072) and N labels, "
            f"got {data.shape} and {labels.shape[0]}"
        )
    # Each row holds the R, G and B planes of a 32x32 image, one after the other.
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ImageSet(images, torch.from_numpy(labels))


def _read_svhn_mat(path: Path) -> ImageSet:
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise PBAError("reading SVHN's .mat files needs scipy: pip install scipy") from e
    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
        x, y = mat["X"], mat["y"]
    except (OSError, ValueError, KeyError, NotImplementedError) as e:
        raise PBAError(f"{path} is not an SVHN .mat file ({type(e).__name__}: {e})") from e
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.size:
        raise PBAError(f"{path}: expected X of shape (32, 32, 3, N) and N labels, got {x.shape}")
    # X is (H, W, C, N); SVHN labels the digit 0 as 10.
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8))
    labels = torch.from_numpy(y.reshape(-1).astype(np.int64))
    labels[labels == 10] = 0
    return ImageSet(images, labels)


def _concat(parts: list[ImageSet]) -> ImageSet:
    return ImageSet(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))
