"""Which ops each image gets under a policy (docs/algorithm.md §3), and the encoding of those
draws that the batched path works on: each application position's *setting* (op, magnitude,
sign), whose parameter is tabulated once per op set, device and image size.

    draws = sample_ops(policy, 128, generator)       # SampledOps: (128, 2) settings
    params = draws.parameters(policy.ops, 32, 32)    # the signed parameter of each applied op
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

import torch

from pba.augmentation.policy import MAX_MAGNITUDE, MAX_PROBABILITY, SLOTS, Policy
from pba.core.errors import UserError
from pba.ops.registry import REFERENCE_SIDE, OpSet

# Number of ops an image gets: 0, 1 or 2 with these probabilities (docs/algorithm.md §3).
COUNT_PROBABILITIES = (0.2, 0.3, 0.5)


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
    parameter alone can be made once per setting (`pba.augmentation.fused`), and a batch's draws
    are one
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
