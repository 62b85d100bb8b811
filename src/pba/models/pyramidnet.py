"""PyramidNet with ShakeDrop regularisation (Han et al., 2017; Yamada et al., 2018).

Bottleneck PyramidNet: 3 stages of (depth-2)/9 bottleneck blocks whose width grows linearly,
by alpha / (number of blocks) per block, from 16 to 16 + alpha (times 4 at the block outputs).
Shortcuts are parameter-free: average pooling when the resolution halves, zero channels padded
on. ShakeDrop scales each residual branch by a random per-sample factor: kept (factor 1) with
survival probability p_l, decaying linearly from 1 to 0.5 at the last block; otherwise alpha
in [-1, 1] forward and beta in [0, 1] backward. In evaluation the factor is its expectation p_l.
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

FINAL_SURVIVAL = 0.5
BOTTLENECK_EXPANSION = 4


def shake_drop(x: torch.Tensor, survival: float, training: bool) -> torch.Tensor:
    """ShakeDrop on a residual branch x (N, C, H, W)."""
    if not training:
        return x * survival
    keep = per_sample_uniform(x) < survival
    alpha = per_sample_uniform(x, -1.0, 1.0)
    beta = per_sample_uniform(x)
    one = torch.ones_like(alpha)
    return scale_forward_backward(x, torch.where(keep, one, alpha), torch.where(keep, one, beta))


class PyramidBottleneck(nn.Module):
    """BN-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, ShakeDrop, plus a padded shortcut."""

    def __init__(self, in_channels: int, planes: int, stride: int, survival: float) -> None:
        super().__init__()
        out_channels = planes * BOTTLENECK_EXPANSION
        if out_channels < in_channels:
            raise UserError(f"PyramidNet block narrows {in_channels} -> {out_channels} channels")
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            conv1x1(in_channels, planes),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            conv3x3(planes, planes, stride),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            conv1x1(planes, out_channels),
            nn.BatchNorm2d(out_channels),
        )
        self.stride = stride
        self.extra_channels = out_channels - in_channels
        self.survival = survival

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = shake_drop(self.residual(x), self.survival, self.training)
        shortcut = x if self.stride == 1 else F.avg_pool2d(x, self.stride, ceil_mode=True)
        # Pads the channel dimension (the third from the end) with zeros at its end.
        shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return out + shortcut


class PyramidNet(nn.Module):
    def __init__(self, depth: int, alpha: int, num_classes: int) -> None:
        super().__init__()
        if (depth - 2) % 9 != 0 or depth < 11 or alpha < 0:
            raise UserError(
                f"PyramidNet needs depth = 9n + 2 >= 11 and alpha >= 0, got {depth}, {alpha}"
            )
        blocks_per_stage = (depth - 2) // 9
        total = 3 * blocks_per_stage
        self.stem = nn.Sequential(conv3x3(3, 16), nn.BatchNorm2d(16))
        layers: list[nn.Module] = []
        in_channels = 16
        for index in range(total):
            stage, position = divmod(index, blocks_per_stage)
            stride = 2 if stage > 0 and position == 0 else 1
            planes = round(16 + alpha * (index + 1) / total)
            survival = 1.0 - (1.0 - FINAL_SURVIVAL) * (index + 1) / total
            layers.append(PyramidBottleneck(in_channels, planes, stride, survival))
            in_channels = planes * BOTTLENECK_EXPANSION
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_channels)
        self.fc = nn.Linear(in_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
