"""Image files as size x size RGB, the same way everywhere (`fit_image`): the shorter side
resized to the size, then the centre crop. One file (`read_image`), a file or a folder of them
(`read_images`), or a list decoded on every core (`decode_images`), JPEGs at the reduced scale
(1/2, 1/4 or 1/8) that keeps the shorter side at least twice the size.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from pba.core.errors import PBAError, UserError
from pba.data import cache as image_cache

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
MAX_RUN = 64  # files a decoding task takes at most: progress is reported after each task
DRAFT_GAP = 2  # a JPEG is decoded at no less than this many times the image size

Progress = Callable[[int, int], None]  # (images done, images in all)


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
        raise UserError(f"cannot read image {path}: {err}") from None


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
            raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {path}")
    elif path.is_file():
        files = [path]
    else:
        raise UserError(f"no such image file or folder: {path}")
    return np.stack([read_image(f, size) for f in files[:limit]])


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

