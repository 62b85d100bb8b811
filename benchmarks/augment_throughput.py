"""Images per second of the augmentation paths on the same real 32x32 CIFAR-10 images.

    python benchmarks/augment_throughput.py [--data-dir DIR] [--repeats 5]

Policy: the last epoch of the published reduced CIFAR-10 schedule (a realistic strength).
Paths: per-image Pillow reference (`PBAugment` on PIL images); batched tensor path on one CPU
thread (batch 256, each image its own ops); the batched path on CUDA when present (batch 256
and 8192); torchvision's AutoAugment(CIFAR10) per PIL image, and on batches of 256 (where it
gives the whole batch one op). Figures are medians over --repeats runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import v2

from pba.data import load_dataset
from pba.policy import Policy
from pba.schedule import load_schedule
from pba.transforms import PBAugment, apply_policy

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "rcifar10_16_wrn.txt"


def rate(fn, n_images: int, repeats: int, sync=lambda: None) -> float:
    """Median images/s of `fn` (which processes n_images) over `repeats` timed runs."""
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return n_images / statistics.median(times)


def measure(images: torch.Tensor, policy: Policy, fill: tuple[int, int, int], repeats: int,
            cuda_batches: tuple[int, ...] = (256, 8192), threads: int = 1) -> dict[str, float]:
    """Images/s of each path on `images` (uint8, N x 3 x 32 x 32), on `threads` CPU threads."""
    torch.set_num_threads(threads)
    pil_images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images[:512]]
    g = torch.Generator().manual_seed(0)
    results = {}
    per_image = PBAugment(policy, fill=fill, seed=0)
    results["pba Pillow, per image (reference)"] = rate(
        lambda: [per_image(img) for img in pil_images], len(pil_images), repeats)
    batches = images.split(256)
    results["pba batched per sample, CPU, batch 256"] = rate(
        lambda: [apply_policy(b, policy, fill, g) for b in batches], len(images), repeats)
    autoaugment = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=list(fill))
    results["torchvision AutoAugment, per PIL image"] = rate(
        lambda: [autoaugment(img) for img in pil_images], len(pil_images), repeats)
    # torchvision draws one op for a whole batch tensor: far less work than one per image.
    results["torchvision AutoAugment, batch 256 (one op a batch)"] = rate(
        lambda: [autoaugment(b) for b in batches], len(images), repeats)
    if torch.cuda.is_available():
        gpu_g = torch.Generator("cuda").manual_seed(0)
        big = images.repeat(max(1, 65_536 // len(images)), 1, 1, 1).cuda()
        for batch in cuda_batches:
            chunks = big.split(batch)
            results[f"pba batched per sample, CUDA, batch {batch}"] = rate(
                lambda chunks=chunks: [apply_policy(b, policy, fill, gpu_g) for b in chunks],
                len(big), repeats, torch.cuda.synchronize)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("PBA_DATA_DIR",
                                                             REPO.parent / "shared" / "data"))
    parser.add_argument("--schedule", default=REFERENCE, type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=2048, help="CIFAR-10 test images")
    args = parser.parse_args()

    data = load_dataset("cifar10", args.data_dir)
    policy = load_schedule(args.schedule, 200).policies[-1]
    results = measure(data.test.images[: args.images], policy, data.fill, args.repeats)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"policy: last epoch of {args.schedule.name}; torch {torch.__version__}; {device}; "
          "CPU paths on 1 thread")
    for name, value in results.items():
        print(f"{name:<52} {value:>12,.0f} images/s")
    ours = results["pba batched per sample, CPU, batch 256"]
    for other in ("pba Pillow, per image (reference)",
                  "torchvision AutoAugment, per PIL image",
                  "torchvision AutoAugment, batch 256 (one op a batch)"):
        print(f"pba batched per sample, CPU / {other}: {ours / results[other]:.2f}x")


if __name__ == "__main__":
    main()
