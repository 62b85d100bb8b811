"""`pba apply`: show what a schedule's policy at one epoch does to real images."""

from __future__ import annotations

import argparse
from pathlib import Path

from pba.core.errors import UserError


def add_parser(sub) -> argparse.ArgumentParser:
    from pba.cli.options import add_schedule_arguments

    p = sub.add_parser(
        "apply",
        help="draw a grid of images augmented by a schedule's policy at one epoch",
        description="Apply the policy of one epoch of a schedule to real images and write a PNG "
        "grid: each row is an image, the first column the original, the others independent "
        "augmentations (each image gets its own ops, signs and cutout positions).",
    )
    p.add_argument("--schedule", required=True, type=Path,
                   help="schedule file: pba JSON (schedule.json / a policy) or a PBT policy log")
    add_schedule_arguments(p, log_length="e.g. 200 for the published reduced CIFAR-10 log")
    p.add_argument("--epoch", type=int, default=None,
                   help="epoch whose policy to apply (default: the last epoch)")
    p.add_argument("--images", type=Path, default=None,
                   help="an image file or a folder of images (default: CIFAR-10 test images "
                   "from --data-dir / $PBA_DATA_DIR / ./data)")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset root for the default")
    p.add_argument("--num-images", type=int, default=8, help="rows of the grid (default 8)")
    p.add_argument("--samples", type=int, default=8, help="augmented copies per image")
    p.add_argument("--size", type=int, default=32,
                   help="resize images to SIZE x SIZE first: the magnitudes are in pixels of "
                   "the training resolution (default 32)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from pba.augmentation.schedule import load_schedule
    from pba.augmentation.transforms import CIFAR10_FILL, apply_policy
    from pba.data.image_files import read_images
    from pba.ops import load_op_set
    from pba.reporting.plot import plot_image_grid

    if args.num_images < 1 or args.samples < 1 or args.size < 8:
        raise UserError("--num-images and --samples must be >= 1 and --size >= 8")
    schedule = load_schedule(args.schedule, args.schedule_epochs, load_op_set(args.ops))
    epoch = len(schedule) - 1 if args.epoch is None else args.epoch
    policy = schedule.policy_at(epoch)
    if args.images is not None:
        images, fill = read_images(args.images, args.num_images, args.size), CIFAR10_FILL
    else:
        from pba.data import load_dataset

        data = load_dataset("cifar10", args.data_dir)
        images = data.test.images[: args.num_images].permute(0, 2, 3, 1).numpy()
        fill = data.fill
    generator = torch.Generator().manual_seed(args.seed)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    copies = batch.repeat_interleave(args.samples, dim=0)
    augmented = apply_policy(copies, policy, fill, generator).permute(0, 2, 3, 1).numpy()
    rows = [
        [images[i], *augmented[i * args.samples : (i + 1) * args.samples]]
        for i in range(len(images))
    ]
    # The policy itself is printed below: as a title it would run off the figure.
    labels = [f"original | {args.samples} augmentations, epoch {epoch} of {args.schedule.name}"
              if i == 0 else "" for i in range(len(rows))]
    plot_image_grid(rows, args.out, labels)
    print(f"epoch {epoch}/{len(schedule)}: {policy}")
    print(f"wrote {args.out}")
    return 0
