"""Members trained side by side in threads (`pba.core.parallel`) train exactly as one at a time with
one torch thread: the same weights, losses and generator states, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pba.augmentation.policy import Policy
from pba.core.parallel import default_workers, map_parallel, torch_threads
from pba.data import DatasetSplits, ImageSet, channel_stats
from pba.data.datasets import default_baseline
from pba.search.local import LocalEngine
from pba.training.loop import init_state
from pba.training.recipes import Recipe

MEMBERS = 4


@pytest.fixture(scope="module")
def data(cifar_images) -> DatasetSplits:
    labels = torch.randint(0, 10, (len(cifar_images),), generator=torch.Generator().manual_seed(1))
    train = ImageSet(cifar_images[:64].clone(), labels[:64].clone())
    val = ImageSet(cifar_images[64:128].clone(), labels[64:128].clone())
    mean, std = channel_stats(train.images)
    return DatasetSplits("tiny", train, val, val, 10, mean, std, default_baseline("cifar10"))


def test_members_in_threads_equal_members_in_turn(data) -> None:
    recipe = Recipe(epochs=2, lr=0.1, weight_decay=5e-4, batch_size=16)
    rng = np.random.default_rng(0)
    policies = [Policy(tuple(rng.integers(0, np.tile([10, 9], 30) + 1).tolist()))
                for _ in range(MEMBERS)]
    seen = []
    threaded = LocalEngine(data, "wrn_10_1", recipe, MEMBERS, seed=3, device="cpu", workers=2,
                           progress=seen.append)
    with torch_threads(1):
        alone = LocalEngine(data, "wrn_10_1", recipe, MEMBERS, seed=3, device="cpu", workers=1)
        stats_alone = alone.train(policies, 2)
        scores_alone = alone.evaluate()
    stats = threaded.train(policies, 2)
    assert [s.loss for s in stats] == [s.loss for s in stats_alone]
    assert threaded.evaluate() == scores_alone
    for a, b in zip(threaded.members, alone.members, strict=True):
        for key, value in a.model.state_dict().items():
            assert torch.equal(value, b.model.state_dict()[key]), key
        assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert sum(seen) == MEMBERS * 2 * 64  # every step of every member reported once


def test_map_parallel_keeps_order_restores_threads_and_raises() -> None:
    before = torch.get_num_threads()
    inside = []

    def work(x: int) -> int:
        inside.append(torch.get_num_threads())
        return x * x

    assert map_parallel(work, range(6), workers=3) == [0, 1, 4, 9, 16, 25]
    assert torch.get_num_threads() == before
    assert set(inside) == {max(1, before // 3)}

    def fail(x: int) -> int:
        if x == 2:
            raise ValueError("member 2")
        return x

    with pytest.raises(ValueError, match="member 2"):
        map_parallel(fail, range(4), workers=2)
    assert torch.get_num_threads() == before
    assert default_workers(8, torch.device("cuda")) == 1
    assert 1 <= default_workers(8, torch.device("cpu")) <= 8
    assert default_workers(1, torch.device("cpu")) == 1


def test_models_initialised_side_by_side_equal_those_built_in_turn() -> None:
    # Model initialisation draws from torch's one global RNG: threads must take turns with it.
    recipe = Recipe(epochs=1, lr=0.1, weight_decay=0.0)

    def weights(seed: int) -> torch.Tensor:
        model = init_state("wrn_10_1", 10, recipe, seed=seed, device="cpu").model
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    seeds = list(range(8))
    alone = [weights(s) for s in seeds]
    side_by_side = map_parallel(weights, seeds, workers=4)
    assert all(torch.equal(a, b) for a, b in zip(alone, side_by_side, strict=True))
    assert not torch.equal(alone[0], alone[1])
