"""A dataset's splits in one `.npz` file, to carry a (reduced) dataset to a machine without it.

    save_npz("carry/rcifar10.npz", load_dataset("reduced_cifar10", val_size=6000))
    data = load_dataset("npz:carry/rcifar10.npz")   # the same images, labels and statistics

The file holds the train, validation and test images (uint8, N x 3 x H x W) and labels as they
were split, with the source's normalisation statistics, fill colour and default baseline,
so that a run on the copy trains and scores exactly as on the source. `train_size` / `val_size`
take the first images of the stored splits; the statistics of a cut training set are recomputed,
as `load_dataset` does for any non-standard subset. The split is already made, so no seed
applies; a relative path is relative to the working directory.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from pba.augmentation.baseline import PARTS, Baseline
from pba.core.atomic import atomic_path
from pba.core.errors import UserError
from pba.data.imageset import DatasetSplits, ImageSet, channel_stats

FORMAT = "pba.dataset.npz/1"
SPLITS = ("train", "val", "test")


def save_npz(path: str | Path, data: DatasetSplits) -> Path:
    """Write `data` to `path` (compressed, atomically); return the path."""
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"{path}: a dataset file must end in .npz")
    # An absent validation split is stored empty, so that every file has the same keys.
    val = data.val if data.val is not None else ImageSet(data.train.images[:0],
                                                         data.train.labels[:0])
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "name": np.array(data.name),
        "num_classes": np.array(data.num_classes),
        "mean": np.array(data.mean, dtype=np.float64),
        "std": np.array(data.std, dtype=np.float64),
        "fill": np.array(data.fill, dtype=np.uint8),
        "baseline": np.array(str(data.baseline)),
        "cutout_size": np.array(data.baseline.cutout_size),
    }
    for split, images in zip(SPLITS, (data.train, val, data.test), strict=True):
        arrays[f"{split}_images"] = images.images.numpy()
        arrays[f"{split}_labels"] = images.labels.numpy()
    # A file object: given a name, numpy would append ".npz" to the temporary name.
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def load_npz(
    path: str | Path, *, train_size: int | None = None, val_size: int | None = None
) -> DatasetSplits:
    """The splits stored in `path`, cut to the first `train_size` / `val_size` images if given."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no dataset file at {path} (write one with pba.data.save_npz)")
    try:
        with np.load(path, allow_pickle=False) as doc:
            arrays = {key: doc[key] for key in doc.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(f"{path} is not a readable .npz file: {err}") from None
    if arrays.get("format") != FORMAT:
        raise UserError(f"{path} is not a pba dataset file (format {FORMAT})")
    sets = {split: _image_set(path, arrays, split) for split in SPLITS}
    train = _first(path, sets["train"], train_size, "train", minimum=1)
    val = _first(path, sets["val"], val_size, "val", minimum=0)
    mean, std = (tuple(float(v) for v in arrays[key]) for key in ("mean", "std"))
    if len(train) < len(sets["train"]):
        mean, std = channel_stats(train.images)
    data = DatasetSplits(
        name=str(arrays["name"]),
        train=train,
        val=val if len(val) > 0 else None,
        test=sets["test"],
        num_classes=int(arrays["num_classes"]),
        mean=mean,
        std=std,
        baseline=_baseline(arrays),
    )
    # The fill colour is stored for readers of the file; here it must follow from the mean.
    if len(train) == len(sets["train"]) and data.fill != tuple(arrays["fill"].tolist()):
        raise UserError(f"{path}: fill {arrays['fill'].tolist()} does not match its mean colour")
    return data


def _baseline(arrays: dict[str, np.ndarray]) -> Baseline:
    size = int(arrays["cutout_size"])
    if "baseline" in arrays:
        return Baseline.parse(str(arrays["baseline"]), size)
    # Files from before the baseline had parts: crop and flip together, Cutout always.
    return Baseline(PARTS if bool(arrays["crop_flip"]) else ("cutout",), size)


def _image_set(path: Path, arrays: dict[str, np.ndarray], split: str) -> ImageSet:
    images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
    if (images is None or labels is None or images.dtype != np.uint8 or images.ndim != 4
            or images.shape[1] != 3 or labels.shape != images.shape[:1]):
        raise UserError(f"{path}: the {split} split is missing or not uint8 (N, 3, H, W) images "
                       "with N labels")
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def _first(path: Path, images: ImageSet, size: int | None, split: str, minimum: int) -> ImageSet:
    if size is None:
        return images
    if not minimum <= size <= len(images):
        raise UserError(f"{path} holds {len(images)} {split} images; {split}_size must be in "
                       f"{minimum}..{len(images)}, got {size}")
    return ImageSet(images.images[:size].contiguous(), images.labels[:size].contiguous())
