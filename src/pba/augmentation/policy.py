"""A PBA policy (the searched hyperparameters) and PBT's explore. Which ops an image gets
under a policy, and how those draws are encoded, is `pba.augmentation.sampling`.

The policy vector holds, for each of two copies ("slots") of the op set, a probability level
p in 0..10 and a magnitude m in 0..9 per op, laid out
[p0, m0, p1, m1, ..., | p0', m0', ...] (docs/algorithm.md §2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pba.core.errors import UserError
from pba.ops.registry import DEFAULT_OPS, OpSet

SLOTS = 2
MAX_PROBABILITY = 10
MAX_MAGNITUDE = 9
# Explore (docs/algorithm.md §7).
RESAMPLE_PROBABILITY = 0.2
MAX_STEP = 3


def strength(values: Sequence[int]) -> float:
    """The sum of a policy vector's probabilities (0 to 2 x ops): how much the policy augments,
    the quantity the paper's schedule figures stack."""
    return sum(values[0::2]) / MAX_PROBABILITY


@dataclass(frozen=True)
class Policy:
    """The 4 * len(ops) integers of one augmentation policy (60 for the paper's 15 ops)."""

    values: tuple[int, ...]
    ops: OpSet = DEFAULT_OPS

    def __post_init__(self) -> None:
        values = tuple(self.values)
        expected = 2 * SLOTS * len(self.ops)
        if len(values) != expected:
            raise UserError(
                f"a policy over {len(self.ops)} ops has {expected} integers, got {len(values)}"
            )
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise UserError(f"policy entry {i} is {v!r}, not an integer")
            kind, high = _kind_and_cap(i)
            if not 0 <= v <= high:
                op, slot = self.ops[(i // 2) % len(self.ops)].name, i // (2 * len(self.ops))
                raise UserError(
                    f"policy entry {i} ({kind} of {op}, slot {slot}) is {v}; must be in 0..{high}"
                )
        object.__setattr__(self, "values", tuple(int(v) for v in values))

    @classmethod
    def zeros(cls, ops: OpSet = DEFAULT_OPS) -> Policy:
        """The initial policy of every population member: no augmentation."""
        return cls((0,) * (2 * SLOTS * len(ops)), ops)

    def _index(self, op: str | int, slot: int) -> int:
        k = self.ops.index(op) if isinstance(op, str) else op
        if not 0 <= slot < SLOTS:
            raise UserError(f"slot must be 0 or 1, got {slot}")
        return 2 * (slot * len(self.ops) + k)

    def probability(self, op: str | int, slot: int = 0) -> int:
        """Probability level 0..10 (probability = level / 10) of `op` in `slot`."""
        return self.values[self._index(op, slot)]

    def magnitude(self, op: str | int, slot: int = 0) -> int:
        return self.values[self._index(op, slot) + 1]

    def replace(
        self, op: str | int, slot: int = 0, *, probability: int | None = None,
        magnitude: int | None = None,
    ) -> Policy:
        """A copy with one op's probability and/or magnitude changed."""
        values = list(self.values)
        i = self._index(op, slot)
        if probability is not None:
            values[i] = probability
        if magnitude is not None:
            values[i + 1] = magnitude
        return Policy(tuple(values), self.ops)

    def to_list(self) -> list[int]:
        return list(self.values)

    def named(self) -> dict[str, list[tuple[int, int]]]:
        """{op name: [(probability level, magnitude) per slot]} for reading and plotting."""
        return {
            op.name: [(self.probability(k, s), self.magnitude(k, s)) for s in range(SLOTS)]
            for k, op in enumerate(self.ops)
        }

    @property
    def strength(self) -> float:
        return strength(self.values)

    def __str__(self) -> str:
        active = [
            f"{name}[{s}](p={p / 10:.1f}, m={m})"
            for name, pm in self.named().items()
            for s, (p, m) in enumerate(pm)
            if p > 0
        ]
        return "Policy(" + (", ".join(active) if active else "no augmentation") + ")"


def _kind_and_cap(i: int) -> tuple[str, int]:
    return ("probability", MAX_PROBABILITY) if i % 2 == 0 else ("magnitude", MAX_MAGNITUDE)


def explore(policy: Policy, rng: np.random.Generator) -> Policy:
    """PBA's explore (docs/algorithm.md §7), entry by entry: resample with probability 0.2,
    otherwise step by an amount drawn from {0, 1, 2, 3}, down or up with equal chance, clipped
    to range."""
    values = np.asarray(policy.values)
    cap = np.where(np.arange(values.size) % 2 == 0, MAX_PROBABILITY, MAX_MAGNITUDE)
    resample = rng.random(values.size) < RESAMPLE_PROBABILITY
    uniform = rng.integers(0, cap + 1)
    step = rng.integers(0, MAX_STEP + 1, size=values.size)
    down = rng.random(values.size) < 0.5
    stepped = np.where(down, np.maximum(values - step, 0), np.minimum(values + step, cap))
    return Policy(tuple(np.where(resample, uniform, stepped).tolist()), policy.ops)

