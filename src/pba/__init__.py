"""Population Based Augmentation: learn augmentation policy schedules with PBT, apply them fast."""

from pba.errors import PBAError, RunStopped, UserError
from pba.ops.registry import DEFAULT_OPS, Op, OpSet
from pba.policy import Policy, explore
from pba.sampling import sample_ops
from pba.schedule import Schedule, load_policy, load_schedule, save_policy
from pba.transforms import BatchPBAugment, PBAugment, apply_policy

__all__ = [
    "DEFAULT_OPS",
    "BatchPBAugment",
    "Op",
    "OpSet",
    "PBAError",
    "PBAugment",
    "Policy",
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
