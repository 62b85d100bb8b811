"""Schedules: stretching, our JSON format, and the reference PBT policy-log format."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from pba.errors import PBAError
from pba.ops import DEFAULT_OPS
from pba.policy import Policy, explore
from pba.schedule import (
    PBTLogWarning,
    Schedule,
    load_policy,
    load_schedule,
    parse_pbt_log,
    save_policy,
)

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def random_schedule(epochs: int, seed: int = 0) -> Schedule:
    rng = np.random.default_rng(seed)
    policies, policy = [], Policy.zeros()
    for e in range(epochs):
        if e % 3 == 0:
            policy = explore(policy, rng)
        policies.append(policy)
    return Schedule(tuple(policies))


def reference_lines(name: str) -> list:
    return [ast.literal_eval(line) for line in (REFERENCE / name).read_text().splitlines()]


@pytest.mark.parametrize(("name", "epochs"), [("rcifar10_16_wrn.txt", 200),
                                              ("rsvhn_16_wrn.txt", 160)])
def test_reference_logs_parse(name, epochs):
    lines = reference_lines(name)
    schedule = load_schedule(REFERENCE / name, epochs)
    assert len(schedule) == epochs
    # First segment: the first line's old policy until its clone epoch.
    first_change = lines[0][3]
    assert all(p.to_list() == lines[0][4] for p in schedule.policies[:first_change])
    assert schedule.policies[first_change].to_list() == lines[0][5]
    # Each line's new policy holds from its clone epoch until the next line's.
    for line, nxt in zip(lines, lines[1:], strict=False):
        assert schedule.policy_at(line[3]).to_list() == line[5]
        assert schedule.policy_at(nxt[3] - 1).to_list() == line[5]
    assert schedule.policy_at(epochs - 1).to_list() == lines[-1][5]


def test_reference_logs_form_one_lineage_chain():
    # Each line's clone trial is the previous line's target: nothing is dropped, no warning.
    for name, epochs in (("rcifar10_16_wrn.txt", 200), ("rsvhn_16_wrn.txt", 160)):
        lines = reference_lines(name)
        assert all(b[1] == a[0] for a, b in zip(lines, lines[1:], strict=False))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load_schedule(REFERENCE / name, epochs)


def test_a_broken_chain_drops_the_overwritten_lineage():
    def line(target, clone, epoch, old, new):
        return json.dumps([target, clone, epoch, epoch, [old] * 60, [new] * 60])

    # Trials 3 -> 5 first, then a lineage 1 -> 2 -> 4 that does not pass through 5.
    log = "\n".join([line("5", "3", 2, 0, 1), line("2", "1", 4, 0, 2), line("4", "2", 6, 2, 3)])
    with pytest.warns(PBTLogWarning, match="line 2's clone trial '1' is not line 1's target"):
        schedule = parse_pbt_log(log, 8)
    # The schedule is the surviving lineage's: its first old policy until epoch 4.
    assert [p.values[0] for p in schedule] == [0, 0, 0, 0, 2, 2, 3, 3]
    chained = "\n".join([line("2", "1", 4, 0, 2), line("4", "2", 6, 2, 3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_pbt_log(chained, 8) == schedule


def test_reference_log_needs_the_search_length(tmp_path):
    with pytest.raises(PBAError, match="does not record how long"):
        load_schedule(REFERENCE / "rcifar10_16_wrn.txt")
    with pytest.raises(PBAError, match="must be increasing and at most"):
        load_schedule(REFERENCE / "rcifar10_16_wrn.txt", 150)


def test_log_policies_may_be_dicts():
    line = ["1", "0", 3, 3, {"hp_policy": [0] * 60}, {"hp_policy": [1] * 60}]
    schedule = parse_pbt_log(json.dumps(line), 5)
    assert [p.values[0] for p in schedule] == [0, 0, 0, 1, 1]


def test_log_lines_may_be_json_with_other_hyperparameters():
    old, new = {"hp_policy": [0] * 60, "flag": True}, {"hp_policy": [2] * 60, "x": None}
    schedule = parse_pbt_log(json.dumps(["1", "0", 2, 2, old, new]), 4)
    assert [p.values[0] for p in schedule] == [0, 0, 2, 2]


def test_stretching():
    schedule = random_schedule(200)
    half = schedule.stretch(100)
    assert len(half) == 100
    assert all(half.policies[e] == schedule.policies[2 * e] for e in range(100))
    double = schedule.stretch(400)
    assert all(double.policies[e] == schedule.policies[e // 2] for e in range(400))
    assert schedule.policy_at(299, 300) == schedule.policies[299 * 200 // 300]


def test_schedule_shorter_than_the_epoch_asked_for():
    schedule = random_schedule(10)
    with pytest.raises(PBAError, match="epoch 10 asked of a schedule with 10 epochs"):
        schedule.policy_at(10)
    with pytest.raises(PBAError, match="stretched to 20"):
        schedule.policy_at(25, 20)


def test_json_round_trips(tmp_path):
    schedule = random_schedule(30, seed=1)
    schedule.save(tmp_path / "s.json")
    assert load_schedule(tmp_path / "s.json") == schedule
    policy = schedule.policies[-1]
    save_policy(policy, tmp_path / "p.json")
    assert load_policy(tmp_path / "p.json") == policy
    # A single policy file reads as a constant schedule.
    assert load_schedule(tmp_path / "p.json", 4) == Schedule.constant(policy, 4)


def test_pbt_log_round_trip(tmp_path):
    schedule = random_schedule(30, seed=2)
    (tmp_path / "log.txt").write_text(schedule.pbt_log())
    assert load_schedule(tmp_path / "log.txt", 30) == schedule
    constant = Schedule.constant(schedule.policies[-1], 7)
    (tmp_path / "c.txt").write_text(constant.pbt_log())
    assert load_schedule(tmp_path / "c.txt", 7) == constant


def test_files_name_their_ops_and_may_reorder_or_omit_them(tmp_path):
    policy = Policy.zeros().replace("Cutout", 1, probability=4, magnitude=2)
    names = list(reversed(DEFAULT_OPS.names))[:-1]  # reversed, without Rotate
    values = []
    for slot in range(2):
        for name in names:
            values += [policy.probability(name, slot), policy.magnitude(name, slot)]
    doc = {"format": "pba.schedule", "version": 1, "ops": names, "policies": [values]}
    (tmp_path / "s.json").write_text(json.dumps(doc))
    assert load_schedule(tmp_path / "s.json").policies[0] == policy


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": "pba.schedule", "version": 1, "ops": ["Rotate"', "truncated or foreign"),
        ('{"hello": 1}', "not a pba schedule"),
        ('{"format": "pba.schedule", "version": 9, "ops": [], "policies": [[]]}', "version 9"),
        ('{"format": "pba.schedule", "version": 1, "ops": ["Blur"], "policies": [[0,0,0,0]]}',
         "unknown op 'Blur'"),
        ('{"format": "pba.schedule", "version": 1, "ops": ["Rotate"], "policies": [[0,0,0]]}',
         "4 integers, got 3"),
        ('{"format": "pba.schedule", "version": 1, "ops": ["Rotate"], "policies": [[11,0,0,0]]}',
         "must be in 0..10"),
        ("['0', '1', 3, 3, [0, 0], [1, 1]]\n", "expected 60"),
        ("not a log\n", "line 1 is not a PBT policy-log entry"),
        ("['0', '1', 3, [0]]\n", "expected \\[target"),
        ("", "empty PBT policy log"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PBAError, match=message) as info:
        load_schedule(path, 10)
    assert str(path) in str(info.value)


def test_missing_file():
    with pytest.raises(PBAError, match="no such schedule"):
        load_schedule("/nonexistent/schedule.json")


def test_plot_writes_a_png_with_every_epoch(tmp_path):
    from pba.plot import plot_schedule, schedule_curves

    schedule = random_schedule(12, seed=3)
    probability, magnitude = schedule_curves(schedule)
    assert probability.shape == magnitude.shape == (12, 15)
    last = schedule.policies[-1]
    rotate = last.probability("Rotate", 0) + last.probability("Rotate", 1)
    assert probability[-1, 0] == rotate / 10
    plot_schedule(schedule, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
