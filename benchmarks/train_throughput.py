"""Training throughput of `pba.train.train`: images/s, augmentation included.

    python benchmarks/train_throughput.py                      # CPU, and CUDA when available
    python benchmarks/train_throughput.py --devices cpu --models wrn_10_1 wrn_40_2

Each measurement is one epoch of `train` over random uint8 32x32 images with the 'pba'
augmentation (every op at probability 0.5, magnitude 5: busier than most of a real schedule)
followed by crop/flip and Cutout, as `pba train` runs it: float32 on the CPU, bf16 autocast and
channels_last on CUDA. One warm-up epoch first (allocator, cuDNN autotuning), then the median of
--repeats epochs. CPU epochs are a few small batches, enough for a rate: WRN-28-10 needs about
30 GFLOP per training image.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from pba.data import DatasetSplits, ImageSet
from pba.policy import Policy
from pba.train import Recipe, init_state, make_augment, train

CIFAR10_MEAN = (0.49139968, 0.48215841, 0.44653091)
CIFAR10_STD = (0.24703223, 0.24348513, 0.26158784)


def synthetic_cifar(n: int, seed: int = 0) -> DatasetSplits:
    generator = torch.Generator().manual_seed(seed)
    images = ImageSet(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator),
        torch.randint(0, 10, (n,), generator=generator),
    )
    return DatasetSplits(name="synthetic", train=images, val=None, test=images, num_classes=10,
                         mean=CIFAR10_MEAN, std=CIFAR10_STD, crop_flip=True, cutout_size=16)


def images_per_second(model: str, device: str, batch: int, steps: int, repeats: int) -> float:
    data = synthetic_cifar(batch * steps)
    recipe = Recipe(epochs=1 + repeats, lr=0.1, weight_decay=5e-4, batch_size=batch)
    augment = make_augment("pba", data, recipe, schedule=Policy((5, 5) * 30))
    state = init_state(model, data.num_classes, recipe, seed=0, device=device)
    train_set = ImageSet(data.train.images.to(device), data.train.labels.to(device))
    state, metrics = train(state, train_set, 1 + repeats, augment, recipe,
                           mean=data.mean, std=data.std)
    return statistics.median(m["images_per_s"] for m in metrics[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["wrn_10_1", "wrn_40_2", "wrn_28_10"])
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"),
                        default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per measurement")
    parser.add_argument("--cpu-batch", type=int, default=32)
    parser.add_argument("--cpu-steps", type=int, default=2, help="batches per CPU epoch")
    parser.add_argument("--cuda-batch", type=int, default=128)
    parser.add_argument("--cuda-steps", type=int, default=50, help="batches per CUDA epoch")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if "cuda" in args.devices else ""))
    print(f"{'device':<7} {'model':<12} {'batch':>5} {'images/s':>10}")
    for device in args.devices:
        batch, steps = (args.cpu_batch, args.cpu_steps) if device == "cpu" else (
            args.cuda_batch, args.cuda_steps)
        for model in args.models:
            rate = images_per_second(model, device, batch, steps, args.repeats)
            print(f"{device:<7} {model:<12} {batch:>5} {rate:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
