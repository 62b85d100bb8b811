"""The networks of the paper, built by name: `build("wrn_28_10", num_classes=10)`.

Names: `wrn_{depth}_{width}` (depth = 6n + 4), `shake_shake_{depth}_2x{width}d`
(depth = 6n + 2) and `pyramidnet_{depth}_{alpha}` (ShakeDrop, bottleneck, depth = 9n + 2).
`names()` lists the published configurations; any valid depth and width is accepted.
Models take normalised float images (N, 3, H, W) and return logits (N, num_classes).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from torch import nn

from pba.errors import PBAError
from pba.models.pyramidnet import PyramidNet
from pba.models.shake_shake import ShakeShakeNet
from pba.models.wrn import WideResNet

# (pattern over the name, constructor from the two integers in it and num_classes)
_FAMILIES: list[tuple[re.Pattern[str], Callable[[int, int, int], nn.Module]]] = [
    (re.compile(r"wrn_(\d+)_(\d+)"), WideResNet),
    (re.compile(r"shake_shake_(\d+)_2x(\d+)d"), ShakeShakeNet),
    (re.compile(r"pyramidnet_(\d+)_(\d+)"), PyramidNet),
]

_PUBLISHED = [
    "wrn_10_1",
    "wrn_16_1",
    "wrn_40_2",
    "wrn_28_10",
    "shake_shake_26_2x32d",
    "shake_shake_26_2x96d",
    "shake_shake_26_2x112d",
    "pyramidnet_272_200",
]


def names() -> list[str]:
    """The listed model names (WRN, Shake-Shake and PyramidNet accept other valid sizes too)."""
    return list(_PUBLISHED)


def build(name: str, num_classes: int) -> nn.Module:
    """The network called `name`, freshly initialised, with `num_classes` outputs."""
    if num_classes < 1:
        raise PBAError(f"num_classes must be >= 1, got {num_classes}")
    for pattern, constructor in _FAMILIES:
        match = pattern.fullmatch(name)
        if match:
            first, second = (int(g) for g in match.groups())
            return constructor(first, second, num_classes)
    raise PBAError(
        f"unknown model {name!r}; known: {', '.join(_PUBLISHED)} "
        "(or wrn_DEPTH_WIDTH, shake_shake_DEPTH_2xWIDTHd, pyramidnet_DEPTH_ALPHA)"
    )


def macs_per_image(name: str, num_classes: int = 10, image_size: int = 32) -> int:
    """Multiply-accumulates of one forward pass of one image through the convolutions and
    linear layers of `name`: the compute that scales a measured training rate from one model to
    another. Counted on the meta device, so that even large models cost no memory."""
    import torch

    with torch.device("meta"):
        model = build(name, num_classes)
        total = 0

        def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            nonlocal total
            weight = module.weight
            per_output = weight[0].numel()  # in_channels/groups x kernel, or in_features
            total += output.numel() * per_output

        hooks = [m.register_forward_hook(count) for m in model.modules()
                 if isinstance(m, (nn.Conv2d, nn.Linear))]
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    for hook in hooks:
        hook.remove()
    return total


__all__ = ["PyramidNet", "ShakeShakeNet", "WideResNet", "build", "macs_per_image", "names"]
