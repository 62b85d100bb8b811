"""A PBA policy (the searched hyperparameters), which ops each image gets, and PBT's explore.

The policy vector holds, for each of two copies ("slots") of the op set, a probability level
p in 0..10 and a magnitude m in 0..9 per op, laid out
[p0, m0, p1, m1, ..., | p0', m0', ...] (docs/algorithm.md §2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

import numpy as np
import torch

from pba.errors import UserError
from pba.ops.registry import DEFAULT_OPS, REFERENCE_SIDE, OpSet

SLOTS = 2
MAX_PROBABILITY = 10
MAX_MAGNITUDE = 9
# Number of ops an image gets: 0, 1 or 2 with these probabilities (docs/algorithm.md §3).
COUNT_PROBABILITIES = (0.2, 0.3, 0.5)
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


@lru_cache(maxsize=16)
def parameter_table(ops: OpSet) -> torch.Tensor:
    """(len(ops), 10) float64: the parameter of each op at each magnitude 0..9, at
    REFERENCE_SIDE x REFERENCE_SIDE images."""
    return torch.tensor(
        [[float(op.magnitude(m)) for m in range(MAX_MAGNITUDE + 1)] for op in ops],
        dtype=torch.float64,
    )


SIGNS = (-1.0, 1.0)
SETTINGS_PER_OP = (MAX_MAGNITUDE + 1) * len(SIGNS)  # every magnitude, at either sign


@lru_cache(maxsize=32)
def setting_parameters(ops: OpSet, device: torch.device, height: int = REFERENCE_SIDE,
                       width: int = REFERENCE_SIDE) -> torch.Tensor:
    """(len(ops) * SETTINGS_PER_OP + 1,) float64 on `device`, indexed by setting (see
    `SampledOps.settings`): the signed parameter of every op at every magnitude and sign for
    height x width images (`Op.scale`), and 0 for no op. Made once per device and size, not at
    every batch (a host-to-device copy per step stalls a GPU's queue)."""
    signs = torch.tensor(SIGNS, dtype=torch.float64)
    unsigned = signs.abs()  # an unsigned op's parameter is the same at both signs
    table = torch.stack([parameter_table(ops)[k].view(-1, 1) * op.scale(height, width)
                         * (signs if op.signed else unsigned) for k, op in enumerate(ops)])
    return torch.cat([table.view(-1), torch.zeros(1, dtype=torch.float64)]).to(device)


@dataclass(frozen=True)
class SampledOps:
    """The ops each of N images gets, in application order, held as each slot's *setting*:
    op * SETTINGS_PER_OP + magnitude * 2 + (sign > 0), or `none` (len(ops) * SETTINGS_PER_OP)
    where the slot has no op. A setting fixes the parameter, so everything made from the
    parameter alone can be made once per setting (`pba.fused`), and a batch's draws are one
    small tensor."""

    setting: torch.Tensor  # int64 (N, 2)
    none: int

    @property
    def op(self) -> torch.Tensor:
        """int64 (N, 2): the op of each slot, -1 where none."""
        return torch.where(self.setting == self.none, -1,
                           self.setting.div(SETTINGS_PER_OP, rounding_mode="floor"))

    @property
    def magnitude(self) -> torch.Tensor:
        """int64 (N, 2): the magnitude of each slot's op, 0 where none."""
        return self.setting.remainder(SETTINGS_PER_OP).div_(2, rounding_mode="floor")

    @property
    def sign(self) -> torch.Tensor:
        """float (N, 2), +1 or -1 (only used by signed ops; -1 where none)."""
        return torch.where(self.setting.remainder(2) == 1, 1.0, -1.0)

    def __getitem__(self, index: int | slice) -> SampledOps:
        """The draws of some images (an int keeps the batch dimension)."""
        index = slice(index, index + 1) if isinstance(index, int) else index
        return SampledOps(self.setting[index], self.none)

    def to(self, device: torch.device | str) -> SampledOps:
        return SampledOps(self.setting.to(device), self.none)

    def settings(self, ops: OpSet) -> torch.Tensor:
        """(N, 2) int64: each slot's setting for `ops`, the op set the draws were made for."""
        if self.none != len(ops) * SETTINGS_PER_OP:
            raise UserError(
                f"these ops were drawn for a policy of {self.none // SETTINGS_PER_OP} ops, not for "
                f"the {len(ops)} given"
            )
        return self.setting

    def parameters(self, ops: OpSet, height: int = REFERENCE_SIDE, width: int = REFERENCE_SIDE
                   ) -> torch.Tensor:
        """(N, 2) float64: the signed op parameter of each applied op (0 where none) for
        height x width images."""
        settings = self.settings(ops)
        table = setting_parameters(ops, settings.device, height, width)
        return table.index_select(0, settings.view(-1)).view(settings.shape)


def sample_ops(
    policy: Policy,
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> SampledOps:
    """Draw, independently for each of `n` images, which ops the policy applies
    (docs/algorithm.md §3).

    Count 0/1/2 with probabilities (0.2, 0.3, 0.5); the 2 * len(ops) (op, p, m) entries are walked
    in a uniformly random order, each firing with probability p/10, until `count` have fired.
    The walk is drawn without a sort, in the same distribution, from one uniform number u per
    entry: the entry fires when u < p/10, and then its key u / (p/10) is uniform on [0, 1) and
    independent of everything else, so the fired entries in key order are the fired entries in
    a uniformly random order; the applied ops are the `count` fired entries of smallest key.
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    gen_device = generator.device if generator is not None else device
    rate, entry_setting, count_edges = _entries(policy, torch.device(device))
    entries = rate.shape[0]

    # One draw per image: a number per entry, one for the count and one per slot for the sign.
    u = torch.rand(n, entries + 1 + SLOTS, generator=generator, device=gen_device)
    entry_u, count_u, sign_u = u.to(device).split_with_sizes([entries, 1, SLOTS], dim=1)
    # Keys are at most 1: a key of 2 marks an entry that did not fire.
    key = torch.where(entry_u < rate, entry_u / rate, 2.0)
    first, entry = key.topk(SLOTS, dim=1, largest=False)
    # Slot p is within the image's count when count_u >= the count's p-th edge.
    applied = (first < 2.0) & (count_u >= count_edges)
    # The sign is + when sign_u >= 0.5: the last term of the setting.
    setting = entry_setting.take(entry).add_(sign_u >= 0.5)
    none = len(policy.ops) * SETTINGS_PER_OP
    return SampledOps(torch.where(applied, setting, none), none)


@lru_cache(maxsize=64)
def _entries(policy: Policy, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The policy's entries that can fire on `device`: firing probabilities (float32) and
    settings at sign - (op * SETTINGS_PER_OP + magnitude * 2), and the edges of the op count's
    distribution, (SLOTS,); made once per policy and device, not at every batch. Entries of
    probability 0 never fire, so only enough of them to make SLOTS entries are kept: the draw
    and the top-k then run over the entries that matter."""
    probability = policy.values[0::2]
    firing = [i for i, p in enumerate(probability) if p]
    idle = [i for i, p in enumerate(probability) if not p]
    kept = sorted(firing + idle[:max(0, SLOTS - len(firing))])
    rate = torch.tensor([probability[i] for i in kept]).float() / MAX_PROBABILITY
    entry_setting = torch.tensor(
        [(i % len(policy.ops)) * SETTINGS_PER_OP + policy.values[2 * i + 1] * 2 for i in kept])
    edges = torch.tensor(list(accumulate(COUNT_PROBABILITIES[:-1])), dtype=torch.float32)
    return tuple(t.to(device) for t in (rate, entry_setting, edges))


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

