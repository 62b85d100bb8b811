"""Shake-Shake regularised ResNet, "26 2xWd" (Gastaldi, 2017).

Three stages of (depth-2)/6 blocks, widths W, 2W, 4W; each block adds two residual branches
mixed by a random per-sample alpha in the forward pass and an independent beta in the backward
pass (both uniform in [0, 1]); in evaluation both are their expectation, 0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pba.core.errors import UserError
from pba.models.layers import (
    conv1x1,
    conv3x3,
    init_weights,
    per_sample_uniform,
    scale_forward_backward,
)


def shake_shake(a: torch.Tensor, b: torch.Tensor, training: bool) -> torch.Tensor:
    """alpha * a + (1 - alpha) * b, with gradients split by beta instead of alpha when training."""
    if not training:
        return 0.5 * (a + b)
    alpha, beta = per_sample_uniform(a), per_sample_uniform(a)
    return scale_forward_backward(a, alpha, beta) + scale_forward_backward(b, 1 - alpha, 1 - beta)


def _branch(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(),  # not in place: the block's input also feeds the other branch and the shortcut
        conv3x3(in_channels, out_channels, stride),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        conv3x3(out_channels, out_channels),
        nn.BatchNorm2d(out_channels),
    )


class ShiftedProjection(nn.Module):
    """Shortcut for a change of shape: two strided 1x1 convs, the second on the input shifted by
    one pixel so that together they see every position a stride-2 subsampling would skip."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv_a = conv1x1(in_channels, out_channels // 2)
        self.conv_b = conv1x1(in_channels, out_channels - out_channels // 2)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        a = self.conv_a(x[:, :, :: self.stride, :: self.stride])
        b = self.conv_b(shifted[:, :, :: self.stride, :: self.stride])
        return self.bn(torch.cat([a, b], dim=1))


class ShakeBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.branch_a = _branch(in_channels, out_channels, stride)
        self.branch_b = _branch(in_channels, out_channels, stride)
        self.shortcut = (
            ShiftedProjection(in_channels, out_channels, stride)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = shake_shake(self.branch_a(x), self.branch_b(x), self.training)
        return mixed + self.shortcut(x)


class ShakeShakeNet(nn.Module):
    def __init__(self, depth: int, base_width: int, num_classes: int) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8 or base_width < 1:
            raise UserError(
                f"Shake-Shake needs depth = 6n + 2 >= 8 and width >= 1, got {depth}, {base_width}"
            )
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(conv3x3(3, 16), nn.BatchNorm2d(16))
        layers: list[nn.Module] = []
        in_channels = 16
        for stage in range(3):
            out_channels = base_width * 2**stage
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(ShakeBlock(in_channels, out_channels, stride))
                in_channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(in_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
