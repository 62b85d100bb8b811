"""Networks from other libraries by name, freshly initialised with the data's class count:
torchvision's classification models by builder name (`resnet18`, `mobilenet_v3_small`,
`convnext_tiny`, ...: `torchvision.models.list_models(module=torchvision.models)`) and timm's as
`timm:NAME` (`timm:resnet18`; needs the optional extra, `pip install 'pba[timm]'`).

timm's names carry a prefix because they overlap torchvision's (`resnet18` is in both, as
different networks): a bare name is always torchvision's. `pba.models.build` tries our CIFAR
networks first, then these.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable

import torch
from torch import nn

from pba.core.errors import UserError

TIMM_PREFIX = "timm:"
TIMM_MISSING = "timm is not installed: pip install 'pba[timm]'"

# GoogLeNet and Inception v3 add auxiliary classifiers by default, whose train-mode outputs are
# tuples the loss cannot take, and warn unless told to initialise their weights themselves.
_TORCHVISION_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
# Networks that size their position embeddings or attention partitions at construction (224 px
# by default): the builder argument that sets the input size, as a function of (height, width).
_TORCHVISION_SIZE_KWARG: dict[str, Callable[[tuple[int, int]], dict]] = {
    "vit_": lambda size: {"image_size": size[0]},  # square only: a side
    "maxvit_": lambda size: {"input_size": size},
}

# What torchvision's networks with a constraint on the input size need, where their own error
# does not say it (measured on the meta device).
_SIZE_NEEDS = {
    "alexnet": "at least 63x63 px",
    "inception_v3": "at least 75x75 px",
    "maxvit_": "sides that are multiples of 224 px",
    "vit_": "square images whose side the patch size divides (16 for vit_b_16, 14 for vit_h_14)",
}


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    """torchvision's image classifiers: its top-level builders, which leave out the detection,
    segmentation, video, optical-flow and quantized models of its submodules."""
    import torchvision.models

    return tuple(torchvision.models.list_models(module=torchvision.models))


def is_zoo_name(name: str) -> bool:
    return name.startswith(TIMM_PREFIX) or name in torchvision_names()


def constructor(
    name: str, num_classes: int, image_size: tuple[int, int] | None
) -> Callable[[], nn.Module]:
    """A function that builds `name` (torchvision's, or timm's with TIMM_PREFIX) with
    `num_classes` outputs, for images of `image_size` (height, width) where the network sizes
    itself at construction (None: its default, 224 px). The name is checked now."""
    if name.startswith(TIMM_PREFIX):
        return _timm_constructor(name.removeprefix(TIMM_PREFIX), num_classes, image_size)
    import torchvision.models

    kwargs = dict(_TORCHVISION_KWARGS.get(name, {}))
    for prefix, size_kwarg in _TORCHVISION_SIZE_KWARG.items():
        if image_size is not None and name.startswith(prefix):
            kwargs |= size_kwarg(image_size)
    return functools.partial(torchvision.models.get_model, name, weights=None,
                             num_classes=num_classes, **kwargs)


def _timm_constructor(
    name: str, num_classes: int, image_size: tuple[int, int] | None
) -> Callable[[], nn.Module]:
    try:
        import timm
        import timm.models
    except ImportError:
        raise UserError(TIMM_MISSING) from None
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f". Did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
        raise UserError(f"timm has no model {name!r}: timm.list_models() lists them{hint}")
    kwargs = {}
    cfg = timm.models.get_pretrained_cfg(name)
    if image_size is not None and cfg is not None and cfg.fixed_input_size:
        kwargs["img_size"] = image_size  # ViT, Swin, ...: sized at construction
    return functools.partial(timm.create_model, name, pretrained=False,
                             num_classes=num_classes, **kwargs)


def on_meta(make: Callable[[], nn.Module]) -> nn.Module:
    """`make()` on the meta device: the network's shapes without allocating its weights. RegNet
    computes its widths with tensors and reads them back, which meta tensors cannot do: such a
    network is built on the CPU and then moved (its weights cost memory once)."""
    try:
        with torch.device("meta"):
            return make()
    except NotImplementedError:
        return make().to("meta")


def check_input(
    name: str, make: Callable[[], nn.Module], num_classes: int, image_size: tuple[int, int]
) -> None:
    """Refuse, before any training, images that `make()`'s network cannot take (too small for
    its downsampling, a size its embeddings or partitions do not fit) and networks that do
    not return logits: one training-mode pass of two images (BatchNorm needs more than one
    value per channel) on the meta device, which checks shapes without computing."""
    height, width = image_size
    try:
        model = on_meta(make)  # ViT and MaxViT check the size they are built for here
        with torch.device("meta"), torch.no_grad():
            out = model(torch.zeros(2, 3, height, width))
    except (RuntimeError, ValueError, AssertionError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        needs = next((f"; it needs {need}" for prefix, need in _SIZE_NEEDS.items()
                      if name.startswith(prefix)), "")
        raise UserError(f"{name} cannot take {height}x{width} images ({reason}{needs}): use "
                       "another image size (--image-size for image folders) or another "
                       "model") from None
    if not isinstance(out, torch.Tensor) or out.shape != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"{name} does not return logits of shape (N, {num_classes}) in "
                       f"training: got {got}")
