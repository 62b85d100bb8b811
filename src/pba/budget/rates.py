"""How fast this device trains and scores a model (`measure_rates`): what the planner's
predictions (`pba.budget.regime`) are made of."""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass

import torch

from pba.augmentation.baseline import PARTS, Baseline
from pba.augmentation.policy import SLOTS, Policy
from pba.core.parallel import map_parallel
from pba.data import DatasetSplits, ImageSet
from pba.ops.registry import DEFAULT_OPS
from pba.training.augment import make_augment
from pba.training.loop import evaluate, init_state, train
from pba.training.recipes import Recipe

MEASURE_STEPS = 8
EVAL_IMAGES = 1024


@dataclass(frozen=True)
class Rates:
    """How fast one model trains and scores on this device, `workers` models at once."""

    model: str
    image_size: tuple[int, int]
    workers: int
    train: float  # images/s of one model, augmentation included
    evaluate: float  # images/s of one model, forward only

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def measure_rates(
    model: str, *, image_size: tuple[int, int], num_classes: int, batch_size: int,
    device: torch.device, precision: str, workers: int, steps: int = MEASURE_STEPS,
) -> Rates:
    """Train `workers` fresh `model`s at once for 2 + `steps` batches of random images (a
    PBA policy and the CIFAR baseline on them, as a search member trains) and take the median
    step of the last `steps` (a step stalled by another process does not count); then time
    scoring EVAL_IMAGES images twice (in `pba.training.loop.evaluate`'s batches), the second, warm,
    time. About ten seconds."""
    height, width = image_size
    generator = torch.Generator().manual_seed(0)
    n = batch_size * (2 + steps)
    images = ImageSet(torch.randint(0, 256, (n, 3, height, width), dtype=torch.uint8,
                                    generator=generator),
                      torch.randint(0, num_classes, (n,), generator=generator))
    norm = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    data = DatasetSplits("measure", images, None, images, num_classes, **norm,
                         baseline=Baseline(PARTS, max(1, min(height, width) // 2)))
    recipe = Recipe(epochs=1, lr=0.1, weight_decay=5e-4, batch_size=batch_size,
                    precision=precision)
    # Every op at probability 0.1 and magnitude 5 in both slots: about as busy as a searched
    # policy midway (the baseline-only and TrivialAugment arms cost about as much).
    policy = Policy((1, 5) * (SLOTS * len(DEFAULT_OPS)))
    augment = make_augment("pba", data, recipe, schedule=policy)
    scored = ImageSet(torch.randint(0, 256, (EVAL_IMAGES, 3, height, width), dtype=torch.uint8,
                                    generator=generator),
                      torch.randint(0, num_classes, (EVAL_IMAGES,), generator=generator)).to(device)

    def one(_: int) -> tuple[float, float]:
        state = init_state(model, num_classes, recipe, seed=0, device=device,
                           image_size=(height, width))
        ticks: list[float] = []
        train(state, images.to(device), 1, augment, recipe, **norm,
              progress=lambda _: ticks.append(_sync(device)))
        step = statistics.median(b - a for a, b in zip(ticks[1:], ticks[2:], strict=False))
        times = []
        for _ in range(2):
            begin = _sync(device)
            evaluate(state.model, scored, **norm, precision=precision)
            times.append(_sync(device) - begin)
        return batch_size / step, len(scored) / times[-1]

    results = map_parallel(one, range(workers), workers)
    return Rates(model, (height, width), workers,
                 statistics.fmean(r[0] for r in results), statistics.fmean(r[1] for r in results))


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
