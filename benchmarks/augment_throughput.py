"""Images per second of the augmentation paths on the same real 32x32 CIFAR-10 images.

    python benchmarks/augment_throughput.py [--data-dir DIR] [--repeats 5]

Policy: the last epoch of the published reduced CIFAR-10 schedule (a realistic strength).
Paths: per-image Pillow reference (`PBAugment` on PIL images); batched tensor path on one CPU
thread (batch 256); the batched path on CUDA when present (batch 256 and 8192); torchvision's
AutoAugment(CIFAR10) per image. Figures are medians over --repeats runs.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("PBA_DATA_DIR",
                                                             REPO.parent / "shared" / "data"))
    parser.add_argument("--schedule", default=REFERENCE, type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    torch.set_num_threads(1)
    data = load_dataset("cifar10", args.data_dir)
    images = data.test.images[:2048]
    policy = load_schedule(args.schedule, 200).policies[-1]
    fill = data.fill
    pil_images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images[:512]]
    g = torch.Generator().manual_seed(0)

    results = {}
    per_image = PBAugment(policy, fill=fill, seed=0)
    results["Pillow per image (reference)"] = rate(
        lambda: [per_image(img) for img in pil_images],
        len(pil_images), args.repeats)
    batches = images.split(256)
    results["batched, CPU 1 thread, batch 256"] = rate(
        lambda: [apply_policy(b, policy, fill, g) for b in batches], len(images), args.repeats)
    autoaugment = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=list(fill))
    results["torchvision AutoAugment per image (PIL)"] = rate(
        lambda: [autoaugment(img) for img in pil_images], len(pil_images), args.repeats)
    if torch.cuda.is_available():
        gpu_g = torch.Generator("cuda").manual_seed(0)
        big = images.repeat(32, 1, 1, 1).cuda()  # 65,536 images
        for batch in (256, 8192):
            chunks = big.split(batch)
            results[f"batched, CUDA, batch {batch}"] = rate(
                lambda chunks=chunks: [apply_policy(b, policy, fill, gpu_g) for b in chunks],
                len(big), args.repeats, torch.cuda.synchronize)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    print(f"policy: last epoch of {args.schedule.name}; torch {torch.__version__}; {device}")
    for name, value in results.items():
        print(f"{name:<45} {value:>12,.0f} images/s")
    ratio = results["batched, CPU 1 thread, batch 256"] / results["Pillow per image (reference)"]
    print(f"{'batched CPU / Pillow per image':<45} {ratio:>12.1f} x")


if __name__ == "__main__":
    main()
