"""The search-free schedule, 'ramp': what a search of PBA's policy space could find without the
search. Every op of both copies is equally likely at every epoch; the augmentation's strength s
rises linearly from 0 at the first epoch to 1 at the last, and each entry's probability level is
round(10 s) and its magnitude round(9 s) (docs/algorithm.md §2, §13).

It is RandAugment with its magnitude raised over training (as EfficientTrain does), written in
PBA's own policy format so that it runs through the same ops, sampling and kernels as a searched
schedule: the one difference between the two arms is the search.

    schedule = ramp_schedule(200)          # 200 policies, from no augmentation to the strongest
    make_augment("ramp", data, recipe)     # the same, stretched to the recipe's epochs
"""

from __future__ import annotations

from pba.augmentation.policy import MAX_MAGNITUDE, MAX_PROBABILITY, SLOTS, Policy
from pba.augmentation.schedule import Schedule
from pba.core.errors import UserError
from pba.ops.registry import DEFAULT_OPS, OpSet


def ramp_policy(strength: float, ops: OpSet = DEFAULT_OPS) -> Policy:
    """The policy of strength `strength` in [0, 1]: every entry at probability level
    round(10 s) and magnitude round(9 s)."""
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"a ramp's strength is in [0, 1], got {strength}")
    entry = (round(MAX_PROBABILITY * strength), round(MAX_MAGNITUDE * strength))
    return Policy(entry * (SLOTS * len(ops)), ops)


def ramp_strengths(epochs: int) -> list[float]:
    """Strength per epoch: 0 at the first, 1 at the last, linear between (1 for one epoch)."""
    if epochs < 1:
        raise UserError(f"a schedule needs at least one epoch, got {epochs}")
    if epochs == 1:
        return [1.0]
    return [epoch / (epochs - 1) for epoch in range(epochs)]


def ramp_schedule(epochs: int, ops: OpSet = DEFAULT_OPS) -> Schedule:
    """The search-free schedule of `epochs` policies over `ops`."""
    return Schedule(tuple(ramp_policy(s, ops) for s in ramp_strengths(epochs)))
