"""A schedule in a user's own training loop: `set_epoch` reaching DataLoader workers
(persistent or not, forked or spawned), resuming at an epoch, torchvision v2 samples, and
BatchPBAugment as an nn.Module."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from pba.augmentation.policy import Policy
from pba.augmentation.schedule import Schedule
from pba.augmentation.transforms import BatchPBAugment, PBAugment
from pba.core.errors import PBAError

FILL = (125, 123, 114)
INVERT = Policy.zeros().replace("Invert", 0, probability=10)
# Every image that draws an op changes, each differently: replays that match are not luck.
BUSY = (Policy.zeros().replace("Rotate", 0, probability=10, magnitude=9)
        .replace("Cutout", 1, probability=10, magnitude=5)
        .replace("TranslateX", 0, probability=5, magnitude=7))


class Samples(Dataset):
    """(augmented uint8 image, label) pairs of fixed images, through a v2 pipeline."""

    def __init__(self, images: torch.Tensor, transform, pil: bool = True) -> None:
        self.images, self.transform, self.pil = images, transform, pil

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = self.images[i]
        sample = (Image.fromarray(img.permute(1, 2, 0).numpy()) if self.pil else img, i)
        out, label = self.transform(sample)
        return v2.functional.pil_to_tensor(out) if self.pil else out, label


class Batches(Dataset):
    """Whole batches augmented in the worker by a BatchPBAugment."""

    def __init__(self, images: torch.Tensor, aug: BatchPBAugment) -> None:
        self.images, self.aug = images, aug

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.aug(self.images[4 * i: 4 * i + 4])


def inverted_or_not(out: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per image: 1 inverted, 0 unchanged; fails on anything else."""
    inverted = (out == 255 - images).flatten(1).all(1)
    unchanged = (out == images).flatten(1).all(1)
    assert (inverted | unchanged).all()
    return inverted


def epochs_through(loader: DataLoader, aug: PBAugment, epochs: range) -> list[torch.Tensor]:
    outs = []
    for epoch in epochs:
        aug.set_epoch(epoch)
        outs.append(torch.cat([batch[0] if isinstance(batch, list) else batch
                               for batch in loader]))
    return outs


@pytest.mark.parametrize("kind", ["per-image", "batch"])
@pytest.mark.parametrize("persistent", [True, False])
def test_set_epoch_reaches_dataloader_workers(cifar_images, persistent, kind):
    # Epochs 0 and 2 apply nothing, epoch 1 inverts: workers that kept epoch 0's policy (a
    # copy of the transform that never hears of set_epoch) would leave epoch 1 unchanged.
    images = cifar_images[:16]
    schedule = Schedule((Policy.zeros(), INVERT, Policy.zeros()))
    if kind == "batch":
        aug = BatchPBAugment(schedule, fill=FILL, seed=0)
        dataset = Batches(images, aug)
    else:
        aug = PBAugment(schedule, fill=FILL, seed=0)
        dataset = Samples(images, aug)
    loader = DataLoader(dataset, batch_size=4 if kind == "per-image" else None, num_workers=2,
                        persistent_workers=persistent)
    first, second, third = epochs_through(loader, aug, range(3))
    assert torch.equal(first, images) and torch.equal(third, images)
    assert inverted_or_not(second, images).sum() >= 8  # 80% of images draw an op


def test_set_epoch_reaches_spawned_persistent_workers(cifar_images):
    images = cifar_images[:8]
    aug = PBAugment(Schedule((Policy.zeros(), INVERT)), fill=FILL, seed=0)
    # One worker: a spawned worker imports torch afresh, seconds on a busy core.
    loader = DataLoader(Samples(images, aug), batch_size=4, num_workers=1,
                        persistent_workers=True, multiprocessing_context="spawn")
    first, second = epochs_through(loader, aug, range(2))
    assert torch.equal(first, images)
    assert inverted_or_not(second, images).sum() >= 4


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_resumed_at_an_epoch_draws_what_an_uninterrupted_run_would(cifar_images, workers):
    images = cifar_images[:16]
    schedule = Schedule((BUSY,) * 3)

    def loader_for(aug: PBAugment) -> DataLoader:
        return DataLoader(Samples(images, aug, pil=False), batch_size=4, num_workers=workers,
                          persistent_workers=workers > 0)

    aug = PBAugment(schedule, fill=FILL, seed=5)
    uninterrupted = epochs_through(loader_for(aug), aug, range(3))
    resumed_aug = PBAugment(schedule, fill=FILL, seed=5)
    resumed = epochs_through(loader_for(resumed_aug), resumed_aug, range(2, 3))
    assert torch.equal(resumed[0], uninterrupted[2])
    assert not torch.equal(uninterrupted[1], uninterrupted[2])  # each epoch its own draws
    other = PBAugment(schedule, fill=FILL, seed=6)
    assert not torch.equal(epochs_through(loader_for(other), other, range(2, 3))[0], resumed[0])


def test_after_set_epoch_each_worker_still_draws_its_own_ops(cifar_images):
    same = cifar_images[:1].repeat(8, 1, 1, 1)
    aug = PBAugment(BUSY, fill=FILL, seed=0)
    aug.set_epoch(0)
    loader = DataLoader(Samples(same, aug, pil=False), batch_size=4, num_workers=2)
    first, second = (images for images, _ in loader)  # one batch from each worker
    assert not torch.equal(first, second)


def test_setting_the_same_epoch_again_replays_it(cifar_images):
    aug = BatchPBAugment(Schedule((BUSY,) * 4), fill=FILL, seed=1)
    aug.set_epoch(3)
    once = aug(cifar_images[:32])
    assert not torch.equal(aug(cifar_images[:32]), once)  # within an epoch, draws go on
    aug.set_epoch(3)
    assert torch.equal(aug(cifar_images[:32]), once)
    with pytest.raises(PBAError, match="an epoch is an integer 0 or more, got -1"):
        PBAugment(BUSY, seed=0).set_epoch(-1)


# torchvision v2 samples


def pil_of(img: torch.Tensor) -> Image.Image:
    return Image.fromarray(img.permute(1, 2, 0).numpy())


def as_tensor(out) -> torch.Tensor:
    if isinstance(out, Image.Image):
        return v2.functional.pil_to_tensor(out)
    return (out * 255).round().to(torch.uint8) if out.is_floating_point() else out


IMAGE_KINDS = {
    "PIL": pil_of,
    "tv_tensors.Image": lambda t: tv_tensors.Image(t),
    "uint8 tensor": lambda t: t.clone(),
    "float tensor": lambda t: t.float() / 255,
}


@pytest.mark.parametrize("kind", list(IMAGE_KINDS))
def test_v2_samples_augment_the_image_and_pass_the_rest_through(cifar_images, kind):
    img = cifar_images[0]
    make = IMAGE_KINDS[kind]
    alone = [as_tensor(PBAugment(BUSY, fill=FILL, seed=s)(make(img))) for s in range(6)]
    assert len({tuple(a.flatten().tolist()) for a in alone}) > 2  # the seeds draw differently
    label, box_label = torch.tensor(3), {"id": "img-0", "scores": torch.arange(4.0)}
    for seed, expected in enumerate(alone):
        samples = {
            "tuple": lambda aug: aug((make(img), 3)),
            "two arguments": lambda aug: aug(make(img), label),
            "dict": lambda aug: aug({"image": make(img), "label": 3, "meta": box_label}),
            "list": lambda aug: aug([make(img), label]),
        }
        for name, run in samples.items():
            out = run(PBAugment(BUSY, fill=FILL, seed=seed))
            image = out["image"] if isinstance(out, dict) else out[0]
            assert type(image) is type(make(img)), (name, type(image))
            if isinstance(image, torch.Tensor):
                assert image.dtype == make(img).dtype and image.shape == img.shape
            assert torch.equal(as_tensor(image), expected), name  # the same draws as alone
            if isinstance(out, dict):
                assert out["label"] == 3 and out["meta"]["id"] == "img-0"
                assert out["meta"]["scores"] is box_label["scores"]
            elif name == "tuple":
                assert out[1] == 3
            else:
                assert out[1] is label


def test_in_v2_compose_with_to_image_and_a_label(cifar_images):
    # The sample of a torchvision dataset with a v2 pipeline: (PIL image, int label).
    aug = PBAugment(INVERT, fill=FILL, seed=0)
    pipeline = v2.Compose([v2.ToImage(), aug, v2.ToDtype(torch.float32, scale=True)])
    outs = [pipeline(pil_of(cifar_images[i]), i) for i in range(16)]
    assert all(isinstance(o[0], tv_tensors.Image) and o[0].dtype == torch.float32 for o in outs)
    assert [o[1] for o in outs] == list(range(16))
    result = torch.stack([as_tensor(o[0].as_subclass(torch.Tensor)) for o in outs])
    assert inverted_or_not(result, cifar_images[:16]).sum() >= 8


def test_every_image_of_one_sample_gets_the_same_ops(cifar_images):
    img = cifar_images[1]
    for seed in range(5):
        first, second, label = PBAugment(INVERT, fill=FILL, seed=seed)(
            tv_tensors.Image(img), tv_tensors.Image(img), 7)
        assert torch.equal(first, second) and label == 7


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ((torch.zeros(3, 8, 8, dtype=torch.uint8).numpy(), 1), "PIL image or a \\(C, H, W\\)"),
        ((tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8)),
          tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(8, 8))),
         "augments images only; the sample holds BoundingBoxes"),
        ((tv_tensors.Image(torch.zeros(3, 8, 8, dtype=torch.uint8)),
          tv_tensors.Mask(torch.zeros(8, 8))), "holds Mask"),
        (tv_tensors.Image(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)), "use BatchPBAugment"),
    ],
)
def test_samples_it_cannot_augment_are_clear_errors(sample, message):
    with pytest.raises(PBAError, match=message) as info:
        PBAugment(INVERT, seed=0)(sample)
    assert "\n" not in str(info.value)


def test_batch_pbaugment_is_a_module_for_the_gpu_side_of_a_step(cifar_images):
    images = cifar_images[:64]
    aug = BatchPBAugment(INVERT, fill=FILL, seed=2)
    assert isinstance(aug, nn.Module)
    to_float = v2.ToDtype(torch.float32, scale=True)
    model = nn.Sequential(aug, to_float).to("cpu")
    out = model(images)
    expected = BatchPBAugment(INVERT, fill=FILL, seed=2)(images)
    assert torch.equal(as_tensor(out), expected)
    assert inverted_or_not(expected, images).sum() > 32
    model.eval()  # evaluation sees the images as they are
    assert torch.equal(model(images), to_float(images))
    # A (images, labels) batch sample, and tv_tensors kept.
    labels = torch.arange(64)
    batch, kept = BatchPBAugment(INVERT, fill=FILL, seed=2)((tv_tensors.Image(images), labels))
    assert isinstance(batch, tv_tensors.Image) and kept is labels
    assert torch.equal(batch.as_subclass(torch.Tensor), expected)
    with pytest.raises(PBAError, match="takes tensors"):
        aug.train()(pil_of(images[0]))
