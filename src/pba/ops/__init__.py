"""Augmentation ops: Pillow reference (`pil`), batched tensors (`tensor`) and the op registry."""

from pba.ops import pil, tensor
from pba.ops.registry import DEFAULT_OPS, REFERENCE_SIDE, Op, OpSet, load_op_set

__all__ = ["DEFAULT_OPS", "REFERENCE_SIDE", "Op", "OpSet", "load_op_set", "pil", "tensor"]
