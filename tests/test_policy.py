"""Policy layout and validation, and the per-image op sampling of docs/algorithm.md §3."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pba.augmentation.policy import Policy
from pba.augmentation.sampling import COUNT_PROBABILITIES, sample_ops
from pba.core.errors import PBAError
from pba.ops import DEFAULT_OPS
from pba.ops.registry import Op

DRAWS = 40_000


def within(observed: float, p: float, n: int = DRAWS, sigmas: float = 5.0) -> bool:
    """A binomial frequency is within `sigmas` standard deviations of its expectation."""
    return abs(observed - p) <= sigmas * math.sqrt(p * (1 - p) / n)


def full_policy(level: int = 10, magnitude: int = 5) -> Policy:
    return Policy((level, magnitude) * (2 * len(DEFAULT_OPS)))


def test_layout_named_access_and_replace():
    policy = Policy.zeros().replace("Solarize", 1, probability=7, magnitude=3)
    index = 2 * (15 + 9)  # second copy, op 9
    assert policy.values[index : index + 2] == (7, 3)
    assert policy.probability("Solarize", 1) == 7 and policy.magnitude("Solarize", 1) == 3
    assert policy.probability("Solarize", 0) == 0
    assert policy.named()["Solarize"] == [(0, 0), (7, 3)]
    assert sum(policy.values) == 10


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ((0,) * 59, "60 integers, got 59"),
        ((11,) + (0,) * 59, "probability of Rotate, slot 0) is 11"),
        ((0, 10) + (0,) * 58, "magnitude of Rotate, slot 0) is 10"),
        ((0,) * 31 + (-1,) + (0,) * 28, "magnitude of Rotate, slot 1) is -1"),
        ((0.5,) + (0,) * 59, "not an integer"),
    ],
)
def test_invalid_policies_are_clear_errors(values, message):
    with pytest.raises(PBAError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Policy(values)


def test_unknown_op_name():
    with pytest.raises(PBAError, match="unknown op 'Blur'"):
        Policy.zeros().probability("Blur")


def test_count_distribution_when_every_entry_fires():
    # With every probability 1, the number of applied ops is exactly the drawn count.
    sampled = sample_ops(full_policy(), DRAWS, torch.Generator().manual_seed(0))
    applied = (sampled.op >= 0).sum(dim=1)
    for count, p in enumerate(COUNT_PROBABILITIES):
        assert within((applied == count).float().mean().item(), p)
    # The first slot is filled whenever the second is.
    assert not ((sampled.op[:, 0] < 0) & (sampled.op[:, 1] >= 0)).any()


def test_op_selection_is_uniform_over_the_30_entries():
    sampled = sample_ops(full_policy(), DRAWS, torch.Generator().manual_seed(1))
    first = sampled.op[:, 0][sampled.op[:, 0] >= 0]
    frequencies = torch.bincount(first, minlength=15).double() / len(first)
    for f in frequencies.tolist():
        assert within(f, 1 / 15, n=len(first))
    # Two ops of one image are two different entries: with 30 entries, the same op appears twice
    # only when both of its copies are drawn: P = 1/29.
    both = (sampled.op >= 0).all(dim=1)
    same = (sampled.op[both, 0] == sampled.op[both, 1]).double().mean().item()
    assert within(same, 1 / 29, n=int(both.sum()))


def test_probabilities_are_respected():
    # Only Rotate (slot 0) with probability 0.3: applied iff count >= 1 and it fires.
    policy = Policy.zeros().replace("Rotate", 0, probability=3, magnitude=9)
    sampled = sample_ops(policy, DRAWS, torch.Generator().manual_seed(2))
    applied = sampled.op[:, 0] == 0
    assert within(applied.double().mean().item(), 0.8 * 0.3)
    assert (sampled.op[:, 1] == -1).all()
    assert (sampled.magnitude[applied, 0] == 9).all()


def test_walk_stops_after_count_ops():
    # Invert (slot 0) and Solarize (slot 1) always fire; with count 1 only the first of the two
    # in the random order is applied, each with probability 1/2 -> 0.3 / 2 each overall.
    policy = (
        Policy.zeros()
        .replace("Invert", 0, probability=10)
        .replace("Solarize", 1, probability=10, magnitude=4)
    )
    sampled = sample_ops(policy, DRAWS, torch.Generator().manual_seed(3))
    single = (sampled.op[:, 0] >= 0) & (sampled.op[:, 1] < 0)
    assert within(single.double().mean().item(), 0.3)
    assert within(((sampled.op[:, 0] == 5) & single).double().mean().item(), 0.15)
    double = (sampled.op >= 0).all(dim=1)
    assert within(double.double().mean().item(), 0.5)
    # With both applied, the order is uniform.
    assert within((sampled.op[double, 0] == 5).double().mean().item(), 0.5, n=int(double.sum()))


def test_the_walk_order_is_uniform_between_entries_of_different_probabilities():
    # Equalize (slot 0) fires with probability 0.3, Invert (slot 1) always. Count 1 (0.3): the
    # walk meets Equalize first half the time and applies it with probability 0.3, so
    # Equalize alone 0.15, Invert alone 0.85. Count 2 (0.5): both when Equalize fires (0.3),
    # in a uniform order; else Invert alone.
    policy = (Policy.zeros().replace("Equalize", 0, probability=3)
              .replace("Invert", 1, probability=10))
    sampled = sample_ops(policy, DRAWS, torch.Generator().manual_seed(5))
    equalize, invert = DEFAULT_OPS.index("Equalize"), DEFAULT_OPS.index("Invert")
    single = (sampled.op[:, 0] >= 0) & (sampled.op[:, 1] < 0)
    assert within(((sampled.op[:, 0] == equalize) & single).double().mean().item(), 0.3 * 0.15)
    invert_alone = ((sampled.op[:, 0] == invert) & single).double().mean().item()
    assert within(invert_alone, 0.3 * 0.85 + 0.5 * 0.7)
    double = (sampled.op >= 0).all(dim=1)
    assert within(double.double().mean().item(), 0.5 * 0.3)
    first = (sampled.op[double, 0] == equalize).double().mean().item()
    assert within(first, 0.5, n=int(double.sum()))


def test_signs_are_fair_and_parameters_signed():
    policy = Policy.zeros().replace("Rotate", 0, probability=10, magnitude=9)
    sampled = sample_ops(policy, DRAWS, torch.Generator().manual_seed(4))
    params = sampled.parameters(DEFAULT_OPS)[:, 0]
    applied = sampled.op[:, 0] == 0
    assert set(params[applied].tolist()) == {-27.0, 27.0}
    assert within((params[applied] > 0).double().mean().item(), 0.5, n=int(applied.sum()))
    assert (params[~applied] == 0).all()


def test_sampling_is_reproducible_from_the_seed():
    a = sample_ops(full_policy(5), 100, torch.Generator().manual_seed(7))
    b = sample_ops(full_policy(5), 100, torch.Generator().manual_seed(7))
    c = sample_ops(full_policy(5), 100, torch.Generator().manual_seed(8))
    assert torch.equal(a.op, b.op) and torch.equal(a.sign, b.sign)
    assert not torch.equal(a.op, c.op)


def test_zero_policy_samples_nothing():
    sampled = sample_ops(Policy.zeros(), 1000, torch.Generator().manual_seed(0))
    assert (sampled.op == -1).all()


def test_values_accept_numpy_integers():
    values = np.zeros(60, dtype=np.int64)
    values[0] = 10
    assert Policy(tuple(values)).probability("Rotate") == 10


def test_draws_hold_each_slots_setting_and_read_back_as_op_magnitude_and_sign():
    policy = (Policy.zeros().replace("Rotate", 0, probability=10, magnitude=7)
              .replace("Posterize", 1, probability=10, magnitude=2))
    sampled = sample_ops(policy, 1000, torch.Generator().manual_seed(9))
    settings = sampled.settings(DEFAULT_OPS)
    applied = sampled.op >= 0
    assert set(sampled.op[applied].tolist()) == {DEFAULT_OPS.index("Rotate"),
                                                 DEFAULT_OPS.index("Posterize")}
    # A setting is op * 20 + magnitude * 2 + (sign > 0): the three read back from it.
    rebuilt = sampled.op * 20 + sampled.magnitude * 2 + (sampled.sign > 0)
    assert torch.equal(settings[applied], rebuilt[applied])
    assert (settings[~applied] == 20 * len(DEFAULT_OPS)).all()
    assert set(sampled.magnitude[sampled.op == DEFAULT_OPS.index("Rotate")].tolist()) == {7}


def test_draws_for_one_op_set_are_refused_for_another():
    sampled = sample_ops(full_policy(), 10, torch.Generator().manual_seed(0))
    more = DEFAULT_OPS.with_op(Op("Same", lambda m: 0.0, lambda img, *a: img,
                                  lambda imgs, *a: imgs.clone()))
    with pytest.raises(PBAError, match="drawn for a policy of 15 ops, not for the 16 given"):
        sampled.settings(more)
