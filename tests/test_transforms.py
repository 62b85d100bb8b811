"""Applying policies to batches and single images, baseline crop/flip/cutout, user transforms,
and user-registered ops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from pba.augmentation.policy import Policy, explore
from pba.augmentation.sampling import sample_ops
from pba.augmentation.schedule import Schedule, load_schedule
from pba.augmentation.transforms import (
    BatchPBAugment,
    PBAugment,
    apply_policy,
    apply_sampled_pil,
    cutout,
    random_crop_flip,
)
from pba.core.errors import PBAError
from pba.ops import DEFAULT_OPS, Op

FILL = (125, 123, 114)


def only(*ops: tuple[str, int, int, int]) -> Policy:
    """A policy with the given (op, slot, probability, magnitude) entries and nothing else."""
    policy = Policy.zeros()
    for name, slot, p, m in ops:
        policy = policy.replace(name, slot, probability=p, magnitude=m)
    return policy


def test_zero_policy_never_changes_an_image(cifar_images):
    out = apply_policy(cifar_images, Policy.zeros(), FILL, torch.Generator().manual_seed(0))
    assert torch.equal(out, cifar_images)


def test_probability_one_count_two_applies_exactly_two_ops(cifar_images):
    # Invert in both slots with probability 1: images that drew count 2 are inverted twice
    # (unchanged), count 1 once, count 0 never: fractions 0.5 / 0.3 / 0.2.
    batch = cifar_images.repeat(40, 1, 1, 1)  # 10,240 images
    policy = only(("Invert", 0, 10, 0), ("Invert", 1, 10, 0))
    out = apply_policy(batch, policy, FILL, torch.Generator().manual_seed(1))
    inverted = (out == 255 - batch).flatten(1).all(dim=1)
    unchanged = (out == batch).flatten(1).all(dim=1)
    assert (inverted | unchanged).all()
    n = len(batch)
    assert abs(inverted.double().mean().item() - 0.3) < 5 * math.sqrt(0.21 / n)


def test_each_image_gets_its_own_ops(cifar_images):
    same = cifar_images[:1].repeat(64, 1, 1, 1)
    policy = only(("Rotate", 0, 10, 9), ("Cutout", 1, 10, 9))
    out = apply_policy(same, policy, FILL, torch.Generator().manual_seed(2))
    distinct = {tuple(img.flatten().tolist()) for img in out}
    assert len(distinct) > 20


EXACT_OPS = ("Invert", "Posterize", "Solarize", "TranslateX", "TranslateY")


@pytest.mark.parametrize("seed", range(40))
def test_pillow_path_draws_the_same_ops_as_the_batched_path(cifar_images, seed):
    # Both paths sample with the same function, so from the same seed an image gets the same
    # ops and signs; with the ops whose two implementations agree exactly, outputs are equal.
    rng = np.random.default_rng(seed)
    policy = only(*[(name, int(rng.integers(2)), int(rng.integers(5, 11)), int(rng.integers(10)))
                    for name in EXACT_OPS])
    img = cifar_images[seed]
    sampled = sample_ops(policy, 1, torch.Generator().manual_seed(seed), device="cpu")
    pil = apply_sampled_pil(Image.fromarray(img.permute(1, 2, 0).numpy()), policy.ops, sampled,
                            FILL, np.random.default_rng(seed))
    batched = apply_policy(img[None], policy, FILL, torch.Generator().manual_seed(seed))[0]
    assert np.array_equal(np.asarray(pil), batched.permute(1, 2, 0).numpy())


def test_random_crop_flip_is_a_padded_crop(cifar_images):
    imgs = cifar_images[:64]
    out = random_crop_flip(imgs, 4, FILL, torch.Generator().manual_seed(3))
    fill = torch.tensor(FILL, dtype=torch.uint8).view(3, 1, 1)
    padded = fill.expand(64, 3, 40, 40).clone()
    padded[:, :, 4:36, 4:36] = imgs
    offsets = []
    for i in range(64):
        found = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                 if torch.equal(out[i], (lambda c: c.flip(-1) if f else c)(
                     padded[i, :, dy:dy + 32, dx:dx + 32]))]
        assert found, f"image {i} is not a crop of its padded original"
        offsets.append(found[0])
    assert len({o[:2] for o in offsets}) > 20  # offsets vary per image
    assert 10 < sum(o[2] for o in offsets) < 54  # about half flipped


def test_cutout_fills_one_square_per_image(cifar_images):
    imgs = torch.zeros(500, 3, 32, 32, dtype=torch.uint8)
    out = cutout(imgs, 16, FILL, torch.Generator().manual_seed(4))
    filled = (out[:, 0] == FILL[0])
    area = filled.flatten(1).sum(dim=1)
    assert area.max() == 256 and area.min() >= 64  # clipped at borders: at least 8x8
    rows, cols = filled.any(dim=2), filled.any(dim=1)
    # The filled region is exactly the product of its row and column extents: a rectangle.
    assert torch.equal(filled, rows[:, :, None] & cols[:, None, :])


def test_pbaugment_in_a_torchvision_pipeline_follows_the_schedule(cifar_images):
    schedule = Schedule((Policy.zeros(), only(("Invert", 0, 10, 0), ("Invert", 1, 10, 0))))
    aug = PBAugment(schedule, epochs=4, fill=FILL, seed=0)
    pipeline = v2.Compose([aug, v2.PILToTensor()])
    img = Image.fromarray(cifar_images[0].permute(1, 2, 0).numpy())
    aug.set_epoch(1)  # epochs 0-1 use search epoch 0: no augmentation
    assert torch.equal(pipeline(img), cifar_images[0])
    aug.set_epoch(3)
    results = {tuple(pipeline(img).flatten()[:8].tolist()) for _ in range(50)}
    assert len(results) == 2  # inverted or not
    with pytest.raises(PBAError, match="epoch 4 asked"):
        aug.set_epoch(4)


def test_pbaugment_on_tensors_uint8_and_float(cifar_images):
    aug = PBAugment(only(("Invert", 0, 10, 0)), fill=FILL, seed=1)
    outs = [aug(cifar_images[0]) for _ in range(30)]
    assert any(torch.equal(o, 255 - cifar_images[0]) for o in outs)
    as_float = cifar_images[0].float() / 255
    out = aug(as_float)
    assert out.dtype == torch.float32 and out.shape == (3, 32, 32)
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-3)


def test_batch_pbaugment(cifar_images):
    aug = BatchPBAugment(load_schedule_for_test(), epochs=200, fill=FILL, seed=0)
    aug.set_epoch(199)
    out = aug(cifar_images)
    assert out.shape == cifar_images.shape and out.dtype == torch.uint8
    assert (out != cifar_images).flatten(1).any(dim=1).float().mean() > 0.5


def load_schedule_for_test() -> Schedule:
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rcifar10_16_wrn.txt"
    return load_schedule(path, 200)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "uint8 images or float"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "1 channels but the fill colour has 3"),
        (torch.zeros(2, 8, 8, 3, dtype=torch.uint8), "8 channels"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), "takes \\(N, C, H, W\\) batches"),
        (np.zeros((2, 3, 8, 8), dtype=np.uint8), "takes tensors"),
    ],
)
def test_bad_images_are_clear_errors(images, message):
    with pytest.raises(PBAError, match=message):
        BatchPBAugment(Policy.zeros(), seed=0)(images)


def test_pil_path_rejects_other_modes():
    with pytest.raises(PBAError, match="mode 'L'"):
        PBAugment(Policy.zeros(), seed=0)(Image.new("L", (8, 8)))


def test_a_user_registered_op_joins_policies_explore_and_files(cifar_images, tmp_path):
    def darken_pil(img, param, fill, rng):
        return Image.fromarray((np.asarray(img) // 2).astype(np.uint8))

    def darken_tensor(imgs, params, fill, generator):
        return imgs // 2

    ops = DEFAULT_OPS.with_op(Op("Darken", lambda m: float(m), darken_pil, darken_tensor))
    policy = Policy.zeros(ops).replace("Darken", 0, probability=10)
    assert len(policy.values) == 64
    out = apply_policy(cifar_images, policy, FILL, torch.Generator().manual_seed(0))
    assert 0.7 < (out == cifar_images // 2).flatten(1).all(dim=1).float().mean() < 0.9
    explored = explore(policy, np.random.default_rng(0))
    assert explored.ops is ops and len(explored.values) == 64
    Schedule((policy, explored)).save(tmp_path / "s.json")
    assert load_schedule(tmp_path / "s.json", ops=ops).policies[1] == explored
    with pytest.raises(PBAError, match="unknown op 'Darken'"):
        load_schedule(tmp_path / "s.json")


class _Repeat(torch.utils.data.Dataset):
    def __init__(self, img: Image.Image, transform) -> None:
        self.img, self.transform = img, transform

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return v2.functional.pil_to_tensor(self.transform(self.img))


def test_dataloader_workers_draw_different_ops(cifar_images):
    img = Image.fromarray(cifar_images[0].permute(1, 2, 0).numpy())
    aug = PBAugment(only(("Rotate", 0, 10, 9), ("Cutout", 1, 10, 9)), fill=FILL, seed=0)
    loader = torch.utils.data.DataLoader(_Repeat(img, aug), batch_size=4, num_workers=2)
    first, second = list(loader)  # one batch from each worker
    assert not torch.equal(first, second)
