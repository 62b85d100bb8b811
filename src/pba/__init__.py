"""Population Based Augmentation: learn augmentation policy schedules with PBT, apply them fast."""

from pba.augmentation.policy import Policy, explore
from pba.augmentation.sampling import sample_ops
from pba.augmentation.schedule import Schedule, load_policy, load_schedule, save_policy
from pba.augmentation.transforms import BatchPBAugment, PBAugment, apply_policy
from pba.core.errors import PBAError, RunStopped, UserError
from pba.core.moved import install as install_moved_modules
from pba.core.options import RunOptions
from pba.ops.registry import DEFAULT_OPS, Op, OpSet

install_moved_modules()  # the flat layout's module paths still import (pba.core.moved)

__all__ = [
    "DEFAULT_OPS",
    "BatchPBAugment",
    "Op",
    "OpSet",
    "PBAError",
    "PBAugment",
    "Policy",
    "RunOptions",
    "RunStopped",
    "Schedule",
    "UserError",
    "apply_policy",
    "explore",
    "load_policy",
    "load_schedule",
    "sample_ops",
    "save_policy",
]
