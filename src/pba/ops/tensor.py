"""Batched augmentation ops on uint8 tensors (N, C, H, W), on any device.

Every op takes per-image parameters (N,) and reproduces the Pillow reference in `pba.ops.pil`
bit for bit: the geometric ops replay Pillow's fixed-point sampling, the ImageEnhance ops its
float32 blend, Equalize and AutoContrast its lookup tables. There is no Python loop over images,
so a batch mixing angles, signs and factors costs one pass. Elementwise work avoids boolean
masks and `torch.where`, which are many times slower than integer arithmetic on the CPU.

Most ops are one of two kernels with per-image arguments, and say so by their type, which the
batched policy path (`pba.fused`) reads to apply every image's op of a family in one pass:
- `Warp` (Rotate, TranslateX/Y, ShearX/Y) moves pixels: its `index` gives each output pixel's
  source, and `warp` gathers them;
- `Lookup` (Invert, Posterize, Solarize, Brightness) and `ImageLookup` (Contrast, Equalize,
  AutoContrast) map each channel value through a table, applied by `lookup`. A `Lookup`'s table
  and a `Warp`'s index depend on the parameter alone, so that path tabulates them once.
Color, Sharpness and Cutout are plain functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch

from pba.errors import PBAError

Tensor = torch.Tensor
LEVELS = 256  # 8-bit channel values


def _check(imgs: Tensor, params: Tensor, fill: Tensor) -> None:
    _check_images(imgs, fill)
    if params.shape != (imgs.shape[0],):
        raise PBAError(
            f"expected one parameter per image, shape ({imgs.shape[0]},), "
            f"got shape {tuple(params.shape)}"
        )


def _check_images(imgs: Tensor, fill: Tensor) -> None:
    if not isinstance(imgs, torch.Tensor):
        raise PBAError(f"images must be a torch.Tensor, got {type(imgs).__name__}")
    if imgs.dtype != torch.uint8:
        raise PBAError(f"images must be uint8 (0..255), got dtype {imgs.dtype}")
    if imgs.ndim != 4:
        raise PBAError(
            f"images must be a batch (N, C, H, W), got {imgs.ndim} dims of shape "
            f"{tuple(imgs.shape)}"
        )
    if not isinstance(fill, torch.Tensor):
        raise PBAError(f"the fill colour must be a uint8 tensor (C,), got {type(fill).__name__}")
    if fill.ndim != 1 or fill.shape[0] != imgs.shape[1]:
        raise PBAError(
            f"images have {imgs.shape[1]} channels but the fill colour has shape "
            f"{tuple(fill.shape)}; give one value per channel"
        )


def _fill_pixel(imgs: Tensor, fill: Tensor) -> Tensor:
    return fill.to(device=imgs.device, dtype=torch.uint8).view(1, -1, 1, 1)


def _per_image(params: Tensor, imgs: Tensor, dtype: torch.dtype) -> Tensor:
    """Parameters as a (N, 1, 1, 1) column that broadcasts over an image batch."""
    return params.to(device=imgs.device, dtype=dtype).view(-1, 1, 1, 1)


# --- the two kernels ------------------------------------------------------------------------


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
        _check(imgs, params, fill)
        _, _, h, w = imgs.shape
        return warp(imgs, self.index(params.to(imgs.device), h, w), fill)


@dataclass(frozen=True)
class Lookup:
    """A batched op that maps channel values through a table of its parameter alone:
    `table(params)` is uint8 (N, 256), the same in every channel."""

    table: Callable[[Tensor], Tensor]

    def __call__(self, imgs: Tensor, params: Tensor, fill: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
        _check(imgs, params, fill)
        return lookup(imgs, self.table(params.to(imgs.device)).unsqueeze(1))


@dataclass(frozen=True)
class ImageLookup:
    """A batched op that maps channel values through a table made from each image:
    `table(imgs, params)` is uint8 (N, C, 256) or (N, 1, 256)."""

    table: Callable[[Tensor, Tensor], Tensor]

    def __call__(self, imgs: Tensor, params: Tensor, fill: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
        _check(imgs, params, fill)
        return lookup(imgs, self.table(imgs, params.to(imgs.device)))


@lru_cache(maxsize=32)
def _levels(device: torch.device, dtype: torch.dtype) -> Tensor:
    """The 256 channel values (256,), made once per device and dtype; read-only."""
    return torch.arange(LEVELS, device=device, dtype=dtype)


@lru_cache(maxsize=8)
def _grey_weights(device: torch.device) -> Tensor:
    """Pillow's RGB -> L weights in 16.16 fixed point (ITU-R 601-2), (1, 3, 1, 1) int32."""
    return torch.tensor([19595, 38470, 7471], dtype=torch.int32, device=device).view(1, 3, 1, 1)


# --- warps: source indices ------------------------------------------------------------------


def source_index(xin: Tensor, yin: Tensor, h: int, w: int) -> Tensor:
    """(N, h * w) int64 `warp` indices from the source column and row of every output pixel
    (int64, broadcasting to (N, h, w)); a source outside the image becomes the fill pixel."""
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    return torch.where(inside, yin * w + xin, h * w).view(-1, h * w)


def _translate_index(dx: Tensor, dy: Tensor, h: int, w: int) -> Tensor:
    # Pillow sends an affine without rotation/shear terms to its float "scale" path: the source
    # of output pixel x is floor(x + 0.5 + offset), negative meaning outside.
    n, dev = dx.shape[0], dx.device
    x = torch.arange(w, device=dev, dtype=torch.float64)
    y = torch.arange(h, device=dev, dtype=torch.float64)
    dx = dx.to(torch.float64).view(n, 1, 1)
    dy = dy.to(torch.float64).view(n, 1, 1)
    # Clamping just outside the image keeps huge offsets from overflowing int64.
    xin = torch.floor((dx + 0.5) + x.view(1, 1, w)).clamp_(-1, w).long()
    yin = torch.floor((dy + 0.5) + y.view(1, h, 1)).clamp_(-1, h).long()
    return source_index(xin, yin, h, w)


def _fixed(v: Tensor) -> Tensor:
    return torch.floor(v * 65536.0 + 0.5).long()


def _affine_index(coeffs: Tensor, h: int, w: int) -> Tensor:
    """Pillow's nearest-neighbour affine transform; `coeffs` (N, 6) float64 = (a, b, c, d, e, f).

    Pillow evaluates it in 16.16 fixed point from the output pixel centre, so the source index
    of output (x, y) is (A2 + y*A1 + x*A0) >> 16 with each coefficient rounded to 1/65536;
    doing the same 32-bit integer arithmetic here makes every source index identical.
    """
    dev = coeffs.device
    a, b, c, d, e, f = (v.view(-1, 1, 1) for v in coeffs.unbind(1))
    x = torch.arange(w, device=dev).view(1, 1, w)
    y = torch.arange(h, device=dev).view(1, h, 1)
    row_x = (_fixed(a * 0.5 + b * 0.5 + c) + y * _fixed(b)).int()
    row_y = (_fixed(d * 0.5 + e * 0.5 + f) + y * _fixed(e)).int()
    # The shift floors, as Pillow's does: a negative coordinate is outside.
    xin = torch.add(row_x, (x * _fixed(a)).int()).bitwise_right_shift_(16).long()
    yin = torch.add(row_y, (x * _fixed(d)).int()).bitwise_right_shift_(16).long()
    return source_index(xin, yin, h, w)


def _coeffs(params: Tensor, *columns: Tensor | float) -> Tensor:
    n = params.shape[0]
    cols = [torch.as_tensor(v, device=params.device, dtype=torch.float64).expand(n)
            for v in columns]
    return torch.stack(cols, dim=1)


def _round15(v: Tensor) -> Tensor:
    # Python's round(v, 15). The divisor is a tensor because CUDA divides by a Python scalar
    # via its reciprocal, which is not exact.
    return torch.round(v * 1e15) / torch.full_like(v, 1e15)


def rotate_index(params: Tensor, h: int, w: int) -> Tensor:
    """Rotate counter-clockwise by `params` degrees about the image centre."""
    # The matrix is built exactly as `Image.rotate` builds it (angle mod 360, cos/sin rounded
    # to 15 decimals, same operation order), so the fixed-point coefficients match.
    angle = -(torch.remainder(params.to(torch.float64), 360.0) * (math.pi / 180.0))
    cos = _round15(torch.cos(angle))
    sin = _round15(torch.sin(angle))
    msin = _round15(-torch.sin(angle))
    cx, cy = w / 2, h / 2
    c = cos * -cx + sin * -cy + cx
    f = msin * -cx + cos * -cy + cy
    return _affine_index(torch.stack([cos, sin, c, msin, cos, f], dim=1), h, w)


def translate_x_index(params: Tensor, h: int, w: int) -> Tensor:
    """Affine (1, 0, p, 0, 1, 0): content moves left by p pixels."""
    return _translate_index(params, torch.zeros_like(params), h, w)


def translate_y_index(params: Tensor, h: int, w: int) -> Tensor:
    """Affine (1, 0, 0, 0, 1, p): content moves up by p pixels."""
    return _translate_index(torch.zeros_like(params), params, h, w)


def shear_x_index(params: Tensor, h: int, w: int) -> Tensor:
    """Affine (1, s, 0, 0, 1, 0) about the top-left corner."""
    return _affine_index(_coeffs(params, 1.0, params, 0.0, 0.0, 1.0, 0.0), h, w)


def shear_y_index(params: Tensor, h: int, w: int) -> Tensor:
    """Affine (1, 0, 0, s, 1, 0) about the top-left corner."""
    return _affine_index(_coeffs(params, 1.0, 0.0, 0.0, params, 1.0, 0.0), h, w)


rotate = Warp(rotate_index)
translate_x = Warp(translate_x_index)
translate_y = Warp(translate_y_index)
shear_x = Warp(shear_x_index)
shear_y = Warp(shear_y_index)


# --- ImageEnhance ---------------------------------------------------------------------------


def _blend(degenerate: Tensor, values: Tensor, alpha: Tensor) -> Tensor:
    """`Image.blend(degenerate, image, alpha)` as uint8; `values` is the image as float32.

    Pillow passes the factor as a C float and evaluates deg + alpha * (img - deg) in float32,
    then clips and truncates; the separate multiply and add here round the same way, so the
    result is bit-identical. `values` is left as it is (it may be a shared or broadcast view).
    """
    values = torch.sub(values, degenerate).mul_(alpha).add_(degenerate).clamp_(0.0, 255.0)
    # Both conversions truncate; float -> uint8 in one step is not vectorised on the CPU, and
    # through int16 it is about 4x faster.
    return values.to(torch.int16).to(torch.uint8)


def _grey(imgs: Tensor) -> Tensor:
    """RGB -> L with Pillow's integer weights (ITU-R 601-2, rounded), as int32 (N, 1, H, W)."""
    if imgs.shape[1] != 3:
        raise PBAError(f"colour ops need 3-channel RGB images, got {imgs.shape[1]} channels")
    grey = imgs.int().mul_(_grey_weights(imgs.device)).sum(1, keepdim=True, dtype=torch.int32)
    return grey.add_(0x8000).bitwise_right_shift_(16)


def brightness_table(params: Tensor) -> Tensor:
    """ImageEnhance.Brightness: blend with black."""
    alpha = params.to(torch.float32).view(-1, 1)
    return _blend(0.0, _levels(params.device, torch.float32).expand(params.shape[0], -1), alpha)


def color(imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None) -> Tensor:
    """ImageEnhance.Color: blend with the image's grey version."""
    _check(imgs, params, fill)
    alpha = _per_image(params, imgs, torch.float32)
    return _blend(_grey(imgs).float(), imgs.float(), alpha)


def contrast_table(imgs: Tensor, params: Tensor) -> Tensor:
    """ImageEnhance.Contrast: blend with the mean grey level, rounded to an integer."""
    pixels = imgs.shape[2] * imgs.shape[3]
    total = _grey(imgs).sum(dim=(1, 2, 3), dtype=torch.int64)
    # Pillow's int(mean + 0.5) of the float64 mean, in integers: the mean is a multiple of
    # 1 / pixels, never within float64 error of a half-integer unless exactly on it.
    degenerate = total.mul(2).add_(pixels).div_(2 * pixels, rounding_mode="floor").float()
    degenerate = degenerate.view(-1, 1)
    alpha = params.to(torch.float32).view(-1, 1)
    return _blend(degenerate, _levels(imgs.device, torch.float32), alpha).unsqueeze(1)


def sharpness(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """ImageEnhance.Sharpness: blend with the SMOOTH-filtered image.

    SMOOTH is the 3x3 kernel 1 1 1 / 1 5 1 / 1 1 1 over 13 with the border pixels copied, so
    the border blends with itself and stays unchanged; only the interior is computed. Pillow
    sums in float32 and rounds; the weighted sum S is an exact integer in float32 and S / 13 is
    never within 1/26 of a half-integer, so rounding S * (1/13) gives Pillow's value exactly.
    """
    _check(imgs, params, fill)
    n, c, h, w = imgs.shape
    if h < 3 or w < 3:
        return imgs.clone()
    # Work on each channel as one flat row of h*w pixels: neighbours are shifts by 1 and by w,
    # so every op runs over long contiguous ranges instead of short image rows. The first and
    # last columns pick up wrapped-around neighbours; they are border pixels, restored below.
    size = h * w
    x = imgs.reshape(n, c, size).float()
    # In-place steps keep fresh float buffers few: each costs page faults whenever the
    # allocator has handed the previous call's memory back to the system.
    row3 = torch.add(x[:, :, :-2], x[:, :, 1:-1]).add_(x[:, :, 2:])  # centred on pixel j + 1
    inner = slice(w + 1, size - w - 1)  # pixels of rows 1 .. h-2
    centre = x[:, :, inner]
    smooth = torch.add(row3[:, :, : size - 2 * w - 2], row3[:, :, w : size - w - 2])
    smooth.add_(row3[:, :, 2 * w :]).add_(centre, alpha=4.0).mul_(1.0 / 13.0).round_()
    alpha = params.to(device=imgs.device, dtype=torch.float32).view(n, 1, 1)
    out = imgs.clone(memory_format=torch.contiguous_format)  # written as flat rows below
    out.view(n, c, size)[:, :, inner] = _blend(smooth, centre, alpha)
    edges = (slice(None), slice(None), slice(1, -1), slice(None, None, w - 1))  # columns 0, w-1
    out[edges] = imgs[edges]
    return out


# --- point ops ------------------------------------------------------------------------------


def invert_table(params: Tensor) -> Tensor:
    """255 - value."""
    return torch.bitwise_not(_levels(params.device, torch.uint8).expand(params.shape[0], -1))


def posterize_table(params: Tensor) -> Tensor:
    """Keep the `params` high bits of each channel (clamped to 0..8; Pillow accepts 1..8)."""
    bits = params.long().clamp(0, 8)
    mask = (255 << (8 - bits)) & 255
    return _levels(params.device, torch.uint8) & mask.to(torch.uint8).view(-1, 1)


def solarize_table(params: Tensor) -> Tensor:
    """Invert the values >= threshold."""
    levels = _levels(params.device, torch.uint8)
    below = levels < params.to(torch.float64).view(-1, 1)
    return torch.where(below, levels, torch.bitwise_not(levels))


def equalize_table(imgs: Tensor, params: Tensor) -> Tensor:
    """ImageOps.equalize, per image and channel."""
    n, c, h, w = imgs.shape
    flat = imgs.reshape(n * c, h * w).long()
    hist = torch.zeros(n * c, LEVELS, dtype=torch.int32, device=imgs.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.int32))
    # Pillow: step = (pixels - count of the highest level present) // 255; step 0 (which
    # includes single-level images) leaves the channel unchanged.
    top = imgs.reshape(n * c, h * w).amax(dim=1, keepdim=True).long()
    step = hist.gather(1, top).neg_().add_(h * w).div_(255, rounding_mode="floor")
    below = hist.cumsum(dim=1, dtype=torch.int32).sub_(hist)  # pixels below each level
    # (below + step // 2) // step in float64, since integer division is not vectorised: the
    # terms are integers far below 2**53 and the quotient of two such integers rounds to a
    # float on the same side of the next integer, so the floor is the same.
    below = below.add_(step.div(2, rounding_mode="floor")).double()
    table = below.div_(step.clamp(min=1)).floor_().clamp_(max=255)
    table = torch.where(step == 0, _levels(imgs.device, torch.float64), table)
    # float64 -> uint8 through int16 is faster than in one step (see `_blend`).
    return table.to(torch.int16).to(torch.uint8).view(n, c, LEVELS)


def autocontrast_table(imgs: Tensor, params: Tensor) -> Tensor:
    """ImageOps.autocontrast (cutoff 0), per image and channel."""
    n, c, h, w = imgs.shape
    values = imgs.reshape(n, c, h * w)
    # (N, C, 1) each; `aminmax` would be one call, but is several times slower on uint8.
    lo, hi = values.amin(dim=2, keepdim=True), values.amax(dim=2, keepdim=True)
    # A flat channel (hi == lo) is left as it is: it gets lo 0 and hi 255, so scale 1 and
    # offset 0, per channel rather than per table entry.
    flat = lo == hi
    lo = lo.masked_fill(flat, 0).double()
    hi = hi.masked_fill(flat, 255).double()
    # Pillow's float64 table entry int(v * scale + offset), offset = -lo * scale (adding the
    # negation is subtracting). The numerator is a tensor because torch turns
    # `scalar / tensor` into a multiply by the reciprocal, which is one ulp off often enough
    # to change the truncated value.
    scale = torch.full_like(hi, 255.0) / (hi - lo)
    table = (_levels(imgs.device, torch.float64) * scale).sub_(lo * scale).clamp_(0, 255)
    return table.to(torch.uint8)


invert = Lookup(invert_table)
posterize = Lookup(posterize_table)
solarize = Lookup(solarize_table)
brightness = Lookup(brightness_table)
contrast = ImageLookup(contrast_table)
equalize = ImageLookup(equalize_table)
autocontrast = ImageLookup(autocontrast_table)


# --- cutout ---------------------------------------------------------------------------------


def cutout(imgs: Tensor, sizes: Tensor, centres: Tensor, fill: Tensor) -> Tensor:
    """Fill a `sizes[i]`-sided square centred at `centres[i]` = (x, y), clipped at the borders.

    The square spans [centre - size // 2, centre - size // 2 + size) on each axis; size <= 0
    leaves the image unchanged.
    """
    _check_images(imgs, fill)
    n, _, h, w = imgs.shape
    if sizes.shape != (n,) or centres.shape != (n, 2):
        raise PBAError(
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
    _check(imgs, params, fill)
    n, _, h, w = imgs.shape
    # Draw where the generator lives so a CPU generator can drive a CUDA batch.
    gen_device = generator.device if generator is not None else imgs.device
    x = torch.randint(0, w, (n,), generator=generator, device=gen_device)
    y = torch.randint(0, h, (n,), generator=generator, device=gen_device)
    centres = torch.stack([x, y], dim=1).to(imgs.device)
    return cutout(imgs, params.long(), centres, fill)
