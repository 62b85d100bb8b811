"""A searched schedule in a torchvision.transforms.v2 pipeline, per sample in the workers or
per batch on the training device.

    python examples/v2_pipeline.py --schedule runs/quick/schedule.json --data cifar10
    python examples/v2_pipeline.py --smoke                 # random images, a few batches
    python examples/v2_pipeline.py --smoke --batched       # BatchPBAugment on the device

Per sample, PBAugment is one v2 transform among others: it takes the whole (image, label)
sample, augments the image (PIL, tv_tensors.Image or tensor; its type is kept) and passes the
label through. Per batch (--batched), BatchPBAugment is an nn.Module in front of the network,
each image its own ops, on the GPU when there is one; in eval mode it passes images through.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from pba import BatchPBAugment, PBAugment, Policy, Schedule, explore, load_schedule
from pba.data.formats import read_cifar10

FILL = (125, 123, 114)


class Samples(Dataset):
    """Applies a v2 transform to whole (image, label) samples, as v2 datasets do."""

    def __init__(self, images, transforms: v2.Transform) -> None:
        self.images, self.transforms = images, transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transforms(*self.images[i])


def the_schedule(path: Path | None, seed: int) -> Schedule:
    if path is not None:
        return load_schedule(path)
    rng, policy, policies = np.random.default_rng(seed), Policy.zeros(), []
    for _ in range(8):  # a stand-in for pba search's schedule.json, saved and read back
        policies.append(policy := explore(policy, rng))
    with tempfile.TemporaryDirectory() as folder:
        Schedule(tuple(policies)).save(Path(folder) / "schedule.json")
        return load_schedule(Path(folder) / "schedule.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", type=Path)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--data", choices=("fake", "cifar10"), default="fake")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--batched", action="store_true", help="augment batches on the device")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="2 epochs of 2 small batches")
    args = parser.parse_args()
    size, batch_size = (32, 16) if args.smoke else (50000, 128)
    epochs = 2 if args.smoke else args.epochs
    if args.data == "cifar10":  # pba's reader: never downloads
        train, _ = read_cifar10(Path(args.data_dir), download=False)
        images = [(Image.fromarray(img.permute(1, 2, 0).numpy()), int(label))
                  for img, label in zip(train.images[:size], train.labels[:size], strict=True)]
    else:
        images = torchvision.datasets.FakeData(size, (3, 32, 32), 10, random_offset=args.seed)

    schedule = the_schedule(args.schedule, args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    to_float = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                           v2.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
    if args.batched:
        aug = BatchPBAugment(schedule, epochs=epochs, fill=FILL, seed=args.seed)
        per_sample = v2.Compose([v2.ToImage(), v2.RandomHorizontalFlip()])
        front = nn.Sequential(aug, to_float)  # uint8 batches in, on the device
    else:
        aug = PBAugment(schedule, epochs=epochs, fill=FILL, seed=args.seed)
        per_sample = v2.Compose([v2.ToImage(), aug, v2.RandomHorizontalFlip(), to_float])
        front = nn.Identity()
    loader = DataLoader(Samples(images, per_sample), batch_size=batch_size, shuffle=True,
                        num_workers=args.workers, persistent_workers=args.workers > 0)
    net = nn.Sequential(front, torchvision.models.resnet18(num_classes=10)).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    print(f"{'BatchPBAugment on ' + str(device) if args.batched else 'PBAugment per sample'}"
          f", schedule sha256 {schedule.content_hash()[:12]}")

    for epoch in range(epochs):
        aug.set_epoch(epoch)  # reaches the persistent workers too
        net.train()
        for step, (batch, labels) in enumerate(loader):
            loss = nn.functional.cross_entropy(net(batch.to(device)), labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if args.smoke and step == 1:
                break
        net.eval()  # BatchPBAugment passes evaluation images through
        with torch.no_grad():
            accuracy = (net(batch.to(device)).argmax(1) == labels.to(device)).float().mean()
        print(f"epoch {epoch}: loss {loss.item():.3f}, accuracy on the last batch "
              f"{accuracy.item():.2f}")


if __name__ == "__main__":
    main()
