"""Augmentation ops: Pillow reference (`pil`), batched tensors (`tensor`) and the op registry."""

from pba.ops import pil, tensor
from pba.ops.registry import DEFAULT_OPS, Op, OpSet

__all__ = ["DEFAULT_OPS", "Op", "OpSet", "pil", "tensor"]
