"""Lengths relative to the image: a policy's translations and Cutout, and the baseline's crop
pad, are the reference's pixels at 32 x 32 and the same fraction of the side at any other size
(TranslateX of the width, TranslateY of the height, Cutout and the pad of the shorter side),
on the Pillow and the batched path alike, per image; the baseline's Cutout size stays pixels.
At 32 x 32 nothing changes (the exactness tests of test_ops and test_fused)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pba.augmentation.baseline import CROP_PAD, Baseline, crop_pad
from pba.augmentation.policy import Policy
from pba.augmentation.sampling import SETTINGS_PER_OP, SampledOps, sample_ops, setting_parameters
from pba.augmentation.transforms import (
    BatchPBAugment,
    PBAugment,
    apply_sampled,
    apply_sampled_pil,
    cutout,
    random_crop_flip,
)
from pba.core.errors import PBAError
from pba.ops import DEFAULT_OPS, REFERENCE_SIDE, Op, OpSet, pil, tensor

FILL = (125, 123, 114)
NONE = len(DEFAULT_OPS) * SETTINGS_PER_OP


def resized(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Real images at another size (bilinear), uint8."""
    out = F.interpolate(images.float(), size=(height, width), mode="bilinear",
                        align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def coordinates(n: int, height: int, width: int) -> torch.Tensor:
    """n images whose pixel (y, x) is (y, x, 0): where a pixel came from, read off it."""
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    image = torch.stack([y, x, torch.zeros_like(y)]).to(torch.uint8)
    return image.expand(n, -1, -1, -1).contiguous()


def to_pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray(img.permute(1, 2, 0).numpy())


def from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)


def one_op(name: str, magnitude: int, positive: bool, n: int = 1) -> SampledOps:
    """n images that each get op `name` at `magnitude` and sign, then nothing."""
    setting = DEFAULT_OPS.index(name) * SETTINGS_PER_OP + magnitude * 2 + int(positive)
    return SampledOps(torch.tensor([[setting, NONE]] * n), NONE)


def both_paths(imgs: torch.Tensor, sampled: SampledOps, ops: OpSet = DEFAULT_OPS
               ) -> list[torch.Tensor]:
    """The batch through the grouped and the sync-free batched path and, image by image, the
    Pillow path."""
    rng = np.random.default_rng(0)
    per_image = torch.stack([from_pil(apply_sampled_pil(to_pil(img), ops, sampled[i], FILL, rng))
                             for i, img in enumerate(imgs)])
    return [apply_sampled(imgs, ops, sampled, FILL, torch.Generator().manual_seed(0),
                          sync_free=sync_free) for sync_free in (False, True)] + [per_image]


@pytest.mark.parametrize(("side", "shift"), [(32, 9), (64, 18), (224, 63)])
def test_translate_x_at_magnitude_9_moves_the_content_by_the_scaled_pixels(side, shift):
    imgs = coordinates(2, side, side)
    for positive in (True, False):
        for out in both_paths(imgs, one_op("TranslateX", 9, positive, 2)):
            # Content moves left by a positive parameter: column x shows column x + shift.
            moved = shift if positive else -shift
            source = out[:, 1, side // 2, side // 2].long() - side // 2
            assert (source == moved).all(), (side, positive, source.tolist())
            inside = slice(0, side - shift) if positive else slice(shift, side)
            assert torch.equal(out[:, 1, :, inside], imgs[:, 1, :, inside.start + moved:
                                                          inside.stop + moved])
            uncovered = slice(side - shift, side) if positive else slice(0, shift)
            assert (out[:, :, :, uncovered] == torch.tensor(FILL).view(1, 3, 1, 1)).all()


def test_on_a_non_square_image_translate_y_scales_with_the_height_and_x_with_the_width():
    height, width = 64, 96  # 2 and 3 times the reference side
    imgs = coordinates(1, height, width)
    for name, channel, shift in (("TranslateY", 0, 18), ("TranslateX", 1, 27)):
        for out in both_paths(imgs, one_op(name, 9, True)):
            assert int(out[0, channel, height // 2, width // 2]) == (
                (height if channel == 0 else width) // 2 + shift)


@pytest.mark.parametrize(("height", "width"), [(64, 64), (48, 80), (224, 224), (20, 36)])
def test_both_paths_give_the_same_images_at_any_size(cifar_images, height, width):
    """Every geometric op (those that depend on the size) at every magnitude and sign, on real
    images of another size: the batched paths equal Pillow's per-image results bit for bit (a
    translation by a fractional number of pixels included: 13.5 at a height of 48)."""
    ops = [k for k, op in enumerate(DEFAULT_OPS) if isinstance(op.tensor, tensor.Warp)]
    settings = torch.tensor([k * SETTINGS_PER_OP + s for k in ops for s in range(SETTINGS_PER_OP)])
    imgs = resized(cifar_images[torch.arange(len(settings)) % len(cifar_images)], height, width)
    sampled = SampledOps(torch.stack([settings, torch.full_like(settings, NONE)], dim=1), NONE)
    grouped, sync_free, per_image = both_paths(imgs, sampled)
    assert torch.equal(grouped, per_image) and torch.equal(sync_free, per_image)


def test_the_cutout_op_side_scales_with_the_shorter_side():
    height, width = 64, 96
    imgs = torch.zeros(64, 3, height, width, dtype=torch.uint8)  # never the fill colour
    for out in both_paths(imgs, one_op("Cutout", 9, True, 64)):  # 18 px at 32 x 32
        filled = (out == torch.tensor(FILL).view(1, 3, 1, 1)).all(dim=1)
        rows, cols = filled.any(dim=2).sum(dim=1), filled.any(dim=1).sum(dim=1)
        assert (filled.flatten(1).sum(1) == rows * cols).all()  # one rectangle each
        assert rows.max() == cols.max() == 36 and (rows * cols > 0).all()


def test_a_users_op_that_asks_gets_its_parameter_scaled_on_both_paths():
    seen: dict[str, list[float]] = {"pil": [], "tensor": []}

    def probe_pil(img, param, fill, rng):
        seen["pil"].append(param)
        return img

    def probe_tensor(imgs, params, fill, generator):
        seen["tensor"].extend(params.tolist())
        return imgs

    ops = DEFAULT_OPS.with_op(Op("Probe", lambda m: float(m), probe_pil, probe_tensor,
                                 signed=True, scales_with="short"))
    none = len(ops) * SETTINGS_PER_OP
    setting = (len(ops) - 1) * SETTINGS_PER_OP + 8 * 2 + 1  # magnitude 8, positive
    sampled = SampledOps(torch.tensor([[setting, none]]), none)
    imgs = torch.zeros(1, 3, 48, 80, dtype=torch.uint8)
    apply_sampled(imgs, ops, sampled, FILL, sync_free=False)
    apply_sampled_pil(to_pil(imgs[0]), ops, sampled, FILL, np.random.default_rng(0))
    assert seen == {"pil": [12.0], "tensor": [12.0]}  # 8 px at 32, 48 the shorter side
    with pytest.raises(PBAError, match="scales_with is one of width, height, short"):
        Op("Bad", lambda m: 0.0, probe_pil, probe_tensor, scales_with="long")


def test_at_the_reference_side_every_parameter_is_the_mapping():
    reference = setting_parameters(DEFAULT_OPS, torch.device("cpu"))
    assert torch.equal(reference, setting_parameters(DEFAULT_OPS, torch.device("cpu"),
                                                     REFERENCE_SIDE, REFERENCE_SIDE))
    translate = DEFAULT_OPS.index("TranslateX") * SETTINGS_PER_OP
    assert reference[translate:translate + SETTINGS_PER_OP].tolist() == [
        sign * float(int(m * 10 / 10)) for m in range(10) for sign in (-1, 1)]
    # Angles, ratios and factors never scale.
    big = setting_parameters(DEFAULT_OPS, torch.device("cpu"), 224, 224)
    for k, op in enumerate(DEFAULT_OPS):
        rows = slice(k * SETTINGS_PER_OP, (k + 1) * SETTINGS_PER_OP)
        factor = 7.0 if op.name in ("TranslateX", "TranslateY", "Cutout") else 1.0
        assert torch.equal(big[rows], reference[rows] * factor), op.name


@pytest.mark.parametrize(("height", "width", "pad"),
                         [(32, 32, CROP_PAD), (64, 64, 8), (224, 224, 28), (48, 80, 6),
                          (36, 36, 5), (4, 4, 1), (2, 2, 1)])
def test_the_crop_pad_is_an_eighth_of_the_shorter_side(height, width, pad):
    assert crop_pad(height, width) == pad


@pytest.mark.parametrize(("height", "width", "pad"), [(64, 64, 8), (48, 80, 6)])
def test_the_baselines_crop_offsets_span_the_scaled_pad(height, width, pad):
    imgs = coordinates(256, height, width)
    out = Baseline(("crop",), 16)(imgs, FILL, torch.Generator().manual_seed(0))
    assert torch.equal(out, random_crop_flip(imgs, pad, FILL, torch.Generator().manual_seed(0),
                                             flip=False))
    # The centre pixel is never padding: where it came from is the crop's offset.
    dy = out[:, 0, height // 2, width // 2].long() - height // 2
    dx = out[:, 1, height // 2, width // 2].long() - width // 2
    for shifts in (dy, dx):  # offsets 0..2 * pad, each seen (256 draws of 2 * pad + 1 values)
        assert shifts.unique().tolist() == list(range(-pad, pad + 1))


def test_the_baselines_cutout_size_is_pixels_at_the_images_size():
    imgs = torch.zeros(64, 3, 64, 64, dtype=torch.uint8)
    out = Baseline(("cutout",), 20)(imgs, FILL, torch.Generator().manual_seed(1))
    assert torch.equal(out, cutout(imgs, 20, FILL, torch.Generator().manual_seed(1)))
    filled = (out == torch.tensor(FILL).view(1, 3, 1, 1)).all(dim=1)
    assert filled.any(dim=2).sum(dim=1).max() == filled.any(dim=1).sum(dim=1).max() == 20


def translate_policy() -> Policy:
    """TranslateX at magnitude 9 in one entry: an image gets it (either sign) or nothing."""
    return Policy.zeros().replace("TranslateX", 0, probability=10, magnitude=9)


def shifts_seen(outs: list[torch.Tensor]) -> set[int]:
    """The horizontal shift of each (C, H, W) image of `coordinates`, read at its centre."""
    return {int(out[1, out.shape[1] // 2, out.shape[2] // 2]) - out.shape[2] // 2 for out in outs}


def test_pbaugment_scales_each_image_by_its_own_size():
    aug = PBAugment(translate_policy(), fill=FILL, seed=0)
    small, large = coordinates(1, 32, 32)[0], coordinates(1, 64, 64)[0]
    for as_pil in (True, False):
        outs: dict[int, list[torch.Tensor]] = {32: [], 64: []}
        for _ in range(40):  # the sizes alternate, call by call
            for img in (small, large):
                out = aug(to_pil(img)) if as_pil else aug(img)
                outs[img.shape[-1]].append(from_pil(out) if as_pil else out)
        assert shifts_seen(outs[32]) == {0, 9, -9}, as_pil
        assert shifts_seen(outs[64]) == {0, 18, -18}, as_pil


def test_batch_pbaugment_scales_a_larger_batch():
    aug = BatchPBAugment(translate_policy(), fill=FILL, seed=0)
    imgs = coordinates(64, 64, 64)
    assert shifts_seen(list(aug(imgs))) == {0, 18, -18}
    floats = aug(imgs.float() / 255)  # float images are quantised to the same 8 bits
    assert shifts_seen(list((floats * 255).round().to(torch.uint8))) == {0, 18, -18}


def test_the_pillow_translate_and_the_batched_one_agree_on_fractional_shifts():
    """A parameter scaled to a fraction of a pixel rounds the same way on both paths."""
    imgs = coordinates(1, 20, 36)
    for param in (13.5, -13.5, 2.8125, -0.25, 0.5):
        params = torch.tensor([param], dtype=torch.float64)
        for op in ("translate_x", "translate_y"):
            expected = from_pil(getattr(pil, op)(to_pil(imgs[0]), param, FILL, None))
            got = getattr(tensor, op)(imgs, params, torch.tensor(FILL, dtype=torch.uint8))
            assert torch.equal(got[0], expected), (op, param)


def test_a_policy_searched_at_32_does_the_same_at_64():
    """The same draws on an image and on its 2x enlargement: the enlargement's result is the
    image's result enlarged (translations by whole pixels stay aligned)."""
    policy = (Policy.zeros().replace("TranslateX", 0, probability=10, magnitude=7)
              .replace("TranslateY", 1, probability=10, magnitude=5))
    rng = np.random.default_rng(2)
    small = torch.from_numpy(rng.integers(0, 256, (32, 3, 32, 32), np.uint8))
    large = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    sampled = sample_ops(policy, 32, torch.Generator().manual_seed(3))
    out_small = apply_sampled(small, policy.ops, sampled, FILL)
    out_large = apply_sampled(large, policy.ops, sampled, FILL)
    assert torch.equal(out_large, out_small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
