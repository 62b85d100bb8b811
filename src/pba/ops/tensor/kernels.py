"""The kernels the batched ops are made of, and the types that say which kernel an op is.

- `warp` moves pixels: output pixel i of each image is its source pixel `index[n, i]`, or the
  fill colour (`source_index` builds the index from source columns and rows). A `Warp` op
  (Rotate, TranslateX/Y, ShearX/Y, a user's) gives its index of the parameter alone.
- `lookup` maps each channel value through a table. A `Lookup` op (Invert, Posterize,
  Solarize, Brightness) gives its table of the parameter alone; an `ImageLookup` op (Contrast,
  Equalize, AutoContrast) makes it from each image.
- `cutout` fills a square per image: the baseline's Cutout, and the Cutout op (`cutout_op`).
The batched policy path (`pba.augmentation.fused`) reads the types to apply every image's op of a
family in
one pass, and tabulates a `Warp`'s index and a `Lookup`'s table once per parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pba.core.errors import UserError

Tensor = torch.Tensor
LEVELS = 256  # 8-bit channel values


def check_op_args(imgs: Tensor, params: Tensor, fill: Tensor) -> None:
    """Raise UserError unless `imgs` is a uint8 batch (N, C, H, W), `params` (N,) and `fill`
    a (C,) tensor: what every batched op takes."""
    _check_images(imgs, fill)
    if params.shape != (imgs.shape[0],):
        raise UserError(
            f"expected one parameter per image, shape ({imgs.shape[0]},), "
            f"got shape {tuple(params.shape)}"
        )


def _check_images(imgs: Tensor, fill: Tensor) -> None:
    if not isinstance(imgs, torch.Tensor):
        raise UserError(f"images must be a torch.Tensor, got {type(imgs).__name__}")
    if imgs.dtype != torch.uint8:
        raise UserError(f"images must be uint8 (0..255), got dtype {imgs.dtype}")
    if imgs.ndim != 4:
        raise UserError(
            f"images must be a batch (N, C, H, W), got {imgs.ndim} dims of shape "
            f"{tuple(imgs.shape)}"
        )
    if not isinstance(fill, torch.Tensor):
        raise UserError(f"the fill colour must be a uint8 tensor (C,), got {type(fill).__name__}")
    if fill.ndim != 1 or fill.shape[0] != imgs.shape[1]:
        raise UserError(
            f"images have {imgs.shape[1]} channels but the fill colour has shape "
            f"{tuple(fill.shape)}; give one value per channel"
        )


def _fill_pixel(imgs: Tensor, fill: Tensor) -> Tensor:
    return fill.to(device=imgs.device, dtype=torch.uint8).view(1, -1, 1, 1)


def warp(imgs: Tensor, index: Tensor, fill: Tensor, out: Tensor | None = None) -> Tensor:
    """Output pixel i of image n = source pixel index[n, i] of that image.

    `index` is int64 (N, H * W) into the image's H * W pixels in row-major order followed by
    one pixel of fill (index H * W), where every output pixel whose source falls outside the
    image points (`source_index`). `out` (contiguous, shaped like `imgs`; may be `imgs`
    itself) receives the result.
    """
    n, c, h, w = imgs.shape
    fill_column = _fill_pixel(imgs, fill).view(1, c, 1).expand(n, c, 1)
    source = torch.cat([imgs.reshape(n, c, h * w), fill_column], dim=2)
    index = index.view(n, 1, h * w).expand(n, c, h * w)
    out = _contiguous_result(imgs) if out is None else out
    torch.gather(source, 2, index, out=out.view(n, c, h * w))
    return out


def lookup(imgs: Tensor, table: Tensor, out: Tensor | None = None) -> Tensor:
    """Channel value v of image n, channel c becomes table[n, c, v]; `table` is uint8
    (N, C, 256), or (N, 1, 256) for one table in every channel. `out` (contiguous, shaped like
    `imgs`; may be `imgs` itself) receives the result."""
    n, c, h, w = imgs.shape
    values = imgs.reshape(n, c, h * w).long()
    out = _contiguous_result(imgs) if out is None else out
    torch.gather(table.expand(n, c, LEVELS), 2, values, out=out.view(n, c, h * w))
    return out


def _contiguous_result(imgs: Tensor) -> Tensor:
    # Not `empty_like`, which keeps the strides of a transposed or channels-last batch: the
    # kernels write the result as one flat run per channel.
    return torch.empty(imgs.shape, dtype=imgs.dtype, device=imgs.device)


@dataclass(frozen=True)
class Warp:
    """A batched op that moves pixels: `index(params, h, w)` is int64 (N, h * w), each output
    pixel's source among the image's pixels and the fill pixel after them (see `warp`)."""

    index: Callable[[Tensor, int, int], Tensor]

    def __call__(self, imgs: Tensor, params: Tensor, fill: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
        check_op_args(imgs, params, fill)
        _, _, h, w = imgs.shape
        return warp(imgs, self.index(params.to(imgs.device), h, w), fill)


@dataclass(frozen=True)
class Lookup:
    """A batched op that maps channel values through a table of its parameter alone:
    `table(params)` is uint8 (N, 256), the same in every channel."""

    table: Callable[[Tensor], Tensor]

    def __call__(self, imgs: Tensor, params: Tensor, fill: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
        check_op_args(imgs, params, fill)
        return lookup(imgs, self.table(params.to(imgs.device)).unsqueeze(1))


@dataclass(frozen=True)
class ImageLookup:
    """A batched op that maps channel values through a table made from each image:
    `table(imgs, params)` is uint8 (N, C, 256) or (N, 1, 256)."""

    table: Callable[[Tensor, Tensor], Tensor]

    def __call__(self, imgs: Tensor, params: Tensor, fill: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
        check_op_args(imgs, params, fill)
        return lookup(imgs, self.table(imgs, params.to(imgs.device)))


def source_index(xin: Tensor, yin: Tensor, h: int, w: int) -> Tensor:
    """(N, h * w) int64 `warp` indices from the source column and row of every output pixel
    (int64, broadcasting to (N, h, w)); a source outside the image becomes the fill pixel."""
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    return torch.where(inside, yin * w + xin, h * w).view(-1, h * w)


def cutout(imgs: Tensor, sizes: Tensor, centres: Tensor, fill: Tensor) -> Tensor:
    """Fill a `sizes[i]`-sided square centred at `centres[i]` = (x, y), clipped at the borders.

    The square spans [centre - size // 2, centre - size // 2 + size) on each axis; size <= 0
    leaves the image unchanged.
    """
    _check_images(imgs, fill)
    n, _, h, w = imgs.shape
    if sizes.shape != (n,) or centres.shape != (n, 2):
        raise UserError(
            f"cutout needs sizes of shape ({n},) and centres of shape ({n}, 2), got "
            f"{tuple(sizes.shape)} and {tuple(centres.shape)}"
        )
    sizes = sizes.to(imgs.device, torch.int64).view(n, 1, 1)
    start = centres.to(imgs.device, torch.int64).view(n, 2, 1)
    start = start - sizes.div(2, rounding_mode="floor")  # x0, y0
    offset = torch.arange(max(h, w), device=imgs.device) - start
    inside = ((offset >= 0) & (offset < sizes)).to(torch.uint8)  # (N, [x, y], max(h, w))
    square = inside[:, 1, :h].view(n, 1, h, 1) * inside[:, 0, :w].view(n, 1, 1, w)
    # uint8 arithmetic wraps, so img - (img - fill) * inside is fill inside and img outside;
    # a boolean mask with `torch.where` is much slower on the CPU.
    return imgs - (imgs - _fill_pixel(imgs, fill)) * square


def cutout_op(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Cutout of side int(param) at a centre drawn uniformly per image (x, then y)."""
    check_op_args(imgs, params, fill)
    n, _, h, w = imgs.shape
    # Draw where the generator lives so a CPU generator can drive a CUDA batch.
    gen_device = generator.device if generator is not None else imgs.device
    x = torch.randint(0, w, (n,), generator=generator, device=gen_device)
    y = torch.randint(0, h, (n,), generator=generator, device=gen_device)
    centres = torch.stack([x, y], dim=1).to(imgs.device)
    return cutout(imgs, params.long(), centres, fill)
