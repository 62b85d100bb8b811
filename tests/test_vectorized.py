"""The vectorised engine against the time-multiplexed one, member by member, on the CPU.

With one batch per epoch both engines draw a member's data order and augmentation identically,
so after a step every member must agree with itself trained alone (float32, 1e-5): logits, loss,
weights, BatchNorm running statistics (and momentum, see GRAD_ATOL). Several optimiser steps are
compared in float64, where only rounding separates the two.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pba import models
from pba.augmentation.policy import Policy
from pba.core.errors import PBAError
from pba.data import DatasetSplits, ImageSet, channel_stats, normalize
from pba.data.datasets import default_baseline
from pba.models.population import PopulationWRN
from pba.search import PBT, PBTConfig, SearchState
from pba.search import vectorized as vectorized_module
from pba.search.events import Exploit
from pba.search.local import LocalEngine
from pba.search.vectorized import VectorizedEngine, sgd_step
from pba.training import loop as pba_train
from pba.training.recipes import Recipe

MODEL = "wrn_10_1"
MEMBERS = 4
BATCH = 8
ATOL = 1e-5
# Momentum buffers hold raw gradients, which train-mode BatchNorm makes differences of nearly
# cancelling terms: in float32 they carry rounding of ~1e-5 (a member alone, float32 against
# float64, differs by more). The parameters, which see them times the learning rate, meet ATOL.
GRAD_ATOL = 1e-4


@pytest.fixture(autouse=True)
def contiguous_fp32(monkeypatch):
    """The engines' arithmetic compared in one layout. fp32 on a CPU trains in channels_last
    (pba.core.precision), where oneDNN's grouped convolutions (the packed population) and a member's
    own accumulate in different orders: after one step, with two torch threads, parameters
    differed by up to 5e-5; in the contiguous layout they meet ATOL."""
    def layout(precision: str, device) -> torch.memory_format:
        return torch.contiguous_format if precision == "fp32" else torch.channels_last

    monkeypatch.setattr(pba_train, "memory_format", layout)
    monkeypatch.setattr(vectorized_module, "memory_format", layout)


@pytest.fixture(scope="module")
def data(cifar_images) -> DatasetSplits:
    """One batch of training images (so an epoch is one step) and a small validation split."""
    labels = torch.randint(0, 10, (len(cifar_images),), generator=torch.Generator().manual_seed(0))
    train = ImageSet(cifar_images[:BATCH].clone(), labels[:BATCH].clone())
    val = ImageSet(cifar_images[BATCH : BATCH + 32].clone(), labels[BATCH : BATCH + 32].clone())
    mean, std = channel_stats(train.images)
    return DatasetSplits("tiny", train, val, val, 10, mean, std, default_baseline("cifar10"))


def _losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each member's mean cross-entropy (P,) of logits (P, N, classes)."""
    return F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1)


def policies(seed: int = 0) -> list[Policy]:
    """Member 0 without augmentation, the others with different random policies."""
    rng = np.random.default_rng(seed)
    caps = np.tile([10, 9], 30)
    return [Policy.zeros()] + [
        Policy(tuple(rng.integers(0, caps + 1).tolist())) for _ in range(MEMBERS - 1)
    ]


def engines(data: DatasetSplits, recipe: Recipe) -> tuple[VectorizedEngine, LocalEngine]:
    kwargs = {"seed": 7, "device": "cpu"}
    return (VectorizedEngine(data, MODEL, recipe, MEMBERS, **kwargs),
            LocalEngine(data, MODEL, recipe, MEMBERS, **kwargs))


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str, atol: float = ATOL) -> None:
    assert a.shape == b.shape, what
    assert torch.allclose(a.float(), b.float(), rtol=0, atol=atol), (
        f"{what}: max difference {(a.float() - b.float()).abs().max():.2e}")


def assert_members_match(vectorized: VectorizedEngine, local: LocalEngine) -> None:
    for m, state in enumerate(local.members):
        packed = vectorized.population.member_state_dict(m)
        for key, value in state.model.state_dict().items():
            assert_close(packed[key], value, f"member {m} {key}")
        # Before its first step torch's SGD has no buffers: they are zeros.
        buffers = [state.optimizer.state[p].get("momentum_buffer", torch.zeros_like(p))
                   for p in state.model.parameters()]
        for i, (buffer, packed_buffer) in enumerate(zip(buffers, vectorized.momentum, strict=True)):
            assert_close(packed_buffer.unflatten(0, (MEMBERS, -1))[m].reshape(buffer.shape),
                         buffer, f"member {m} momentum {i}", GRAD_ATOL)
        assert torch.equal(vectorized.generators[m].get_state(), state.generator.get_state())


def test_packed_logits_and_losses_equal_each_member_alone() -> None:
    torch.manual_seed(0)
    members = [models.build(MODEL, 10) for _ in range(MEMBERS)]
    population = PopulationWRN(members)
    x = torch.randn(MEMBERS, 8, 3, 32, 32)  # a different batch for each member
    y = torch.randint(0, 10, (MEMBERS, 8))
    alone_members = copy.deepcopy(members)
    # Train mode first: it updates the running statistics that eval mode then uses.
    for training in (True, False):
        population.train(training)
        logits = population(x)
        for m, member in enumerate(alone_members):
            alone = member.train(training)(x[m])
            assert_close(logits[m], alone, f"logits of member {m}")
            assert_close(_losses(logits, y)[m], F.cross_entropy(alone, y[m]), f"loss of {m}")


@pytest.mark.parametrize("grad_clip", [5.0, 0.1], ids=["recipe", "every-member-clipped"])
def test_a_step_equals_the_time_multiplexed_engine(data, grad_clip) -> None:
    # With clip 0.1 every member's gradient is clipped by its own norm (a population-wide norm
    # would scale them differently). One step only: in float32 a second step can already amplify
    # rounding past 1e-5 (a ReLU input near 0 flips), for a member alone as much as packed.
    recipe = Recipe(epochs=4, lr=0.1, weight_decay=5e-4, batch_size=BATCH, grad_clip=grad_clip)
    vectorized, local = engines(data, recipe)
    assert_members_match(vectorized, local)  # same seeds, same initial members
    stats_v = vectorized.train(policies(), 1)
    stats_l = local.train(policies(), 1)
    assert_members_match(vectorized, local)
    for v, loc in zip(stats_v, stats_l, strict=True):
        assert abs(v.loss - loc.loss) < ATOL and v.accuracy == loc.accuracy
        assert v.images == loc.images == BATCH
    for v, loc in zip(vectorized.evaluate(), local.evaluate(), strict=True):
        assert abs(v["loss"] - loc["loss"]) < ATOL and v["accuracy"] == loc["accuracy"]


def test_sgd_steps_equal_torch_sgd_member_by_member() -> None:
    # float64, so that several steps agree to rounding: momentum and Nesterov at work, a changing
    # learning rate, and a clipping norm that clips some members and not others.
    torch.manual_seed(1)
    f64 = torch.float64
    members = [models.build(MODEL, 10).to(f64) for _ in range(MEMBERS)]
    x = torch.randn(3, MEMBERS, 4, 3, 32, 32, dtype=f64)
    y = torch.randint(0, 10, (3, MEMBERS, 4))
    lrs = [0.1, 0.07, 0.02]
    alone = copy.deepcopy(members)
    first_norms = []
    for m, model in enumerate(copy.deepcopy(members)):
        F.cross_entropy(model(x[0, m]), y[0, m]).backward()
        first_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9)))
    max_norm = float(np.median(first_norms))
    optimizers = [torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                  weight_decay=5e-4) for model in alone]
    population = PopulationWRN(members)
    params = list(population.parameters())
    buffers = [torch.zeros_like(p) for p in params]
    for step, lr in enumerate(lrs):
        losses = _losses(population(x[step]), y[step])
        grads = torch.autograd.grad(losses.sum(), params)
        norms = sgd_step(params, grads, buffers, torch.tensor(lr, dtype=f64), members=MEMBERS,
                         momentum=0.9, weight_decay=5e-4, nesterov=True, max_norm=max_norm)
        for m, (model, optimizer) in enumerate(zip(alone, optimizers, strict=True)):
            optimizer.zero_grad()
            F.cross_entropy(model(x[step, m]), y[step, m]).backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.param_groups[0]["lr"] = lr
            optimizer.step()
            assert abs(float(norms[m]) - float(norm)) < 1e-10
    for m, model in enumerate(alone):
        packed = population.member_state_dict(m)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(packed[key], value, rtol=0, atol=1e-10, msg=key)


def test_batchnorm_statistics_stay_per_member(data) -> None:
    recipe = Recipe(epochs=2, lr=0.1, weight_decay=5e-4, batch_size=BATCH)
    vectorized, local = engines(data, recipe)
    vectorized.train(policies(), 1)  # members see different batches (own orders and policies)
    local.train(policies(), 1)
    key = "blocks.0.bn1.running_mean"
    means = [vectorized.population.member_state_dict(m)[key] for m in range(MEMBERS)]
    for m in range(1, MEMBERS):
        assert not torch.allclose(means[0], means[m])
    for m, state in enumerate(local.members):
        assert_close(means[m], state.model.state_dict()[key], f"member {m} {key}")


def test_exploit_copies_a_member_exactly(data) -> None:
    recipe = Recipe(epochs=2, lr=0.1, weight_decay=5e-4, batch_size=BATCH)
    engine, _ = engines(data, recipe)
    engine.train(policies(), 1)
    before = [engine.population.member_state_dict(m) for m in range(MEMBERS)]
    generator = engine.generators[1].get_state()
    engine.copy(2, 1)
    after = engine.population.member_state_dict(1)
    for key, value in before[2].items():
        assert torch.equal(after[key], value), key
    for buffer in engine.momentum:
        rows = buffer.unflatten(0, (MEMBERS, -1))
        assert torch.equal(rows[1], rows[2])
    for m in (0, 2, 3):  # the others are untouched
        state = engine.population.member_state_dict(m)
        assert all(torch.equal(state[k], v) for k, v in before[m].items())
    assert torch.equal(engine.generators[1].get_state(), generator)  # its own data stream


def test_checkpoints_move_between_engines(data, tmp_path) -> None:
    recipe = Recipe(epochs=2, lr=0.1, weight_decay=5e-4, batch_size=BATCH)
    vectorized, local = engines(data, recipe)
    vectorized.train(policies(), 1)
    for m in range(MEMBERS):
        vectorized.save(m, tmp_path / f"{m}.pt", {"member": m})
        assert local.load(m, tmp_path / f"{m}.pt") == {"member": m}
    assert_members_match(vectorized, local)
    fresh, _ = engines(data, recipe)
    for m in range(MEMBERS):
        local.save(m, tmp_path / f"{m}.pt", {})
        fresh.load(m, tmp_path / f"{m}.pt")
    assert fresh.epoch == 1
    assert_members_match(fresh, local)


def test_runs_rounds_of_pbt(data) -> None:
    config = PBTConfig(population=MEMBERS, epochs=4, interval=2, seed=0)
    recipe = Recipe(epochs=config.epochs, lr=0.1, weight_decay=5e-4, batch_size=BATCH)
    engine = VectorizedEngine(data, MODEL, recipe, MEMBERS, seed=0, device="cpu")
    rounds = []
    state = PBT(engine, SearchState.initial(config), lambda s, events: rounds.append(events)).run()
    assert state.epoch == 4 and len(rounds) == 2
    assert any(isinstance(e, Exploit) for e in rounds[0])
    assert len(state.lineage.schedule(state.best())) == 4


def test_rejects_what_it_cannot_run(data) -> None:
    with pytest.raises(PBAError, match="only WRN"):
        PopulationWRN([models.build("shake_shake_8_2x4d", 10)] * 2)
    with pytest.raises(PBAError, match="same architecture"):
        PopulationWRN([models.build("wrn_10_1", 10), models.build("wrn_10_2", 10)])
    recipe = Recipe(epochs=2, lr=0.1, weight_decay=5e-4, batch_size=BATCH)
    engine, _ = engines(data, recipe)
    with pytest.raises(PBAError, match="policies"):
        engine.train(policies()[:2], 1)
    with pytest.raises(PBAError, match="exceeds"):
        engine.train(policies(), 3)
    with pytest.raises(PBAError, match="validation"):
        VectorizedEngine(DatasetSplits("x", data.train, None, data.test, 10, data.mean, data.std,
                                       data.baseline), MODEL, recipe, MEMBERS, seed=0, device="cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_cuda_path_trains_like_the_cpu(data, compile) -> None:
    # bf16 autocast and channels_last: close to the float32 CPU run, not equal.
    recipe = Recipe(epochs=2, lr=0.1, weight_decay=5e-4, batch_size=BATCH)
    bf16 = dataclasses.replace(recipe, precision="bf16")
    engine = VectorizedEngine(data, MODEL, bf16, MEMBERS, seed=3, device="cuda", compile=compile)
    cpu = VectorizedEngine(data, MODEL, recipe, MEMBERS, seed=3, device="cpu")
    x = normalize(data.val.images[:BATCH], data.mean, data.std).expand(MEMBERS, -1, -1, -1, -1)
    torch.testing.assert_close(engine._logits(x.cuda()).cpu(), cpu._logits(x), atol=0.1, rtol=0.05)
    stats = engine.train(policies(), 2)
    assert all(np.isfinite(s.loss) for s in stats)
    assert all(0 <= e["accuracy"] <= 1 for e in engine.evaluate())
