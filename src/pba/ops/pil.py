"""Per-image reference ops on Pillow RGB images: the semantics the batched ops reproduce.

Each op takes the parameter after the magnitude mapping and the random sign (degrees, pixels,
enhance factor, bits, threshold, side length), the fill colour for uncovered pixels and a numpy
generator (used only by Cutout for its centre).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

Fill = tuple[int, int, int]


def _affine(img: Image.Image, coeffs: tuple[float, ...], fill: Fill) -> Image.Image:
    return img.transform(
        img.size, Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST, fillcolor=fill
    )


def rotate(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    """Rotate counter-clockwise by `param` degrees about the centre."""
    return img.rotate(param, resample=Image.Resampling.NEAREST, fillcolor=fill)


def translate_x(
    img: Image.Image, param: float, fill: Fill, rng: np.random.Generator
) -> Image.Image:
    """Move the content left by `param` pixels."""
    return _affine(img, (1, 0, param, 0, 1, 0), fill)


def translate_y(
    img: Image.Image, param: float, fill: Fill, rng: np.random.Generator
) -> Image.Image:
    """Move the content up by `param` pixels."""
    return _affine(img, (1, 0, 0, 0, 1, param), fill)


def shear_x(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    """Affine (1, s, 0, 0, 1, 0)."""
    return _affine(img, (1, param, 0, 0, 1, 0), fill)


def shear_y(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    """Affine (1, 0, 0, s, 1, 0)."""
    return _affine(img, (1, 0, 0, param, 1, 0), fill)


def brightness(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(param)


def color(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Color(img).enhance(param)


def contrast(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Contrast(img).enhance(param)


def sharpness(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Sharpness(img).enhance(param)


def invert(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    return ImageOps.invert(img)


def posterize(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    """Keep the `param` (1..8) high bits of each channel."""
    return ImageOps.posterize(img, int(param))


def solarize(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    """Invert the pixels >= `param`."""
    return ImageOps.solarize(img, param)


def equalize(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    return ImageOps.equalize(img)


def autocontrast(
    img: Image.Image, param: float, fill: Fill, rng: np.random.Generator
) -> Image.Image:
    return ImageOps.autocontrast(img)


def cutout(img: Image.Image, size: int, centre: tuple[int, int], fill: Fill) -> Image.Image:
    """Fill a `size`-sided square centred at `centre` = (x, y), clipped at the borders.

    The square spans [centre - size // 2, centre - size // 2 + size) on each axis; size <= 0
    leaves the image unchanged.
    """
    out = img.copy()
    if size <= 0:
        return out
    x0, y0 = centre[0] - size // 2, centre[1] - size // 2
    box = (max(x0, 0), max(y0, 0), min(x0 + size, img.width), min(y0 + size, img.height))
    if box[0] < box[2] and box[1] < box[3]:
        out.paste(fill, box)
    return out


def cutout_op(img: Image.Image, param: float, fill: Fill, rng: np.random.Generator) -> Image.Image:
    """Cutout of side int(param) at a centre drawn uniformly over the image (x, then y)."""
    x = int(rng.integers(0, img.width))
    y = int(rng.integers(0, img.height))
    return cutout(img, int(param), (x, y), fill)
