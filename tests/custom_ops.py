"""A user's own op for the tests: a horizontal mirror, with a Pillow path and a batched path,
added to the paper's 15 (`--ops tests/custom_ops.py:MIRROR_OPS`)."""

from __future__ import annotations

from PIL import Image, ImageOps

from pba import DEFAULT_OPS, Op


def mirror_pil(img: Image.Image, param: float, fill, rng) -> Image.Image:
    return ImageOps.mirror(img)


def mirror_tensor(imgs, params, fill, generator):
    return imgs.flip(-1)


MIRROR_OPS = DEFAULT_OPS.with_op(Op("Mirror", magnitude=lambda m: 0.0, pil=mirror_pil,
                                    tensor=mirror_tensor))
NOT_AN_OP_SET = 3
