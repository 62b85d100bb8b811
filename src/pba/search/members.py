"""A search's members as every engine builds them: member m of a search with seed s starts from
the same weights and data stream whichever engine (or Ray trial) trains it."""

from __future__ import annotations

import numpy as np
import torch

from pba.training.loop import TrainState, init_state
from pba.training.recipes import Recipe


def member_seed(seed: int, member: int) -> int:
    """Each member's own seed (its initial weights and data stream), derived from the search's."""
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


def init_member(model: str, num_classes: int, recipe: Recipe, *, seed: int, member: int,
                device: torch.device) -> TrainState:
    return init_state(model, num_classes, recipe, seed=member_seed(seed, member), device=device)


def init_members(model: str, num_classes: int, recipe: Recipe, population: int, *, seed: int,
                 device: torch.device) -> list[TrainState]:
    return [init_member(model, num_classes, recipe, seed=seed, member=m, device=device)
            for m in range(population)]
