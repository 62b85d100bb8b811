"""A searched schedule in a plain PyTorch training loop.

    python examples/train_loop.py --schedule runs/quick/schedule.json --epochs 200 \
        --data cifar10 --data-dir ../shared/data
    python examples/train_loop.py --smoke          # a few batches of random images

What it shows: PBAugment in the Dataset's transform, DataLoader workers that persist across
epochs, `set_epoch` before each epoch's iterator (it reaches the workers), resuming at an epoch
(`--start-epoch`: epoch k draws what an uninterrupted run would), mixed precision on a GPU and
fp32 on a CPU. Without --schedule it saves a small schedule of its own first, as a search would.
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
from torchvision.transforms import v2

from pba import PBAugment, Policy, Schedule, explore, load_schedule
from pba.data.formats import read_cifar10

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
FILL = (125, 123, 114)  # the mean colour: 0 after normalisation


def small_schedule(path: Path, epochs: int, seed: int) -> Path:
    """A stand-in for `pba search`'s schedule.json: policies that grow over the epochs."""
    rng, policy, policies = np.random.default_rng(seed), Policy.zeros(), []
    for _ in range(epochs):
        policy = explore(policy, rng)
        policies.append(policy)
    Schedule(tuple(policies)).save(path)
    return path


class Cifar10(torch.utils.data.Dataset):
    """CIFAR-10's training images under --data-dir as (PIL image, label), read by pba's reader
    (never downloads; torchvision's CIFAR10 refuses copies whose checksums differ)."""

    def __init__(self, root: str, size: int | None, transform) -> None:
        train, _ = read_cifar10(Path(root), download=False)
        self.images, self.labels = train.images[:size], train.labels[:size].tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = Image.fromarray(self.images[i].permute(1, 2, 0).numpy())
        return self.transform(image), self.labels[i]


def dataset(args: argparse.Namespace, transform) -> torch.utils.data.Dataset:
    if args.data == "cifar10":
        return Cifar10(args.data_dir, args.size if args.smoke else None, transform)
    return torchvision.datasets.FakeData(args.size, (3, 32, 32), 10, transform=transform,
                                         random_offset=args.seed)


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", type=Path, help="a schedule.json (default: make one)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--start-epoch", type=int, default=0, help="resume at this epoch")
    parser.add_argument("--data", choices=("fake", "cifar10"), default="fake")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--size", type=int, default=5000, help="images of --data fake")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="2 epochs of 3 small batches")
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.size, args.batch_size = 2, 48, 16
    torch.manual_seed(args.seed)
    if args.schedule is None:
        with tempfile.TemporaryDirectory() as folder:
            schedule = load_schedule(small_schedule(Path(folder) / "schedule.json", 10,
                                                    args.seed))
    else:  # the file refuses to load under another op set than it was searched with
        schedule = load_schedule(args.schedule)
    # Stretched to this run's epochs; the seed makes every epoch's draws replayable.
    aug = PBAugment(schedule, epochs=args.epochs, fill=FILL, seed=args.seed)
    transform = v2.Compose([aug, v2.RandomCrop(32, padding=4, fill=FILL),
                            v2.RandomHorizontalFlip(), v2.ToImage(),
                            v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    loader = torch.utils.data.DataLoader(
        dataset(args, transform), batch_size=args.batch_size, shuffle=True,
        num_workers=args.workers, persistent_workers=args.workers > 0, drop_last=True,
        generator=torch.Generator().manual_seed(args.seed))

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = device.type == "cuda"  # float16 autocast on a GPU, fp32 on a CPU
    net = model().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    print(f"schedule {args.schedule or 'made here'} ({len(schedule)} epochs, sha256 "
          f"{schedule.content_hash()[:12]}), stretched to {args.epochs}; {device}, "
          f"{'float16 autocast' if amp else 'fp32'}")

    for epoch in range(args.start_epoch, args.epochs):
        aug.set_epoch(epoch)  # before the epoch's iterator: the workers read it from here
        net.train()
        total, seen = 0.0, 0
        for step, (images, labels) in enumerate(loader):
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = nn.functional.cross_entropy(net(images), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total, seen = total + loss.item() * len(labels), seen + len(labels)
            if args.smoke and step == 2:
                break
        print(f"epoch {epoch}: policy strength {aug.policy.strength:.1f}, "
              f"training loss {total / seen:.3f}")


if __name__ == "__main__":
    main()
