"""Images where the user keeps them: a torchvision dataset class on disk
(`torchvision:CLASS:ROOT`), and map-style Datasets or uint8 tensors in Python.

    parts = read_torchvision("STL10:~/data", image_size=32, download=False)
    parts = read_python(train_set, test_set, image_size=32)

Both come out as the parts an image folder is read into (`folders.FolderImages`), which
`pba.data.datasets` splits the same way: the source's own train and test (and validation)
splits where it has them, else one pool cut with the seed. Every image is fitted to
image_size x image_size as a folder's files are: the shorter side resized, then the centre
crop (`image_files.fit_image`).

A torchvision class is built with the arguments its signature takes: `train=True/False`, or
`split=` "train" (or "trainval") / "test", or neither (one pool, e.g. EuroSAT, ImageFolder).
A class's own validation split is not read: validation images are cut from its training
split, as for a folder without val/, so that `--val-size` and the time budget can size them.
`download` only with `--download`, so nothing is fetched unless asked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pba.core.errors import UserError
from pba.data.folders import POOL, FolderImages
from pba.data.image_files import Progress, fit_image
from pba.data.imageset import ImageSet, fit_images

TORCHVISION_PREFIX = "torchvision:"
# Where a class takes `split=`: the values tried for each part, in order.
SPLIT_VALUES = {"train": ("train", "trainval"), "test": ("test",)}


def read_torchvision(
    spec: str, image_size: int, *, download: bool = False, workers: int | None = None,
    progress: Progress | None = None,
) -> FolderImages:
    """The images of `CLASS:ROOT`, a class of `torchvision.datasets` whose files are under ROOT,
    by its own splits where its signature has them."""
    cls, root = _torchvision_class(spec)
    params = inspect.signature(cls).parameters
    if download and "download" not in params:
        raise UserError(f"torchvision.datasets.{cls.__name__} cannot download: its files must "
                       f"already be under {root}")
    base: dict[str, Any] = {"root": str(root)} | ({"download": download}
                                                  if "download" in params else {})
    if "train" in params:
        sets = {"train": _build(cls, base | {"train": True}),
                "test": _build(cls, base | {"train": False})}
    elif "split" in params:
        found = {part: _with_split(cls, base, values) for part, values in SPLIT_VALUES.items()}
        if found["train"] is None:
            raise UserError(f"torchvision.datasets.{cls.__name__} has no split called "
                           f"{' or '.join(SPLIT_VALUES['train'])}")
        sets = found if found["test"] is not None else {POOL: found["train"]}
    else:
        sets = {POOL: _build(cls, base)}
    first = sets.get("train", sets.get(POOL))
    return _read_parts(sets, getattr(first, "classes", None), image_size, workers, progress)


def read_python(
    train: Any, test: Any, val: Any = None, *, image_size: int,
    classes: Sequence[str] | None = None, workers: int | None = None,
    progress: Progress | None = None,
) -> FolderImages:
    """The images of map-style Datasets of (image, label) (PIL images, (C, H, W) tensors or
    (H, W, C) arrays; uint8, or float in [0, 1]) or of (images, labels) tensor pairs
    (uint8 (N, C, H, W)), for train, test and optionally val."""
    sets = {"train": train, "test": test} | ({} if val is None else {"val": val})
    return _read_parts(sets, classes, image_size, workers, progress)


def _torchvision_class(spec: str) -> tuple[type, Path]:
    name, _, root = spec.partition(":")
    if not name or not root:
        raise UserError(f"a torchvision dataset is {TORCHVISION_PREFIX}CLASS:ROOT, e.g. "
                       f"{TORCHVISION_PREFIX}STL10:~/data; got {TORCHVISION_PREFIX}{spec}")
    from torchvision import datasets  # slow to import: only for this source

    cls = getattr(datasets, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.utils.data.Dataset)):
        known = sorted(n for n in datasets.__all__ if n[0].isupper())
        raise UserError(f"torchvision.datasets has no dataset class {name!r}; known: "
                       f"{', '.join(known)}")
    return cls, Path(root).expanduser()


def _build(cls: type, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except (RuntimeError, FileNotFoundError, OSError) as err:
        hint = "" if kwargs.get("download") else " (pass --download to fetch it, where it can)"
        raise UserError(f"torchvision.datasets.{cls.__name__} could not be read from "
                       f"{kwargs['root']}: {err}{hint}") from None


def _with_split(cls: type, base: dict[str, Any], values: Sequence[str]) -> Any:
    """The dataset of the first of `values` the class accepts as its split, or None."""
    for value in values:
        try:
            return _build(cls, base | {"split": value})
        except UserError:  # our own (also a ValueError): the files, not the split
            raise
        except ValueError:  # torchvision's verify_str_arg: not one of this class's splits
            continue
    return None


def _read_parts(
    sets: dict[str, Any], classes: Sequence[str] | None, image_size: int, workers: int | None,
    progress: Progress | None,
) -> FolderImages:
    total = sum(_length(items) for items in sets.values())
    done = 0
    parts = {}
    for part, items in sets.items():
        def counted(n: int, before: int = done) -> None:
            if progress is not None:
                progress(before + n, total)
        parts[part] = _image_set(part, items, image_size, workers, counted)
        done += len(parts[part])
    labels = torch.cat([p.labels for p in parts.values()])
    if labels.numel() and int(labels.min()) < 0:
        raise UserError("labels must be class indices 0, 1, 2, ...; got a negative label")
    count = int(labels.max()) + 1 if labels.numel() else 0
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(count)]
    if len(names) < max(count, 2):
        raise UserError(f"a classifier needs at least two classes and a name for every label; "
                       f"got labels up to {count - 1} and {len(names)} class name(s)")
    return FolderImages(parts, names)


def _is_tensor_pair(items: Any) -> bool:
    """Whether a split is given as (images, labels) tensors rather than a Dataset."""
    return isinstance(items, tuple) and len(items) == 2 and isinstance(items[0], torch.Tensor)


def _length(items: Any) -> int:
    return len(items[0]) if _is_tensor_pair(items) else len(items)


def _image_set(part: str, items: Any, image_size: int, workers: int | None,
               progress: Callable[[int], None]) -> ImageSet:
    if _is_tensor_pair(items):
        images, labels = items
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise UserError(f"the {part} images must be uint8 (N, 3, H, W), got {images.dtype} "
                           f"{tuple(images.shape)}")
        progress(len(images))
        return ImageSet(fit_images(images, image_size).contiguous(),
                        torch.as_tensor(labels, dtype=torch.int64).reshape(-1))
    n = len(items)
    if n == 0:
        raise UserError(f"the {part} split holds no images")

    def one(i: int) -> tuple[np.ndarray, int]:
        image, label = items[i][:2]
        return fit_image(as_pil(image, f"{part} item {i}"), image_size), int(label)

    # Decoding and resizing release the GIL in Pillow: threads use every core.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = []
        for k, result in enumerate(pool.map(one, range(n)), 1):
            results.append(result)
            if k % 256 == 0 or k == n:
                progress(k)
    images = torch.from_numpy(np.stack([r[0] for r in results])).permute(0, 3, 1, 2)
    return ImageSet(images.contiguous(), torch.tensor([r[1] for r in results], dtype=torch.int64))


def as_pil(image: Any, what: str = "an image") -> Image.Image:
    """A Dataset's image as a Pillow image: PIL images as they are, (C, H, W) tensors and
    (H, W, C) arrays (uint8, or float in [0, 1]; 1 or 3 channels) converted."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        if image.ndim != 3:
            raise UserError(f"{what}: a tensor image is (C, H, W), got {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.dtype != np.uint8:
            if not np.issubdtype(image.dtype, np.floating):
                raise UserError(f"{what}: images are uint8, or float in [0, 1]; got {image.dtype}")
            image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise UserError(f"{what}: an array image is (H, W, C), got {image.shape}")
        return Image.fromarray(np.ascontiguousarray(image))
    raise UserError(f"{what} is a {type(image).__name__}; a Dataset's items are (image, label) "
                   "with a PIL image, a (C, H, W) tensor or an (H, W, C) array")
