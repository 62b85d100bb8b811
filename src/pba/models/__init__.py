"""Networks built by name: `build("wrn_28_10", num_classes=10)`, `build("resnet18", 100)`.

Names, tried in this order:
- the paper's CIFAR networks: `wrn_{depth}_{width}` (depth = 6n + 4),
  `shake_shake_{depth}_2x{width}d` (depth = 6n + 2) and `pyramidnet_{depth}_{alpha}`
  (ShakeDrop, bottleneck, depth = 9n + 2). `names()` lists the published configurations; any
  valid depth and width is accepted. The search trains these only (fast at small sizes; WRN
  populations pack into one network, `pba.models.population`).
- torchvision's classification models by builder name (`resnet18`, `mobilenet_v3_small`,
  `convnext_tiny`, ...: `torchvision.models.list_models(module=torchvision.models)`).
- timm's as `timm:NAME` (`timm:resnet18`), with the optional extra `pip install 'pba[timm]'`.
Every network is built from scratch (no pretrained weights) with the data's class count. Models
take normalised float images (N, 3, H, W) and return logits (N, num_classes).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

import torch
from torch import nn

from pba.core.errors import UserError
from pba.models import zoo
from pba.models.pyramidnet import PyramidNet
from pba.models.shake_shake import ShakeShakeNet
from pba.models.wrn import WideResNet

# (pattern over the name, constructor from the two integers in it and num_classes)
_FAMILIES: list[tuple[re.Pattern[str], Callable[[int, int, int], nn.Module]]] = [
    (re.compile(r"wrn_(\d+)_(\d+)"), WideResNet),
    (re.compile(r"shake_shake_(\d+)_2x(\d+)d"), ShakeShakeNet),
    (re.compile(r"pyramidnet_(\d+)_(\d+)"), PyramidNet),
]
FAMILY_NAMES = "wrn_DEPTH_WIDTH, shake_shake_DEPTH_2xWIDTHd, pyramidnet_DEPTH_ALPHA"

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
    """The listed CIFAR model names (WRN, Shake-Shake and PyramidNet accept other valid sizes
    too; torchvision's and timm's models are not listed)."""
    return list(_PUBLISHED)


def is_cifar(name: str) -> bool:
    """Whether `name` is one of our CIFAR networks (its depth and width are checked when built)."""
    return any(pattern.fullmatch(name) for pattern, _ in _FAMILIES)


def build(name: str, num_classes: int, image_size: tuple[int, int] | None = None) -> nn.Module:
    """The network called `name` (see the module's docstring), freshly initialised, with
    `num_classes` outputs, for images of `image_size` (height, width).

    Our CIFAR networks take any image size: they keep the input's resolution through their
    first group and pool globally at the end, so their cost grows with the pixels (4x the
    32 px cost at 64 px, 49x at 224 px: WRN-28-10 5.2 then 257 GMACs an image) while their
    receptive field, fixed in pixels, covers less of a larger image. ImageNet networks
    downsample 4-32x in their stem, so they are cheap but coarse on 32 px images.
    With `image_size`, a torchvision or timm network that sizes itself at construction (ViT,
    MaxViT, timm's fixed-size models) is built for it, and sizes the network cannot take (too
    small for its downsampling: AlexNet under 63 px, Inception v3 under 75 px, MaxViT off
    multiples of 224 px) are refused before any training; None builds the default (224 px).
    """
    if num_classes < 1:
        raise UserError(f"num_classes must be >= 1, got {num_classes}")
    make = _constructor(name, num_classes, image_size)
    if image_size is not None and not is_cifar(name):
        zoo.check_input(name, make, num_classes, image_size)
    return make()


def check_name(name: str) -> None:
    """Refuse a name `build` would refuse, without building anything (a run checks its final
    model before its search, not after)."""
    _constructor(name, 1, None)


def _constructor(
    name: str, num_classes: int, image_size: tuple[int, int] | None
) -> Callable[[], nn.Module]:
    for pattern, family in _FAMILIES:
        match = pattern.fullmatch(name)
        if match:
            first, second = (int(g) for g in match.groups())
            return lambda: family(first, second, num_classes)
    if zoo.is_zoo_name(name):
        return zoo.constructor(name, num_classes, image_size)
    raise UserError(_unknown(name))


def _unknown(name: str) -> str:
    import torchvision.models

    if name in torchvision.models.list_models():  # in a submodule: not an image classifier
        return (f"{name!r} is one of torchvision's detection, segmentation, video, optical-flow "
                "or quantized models: pba trains image classifiers")
    close = difflib.get_close_matches(name, [*_PUBLISHED, *zoo.torchvision_names()], n=3)
    hint = f". Did you mean {', '.join(close)}?" if close else ""
    return (f"unknown model {name!r}; known: {', '.join(_PUBLISHED)} (or {FAMILY_NAMES}), "
            "torchvision's classification models by name (resnet18, convnext_tiny, ...: "
            "torchvision.models.list_models(module=torchvision.models)) and timm's as "
            f"timm:NAME{hint}")


def macs_per_image(
    name: str, num_classes: int = 10, image_size: int | tuple[int, int] = 32
) -> int:
    """Multiply-accumulates of one forward pass of one image of `image_size` (a side, or
    (height, width)) through the convolutions and linear layers of `name`: the compute that
    scales a measured training rate from one model to another. Counted on the meta device, so
    that even large models cost no memory. Attention's token-by-token products are not
    counted (at the images pba trains on, transformers spend most of theirs in the
    projections, which are)."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    model = zoo.on_meta(_constructor(name, num_classes, size))
    total = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        per_output = module.weight[0].numel()  # in_channels/groups x kernel, or in_features
        total += output.numel() * per_output

    def count_attention(module: nn.Module, inputs: tuple, output: tuple) -> None:
        # MultiheadAttention (torchvision's ViT) computes with its projections' weights, never
        # calling its output projection's Linear: all four are counted here.
        nonlocal total
        tokens = output[0].numel() // module.embed_dim
        total += tokens * sum(p.numel() for key, p in module.named_parameters()
                              if key.endswith("weight"))

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks += [m.register_forward_hook(count_attention) for m in model.modules()
              if isinstance(m, nn.MultiheadAttention)]
    model.eval()
    with torch.device("meta"), torch.no_grad():
        model(torch.zeros(1, 3, *size))
    for hook in hooks:
        hook.remove()
    return total


__all__ = ["PyramidNet", "ShakeShakeNet", "WideResNet", "build", "check_name", "is_cifar",
           "macs_per_image", "names"]
