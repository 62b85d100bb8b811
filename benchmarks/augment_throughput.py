"""Images per second of the augmentation paths on the same real 32x32 CIFAR-10 images.

    python benchmarks/augment_throughput.py [--data-dir DIR] [--repeats 15] [--images 8192]

Policy: the last epoch of the published reduced CIFAR-10 schedule (a realistic strength).
Paths: per-image Pillow reference (`PBAugment` on PIL images); batched tensor path on one CPU
thread (batch 256, each image its own ops), grouped (the CPU's default) and sync-free; the
batched path on CUDA when present (batch 256 and 8192, sync-free and grouped); torchvision's
AutoAugment(CIFAR10) per PIL image, and on batches of 256 (where it gives the whole batch one
op). Figures are medians over --repeats rounds in which the paths take turns.
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import v2

from pba.augmentation.policy import Policy
from pba.augmentation.schedule import load_schedule
from pba.augmentation.transforms import PBAugment, apply_policy
from pba.data import load_dataset
from search_speed import interleaved_seconds  # the sibling script

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "rcifar10_16_wrn.txt"


def rates(paths: dict[str, tuple[Callable[[], object], int]], repeats: int,
          sync: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Median images/s of each path (a function and the images it processes), the paths taking
    turns (`search_speed.interleaved_seconds`) so that their ratios hold within the run."""
    seconds = interleaved_seconds({name: fn for name, (fn, _) in paths.items()}, repeats, sync)
    return {name: n / seconds[name] for name, (_, n) in paths.items()}


OURS = "pba batched per sample, CPU, batch 256"
TV_BATCH = "torchvision AutoAugment, batch 256 (one op a batch)"


def measure(images: torch.Tensor, policy: Policy, fill: tuple[int, int, int], repeats: int,
            cuda_batches: tuple[int, ...] = (256, 8192), threads: int = 1) -> dict[str, float]:
    """Images/s of each path on `images` (uint8, N x 3 x 32 x 32), on `threads` CPU threads;
    the CUDA paths (when there is a device) both ways, sync-free (their default) and grouped."""
    torch.set_num_threads(threads)
    # torchvision draws its sub-policies from the global generator: seeded, every run times
    # the same draws (15 x 32 of them at the defaults) and the ratios vary with the machine only.
    torch.manual_seed(0)
    pil_images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images[:512]]
    g = torch.Generator().manual_seed(0)
    per_image = PBAugment(policy, fill=fill, seed=0)
    batches = images.split(256)
    autoaugment = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=list(fill))
    results = rates({
        "pba Pillow, per image (reference)":
            (lambda: [per_image(img) for img in pil_images], len(pil_images)),
        OURS: (lambda: [apply_policy(b, policy, fill, g) for b in batches], len(images)),
        f"{OURS}, sync-free": (
            lambda: [apply_policy(b, policy, fill, g, sync_free=True) for b in batches],
            len(images)),
        "torchvision AutoAugment, per PIL image":
            (lambda: [autoaugment(img) for img in pil_images], len(pil_images)),
        # torchvision draws one op for a whole batch tensor: far less work than one per image.
        TV_BATCH: (lambda: [autoaugment(b) for b in batches], len(images)),
    }, repeats)
    if torch.cuda.is_available() and cuda_batches:
        gpu_g = torch.Generator("cuda").manual_seed(0)
        big = images.repeat(max(1, 65_536 // len(images)), 1, 1, 1).cuda()
        cuda_paths = {}
        for batch, sync_free in itertools.product(cuda_batches, (True, False)):
            chunks = big.split(batch)
            cuda_paths[f"pba batched per sample, CUDA, batch {batch}"
                       f"{'' if sync_free else ', grouped'}"] = (
                lambda chunks=chunks, sync_free=sync_free: [
                    apply_policy(b, policy, fill, gpu_g, sync_free=sync_free) for b in chunks],
                len(big))
        results |= rates(cuda_paths, repeats, torch.cuda.synchronize)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("PBA_DATA_DIR",
                                                             REPO.parent / "shared" / "data"))
    parser.add_argument("--schedule", default=REFERENCE, type=Path)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--images", type=int, default=8192,
                        help="CIFAR-10 test images (32 batches: torchvision draws an op a batch)")
    args = parser.parse_args()

    data = load_dataset("cifar10", args.data_dir)
    policy = load_schedule(args.schedule, 200).policies[-1]
    results = measure(data.test.images[: args.images], policy, data.fill, args.repeats)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"policy: last epoch of {args.schedule.name}; torch {torch.__version__}; {device}; "
          "CPU paths on 1 thread")
    for name, value in results.items():
        print(f"{name:<52} {value:>12,.0f} images/s")
    ours = results[OURS]
    for other in ("pba Pillow, per image (reference)",
                  "torchvision AutoAugment, per PIL image",
                  TV_BATCH):
        print(f"pba batched per sample, CPU / {other}: {ours / results[other]:.2f}x")


if __name__ == "__main__":
    main()
