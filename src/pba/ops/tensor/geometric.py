"""The geometric ops (Rotate, TranslateX/Y, ShearX/Y) as `Warp`s: each output pixel's source,
computed as Pillow computes it, so that every image matches Pillow's bit for bit.
"""

from __future__ import annotations

import math

import torch

from pba.ops.tensor.kernels import Tensor, Warp, source_index


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
