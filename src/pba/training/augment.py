"""The training augmentation of a run, by name: none, the baseline, a PBA schedule, the
search-free schedule (`pba.augmentation.ramp`), or torchvision's AutoAugment, RandAugment and
TrivialAugment for comparison.

    augment = make_augment("pba", data, recipe, schedule=load_schedule(path, 200))
    images = augment(images, epoch, generator)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pba.augmentation.baseline import resolve as resolve_baseline
from pba.augmentation.policy import Policy
from pba.augmentation.ramp import ramp_schedule
from pba.augmentation.schedule import Schedule
from pba.augmentation.transforms import apply_policy
from pba.core.errors import UserError
from pba.core.parallel import seeded_global_rng
from pba.data import DatasetSplits
from pba.ops.registry import DEFAULT_OPS, OpSet
from pba.training.recipes import Recipe

AUGMENT_MODES = ("none", "baseline", "pba", "ramp", "autoaugment", "randaugment",
                 "trivialaugment")
# (uint8 batch on the training device, epoch of the run, generator) -> augmented uint8 batch
Augment = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]


def make_augment(
    mode: str, data: DatasetSplits, recipe: Recipe, *, schedule: Schedule | Policy | None = None,
    ops: OpSet = DEFAULT_OPS,
) -> Augment:
    """The training augmentation `mode`, one of AUGMENT_MODES, for `data` under `recipe`.

    'baseline' is `recipe.baseline` (None: the dataset's, `data.baseline`; see
    pba.augmentation.baseline);
    'pba' applies `schedule` (a Schedule stretched to `recipe.epochs`, or one fixed Policy as a
    search member trains with) before the baseline; 'ramp' the search-free schedule over
    `ops` (`pba.augmentation.ramp`), `recipe.epochs` long, likewise; 'autoaugment' (CIFAR-10
    policy),
    'randaugment' and 'trivialaugment' are torchvision's, each image drawing its own ops, before
    the baseline; 'none' returns the images as they are.
    """
    if mode not in AUGMENT_MODES:
        raise UserError(f"unknown augmentation {mode!r}; known: {', '.join(AUGMENT_MODES)}")
    if (mode == "pba") != (schedule is not None):
        raise UserError("augmentation 'pba' needs a schedule, and only 'pba' uses one")
    if mode == "ramp":
        mode, schedule = "pba", ramp_schedule(recipe.epochs, ops)
    fill = data.fill
    baseline = resolve_baseline(recipe.baseline, recipe.cutout_size, data.baseline)

    if mode == "none":
        return lambda images, epoch, generator: images
    if mode == "baseline":
        return lambda images, epoch, generator: baseline(images, fill, generator)
    if mode == "pba":
        if isinstance(schedule, Policy):
            schedule = Schedule((schedule,))
        policies = schedule.stretch(recipe.epochs).policies  # fails now, not at epoch 150

        def pba(images: torch.Tensor, epoch: int, generator: torch.Generator) -> torch.Tensor:
            return baseline(apply_policy(images, policies[epoch], fill, generator), fill, generator)

        return pba

    from torchvision.transforms import v2

    transform = {
        "autoaugment": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=list(fill)),
        "randaugment": lambda: v2.RandAugment(fill=list(fill)),
        "trivialaugment": lambda: v2.TrivialAugmentWide(fill=list(fill)),
    }[mode]()

    def torchvision_augment(
        images: torch.Tensor, epoch: int, generator: torch.Generator
    ) -> torch.Tensor:
        # torchvision picks one op per call and draws from the global RNG: call it per image, on
        # the CPU (cheap for 32x32 images), with the global RNG seeded from our generator.
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        with seeded_global_rng(seed):
            out = torch.stack([transform(image) for image in images.cpu()])
        return baseline(out.to(images.device), fill, generator)

    return torchvision_augment

