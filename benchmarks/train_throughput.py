"""Training throughput of `pba.training.loop.train`, fp32 beside bf16: images/s, augmentation
included.

    python benchmarks/train_throughput.py                      # CPU, and CUDA when available
    python benchmarks/train_throughput.py --devices cpu --models wrn_10_1 wrn_40_2
    python benchmarks/train_throughput.py --devices cpu --parallel 2    # also 2 x 1 thread

Each measurement is epochs of `train` over random uint8 32x32 images with the 'pba'
augmentation (every op at probability 0.5, magnitude 5: busier than most of a real schedule)
followed by crop/flip and Cutout, as `pba train` runs it, in each precision: fp32, and bf16
autocast with channels_last (`pba.core.precision`; on a CPU only where it has native bf16, which the
header says). One warm-up epoch first (allocator, oneDNN/cuDNN kernel choice), then the median
of --repeats epochs; the precisions alternate epoch by epoch so that a changing load hits them
alike. With --parallel N the CPU rates are measured again with N models training at once, one
torch thread each (`pba.core.parallel`; their sum is printed): how the local search engine and
`pba demo` train small models on a CPU.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from pba.augmentation.policy import Policy
from pba.core.parallel import map_parallel
from pba.core.precision import cpu_has_native_bf16, device_has_native_bf16
from pba.data import DatasetSplits, ImageSet
from pba.data.datasets import default_baseline
from pba.training.augment import make_augment
from pba.training.loop import init_state, train
from pba.training.recipes import Recipe

CIFAR10_MEAN = (0.49139968, 0.48215841, 0.44653091)
CIFAR10_STD = (0.24703223, 0.24348513, 0.26158784)


def synthetic_cifar(n: int, seed: int = 0) -> DatasetSplits:
    generator = torch.Generator().manual_seed(seed)
    images = ImageSet(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator),
        torch.randint(0, 10, (n,), generator=generator),
    )
    return DatasetSplits(name="synthetic", train=images, val=None, test=images, num_classes=10,
                         mean=CIFAR10_MEAN, std=CIFAR10_STD, baseline=default_baseline("cifar10"))


def images_per_second(
    model: str, device: str, precisions: list[str], batch: int, steps: int, repeats: int
) -> dict[str, float]:
    """Median images/s of each precision, the precisions' epochs interleaved."""
    data = synthetic_cifar(batch * steps)
    train_set = data.train.to(device)
    runs = {}
    for precision in precisions:
        recipe = Recipe(epochs=1 + repeats, lr=0.1, weight_decay=5e-4, batch_size=batch,
                        precision=precision)
        augment = make_augment("pba", data, recipe, schedule=Policy((5, 5) * 30))
        state = init_state(model, data.num_classes, recipe, seed=0, device=device)
        runs[precision] = (state, recipe, augment, [])
    for _ in range(1 + repeats):
        for state, recipe, augment, rates in runs.values():
            _, (metrics,) = train(state, train_set, 1, augment, recipe, mean=data.mean,
                                  std=data.std)
            rates.append(metrics["images_per_s"])
    return {p: statistics.median(rates[1:]) for p, (*_, rates) in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["wrn_10_1", "wrn_10_2", "wrn_16_2",
                                                        "wrn_40_2"])
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"),
                        default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per measurement")
    parser.add_argument("--cpu-batch", type=int, default=128)
    parser.add_argument("--cpu-steps", type=int, default=4, help="batches per CPU epoch")
    parser.add_argument("--cuda-batch", type=int, default=128)
    parser.add_argument("--cuda-steps", type=int, default=50, help="batches per CUDA epoch")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--parallel", type=int, default=0,
                        help="also measure N CPU models training at once, one thread each")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CPU native bf16 "
          f"(AVX512-BF16 or AMX): {'yes' if cpu_has_native_bf16() else 'no'}"
          + (f", {torch.cuda.get_device_name()}" if "cuda" in args.devices else ""))
    print(f"{'device':<7} {'model':<10} {'batch':>5} {'fp32 img/s':>11} {'bf16 img/s':>11} "
          f"{'bf16/fp32':>9}")
    for device in args.devices:
        batch, steps = (args.cpu_batch, args.cpu_steps) if device == "cpu" else (
            args.cuda_batch, args.cuda_steps)
        precisions = ["fp32"]
        if device_has_native_bf16(torch.device(device)):
            precisions.append("bf16")
        for model in args.models:
            rates = images_per_second(model, device, precisions, batch, steps, args.repeats)
            _print_row(device, model, batch, rates)
    if args.parallel and "cpu" in args.devices:
        n = args.parallel
        precisions = ["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"]
        for model in args.models:
            results = map_parallel(
                lambda _, model=model: images_per_second(model, "cpu", precisions,
                                                         args.cpu_batch,
                                                         args.cpu_steps, args.repeats),
                range(n), n)
            rates = {p: sum(r[p] for r in results) for p in precisions}
            _print_row(f"cpu {n}x1", model, args.cpu_batch, rates)


def _print_row(device: str, model: str, batch: int, rates: dict[str, float]) -> None:
    fp32, bf16 = rates["fp32"], rates.get("bf16")
    bf16_text, ratio = ("-", "-") if bf16 is None else (f"{bf16:.0f}", f"{bf16 / fp32:.2f}x")
    print(f"{device:<7} {model:<10} {batch:>5} {fp32:>11.0f} {bf16_text:>11} {ratio:>9}",
          flush=True)


if __name__ == "__main__":
    main()
