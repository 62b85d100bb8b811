"""Images per second of reading an image folder of large JPEGs: the old way against decoding at
a reduced scale, on every core, and from the cache; then a cached load of many small images.

    python benchmarks/load_folder.py [--count 40] [--megapixels 12] [--image-size 32]
                                     [--folder DIR] [--repeats 3] [--synthetic 50000]

Writes --count JPEGs of --megapixels (4:3, quality 90; a smooth colour field, shapes and grain,
2 to 4 MB at 12 megapixels, as a phone photo) into two class subfolders of --folder (default a
temporary folder; files already there are reused), then times, as `read_image_folder` with
the cache off: the old reader (one core, every pixel decoded, squashed: `old_read_image`), the
reduced-scale decode on one thread and on every core, the same on a process pool per load
(threads or processes: which is faster here), and the load from the cache. Then --synthetic
copies of one 96 x 72 JPEG in ten classes at 64 px: the first load (decoded on threads, and on
processes) and the load from the cache, whose target is 50,000 images in under 10 s.

The files are in the page cache after they are written: "cold" means pba has not cached them,
not that the disk is read. The cache goes to a temporary folder. Figures are medians over
--repeats rounds, after a warm-up (which writes the cache entry), the paths taking turns
(`search_speed.interleaved_seconds`); the synthetic loads run once each.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from pba.data.folders import MIN_IMAGES_PER_CLASS, read_image_folder
from pba.data.image_files import read_image, to_rgb, usable_cores
from search_speed import interleaved_seconds  # the sibling script


def old_read_image(path: Path, image_size: int) -> np.ndarray:
    """The reader before reduced-scale decoding: every pixel decoded, squashed to a square."""
    with Image.open(path) as image:
        rgb = to_rgb(image)
    return np.asarray(rgb.resize((image_size, image_size), Image.Resampling.BILINEAR))


def photo(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Something a JPEG encoder finds as hard as a photo: a smooth colour field (a coarse random
    grid upsampled), shapes with sharp edges, and grain."""
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    image = coarse.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.01, 0.15) * width
        colour = tuple(rng.integers(0, 256, 3).tolist())
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.line((x, y, x + rng.uniform(-r, r) * 3, y + rng.uniform(-r, r) * 3),
                      fill=colour, width=max(1, round(r / 10)))
    grain = Image.merge("RGB", [Image.effect_noise((width, height), 10) for _ in range(3)])
    return ImageChops.add(image, grain, 1.0, -128)


def write_photos(folder: Path, count: int, megapixels: float) -> list[Path]:
    """`count` JPEGs of `megapixels` (4:3) in folder/class_0 and folder/class_1, reusing those
    already there."""
    height = round((megapixels * 1e6 * 3 / 4) ** 0.5)
    width = round(height * 4 / 3)
    rng = np.random.default_rng(0)
    paths = [folder / f"class_{i % 2}" / f"{i:04d}.jpg" for i in range(count)]
    for path in paths:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            photo(width, height, rng).save(path, quality=90)
    return paths


def write_copies(folder: Path, count: int) -> None:
    """`count` copies of one 96 x 72 JPEG in ten class subfolders: file bytes, not encoding,
    so that 50,000 are written in seconds (the cache does not care that they are the same)."""
    encoded = io.BytesIO()
    photo(96, 72, np.random.default_rng(1)).save(encoded, "JPEG", quality=90)
    data = encoded.getvalue()
    for i in range(count):
        path = folder / f"class_{i % 10}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def on_processes(paths: Sequence[Path], image_size: int, workers: int) -> np.ndarray:
    """`read_image` of every file on a pool of processes started for this load (as a library
    would have to): the alternative to `read_image_folder`'s threads."""
    with ProcessPoolExecutor(workers) as pool:
        chunk = max(1, len(paths) // (8 * workers))
        return np.stack(list(pool.map(read_image, paths, itertools.repeat(image_size),
                                      chunksize=chunk)))


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40, help="large JPEGs to read")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--folder", type=Path, help="where the JPEGs go (and stay)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=50_000,
                        help="small images for the cached-load figure at 64 px (0: none)")
    args = parser.parse_args()
    if args.count < 2 * MIN_IMAGES_PER_CLASS:
        parser.error(f"--count must be at least {2 * MIN_IMAGES_PER_CLASS} (two classes, each "
                     "enough to split)")

    cores = usable_cores()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["PBA_CACHE_DIR"] = str(Path(scratch) / "cache")
        folder = args.folder or Path(scratch) / "photos"
        paths = write_photos(folder, args.count, args.megapixels)
        size = args.image_size
        megabytes = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        with Image.open(paths[0]) as first:
            print(f"{len(paths)} JPEGs of {first.size[0]} x {first.size[1]} "
                  f"({megabytes:.1f} MB each) to {size} x {size}; {cores} usable cores")
        runs = {
            "old: one core, full decode, squashed": lambda: [old_read_image(p, size)
                                                             for p in paths],
            "reduced-scale decode, 1 thread": lambda: read_image_folder(
                folder, size, cache=False, workers=1),
            f"reduced-scale decode, {cores} threads (the default)": lambda: read_image_folder(
                folder, size, cache=False),
            f"reduced-scale decode, {cores} processes": lambda: on_processes(paths, size, cores),
            "from the cache": lambda: read_image_folder(folder, size),
        }
        rates = {name: len(paths) / s
                 for name, s in interleaved_seconds(runs, args.repeats, lambda: None).items()}
        old = rates["old: one core, full decode, squashed"]
        print("\n| load | images/s | x old |\n|---|---:|---:|")
        for name, rate in rates.items():
            print(f"| {name} | {rate:,.1f} | {rate / old:.1f} |")

        if args.synthetic:
            many = Path(scratch) / "many"
            write_copies(many, args.synthetic)
            files = sorted(many.rglob("*.jpg"))
            timed = {
                f"first load, {cores} processes": seconds(lambda: on_processes(files, 64, cores)),
                f"first load, {cores} threads (writes the cache)": seconds(
                    lambda: read_image_folder(many, 64)),
                "from the cache": seconds(lambda: read_image_folder(many, 64)),
            }
            print(f"\n{args.synthetic:,} images of 96 x 72 at 64 x 64 "
                  f"({args.synthetic * 3 * 64 * 64 / 2**20:,.0f} MiB)\n\n"
                  "| load | seconds | images/s |\n|---|---:|---:|")
            for name, s in timed.items():
                print(f"| {name} | {s:.1f} | {args.synthetic / s:,.0f} |")


if __name__ == "__main__":
    main()
