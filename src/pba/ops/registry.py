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

`OpSet.record()` is what a schedule file says about the op set it was saved with (names, order,
each op's magnitude mapping, sign and scaling, and `MAGNITUDE_VERSION`); `record_differences`
names what another op set changes, so that a schedule is never replayed under other ops.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pba.core.errors import UserError
from pba.ops import pil, tensor

# The image side at which magnitudes are defined: a scaled op's parameter is the mapping's
# pixels here, and the same fraction of the side at any other size.
REFERENCE_SIDE = 32
# What `Op.scales_with` may name: the image's width, its height, or its shorter side.
SIDES = ("width", "height", "short")
# The conventions a magnitude means under, beyond each op's table of parameters (integer
# magnitudes 0..9, parameters at REFERENCE_SIDE, lengths relative to the side). A change to them
# makes every saved schedule mean something else: raise it, and old files are refused.
MAGNITUDE_VERSION = 1
# The integer magnitudes a policy holds (`pba.augmentation.policy.MAX_MAGNITUDE` is the last).
_MAGNITUDES = range(10)

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
            raise UserError(f"op {self.name!r}: scales_with is one of {', '.join(SIDES)} or "
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
            raise UserError(f"duplicate op names in {names}")

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
            raise UserError(f"unknown op {name!r}; known ops: {', '.join(self.names)}") from None

    def with_op(self, op: Op) -> OpSet:
        """A new op set with `op` appended (its policy entries go after the existing ones)."""
        return OpSet(self.ops + (op,))

    def record(self) -> dict:
        """The op set as a schedule file records it: the ops in policy order, each with its
        parameter at every magnitude (at REFERENCE_SIDE), its sign and its scaling, and the
        magnitude conventions' version. JSON-ready; floats round-trip exactly."""
        return {"magnitude_version": MAGNITUDE_VERSION,
                "ops": [{"name": op.name, "magnitudes": _mapping(op), "signed": op.signed,
                         "scales_with": op.scales_with} for op in self.ops]}

    def fingerprint(self) -> str:
        """A short hash of `record()`: equal for op sets that replay a schedule alike."""
        text = json.dumps(self.record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_differences(record: object, ops: OpSet) -> list[str]:
    """What `ops` changes from the op set a file recorded (`OpSet.record()`), as short phrases,
    most telling first; empty when they are the same."""
    if (not isinstance(record, dict) or not isinstance(record.get("ops"), list)
            or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                       for o in record["ops"])):
        return ["the file's op set record is malformed"]
    found = []
    if record.get("magnitude_version") != MAGNITUDE_VERSION:
        found.append(f"magnitude mapping version {record.get('magnitude_version')!r} in the "
                     f"file, {MAGNITUDE_VERSION} in this pba")
    saved = {o["name"]: o for o in record["ops"]}
    names = list(saved)
    unknown = [n for n in names if n not in ops.names]
    extra = [n for n in ops.names if n not in saved]
    if unknown:
        found.append(f"unknown op{'s' if len(unknown) > 1 else ''} "
                     f"{', '.join(map(repr, unknown))}")
    if extra:
        found.append(f"op{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} not in "
                     "the file")
    common, here = [n for n in names if n in ops.names], [n for n in ops.names if n in saved]
    if common != here:
        at = next(i for i, (a, b) in enumerate(zip(common, here, strict=True)) if a != b)
        found.append(f"the ops in another order ({common[at]!r} where this op set has "
                     f"{here[at]!r})")
    for name in common:
        now, then = ops[ops.index(name)], saved[name]
        mapped = _mapping(now)
        if then.get("magnitudes") != mapped:
            old = then.get("magnitudes")
            m = next((m for m in _MAGNITUDES if not isinstance(old, list) or m >= len(old)
                      or old[m] != mapped[m]), 0)
            was = old[m] if isinstance(old, list) and m < len(old) else None
            found.append(f"{name} maps magnitude {m} to {mapped[m]!r} here, {was!r} in the file")
        if then.get("signed") != now.signed:
            found.append(f"{name} is {'' if now.signed else 'un'}signed here, "
                         f"{'' if then.get('signed') else 'un'}signed in the file")
        if then.get("scales_with") != now.scales_with:
            found.append(f"{name} scales with {now.scales_with} here, "
                         f"{then.get('scales_with')} in the file")
    return found


def _mapping(op: Op) -> list[float]:
    return [float(op.magnitude(m)) for m in _MAGNITUDES]


def load_op_set(spec: str | None) -> OpSet:
    """The OpSet named by `spec`, `MODULE:NAME` (an importable module) or `path/to/file.py:NAME`;
    None is DEFAULT_OPS. What `--ops` takes, and what a run's config.json records so that a
    resumed search or training run gets the same ops."""
    if spec is None:
        return DEFAULT_OPS
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise UserError(f"--ops takes MODULE:NAME or path/to/file.py:NAME, got {spec!r}")
    try:
        module = _module(where)
    except Exception as err:  # an import runs the user's code: any error is theirs
        raise UserError(f"--ops {spec}: cannot import {where} ({type(err).__name__}: {err})"
                       ) from None
    ops = getattr(module, name, None)
    if not isinstance(ops, OpSet):
        found = "nothing" if ops is None else type(ops).__name__
        raise UserError(f"--ops {spec}: {where} has {found} called {name!r}, not an OpSet "
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


# The magnitude mappings are module-level callables, not lambdas, so that an op set pickles:
# DataLoader workers that are spawned (or forkserver's, Python 3.14's default) receive the
# transforms, and so the op set, by pickle.


@dataclass(frozen=True)
class _Truncated:
    """m -> int(m * top / 10): magnitude 0..9 onto 0..top, truncated toward zero."""

    top: int

    def __call__(self, m: int) -> float:
        return float(int(m * self.top / 10))


def _enhance(m: int) -> float:
    return m * 1.8 / 10 + 0.1


def _none(m: int) -> float:
    return 0.0


def _posterize_bits(m: int) -> float:
    return 4.0 - int(m * 4 / 10)


def _shear(m: int) -> float:
    return m * 0.3 / 10


def _solarize_threshold(m: int) -> float:
    return 256.0 - int(m * 256 / 10)


DEFAULT_OPS = OpSet(
    (
        Op("Rotate", _Truncated(30), pil.rotate, tensor.rotate, signed=True),
        Op("TranslateX", _Truncated(10), pil.translate_x, tensor.translate_x, signed=True,
           scales_with="width"),
        Op("TranslateY", _Truncated(10), pil.translate_y, tensor.translate_y, signed=True,
           scales_with="height"),
        Op("Brightness", _enhance, pil.brightness, tensor.brightness),
        Op("Color", _enhance, pil.color, tensor.color),
        Op("Invert", _none, pil.invert, tensor.invert),
        Op("Sharpness", _enhance, pil.sharpness, tensor.sharpness),
        Op("Posterize", _posterize_bits, pil.posterize, tensor.posterize),
        Op("ShearX", _shear, pil.shear_x, tensor.shear_x, signed=True),
        Op("Solarize", _solarize_threshold, pil.solarize, tensor.solarize),
        Op("ShearY", _shear, pil.shear_y, tensor.shear_y, signed=True),
        Op("Equalize", _none, pil.equalize, tensor.equalize),
        Op("AutoContrast", _none, pil.autocontrast, tensor.autocontrast),
        Op("Cutout", _Truncated(20), pil.cutout_op, tensor.cutout_op, scales_with="short"),
        Op("Contrast", _enhance, pil.contrast, tensor.contrast),
    )
)
