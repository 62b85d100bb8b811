"""The embedded engine: members trained in turn on one device (the paper's setup, where 16
members share one GPU time-multiplexed), each with `pba.training.loop`'s training function. On a
CPU,
`workers` members train at once, each single-threaded (`pba.core.parallel`): the same results as
one at a time with one thread, in less wall time."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from pba.augmentation.policy import Policy
from pba.core.parallel import default_workers, map_parallel
from pba.data import DatasetSplits
from pba.search.members import init_members
from pba.search.pbt import TrainStats, require_validation
from pba.training.augment import make_augment
from pba.training.loop import (
    TrainState,
    evaluate,
    images_per_epoch,
    load_checkpoint,
    save_checkpoint,
)
from pba.training.loop import train as train_epochs
from pba.training.recipes import Recipe


class LocalEngine:
    """A population of `pba.training.loop.TrainState`s on one device, trained one after another."""

    def __init__(
        self,
        data: DatasetSplits,
        model: str,
        recipe: Recipe,
        population: int,
        *,
        seed: int,
        device: str | torch.device,
        progress: Callable[[int], None] | None = None,
        workers: int | None = None,
    ) -> None:
        require_validation(data)
        self.device = torch.device(device)
        # Members trained at once (default: one per CPU core; one on a GPU).
        self.workers = workers or default_workers(population, self.device)
        self.data = data
        self.recipe = recipe
        # Uploaded once: every member's rounds read the same device-resident images.
        self.train_set = data.train.to(self.device)
        self.val_set = data.val.to(self.device)
        self.members = init_members(model, data.num_classes, recipe, population, seed=seed,
                                    device=self.device)
        self.progress = progress  # called with the number of images of every training step
        self.images_per_epoch = images_per_epoch(len(data.train), recipe.batch_size)

    def train(self, policies: Sequence[Policy], epochs: int) -> list[TrainStats]:
        lock = threading.Lock()  # members may report progress from several threads

        def progress(images: int) -> None:
            if self.progress is not None:
                with lock:
                    self.progress(images)

        def train_member(member: tuple[TrainState, Policy]) -> TrainStats:
            state, policy = member
            augment = make_augment("pba", self.data, self.recipe, schedule=policy)
            _, metrics = train_epochs(state, self.train_set, epochs, augment, self.recipe,
                                      mean=self.data.mean, std=self.data.std, progress=progress)
            return TrainStats(
                # A mean, so that one diverged epoch makes the round's loss nan or inf.
                loss=float(np.mean([m["train_loss"] for m in metrics])),
                accuracy=float(np.mean([m["train_acc"] for m in metrics])),
                images=epochs * self.images_per_epoch,
                seconds=sum(m["time_s"] for m in metrics),
            )

        return map_parallel(train_member, zip(self.members, policies, strict=True),
                            self.workers)

    def evaluate(self) -> list[dict[str, float]]:
        return map_parallel(
            lambda state: evaluate(state.model, self.val_set, mean=self.data.mean,
                                   std=self.data.std, precision=self.recipe.precision),
            self.members, self.workers)

    def copy(self, source: int, target: int) -> None:
        # The target keeps its own generator, so that it and its source do not go on drawing
        # the same batches and augmentations in lockstep.
        clone = copy.deepcopy(self.members[source])
        clone.generator = self.members[target].generator
        self.members[target] = clone

    def save(self, member: int, path: Path, extra: dict) -> None:
        save_checkpoint(path, self.members[member], extra)

    def load(self, member: int, path: Path) -> dict:
        return load_checkpoint(path, self.members[member])

