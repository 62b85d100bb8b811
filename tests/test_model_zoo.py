"""Networks of torchvision and timm by name: they build with the data's class count, train at
small image sizes, refuse sizes they cannot take, and stay out of the search."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torchvision.models

from pba.core.errors import PBAError
from pba.data import ImageSet
from pba.models import build, is_cifar, macs_per_image, zoo
from pba.search.presets import preset
from pba.training import loop as training
from pba.training.recipes import Recipe

CLASSES = 7  # not ImageNet's 1,000 nor CIFAR's 10: the head must follow the data
# Cheap to build and train on a CPU; the other names are checked on the meta device.
CHEAP = ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5"]
SHAPES_ONLY = ["convnext_tiny", "efficientnet_b0", "regnet_y_400mf", "densenet121", "googlenet",
               "swin_t", "vit_b_32"]


def _random_images(n: int, side: int, generator: torch.Generator) -> ImageSet:
    return ImageSet(torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8,
                                  generator=generator),
                    torch.randint(0, CLASSES, (n,), generator=generator))


def _train_a_step(model_name: str, side: int, precision: str = "fp32") -> training.TrainState:
    """Two steps of `pba.training.loop.train` on random images, as `pba train` runs them (init_state
    with the data's size, the precision's memory format and autocast)."""
    recipe = Recipe(epochs=1, lr=0.01, weight_decay=5e-4, batch_size=4, precision=precision)
    state = training.init_state(model_name, CLASSES, recipe, seed=0, device="cpu",
                                image_size=(side, side))
    images = _random_images(8, side, torch.Generator().manual_seed(side))
    state, metrics = training.train(state, images, 1, lambda x, epoch, generator: x, recipe,
                                    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert math.isfinite(metrics[0]["train_loss"]), metrics
    return state


@pytest.mark.parametrize("side", [32, 64])
@pytest.mark.parametrize("name", CHEAP)
def test_torchvision_models_train_at_small_sizes_with_the_datas_classes(name, side) -> None:
    state = _train_a_step(name, side)
    state.model.eval()
    with torch.no_grad():
        logits = state.model(torch.randn(3, 3, side, side))
    assert logits.shape == (3, CLASSES)
    assert torch.isfinite(logits).all()


def test_a_torchvision_model_trains_in_bf16_channels_last() -> None:
    state = _train_a_step("mobilenet_v3_small", 32, precision="bf16")
    assert next(state.model.parameters()).dtype == torch.float32  # autocast, not a bf16 model


@pytest.mark.parametrize("side", [32, 64])
@pytest.mark.parametrize("name", SHAPES_ONLY)
def test_larger_torchvision_models_take_small_images(name, side) -> None:
    # On the meta device: the check `build` runs before allocating the network's weights.
    zoo.check_input(name, zoo.constructor(name, CLASSES, (side, side)), CLASSES, (side, side))


def test_aux_logits_networks_return_plain_logits_in_training() -> None:
    # GoogLeNet's auxiliary classifiers are off: a tuple would not reach the loss.
    zoo.check_input("googlenet", zoo.constructor("googlenet", CLASSES, (32, 32)), CLASSES,
                    (32, 32))
    with torch.device("meta"):
        assert build("googlenet", CLASSES).aux_logits is False


@pytest.mark.parametrize(("name", "size", "needs"), [
    ("alexnet", (32, 32), "at least 63x63 px"),
    ("inception_v3", (64, 64), "at least 75x75 px"),
    ("maxvit_t", (64, 64), "multiples of 224 px"),
    ("vit_b_16", (48, 64), "square images"),
])
def test_sizes_a_network_cannot_take_are_refused_before_training(name, size, needs) -> None:
    with pytest.raises(PBAError, match=rf"{name} cannot take {size[0]}x{size[1]} images .*"
                                       rf"{needs}.*--image-size"):
        build(name, CLASSES, size)


def test_unknown_names_suggest_close_ones_and_say_where_to_look() -> None:
    with pytest.raises(PBAError, match=r"unknown model 'resnet81'; known: wrn_10_1.*"
                                       r"torchvision.models.list_models.*timm:NAME\. "
                                       r"Did you mean resnet18"):
        build("resnet81", CLASSES)
    with pytest.raises(PBAError, match="Did you mean wrn_40_2"):
        build("wrn_40", CLASSES)
    with pytest.raises(PBAError, match="detection, segmentation.*image classifiers"):
        build("fasterrcnn_resnet50_fpn", CLASSES)


def test_timm_missing_is_a_clear_message(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    with pytest.raises(PBAError, match=r"timm is not installed: pip install 'pba\[timm\]'"):
        build("timm:resnet18", CLASSES)


def test_timm_models_build_by_prefixed_name() -> None:
    pytest.importorskip("timm")
    _train_a_step("timm:resnet18", 32)
    # A fixed-size timm ViT is built for the data's size.
    with torch.device("meta"):
        vit = build("timm:vit_tiny_patch16_224", CLASSES, (32, 32))
        assert vit(torch.zeros(2, 3, 32, 32)).shape == (2, CLASSES)
    with pytest.raises(PBAError, match="Did you mean timm:resnet18"):
        build("timm:resnt18", CLASSES)


def test_the_search_refuses_other_libraries_networks() -> None:
    for name in ("resnet18", "timm:resnet18"):
        with pytest.raises(PBAError, match=r"the search trains the CIFAR networks .*not "
                                           rf"'{name}'.*pba train --model.*--final-model"):
            preset("smoke").replace(model=name)
    assert is_cifar("wrn_10_1") and not is_cifar("resnet18")


def test_our_cifar_networks_take_other_sizes_at_a_cost_that_grows_with_the_pixels() -> None:
    with torch.no_grad():
        logits = build("wrn_10_1", CLASSES, (64, 64)).eval()(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, CLASSES)
    assert macs_per_image("wrn_10_1", image_size=64) == pytest.approx(
        4 * macs_per_image("wrn_10_1"), rel=1e-3)  # all but the classifier


def test_macs_scale_with_pixels_and_match_torchvisions_published_counts() -> None:
    ratio = macs_per_image("resnet18", image_size=64) / macs_per_image("resnet18", image_size=32)
    assert ratio == pytest.approx(4, rel=0.01)  # the classifier's few MACs do not scale
    # torchvision's model cards count the same multiply-accumulates at 224 px (its "GFLOPS");
    # ViT's attention products, not counted here, are 1% of vit_b_32's.
    for name in ("resnet18", "regnet_y_400mf", "mobilenet_v3_small", "vit_b_32"):
        published = torchvision.models.get_model_weights(name).DEFAULT.meta["_ops"] * 1e9
        assert macs_per_image(name, num_classes=1000, image_size=224) == pytest.approx(
            published, rel=0.05), name
