"""Named datasets, their reduced splits and normalisation statistics: `load_dataset`.

Every split is made the same way: shuffle the training pool with `seed` (a CPU
`torch.Generator`, so the same on every machine), take the first `train_size` images for
training and the next `val_size` for validation. The test set is the dataset's own test split.

A `.npz` file written by `pba.data.save_npz` (`npz:PATH`) holds splits already made, with their
statistics: see `pba.data.npz`.

Image folders (`folder:PATH`, one subfolder per class): a folder with train/ and test/ (and
optionally val/) subfolders, each with one subfolder per class, is split as it comes (without
val/, 10% of train/ becomes validation by default). Otherwise the images are shuffled with
`seed`, the first 20% (at least one image) become the test set and the rest the pool, of which
10% of all images (by default) become validation and the rest training. A torchvision dataset
class on disk (`torchvision:CLASS:ROOT`, `pba.data.sources`) is split as a folder: by its own
train and test splits where it has them, else as one pool. Datasets in Python become a `.npz`
file (`save_datasets`), so that a run directory can read them again on a resume.

Images read from files are fitted to `image_size` (the shorter side resized, then the centre
crop); the named datasets and `.npz` files keep their size unless one is given.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pba.augmentation.baseline import PARTS, Baseline, cutout_at
from pba.core.errors import UserError
from pba.data import folders, formats, npz
from pba.data.imageset import DatasetSplits, ImageSet, Triple, channel_stats, fit_images, take
from pba.data.sources import TORCHVISION_PREFIX, Progress, read_python, read_torchvision

FOLDER_PREFIX = "folder:"
# Images read from files are searched at the paper's 32 px unless told otherwise: the search's
# CIFAR networks are fast there, and its magnitudes scale with the side (pba.ops.registry).
DEFAULT_IMAGE_SIZE = 32
NPZ_PREFIX = "npz:"
FOLDER_TEST_FRACTION = 0.2
FOLDER_VAL_FRACTION = 0.1
# The seed whose reduced split the paper's statistics stand for.
PAPER_SEED = 0


@dataclass(frozen=True)
class Stats:
    mean: Triple
    std: Triple


# The paper's statistics of the standard training subsets (docs/algorithm.md §4). They are used for
# those subsets as the paper does, rather than statistics recomputed from a local copy whose
# bytes may differ (e.g. a JPEG re-encoding of CIFAR-10).
CIFAR10_STATS = Stats((0.49139968, 0.48215841, 0.44653091), (0.24703223, 0.24348513, 0.26158784))
REDUCED_CIFAR10_STATS = Stats(
    (0.49056774, 0.48116026, 0.44726052), (0.24710728, 0.24451308, 0.26235099)
)
CIFAR100_STATS = Stats((0.50707516, 0.48654887, 0.44091784), (0.26733429, 0.25643846, 0.27615047))
REDUCED_SVHN_STATS = Stats(
    (0.45163885, 0.4557915, 0.48093327), (0.20385217, 0.20957996, 0.20804394)
)


@dataclass(frozen=True)
class DatasetSpec:
    reader: formats.Reader
    num_classes: int
    train_size: int | None  # default; None = the pool minus the validation images
    val_size: int | None  # default; None = the rest of the pool
    baseline: Baseline
    paper_stats: Stats | None = None  # for the default training subset with PAPER_SEED


_CIFAR = {"baseline": Baseline(PARTS, 16)}
# Digits are not mirror-symmetric; the paper's reduced SVHN runs use no baseline at all.
_SVHN = {"baseline": Baseline(("cutout",), 20)}
_FULL = {"train_size": None, "val_size": 0}

DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(formats.read_cifar10, 10, **_FULL, **_CIFAR, paper_stats=CIFAR10_STATS),
    "reduced_cifar10": DatasetSpec(
        formats.read_cifar10,
        10,
        train_size=4000,
        val_size=None,
        **_CIFAR,
        paper_stats=REDUCED_CIFAR10_STATS,
    ),
    "cifar100": DatasetSpec(
        formats.read_cifar100, 100, **_FULL, **_CIFAR, paper_stats=CIFAR100_STATS
    ),
    "reduced_cifar100": DatasetSpec(
        formats.read_cifar100, 100, train_size=4000, val_size=None, **_CIFAR
    ),
    "svhn": DatasetSpec(formats.read_svhn, 10, **_FULL, **_SVHN),
    "reduced_svhn": DatasetSpec(
        formats.read_svhn,
        10,
        train_size=1000,
        val_size=7325,
        baseline=Baseline((), 20),
        paper_stats=REDUCED_SVHN_STATS,
    ),
}
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)


def folder_baseline(image_size: int) -> Baseline:
    return Baseline(PARTS, max(1, image_size // 2))


def default_baseline(name: str) -> Baseline:
    """The baseline `name` (a dataset name or folder:PATH, at 32x32) trains with by default."""
    spec = DATASETS.get(name)
    return folder_baseline(32) if spec is None else spec.baseline


def has_own_val(name: str) -> bool:
    """Whether `name` is an image folder with a val/ split of its own (kept as it is)."""
    return name.startswith(FOLDER_PREFIX) and (Path(name[len(FOLDER_PREFIX):]) / "val").is_dir()


def data_root(root: str | Path | None = None) -> Path:
    """Where datasets live: `root` if given, else $PBA_DATA_DIR, else ./data."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("PBA_DATA_DIR")
    return Path(env).expanduser() if env else Path("data")


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
    download: bool = False,
    image_size: int | None = None,
    skip_unreadable: bool = False,
    cache: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> DatasetSplits:
    """Load a named dataset (see DATASET_NAMES), `folder:PATH`, `torchvision:CLASS:ROOT` or
    `npz:PATH` and cut it into splits.

    `train_size` / `val_size` override the dataset's defaults (reduced CIFAR-10: 4,000 and the
    remaining 46,000; reduced SVHN: 1,000 and 7,325; full datasets: everything and none).
    `image_size` N makes every image N x N: the shorter side resized to N, then the centre
    crop (no squashing). None: DEFAULT_IMAGE_SIZE for images read from files (folders,
    torchvision classes), the stored size for the named datasets (32) and `.npz` files. A
    source with train/ and test/ splits of its own keeps them; `skip_unreadable` leaves a
    folder's unreadable images out (listed in the result's `skipped`) instead of failing.
    A folder's decoded images are cached (`cache`, see `pba.data.cache`); `workers` threads
    decode them, and `progress(done, total)` hears how far they are.
    """
    if image_size is not None and image_size < 1:
        raise UserError(f"the image size must be >= 1 pixel, got {image_size}")
    if name.startswith(FOLDER_PREFIX) or name.startswith(TORCHVISION_PREFIX):
        size = image_size or DEFAULT_IMAGE_SIZE
        if name.startswith(FOLDER_PREFIX):
            parts = folders.read_image_folder(Path(name[len(FOLDER_PREFIX):]), size,
                                              skip_unreadable=skip_unreadable, cache=cache,
                                              workers=workers, progress=progress)
        else:
            parts = read_torchvision(name[len(TORCHVISION_PREFIX):], size, download=download,
                                     workers=workers, progress=progress)
        return _from_parts(name, parts, train_size, val_size, seed, size)
    if name.startswith(NPZ_PREFIX):
        data = npz.load_npz(name[len(NPZ_PREFIX) :], train_size=train_size, val_size=val_size)
        return data if image_size is None else resized(data, image_size)
    spec = DATASETS.get(name)
    if spec is None:
        known = ", ".join([*DATASET_NAMES, f"{FOLDER_PREFIX}PATH",
                           f"{TORCHVISION_PREFIX}CLASS:ROOT", f"{NPZ_PREFIX}PATH"])
        raise UserError(f"unknown dataset {name!r}; known: {known}")
    pool, test = spec.reader(data_root(root), download)
    train_n, val_n = _resolve_sizes(
        name, len(pool), train_size, val_size, spec.train_size, spec.val_size
    )
    # Full datasets: the whole pool, whatever the seed; reduced ones: the paper's size and seed.
    if spec.train_size is None:
        is_paper_subset = train_n == len(pool)
    else:
        is_paper_subset = train_n == spec.train_size and seed == PAPER_SEED
    stats = spec.paper_stats if is_paper_subset else None
    data = _assemble(
        name,
        pool,
        test,
        train_n,
        val_n,
        seed,
        num_classes=spec.num_classes,
        baseline=spec.baseline,
        stats=stats,
    )
    return data if image_size is None else resized(data, image_size)


def resized(data: DatasetSplits, image_size: int) -> DatasetSplits:
    """`data` with every image fitted to image_size x image_size (`fit_images`), the default
    Cutout scaled with the side and the statistics recomputed (resampling changes them)."""
    if data.train.images.shape[-2:] == (image_size, image_size):
        return data
    side = min(data.train.images.shape[-2:])

    def fit(images: ImageSet | None) -> ImageSet | None:
        return None if images is None else ImageSet(fit_images(images.images, image_size),
                                                    images.labels)

    train = fit(data.train)
    mean, std = channel_stats(train.images)
    cutout = cutout_at(data.baseline.cutout_size, side, image_size)
    return dataclasses.replace(data, train=train, val=fit(data.val), test=fit(data.test),
                               mean=mean, std=std,
                               baseline=Baseline(data.baseline.parts, cutout))


def save_datasets(
    path: str | Path, train: Any, test: Any, *, val: Any = None,
    image_size: int = 32, classes: Sequence[str] | None = None, seed: int = 0,
    workers: int | None = None,
) -> str:
    """Write map-style Datasets of (image, label), or (images, labels) uint8 tensor pairs, to
    the `.npz` file `path` (`pba.data.sources.read_python`, then the splits a folder gets:
    without `val`, 10% of `train` validates, cut with `seed`) and return the dataset name to
    search, train and demo on: `npz:PATH`. A run directory records that name, so a resumed run
    reads the same images again."""
    parts = read_python(train, test, val, image_size=image_size, classes=classes,
                        workers=workers)
    data = _from_parts(f"{NPZ_PREFIX}{path}", parts, None, None, seed, image_size)
    npz.save_npz(path, data)
    return f"{NPZ_PREFIX}{path}"


def split_indices(
    pool_size: int, train_size: int, val_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle range(pool_size) with `seed`; return its first train_size and next val_size."""
    order = torch.randperm(pool_size, generator=torch.Generator().manual_seed(seed))
    return order[:train_size], order[train_size : train_size + val_size]


def _resolve_sizes(
    name: str,
    pool: int,
    train_size: int | None,
    val_size: int | None,
    default_train: int | None,
    default_val: int | None,
) -> tuple[int, int]:
    train = default_train if train_size is None else train_size
    val = default_val if val_size is None else val_size
    if (train is not None and train < 1) or (val is not None and val < 0):
        raise UserError(f"{name}: train_size must be >= 1 and val_size >= 0, got {train}, {val}")
    if train is None:
        train = pool - val
        if train < 1:
            raise UserError(f"{name}: val_size {val} leaves none of the {pool} pool images "
                            "to train")
    elif val is None:
        val = max(pool - train, 0)
    if train + val > pool:
        raise UserError(
            f"{name}: train_size {train} + val_size {val} = {train + val} exceeds the "
            f"{pool} images of its training pool"
        )
    return train, val


def _assemble(
    name: str,
    pool: ImageSet,
    test: ImageSet,
    train_n: int,
    val_n: int,
    seed: int,
    *,
    num_classes: int,
    baseline: Baseline,
    stats: Stats | None,
) -> DatasetSplits:
    train_idx, val_idx = split_indices(len(pool), train_n, val_n, seed)
    train = take(pool, train_idx)
    if stats is None:
        stats = Stats(*channel_stats(train.images))
    return DatasetSplits(
        name=name,
        train=train,
        val=take(pool, val_idx) if val_n > 0 else None,
        test=test,
        num_classes=num_classes,
        mean=stats.mean,
        std=stats.std,
        baseline=baseline,
    )


def _from_parts(
    name: str, folder: folders.FolderImages, train_size: int | None, val_size: int | None,
    seed: int, image_size: int,
) -> DatasetSplits:
    """The splits of a source read into parts (an image folder, a torchvision class, Python
    Datasets): its own train/test (and val) as they come, else the pool cut with `seed`."""
    parts = folder.parts
    if folders.POOL in parts:
        # No split of its own: carve out the test set first; _assemble then splits the rest
        # like any training pool.
        images = parts[folders.POOL]
        total = len(images)
        test_n = max(1, round(FOLDER_TEST_FRACTION * total))
        test_idx, pool_idx = split_indices(total, test_n, total - test_n, seed)
        pool, test = take(images, pool_idx), take(images, test_idx)
        default_val = round(FOLDER_VAL_FRACTION * total)
    else:
        # The source's own train, test (and val) as given.
        pool, test = parts["train"], parts["test"]
        default_val = 0 if "val" in parts else round(FOLDER_VAL_FRACTION * len(pool))
    train_n, val_n = _resolve_sizes(name, len(pool), train_size, val_size, None, default_val)
    # CIFAR's parts, Cutout at half the side as its 16 of 32: what a search on the images
    # checks by default (pba.training.baseline_check), since nothing says they suit these images.
    splits = _assemble(
        name,
        pool,
        test,
        train_n,
        val_n,
        seed,
        num_classes=len(folder.classes),
        baseline=folder_baseline(image_size),
        stats=None,
    )
    if "val" in parts:
        val = parts["val"]
        if val_size is not None and val_size != len(val):
            raise UserError(f"{name} has a validation split of {len(val)} images: leave "
                           "--val-size out (or remove a folder's val/)")
        splits = dataclasses.replace(splits, val=val)
    return dataclasses.replace(splits, skipped=folder.skipped)
