"""The ops on channel values, bit for bit as Pillow's: ImageEnhance's Brightness, Color,
Contrast and Sharpness (its float32 blend) and the point ops Invert, Posterize, Solarize,
Equalize and AutoContrast (its lookup tables).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from pba.core.errors import UserError
from pba.ops.tensor.kernels import LEVELS, ImageLookup, Lookup, Tensor, check_op_args


def _per_image(params: Tensor, imgs: Tensor, dtype: torch.dtype) -> Tensor:
    """Parameters as a (N, 1, 1, 1) column that broadcasts over an image batch."""
    return params.to(device=imgs.device, dtype=dtype).view(-1, 1, 1, 1)


@lru_cache(maxsize=32)
def _levels(device: torch.device, dtype: torch.dtype) -> Tensor:
    """The 256 channel values (256,), made once per device and dtype; read-only."""
    return torch.arange(LEVELS, device=device, dtype=dtype)


@lru_cache(maxsize=8)
def _grey_weights(device: torch.device) -> Tensor:
    """Pillow's RGB -> L weights in 16.16 fixed point (ITU-R 601-2), (1, 3, 1, 1) int32."""
    return torch.tensor([19595, 38470, 7471], dtype=torch.int32, device=device).view(1, 3, 1, 1)


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
        raise UserError(f"colour ops need 3-channel RGB images, got {imgs.shape[1]} channels")
    grey = imgs.int().mul_(_grey_weights(imgs.device)).sum(1, keepdim=True, dtype=torch.int32)
    return grey.add_(0x8000).bitwise_right_shift_(16)


def brightness_table(params: Tensor) -> Tensor:
    """ImageEnhance.Brightness: blend with black."""
    alpha = params.to(torch.float32).view(-1, 1)
    return _blend(0.0, _levels(params.device, torch.float32).expand(params.shape[0], -1), alpha)


def color(imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None) -> Tensor:
    """ImageEnhance.Color: blend with the image's grey version."""
    check_op_args(imgs, params, fill)
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
    check_op_args(imgs, params, fill)
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

