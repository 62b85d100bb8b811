"""A population of identical WRNs packed along channels: one network that runs every member.

Member m owns channels [m*C, (m+1)*C) of every activation. Convolutions become grouped
convolutions (groups multiplied by the population size), so no member sees another's channels;
each BatchNorm channel belongs to exactly one member, so batch statistics and running statistics
are per member by construction; the classifier is a batched matrix product. A forward pass
takes a different batch for each member, (P, N, C, H, W), and returns (P, N, classes).

Every packed tensor (weights, BN statistics, gradients, momentum buffers) is member-major: its
rows for member m are `member_rows(t, P)[m]`, which is what per-member clipping, the optimiser
and exploit (copying one member's slice onto another) work on.

Only WRNs can be packed: their forward uses channel-local operations alone (ReLU, residual sums,
pooling). Shake-Shake and PyramidNet concatenate or pad along channels, which would mix members.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from pba.core.errors import UserError
from pba.models.wrn import WideResNet


class GroupedLinear(nn.Module):
    """One linear layer per member: (N, P*in) -> (P, N, out)."""

    def __init__(
        self, members: int, in_features: int, out_features: int, device: torch.device | str
    ) -> None:
        super().__init__()
        # Uninitialised: a population is always loaded from its members' weights.
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features, device=device))
        self.bias = nn.Parameter(torch.empty(members, out_features, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        members, _, in_features = self.weight.shape
        x = x.reshape(x.shape[0], members, in_features).transpose(0, 1)  # (P, N, in)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


def member_rows(t: torch.Tensor, members: int) -> torch.Tensor:
    """A (P, ...) view of a packed tensor: [m] is everything member m owns of it.

    Splitting the first dimension is a view whatever the memory format (channels_last too).
    """
    return t.unflatten(0, (members, -1))


class PopulationWRN(nn.Module):
    """`len(models)` WRNs of one architecture computed as one grouped network.

    Built from standalone models (their weights and BN statistics are copied in), so that member
    m starts exactly as `models[m]`; `member_state_dict(m)` gives a standalone state back.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise UserError("a population needs at least one model")
        for model in models:
            if not isinstance(model, WideResNet):
                raise UserError(
                    f"only WRN models can be packed into a population, got {type(model).__name__}"
                    " (Shake-Shake and PyramidNet mix channels)"
                )
        states = [model.state_dict() for model in models]
        shapes = {k: v.shape for k, v in states[0].items()}
        if any({k: v.shape for k, v in s.items()} != shapes for s in states[1:]):
            raise UserError("all members of a population must have the same architecture")
        self.size = len(models)
        self._member_shapes = shapes
        # A copy keeps the forward code of the WRN; only its leaf layers are widened. They are
        # built on the meta device, so that no initialisation draws from the global RNG.
        self.net = copy.deepcopy(models[0]).to("meta")
        _widen(self.net, self.size)
        reference = next(models[0].parameters())
        self.net.to_empty(device=reference.device).to(reference.dtype)
        with torch.no_grad():
            for k, t in self.net.state_dict().items():
                if t.ndim == 0:  # BatchNorm's step counter: members in lockstep share one
                    t.copy_(states[0][k])
                else:
                    t.copy_(torch.stack([s[k] for s in states]).reshape(t.shape))

    def forward(
        self, x: torch.Tensor, memory_format: torch.memory_format = torch.contiguous_format
    ) -> torch.Tensor:
        """Logits (P, N, classes) of member m on its own batch x[m]; x is (P, N, C, H, W)."""
        p, n, c, h, w = x.shape
        if p != self.size:
            raise UserError(f"expected a batch for each of {self.size} members, got {p}")
        # (P, N, C, H, W) -> (N, P*C, H, W): member m's images on its own input channels.
        packed = x.transpose(0, 1).reshape(n, p * c, h, w)
        return self.net(packed.contiguous(memory_format=memory_format))

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member `member` as a standalone model's state dict (copies)."""
        state = self.net.state_dict()
        return {k: self._unpack(state[k], member, k).clone() for k in self._member_shapes}

    def load_member_state_dict(self, member: int, state: dict[str, torch.Tensor]) -> None:
        """Overwrite member `member` with a standalone model's state dict."""
        packed = self.net.state_dict()
        with torch.no_grad():
            for k, shape in self._member_shapes.items():
                if state[k].shape != shape:
                    raise UserError(f"{k}: expected {tuple(shape)}, got {tuple(state[k].shape)}")
                self._unpack(packed[k], member, k).copy_(state[k])

    def copy_member(self, src: int, dst: int) -> None:
        """Make member `dst` an exact copy of member `src` (weights and BN statistics)."""
        with torch.no_grad():
            for t in self.net.state_dict().values():
                if t.ndim > 0:
                    rows = member_rows(t, self.size)
                    rows[dst] = rows[src]

    def _unpack(self, t: torch.Tensor, member: int, key: str) -> torch.Tensor:
        if t.ndim == 0:
            return t
        return member_rows(t, self.size)[member].view(self._member_shapes[key])


def _widen(net: nn.Module, members: int) -> None:
    """Replace every Conv2d, BatchNorm2d and Linear of `net` by its `members`-wide version."""
    for name, child in net.named_children():
        if isinstance(child, nn.Conv2d):
            wide: nn.Module = nn.Conv2d(
                members * child.in_channels,
                members * child.out_channels,
                child.kernel_size,
                stride=child.stride,
                padding=child.padding,
                dilation=child.dilation,
                groups=members * child.groups,
                bias=child.bias is not None,
                device="meta",
            )
        elif isinstance(child, nn.BatchNorm2d):
            wide = nn.BatchNorm2d(
                members * child.num_features,
                eps=child.eps,
                momentum=child.momentum,
                affine=child.affine,
                track_running_stats=child.track_running_stats,
                device="meta",
            )
        elif isinstance(child, nn.Linear):
            wide = GroupedLinear(members, child.in_features, child.out_features, device="meta")
        else:
            _widen(child, members)
            continue
        setattr(net, name, wide)
