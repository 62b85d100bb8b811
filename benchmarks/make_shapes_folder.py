"""Write a user-style image folder that is not CIFAR-10: centred objects of six shapes.

    python benchmarks/make_shapes_folder.py runs/shapes            # 2,400 JPEGs, 64 x 48
    pba demo --dataset folder:runs/shapes --budget 15m --out runs/shapes-demo

One subfolder per class (circle, square, triangle, star, cross, ring), as a user keeps photos
of objects: each image one object near the centre (jittered by up to a tenth of the side), of
random size (its diameter half to four fifths of the short side), colour and rotation, on a
textured background (a random two-colour gradient with pixel noise and a few small clutter
blobs), saved as a JPEG of 64 x 48 (landscape: pba keeps its centre square at 32 x 32). The classes
differ only in shape, so colour jitter does not hurt but large rotations and crops can.
Deterministic in --seed.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("circle", "square", "triangle", "star", "cross", "ring")


def polygon(cx: float, cy: float, radius: float, corners: int, angle: float,
            inner: float | None = None) -> list[tuple[float, float]]:
    """The corners of a regular polygon (a star when `inner` gives the inner radius)."""
    points = []
    steps = corners * (2 if inner else 1)
    for k in range(steps):
        r = inner if inner and k % 2 else radius
        a = angle + 2 * math.pi * k / steps
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float,
               angle: float, colour: tuple[int, int, int]) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(2, round(r / 3)))
    elif shape == "square":
        draw.polygon(polygon(cx, cy, r * 1.1, 4, angle), fill=colour)
    elif shape == "triangle":
        draw.polygon(polygon(cx, cy, r * 1.15, 3, angle), fill=colour)
    elif shape == "star":
        draw.polygon(polygon(cx, cy, r * 1.2, 5, angle, inner=r * 0.5), fill=colour)
    elif shape == "cross":
        w = r / 3
        for a in (angle, angle + math.pi / 2):
            dx, dy = math.cos(a), math.sin(a)
            draw.polygon([(cx - r * dx - w * dy, cy - r * dy + w * dx),
                          (cx + r * dx - w * dy, cy + r * dy + w * dx),
                          (cx + r * dx + w * dy, cy + r * dy - w * dx),
                          (cx - r * dx + w * dy, cy - r * dy - w * dx)], fill=colour)
    else:
        raise ValueError(shape)


def make_image(shape: str, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, width)[None, :, None]
    background = a * (1 - t) + b * t + rng.normal(0, 16, (height, width, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    side = min(width, height)
    for _ in range(rng.integers(2, 6)):  # clutter: small blobs anywhere
        x, y, s = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(1, side / 10)
        draw.ellipse((x - s, y - s, x + s, y + s), fill=tuple(int(v) for v in
                                                               rng.integers(0, 256, 3)))
    cx = width / 2 + rng.uniform(-0.1, 0.1) * width
    cy = height / 2 + rng.uniform(-0.1, 0.1) * height
    r = rng.uniform(0.3, 0.5) * side * 0.8
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    draw_shape(draw, shape, cx, cy, r, rng.uniform(0, 2 * math.pi), colour)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (one subfolder per class)")
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for shape in CLASSES:
        folder = args.out / shape
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(args.per_class):
            make_image(shape, args.width, args.height, rng).save(folder / f"{k:05d}.jpg",
                                                                  quality=85)
    print(f"{len(CLASSES) * args.per_class} images in {args.out}: {', '.join(CLASSES)}")


if __name__ == "__main__":
    main()
