"""Batched augmentation ops on uint8 tensors (N, C, H, W), on any device.

Every op takes per-image parameters (N,) and reproduces the Pillow reference in `pba.ops.pil`
bit for bit: the geometric ops replay Pillow's fixed-point sampling, the ImageEnhance ops its
float32 blend, Equalize and AutoContrast its lookup tables. There is no Python loop over images,
so a batch mixing angles, signs and factors costs one pass. Elementwise work avoids boolean
masks and `torch.where`, which are many times slower than integer arithmetic on the CPU.
"""

from __future__ import annotations

import math

import torch

from pba.errors import PBAError

Tensor = torch.Tensor


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


# --- geometric ops --------------------------------------------------------------------------


def _gather(imgs: Tensor, index: Tensor, fill: Tensor) -> Tensor:
    """Output pixel i of each image = pixel index[i] of that image padded by one pixel of fill.

    `index` is int32 (N, H, W) into the (H + 2) x (W + 2) padded image; callers clamp source
    coordinates onto that border instead of masking the pixels that fall outside.
    """
    n, c, h, w = imgs.shape
    padded = _fill_pixel(imgs, fill).expand(n, c, h + 2, w + 2).clone()
    padded[:, :, 1:-1, 1:-1] = imgs
    index = index.long().view(n, 1, h * w).expand(n, c, h * w)
    return padded.view(n, c, (h + 2) * (w + 2)).gather(2, index).view(n, c, h, w)


def _translate(imgs: Tensor, dx: Tensor, dy: Tensor, fill: Tensor) -> Tensor:
    # Pillow sends an affine without rotation/shear terms to its float "scale" path: the source
    # of output pixel x is floor(x + 0.5 + offset), negative meaning outside.
    n, _, h, w = imgs.shape
    dev = imgs.device
    x = torch.arange(w, device=dev, dtype=torch.float64)
    y = torch.arange(h, device=dev, dtype=torch.float64)
    dx = dx.to(device=dev, dtype=torch.float64).view(n, 1, 1)
    dy = dy.to(device=dev, dtype=torch.float64).view(n, 1, 1)
    # +1 for the fill border; clamping onto it also keeps huge offsets from overflowing int32.
    xin = torch.floor((dx + 0.5) + x.view(1, 1, w)).clamp_(-1, w).add_(1).int()
    yin = torch.floor((dy + 0.5) + y.view(1, h, 1)).clamp_(-1, h).add_(1).int()
    return _gather(imgs, yin * (w + 2) + xin, fill)


def _fixed(v: Tensor) -> Tensor:
    return torch.floor(v * 65536.0 + 0.5).long()


def _affine(imgs: Tensor, coeffs: Tensor, fill: Tensor) -> Tensor:
    """Pillow's nearest-neighbour affine transform; `coeffs` (N, 6) float64 = (a, b, c, d, e, f).

    Pillow evaluates it in 16.16 fixed point from the output pixel centre, so the source index
    of output (x, y) is (A2 + y*A1 + x*A0) >> 16 with each coefficient rounded to 1/65536;
    doing the same 32-bit integer arithmetic here makes every source index identical.
    """
    _, _, h, w = imgs.shape
    dev = imgs.device
    a, b, c, d, e, f = (v.view(-1, 1, 1) for v in coeffs.unbind(1))
    x = torch.arange(w, device=dev).view(1, 1, w)
    y = torch.arange(h, device=dev).view(1, h, 1)
    one = 1 << 16  # shifts the index by one pixel, onto the padded image
    row_x = (_fixed(a * 0.5 + b * 0.5 + c) + one + y * _fixed(b)).int()
    row_y = (_fixed(d * 0.5 + e * 0.5 + f) + one + y * _fixed(e)).int()
    # In place from here: fewer fresh buffers, fewer page faults.
    xin = torch.add(row_x, (x * _fixed(a)).int()).bitwise_right_shift_(16).clamp_(0, w + 1)
    yin = torch.add(row_y, (x * _fixed(d)).int()).bitwise_right_shift_(16).clamp_(0, h + 1)
    return _gather(imgs, yin.mul_(w + 2).add_(xin), fill)


def _coeffs(imgs: Tensor, *columns: Tensor | float) -> Tensor:
    n = imgs.shape[0]
    cols = [torch.as_tensor(v, device=imgs.device, dtype=torch.float64).expand(n) for v in columns]
    return torch.stack(cols, dim=1)


def _round15(v: Tensor) -> Tensor:
    # Python's round(v, 15). The divisor is a tensor because CUDA divides by a Python scalar
    # via its reciprocal, which is not exact.
    return torch.round(v * 1e15) / torch.full_like(v, 1e15)


def rotate(imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None) -> Tensor:
    """Rotate counter-clockwise by `params` degrees about the image centre."""
    _check(imgs, params, fill)
    _, _, h, w = imgs.shape
    # The matrix is built exactly as `Image.rotate` builds it (angle mod 360, cos/sin rounded
    # to 15 decimals, same operation order), so the fixed-point coefficients match.
    angle = -(torch.remainder(params.to(imgs.device, torch.float64), 360.0) * (math.pi / 180.0))
    cos = _round15(torch.cos(angle))
    sin = _round15(torch.sin(angle))
    msin = _round15(-torch.sin(angle))
    cx, cy = w / 2, h / 2
    c = cos * -cx + sin * -cy + cx
    f = msin * -cx + cos * -cy + cy
    return _affine(imgs, torch.stack([cos, sin, c, msin, cos, f], dim=1), fill)


def translate_x(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Affine (1, 0, p, 0, 1, 0): content moves left by p pixels."""
    _check(imgs, params, fill)
    return _translate(imgs, params, torch.zeros_like(params), fill)


def translate_y(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Affine (1, 0, 0, 0, 1, p): content moves up by p pixels."""
    _check(imgs, params, fill)
    return _translate(imgs, torch.zeros_like(params), params, fill)


def shear_x(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Affine (1, s, 0, 0, 1, 0) about the top-left corner."""
    _check(imgs, params, fill)
    return _affine(imgs, _coeffs(imgs, 1.0, params, 0.0, 0.0, 1.0, 0.0), fill)


def shear_y(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Affine (1, 0, 0, s, 1, 0) about the top-left corner."""
    _check(imgs, params, fill)
    return _affine(imgs, _coeffs(imgs, 1.0, 0.0, 0.0, params, 1.0, 0.0), fill)


# --- ImageEnhance ---------------------------------------------------------------------------


def _blend(degenerate: Tensor, values: Tensor, alpha: Tensor) -> Tensor:
    """`Image.blend(degenerate, image, alpha)` as uint8; `values` is the image as float32.

    Pillow passes the factor as a C float and evaluates deg + alpha * (img - deg) in float32,
    then clips and truncates; the separate multiply and add here round the same way, so the
    result is bit-identical. `values` is overwritten (in place to spare allocations).
    """
    return values.sub_(degenerate).mul_(alpha).add_(degenerate).clamp_(0.0, 255.0).to(torch.uint8)


def _grey(imgs: Tensor) -> Tensor:
    """RGB -> L with Pillow's integer weights (ITU-R 601-2, rounded), as int32 (N, 1, H, W)."""
    if imgs.shape[1] != 3:
        raise PBAError(f"colour ops need 3-channel RGB images, got {imgs.shape[1]} channels")
    # Per-channel int32 copies and in-place steps: a mixed-dtype add_ takes a slow path.
    grey = imgs[:, 0].int().mul_(19595)
    grey.add_(imgs[:, 1].int().mul_(38470)).add_(imgs[:, 2].int().mul_(7471)).add_(0x8000)
    return grey.bitwise_right_shift_(16).unsqueeze(1)


def brightness(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """ImageEnhance.Brightness: blend with black."""
    _check(imgs, params, fill)
    alpha = _per_image(params, imgs, torch.float32)
    return _blend(torch.zeros((), device=imgs.device), imgs.float(), alpha)


def color(imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None) -> Tensor:
    """ImageEnhance.Color: blend with the image's grey version."""
    _check(imgs, params, fill)
    alpha = _per_image(params, imgs, torch.float32)
    return _blend(_grey(imgs).float(), imgs.float(), alpha)


def contrast(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """ImageEnhance.Contrast: blend with the mean grey level, rounded to an integer."""
    _check(imgs, params, fill)
    grey = _grey(imgs)
    pixels = grey.shape[2] * grey.shape[3]
    total = grey.sum(dim=(1, 2, 3), dtype=torch.int64).double()
    # A tensor divisor: CUDA divides by a Python scalar via its reciprocal, off by an ulp.
    mean = total / torch.full_like(total, pixels)
    degenerate = torch.floor(mean + 0.5).float().view(-1, 1, 1, 1)
    return _blend(degenerate, imgs.float(), _per_image(params, imgs, torch.float32))


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
    out = imgs.clone()
    out.view(n, c, size)[:, :, inner] = _blend(smooth, centre, alpha)
    out[:, :, 1:-1, 0] = imgs[:, :, 1:-1, 0]
    out[:, :, 1:-1, -1] = imgs[:, :, 1:-1, -1]
    return out


# --- point ops ------------------------------------------------------------------------------


def invert(imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None) -> Tensor:
    """255 - pixel."""
    _check(imgs, params, fill)
    return torch.bitwise_not(imgs)


def posterize(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Keep the `params` high bits of each channel (clamped to 0..8; Pillow accepts 1..8)."""
    _check(imgs, params, fill)
    bits = params.to(imgs.device).long().clamp(0, 8)
    mask = (255 << (8 - bits)) & 255
    return imgs & mask.to(torch.uint8).view(-1, 1, 1, 1)


def solarize(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """Invert the pixels >= threshold."""
    _check(imgs, params, fill)
    # For integer pixels, v >= t  <=>  v >= ceil(t). The sign bit of v - t (int16) gives the
    # mask arithmetically; comparisons and `torch.where` are much slower on the CPU.
    threshold = _per_image(torch.ceil(params.float()).clamp(0, 256), imgs, torch.int16)
    below = ((imgs.short() - threshold) >> 15).to(torch.uint8)  # 255 where v < t, else 0
    return imgs ^ torch.bitwise_not(below)


def equalize(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """ImageOps.equalize, per image and channel."""
    _check(imgs, params, fill)
    n, c, h, w = imgs.shape
    flat = imgs.reshape(n * c, h * w).long()
    hist = torch.zeros(n * c, 256, dtype=torch.int32, device=imgs.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.int32))
    # Pillow: step = (pixels - count of the highest level present) // 255; step 0 (which
    # includes single-level images) leaves the channel unchanged.
    top = imgs.reshape(n * c, h * w).amax(dim=1, keepdim=True).long()
    step = (h * w - hist.gather(1, top)) // 255
    below = hist.cumsum(dim=1, dtype=torch.int32) - hist
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp_(max=255)
    levels = torch.arange(256, device=imgs.device, dtype=torch.int32)
    # Select the identity for step 0 arithmetically; `torch.where` is slow on the CPU.
    lut = (lut + (step == 0).int() * (levels - lut)).to(torch.uint8)
    return lut.gather(1, flat).view(n, c, h, w)


def autocontrast(
    imgs: Tensor, params: Tensor, fill: Tensor, generator: torch.Generator | None
) -> Tensor:
    """ImageOps.autocontrast (cutoff 0), per image and channel."""
    _check(imgs, params, fill)
    lo = imgs.amin(dim=(2, 3), keepdim=True).double()
    hi = imgs.amax(dim=(2, 3), keepdim=True).double()
    flat = hi <= lo
    # Pillow's float64 lut entry int(v * scale + offset); a flat channel is left unchanged.
    # The numerator is a tensor because torch turns `scalar / tensor` into a multiply by the
    # reciprocal, which is one ulp off often enough to change the truncated value.
    scale = torch.where(flat, 1.0, torch.full_like(hi, 255.0) / (hi - lo).clamp(min=1))
    offset = torch.where(flat, 0.0, -lo * scale)
    return imgs.double().mul_(scale).add_(offset).clamp_(0, 255).to(torch.uint8)


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
    dev = imgs.device
    sizes = sizes.to(dev).long()
    x0 = centres[:, 0].to(dev).long() - sizes // 2
    y0 = centres[:, 1].to(dev).long() - sizes // 2
    x = torch.arange(w, device=dev).view(1, 1, 1, w)
    y = torch.arange(h, device=dev).view(1, 1, h, 1)
    x0, y0, sizes = (v.view(n, 1, 1, 1) for v in (x0, y0, sizes))
    cols = ((x >= x0) & (x < x0 + sizes)).to(torch.uint8)
    rows = ((y >= y0) & (y < y0 + sizes)).to(torch.uint8)
    # uint8 arithmetic wraps, so img - (img - fill) * inside is fill inside and img outside;
    # a boolean mask with `torch.where` is much slower on the CPU.
    return imgs - (imgs - _fill_pixel(imgs, fill)) * (rows * cols)


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
    return cutout(imgs, params.trunc().long(), centres, fill)
