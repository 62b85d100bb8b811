"""Batched augmentation ops on uint8 tensors (N, C, H, W), on any device.

Every op takes per-image parameters (N,) and reproduces the Pillow reference in `pba.ops.pil`
bit for bit: the geometric ops replay Pillow's fixed-point sampling (`geometric`), the
ImageEnhance ops its float32 blend, Equalize and AutoContrast its lookup tables (`colour`).
There is no Python loop over images, so a batch mixing angles, signs and factors costs one
pass. Elementwise work avoids boolean masks and `torch.where`, which are many times slower
than integer arithmetic on the CPU.

Most ops are one of two kernels with per-image arguments (`kernels`), and say so by their type,
which the batched policy path (`pba.augmentation.fused`) reads to apply every image's op of a
family in one
pass:
- `Warp` (Rotate, TranslateX/Y, ShearX/Y) moves pixels: its `index` gives each output pixel's
  source, and `warp` gathers them;
- `Lookup` (Invert, Posterize, Solarize, Brightness) and `ImageLookup` (Contrast, Equalize,
  AutoContrast) map each channel value through a table, applied by `lookup`. A `Lookup`'s table
  and a `Warp`'s index depend on the parameter alone, so that path tabulates them once.
Color, Sharpness and Cutout are plain functions.
"""

from pba.ops.tensor.colour import (
    autocontrast,
    autocontrast_table,
    brightness,
    brightness_table,
    color,
    contrast,
    contrast_table,
    equalize,
    equalize_table,
    invert,
    invert_table,
    posterize,
    posterize_table,
    sharpness,
    solarize,
    solarize_table,
)
from pba.ops.tensor.geometric import (
    rotate,
    rotate_index,
    shear_x,
    shear_x_index,
    shear_y,
    shear_y_index,
    translate_x,
    translate_x_index,
    translate_y,
    translate_y_index,
)
from pba.ops.tensor.kernels import (
    LEVELS,
    ImageLookup,
    Lookup,
    Warp,
    check_op_args,
    cutout,
    cutout_op,
    lookup,
    source_index,
    warp,
)

__all__ = [
    "LEVELS",
    "ImageLookup",
    "Lookup",
    "Warp",
    "autocontrast",
    "autocontrast_table",
    "brightness",
    "brightness_table",
    "check_op_args",
    "color",
    "contrast",
    "contrast_table",
    "cutout",
    "cutout_op",
    "equalize",
    "equalize_table",
    "invert",
    "invert_table",
    "lookup",
    "posterize",
    "posterize_table",
    "rotate",
    "rotate_index",
    "shear_x",
    "shear_x_index",
    "shear_y",
    "shear_y_index",
    "sharpness",
    "solarize",
    "solarize_table",
    "source_index",
    "translate_x",
    "translate_x_index",
    "translate_y",
    "translate_y_index",
    "warp",
]
