"""Readers for the on-disk formats: CIFAR python pickles, SVHN .mat files, image folders.

The CIFAR files are read directly rather than through `torchvision.datasets`: torchvision checks
the official checksums and so refuses re-encoded copies. torchvision is used only to download.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pba.data.imageset import ImageSet
from pba.errors import PBAError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
SVHN_TRAIN_FILE = "train_32x32.mat"
SVHN_TEST_FILE = "test_32x32.mat"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")

# A reader turns (data root, whether to download) into (training pool, test set).
Reader = Callable[[Path, bool], tuple[ImageSet, ImageSet]]


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


def read_image_folder(
    folder: Path, image_size: int, *, skip_unreadable: bool = False
) -> FolderImages:
    """Every image under `folder/<class>/` (or `folder/{train,val,test}/<class>/` when it comes
    split), resized to image_size x image_size, and the classes.

    Classes are the subfolders in sorted order (label i = i-th name; in a split folder, those of
    train/). Files without an image extension are ignored. Images become RGB (`to_rgb`) and are
    squashed to a square (aspect ratio not kept) with bilinear resampling. Unreadable images
    are listed in one error, or left out with `skip_unreadable`.
    """
    if not folder.is_dir():
        raise PBAError(f"image folder {folder.resolve()} does not exist")
    subfolders = {p.name.lower(): p for p in _subfolders(folder)}
    split = "train" in subfolders and "test" in subfolders
    roots = {s: subfolders[s] for s in SPLITS if s in subfolders} if split else {POOL: folder}
    classes = [p.name for p in _subfolders(roots.get("train", folder))]
    if not classes:
        raise PBAError(f"image folder {folder.resolve()} has no class subfolders (one per class)")
    if len(classes) < 2:
        raise PBAError(f"image folder {folder.resolve()} has one class ({classes[0]}): a "
                       "classifier needs at least two class subfolders")
    files: dict[str, list[tuple[Path, int]]] = {}
    for part, root in roots.items():
        names = [p.name for p in _subfolders(root)]
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise PBAError(f"{root} has class folders that train/ lacks: {', '.join(unknown)}")
        files[part] = [(path, classes.index(name)) for name in names
                       for path in _image_files(root / name)]
    parts, bad = {}, []
    for part, entries in files.items():
        images, labels = [], []
        for path, label in entries:
            try:
                images.append(read_image(path, image_size))
                labels.append(label)
            except PBAError as err:
                bad.append(str(err))
        if not images:
            raise PBAError(f"{roots[part].resolve()} holds no readable images (looked for "
                           f"{', '.join(IMAGE_EXTENSIONS)} in its class subfolders)")
        stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        parts[part] = ImageSet(stacked, torch.tensor(labels, dtype=torch.int64))
    if bad and not skip_unreadable:
        listed = "; ".join(bad[:MAX_LISTED])
        more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise PBAError(f"{len(bad)} unreadable image(s) in {folder.resolve()}: {listed}{more}. "
                       "Fix or remove them, or leave them out with --skip-unreadable")
    _check_class_sizes(parts, classes, folder)
    return FolderImages(parts, classes, tuple(bad))


def _check_class_sizes(parts: dict[str, ImageSet], classes: list[str], folder: Path) -> None:
    counts = torch.bincount(parts.get(POOL, parts.get("train")).labels, minlength=len(classes))
    need = MIN_IMAGES_PER_CLASS if POOL in parts else 1
    short = [f"{classes[i]} ({int(n)})" for i, n in enumerate(counts) if n < need]
    if short:
        where = ("to split at random into train, validation and test" if POOL in parts
                 else "in train/")
        raise PBAError(f"image folder {folder.resolve()}: each class needs at least {need} "
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


def read_image(path: Path, image_size: int) -> np.ndarray:
    """One image file as uint8 (image_size, image_size, 3), bilinear-resized: what every
    loader of image files here uses."""
    try:
        with Image.open(path) as image:
            rgb = to_rgb(image)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise PBAError(f"cannot read image {path}: {e}") from None
    resized = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def read_images(path: Path, limit: int, size: int) -> np.ndarray:
    """Up to `limit` RGB images from an image file or a folder (searched recursively), resized
    to size x size: uint8 (N, size, size, 3)."""
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
