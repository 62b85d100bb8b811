"""Search speed: the time-multiplexed engine (`LocalEngine`) against the vectorised one.

    python benchmarks/search_speed.py [--repeats 3] [--compile] [--skip-engines|--skip-packing]

Setups: 8 x WRN-10-1 on the CPU, and 16 x WRN-40-2 (the paper's search) on the GPU when CUDA
is present. For each engine: population images/s and seconds per population-epoch (every member
one epoch of real reduced CIFAR-10 images, each member augmenting with its own random policy),
validation images/s, and the projected wall time of the paper preset (200 epochs of 3,968 images
for 16 members, plus 67 evaluations of 46,000 validation images) at the measured rates. The CPU
projection keeps WRN-10-1's rates, so it only compares the engines. Then, on each device, how
the population is packed, one forward and backward: members one after another, grouped
convolutions (contiguous and channels_last), and `torch.func.vmap` over stacked weights.
Figures are medians over --repeats runs, after a warm-up; the runs of the compared variants
alternate, so that a shared machine's changing load hits them alike.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pba import models
from pba.augmentation.policy import MAX_MAGNITUDE, MAX_PROBABILITY, Policy
from pba.core.precision import resolve_precision
from pba.data import DatasetSplits, load_dataset
from pba.models.population import PopulationWRN
from pba.search.local import LocalEngine
from pba.search.vectorized import VectorizedEngine
from pba.training.recipes import Recipe

REPO = Path(__file__).resolve().parents[1]

# The paper preset (docs/algorithm.md §5): 200 epochs of 4,000 images (31 full batches of 128) for
# 16 members, scored on 46,000 validation images every 3 epochs and at the end.
PAPER_EPOCHS = 200
PAPER_IMAGES_PER_EPOCH = 4000 // 128 * 128
PAPER_MEMBERS = 16
PAPER_VAL = 46_000
PAPER_EVALUATIONS = math.ceil(PAPER_EPOCHS / 3)


@dataclass(frozen=True)
class Setup:
    model: str
    population: int
    device: str
    train_size: int
    val_size: int


@dataclass(frozen=True)
class Timing:
    train_rate: float  # population images/s
    epoch_seconds: float  # one epoch of every member
    eval_rate: float  # validation images/s, all members together

    def paper_seconds(self) -> tuple[float, float]:
        """(train, evaluation) seconds of the paper preset at these rates."""
        train = PAPER_EPOCHS * PAPER_IMAGES_PER_EPOCH * PAPER_MEMBERS / self.train_rate
        evaluation = PAPER_EVALUATIONS * PAPER_VAL * PAPER_MEMBERS / self.eval_rate
        return train, evaluation


def random_policies(population: int, seed: int) -> list[Policy]:
    rng = np.random.default_rng(seed)
    caps = np.tile([MAX_PROBABILITY, MAX_MAGNITUDE], 30)
    return [Policy(tuple(rng.integers(0, caps + 1).tolist())) for _ in range(population)]


def interleaved_seconds(
    runs: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None]
) -> dict[str, float]:
    """Median seconds of each run. Rounds alternate between the runs, so that a change in the
    machine's load (a shared machine) hits them alike; one warm-up each first (cuDNN autotuning,
    torch.compile, the allocator)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            sync()
            if round_ > 0:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def time_engines(engines: dict, setup: Setup, repeats: int) -> dict[str, Timing]:
    sync = torch.cuda.synchronize if setup.device == "cuda" else lambda: None
    policies = random_policies(setup.population, seed=0)
    epoch = interleaved_seconds(
        {name: lambda e=e: e.train(policies, 1) for name, e in engines.items()}, repeats, sync)
    evaluation = interleaved_seconds(
        {name: e.evaluate for name, e in engines.items()}, repeats, sync)
    return {
        name: Timing(e.images_per_epoch * setup.population / epoch[name], epoch[name],
                     setup.val_size * setup.population / evaluation[name])
        for name, e in engines.items()
    }


def run_setup(setup: Setup, data_dir: str, repeats: int, compile: bool) -> dict[str, Timing]:
    data = load_dataset("reduced_cifar10", data_dir, train_size=setup.train_size,
                        val_size=setup.val_size)
    # Long enough for the warm-up and the timed epochs; the rate does not depend on the lr. The
    # precision the search would take here (bf16 on GPUs and on CPUs with native bf16).
    recipe = Recipe(epochs=repeats + 1, lr=0.1, weight_decay=5e-4,
                    precision=resolve_precision("auto", torch.device(setup.device)))
    args = (data, setup.model, recipe, setup.population)
    kwargs = {"seed": 0, "device": setup.device}
    engines = {"time-multiplexed": LocalEngine(*args, **kwargs),
               "vectorized": VectorizedEngine(*args, **kwargs, compile=compile)}
    timings = time_engines(engines, setup, repeats)
    print(f"\n{setup.population} x {setup.model} on {describe(setup.device)}: "
          f"{data_images(data)}, median of {repeats}")
    print(f"  {'engine':17s} {'train img/s':>11s} {'s/pop-epoch':>11s} {'val img/s':>10s}"
          f" {'paper preset (train + eval)':>30s}")
    for name, t in timings.items():
        train, evaluation = t.paper_seconds()
        print(f"  {name:17s} {t.train_rate:11.0f} {t.epoch_seconds:11.2f} {t.eval_rate:10.0f}"
              f" {hours(train + evaluation):>12s} ({hours(train)} + {hours(evaluation)})")
    base, vec = timings["time-multiplexed"], timings["vectorized"]
    print(f"  vectorized / time-multiplexed: training {vec.train_rate / base.train_rate:.2f}x, "
          f"evaluation {vec.eval_rate / base.eval_rate:.2f}x")
    return timings


def compare_packing(model: str, population: int, batch: int, device: str, repeats: int) -> None:
    """One forward and backward of `population` members, each on its own batch: the members one
    after another, packed as grouped convolutions (PopulationWRN, both memory formats), and
    vmap over stacked weights. On CUDA in bf16 autocast, as the engines train."""
    torch.manual_seed(0)
    members = [models.build(model, 10).to(device) for _ in range(population)]
    x = torch.randn(population, batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (population, batch), device=device)
    cuda = device == "cuda"

    def grad_of(logits_of: Callable, inputs: torch.Tensor, labels: torch.Tensor,
                params: list[torch.Tensor]) -> None:
        with torch.autocast(device, torch.bfloat16, enabled=cuda):
            logits = logits_of(inputs).float()
        # One mean over every member's images: the timing does not care about the scale.
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        torch.autograd.grad(loss, params)

    def one_by_one() -> None:
        for m, member in enumerate(members):
            grad_of(member, x[m], y[m], list(member.parameters()))

    packed = PopulationWRN(members)
    packed_cl = PopulationWRN(members).to(memory_format=torch.channels_last)
    stacked, buffers = torch.func.stack_module_state(copy.deepcopy(members))
    template = copy.deepcopy(members[0]).to("meta")
    # Stacked buffers are batched too, so BatchNorm updates each member's running statistics.
    vmapped = torch.func.vmap(
        lambda p, b, xs: torch.func.functional_call(template, (p, b), (xs,)))
    steps = {
        "one member at a time": one_by_one,
        "grouped convolutions": lambda: grad_of(packed, x, y, list(packed.parameters())),
        "grouped, channels_last": lambda: grad_of(
            lambda xs: packed_cl(xs, torch.channels_last), x, y, list(packed_cl.parameters())),
        "vmap (torch.func)": lambda: grad_of(lambda xs: vmapped(stacked, buffers, xs), x, y,
                                             list(stacked.values())),
    }
    seconds = interleaved_seconds(steps, repeats, torch.cuda.synchronize if cuda else lambda: None)
    print(f"\npacking {population} x {model} (batch {batch} each) on {describe(device)}, "
          f"forward + backward, median of {repeats}")
    for name, t in seconds.items():
        print(f"  {name:22s} {t * 1000:8.1f} ms  {population * batch / t:7.0f} img/s")


def describe(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({torch.get_num_threads()} threads)"


def data_images(data: DatasetSplits) -> str:
    return f"{len(data.train)} training / {len(data.val)} validation images"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("PBA_DATA_DIR",
                                                             REPO.parent / "shared" / "data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-train-size", type=int, default=1024)
    parser.add_argument("--cpu-val-size", type=int, default=1024)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the vectorised engine (CUDA only)")
    parser.add_argument("--skip-engines", action="store_true")
    parser.add_argument("--skip-packing", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()

    setups = [("cpu", Setup("wrn_10_1", 8, "cpu", args.cpu_train_size, args.cpu_val_size))]
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
        setups.insert(0, ("cuda", Setup("wrn_40_2", 16, "cuda", 4000, 10_000)))
    for device, setup in setups:
        if device == "cpu" and args.skip_cpu:
            continue
        if not args.skip_engines:
            run_setup(setup, args.data_dir, args.repeats, args.compile and device == "cuda")
        if not args.skip_packing:
            compare_packing(setup.model, setup.population, 128, device, args.repeats)

if __name__ == "__main__":
    main()
