"""Readers for the published datasets' files: CIFAR python pickles and SVHN .mat files.

The CIFAR files are read directly rather than through `torchvision.datasets`: torchvision checks
the official checksums and so refuses re-encoded copies. torchvision is used only to download.
Image files and folders are read by `pba.data.image_files` and `pba.data.folders`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pba.core.errors import UserError
from pba.data.imageset import ImageSet

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
SVHN_TRAIN_FILE = "train_32x32.mat"
SVHN_TEST_FILE = "test_32x32.mat"

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
            raise UserError(f"downloading {dataset} into {root} failed: {e}") from e
        if all(f.is_file() for f in files):
            return
    missing = next(f for f in files if not f.is_file())
    raise UserError(
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
        raise UserError(f"{path} is not a CIFAR python batch ({type(e).__name__}: {e})") from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise UserError(
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
        raise UserError("reading SVHN's .mat files needs scipy: pip install 'pba[svhn]'") from e
    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
        x, y = mat["X"], mat["y"]
    except (OSError, ValueError, KeyError, NotImplementedError) as e:
        raise UserError(f"{path} is not an SVHN .mat file ({type(e).__name__}: {e})") from e
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.size:
        raise UserError(f"{path}: expected X of shape (32, 32, 3, N) and N labels, got {x.shape}")
    # X is (H, W, C, N); SVHN labels the digit 0 as 10.
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8))
    labels = torch.from_numpy(y.reshape(-1).astype(np.int64))
    labels[labels == 10] = 0
    return ImageSet(images, labels)


def _concat(parts: list[ImageSet]) -> ImageSet:
    return ImageSet(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))
