"""The set of image operations a policy is made of: name -> reference and batched functions.

A policy vector has 4 integers per op (probability and magnitude, two copies), so the op set
fixes the policy layout. `DEFAULT_OPS` holds the paper's 15 ops in the paper's order; users add
their own with `DEFAULT_OPS.with_op(Op(...))` and pass the resulting `OpSet` to `Policy`,
`Schedule`, the transforms and the search.

Magnitudes are defined at REFERENCE_SIDE (32 px, the paper's CIFAR images). An op whose
parameter is a length in pixels names the side it is a fraction of (`Op.scales_with`), and at
an h x w image gets its parameter times that side / 32: a magnitude-9 TranslateX shifts 9 px at
32 x 32, 18 px at 64 x 64 and 63 px at 224 x 224, so a schedule searched on small images does
the same to large ones. TranslateX scales with the width, TranslateY with the height, and Cutout
(a square) with the shorter side; Rotate and Shear are angles and ratios and do not scale, nor
do the colour ops. At 32 x 32 the factor is exactly 1: every parameter is the reference's.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pba.errors import PBAError
from pba.ops import pil, tensor

# The image side at which magnitudes are defined: a scaled op's parameter is the mapping's
# pixels here, and the same fraction of the side at any other size.
REFERENCE_SIDE = 32
# What `Op.scales_with` may name: the image's width, its height, or its shorter side.
SIDES = ("width", "height", "short")

# (image, parameter, fill colour, generator) -> image
PilFn = Callable[[Image.Image, float, tuple[int, int, int], np.random.Generator], Image.Image]
# (uint8 images (N, C, H, W), per-image parameters (N,), fill (C,) uint8, generator) -> images
TensorFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator | None], torch.Tensor
]


@dataclass(frozen=True)
class Op:
    """One augmentation operation.

    `magnitude` maps the policy's integer magnitude 0..9 to the op's parameter (degrees, pixels,
    enhance factor, ...). When `signed`, the parameter's sign is drawn per image (50%) before the
    functions are called, so `pil` and `tensor` receive the signed parameter.

    `scales_with` makes the parameter a length relative to the image: one of SIDES, the side
    the mapping's value is pixels of at REFERENCE_SIDE; at an h x w image the functions receive
    it times that side / REFERENCE_SIDE (a float: round or truncate it as the op needs). None
    (angles, factors, levels) leaves it as mapped.
    """

    name: str
    magnitude: Callable[[int], float]
    pil: PilFn
    tensor: TensorFn
    signed: bool = False
    scales_with: str | None = None

    def __post_init__(self) -> None:
        if self.scales_with is not None and self.scales_with not in SIDES:
            raise PBAError(f"op {self.name!r}: scales_with is one of {', '.join(SIDES)} or "
                           f"None, got {self.scales_with!r}")

    def scale(self, height: int, width: int) -> float:
        """The factor of the parameter at height x width images (1.0 at 32 x 32 and for ops
        that do not scale)."""
        if self.scales_with is None:
            return 1.0
        side = {"width": width, "height": height, "short": min(height, width)}[self.scales_with]
        return side / REFERENCE_SIDE


@dataclass(frozen=True)
class OpSet:
    """An ordered, immutable collection of ops; the order is the layout of the policy vector."""

    ops: tuple[Op, ...]

    def __post_init__(self) -> None:
        names = [op.name for op in self.ops]
        if len(set(names)) != len(names):
            raise PBAError(f"duplicate op names in {names}")

    def __len__(self) -> int:
        return len(self.ops)

    def __getitem__(self, index: int) -> Op:
        return self.ops[index]

    def __iter__(self):
        return iter(self.ops)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise PBAError(f"unknown op {name!r}; known ops: {', '.join(self.names)}") from None

    def with_op(self, op: Op) -> OpSet:
        """A new op set with `op` appended (its policy entries go after the existing ones)."""
        return OpSet(self.ops + (op,))


def load_op_set(spec: str | None) -> OpSet:
    """The OpSet named by `spec`, `MODULE:NAME` (an importable module) or `path/to/file.py:NAME`;
    None is DEFAULT_OPS. What `--ops` takes, and what a run's config.json records so that a
    resumed search or training run gets the same ops."""
    if spec is None:
        return DEFAULT_OPS
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise PBAError(f"--ops takes MODULE:NAME or path/to/file.py:NAME, got {spec!r}")
    try:
        module = _module(where)
    except Exception as err:  # an import runs the user's code: any error is theirs
        raise PBAError(f"--ops {spec}: cannot import {where} ({type(err).__name__}: {err})"
                       ) from None
    ops = getattr(module, name, None)
    if not isinstance(ops, OpSet):
        found = "nothing" if ops is None else type(ops).__name__
        raise PBAError(f"--ops {spec}: {where} has {found} called {name!r}, not an OpSet "
                       "(build one with DEFAULT_OPS.with_op(Op(...)))")
    return ops


def _module(where: str):
    if not where.endswith(".py"):
        return importlib.import_module(where)
    path = Path(where).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    key = f"pba_user_ops_{abs(hash(str(path)))}"  # loaded once per process, like an import
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[key]
            raise
    return sys.modules[key]


def _truncated(top: int) -> Callable[[int], float]:
    """m -> int(m * top / 10): magnitude 0..9 onto 0..top, truncated toward zero."""
    return lambda m: float(int(m * top / 10))


def _enhance(m: int) -> float:
    return m * 1.8 / 10 + 0.1


def _none(m: int) -> float:
    return 0.0


DEFAULT_OPS = OpSet(
    (
        Op("Rotate", _truncated(30), pil.rotate, tensor.rotate, signed=True),
        Op("TranslateX", _truncated(10), pil.translate_x, tensor.translate_x, signed=True,
           scales_with="width"),
        Op("TranslateY", _truncated(10), pil.translate_y, tensor.translate_y, signed=True,
           scales_with="height"),
        Op("Brightness", _enhance, pil.brightness, tensor.brightness),
        Op("Color", _enhance, pil.color, tensor.color),
        Op("Invert", _none, pil.invert, tensor.invert),
        Op("Sharpness", _enhance, pil.sharpness, tensor.sharpness),
        Op("Posterize", lambda m: 4.0 - int(m * 4 / 10), pil.posterize, tensor.posterize),
        Op("ShearX", lambda m: m * 0.3 / 10, pil.shear_x, tensor.shear_x, signed=True),
        Op("Solarize", lambda m: 256.0 - int(m * 256 / 10), pil.solarize, tensor.solarize),
        Op("ShearY", lambda m: m * 0.3 / 10, pil.shear_y, tensor.shear_y, signed=True),
        Op("Equalize", _none, pil.equalize, tensor.equalize),
        Op("AutoContrast", _none, pil.autocontrast, tensor.autocontrast),
        Op("Cutout", _truncated(20), pil.cutout_op, tensor.cutout_op, scales_with="short"),
        Op("Contrast", _enhance, pil.contrast, tensor.contrast),
    )
)
