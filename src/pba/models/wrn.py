"""Pre-activation Wide Residual Network WRN-d-k (Zagoruyko & Komodakis, 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pba.core.errors import UserError
from pba.models.layers import conv1x1, conv3x3, init_weights


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus a shortcut (1x1 conv when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.projection = (
            conv1x1(in_channels, out_channels, stride)
            if stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        # A projection reads the pre-activated input, so it is normalised like the branch.
        shortcut = x if self.projection is None else self.projection(activated)
        out = self.conv1(activated)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-depth-width: groups of (depth-4)/6 blocks with widths 16k, 32k, 64k (k = width)."""

    def __init__(self, depth: int, width: int, num_classes: int) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10 or width < 1:
            raise UserError(f"WRN needs depth = 6n + 4 >= 10 and width >= 1, got {depth}, {width}")
        blocks_per_group = (depth - 4) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.stem = conv3x3(3, 16)
        layers: list[nn.Module] = []
        in_channels = 16
        for group, out_channels in enumerate(widths):
            for i in range(blocks_per_group):
                stride = 2 if group > 0 and i == 0 else 1
                layers.append(PreActBlock(in_channels, out_channels, stride))
                in_channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_channels)
        self.fc = nn.Linear(in_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        x = F.relu(self.bn(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
