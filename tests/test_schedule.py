"""Schedules: stretching, our JSON format, and the reference PBT policy-log format."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pba.augmentation.policy import Policy, explore
from pba.augmentation.schedule import (
    PBTLogWarning,
    Schedule,
    load_policy,
    load_schedule,
    parse_pbt_log,
    save_policy,
)
from pba.core.errors import PBAError
from pba.ops import DEFAULT_OPS, Op, OpSet

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
    from pba.reporting.plot import plot_schedule, schedule_curves

    schedule = random_schedule(12, seed=3)
    probability, magnitude = schedule_curves(schedule)
    assert probability.shape == magnitude.shape == (12, 15)
    last = schedule.policies[-1]
    rotate = last.probability("Rotate", 0) + last.probability("Rotate", 1)
    assert probability[-1, 0] == rotate / 10
    plot_schedule(schedule, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# The op set a schedule was saved with, and exact replay.


def rotate_mapped_otherwise() -> OpSet:
    """The paper's ops with Rotate's magnitudes mapped onto 0..27 degrees, not 0..30."""
    ops = list(DEFAULT_OPS)
    k = DEFAULT_OPS.index("Rotate")
    ops[k] = dataclasses.replace(ops[k], magnitude=lambda m: float(int(m * 27 / 10)))
    return OpSet(tuple(ops))


def test_schedule_json_records_its_op_set_and_a_content_hash(tmp_path):
    schedule = random_schedule(5, seed=4)
    schedule.save(tmp_path / "s.json")
    doc = json.loads((tmp_path / "s.json").read_text())
    assert [o["name"] for o in doc["op_set"]["ops"]] == list(DEFAULT_OPS.names) == doc["ops"]
    rotate = doc["op_set"]["ops"][0]
    assert rotate["magnitudes"][9] == 27.0 and rotate["signed"] and doc["op_set"][
        "magnitude_version"] == 1
    assert doc["sha256"] == schedule.content_hash() and len(doc["sha256"]) == 64
    assert load_schedule(tmp_path / "s.json") == schedule
    assert DEFAULT_OPS.fingerprint() != rotate_mapped_otherwise().fingerprint()


def other_op_sets() -> dict[str, tuple[OpSet, str]]:
    mirror = Op("Mirror", lambda m: 0.0, DEFAULT_OPS[0].pil, DEFAULT_OPS[0].tensor)
    reordered = OpSet(tuple(reversed(DEFAULT_OPS.ops)))
    unsigned = list(DEFAULT_OPS)
    unsigned[1] = dataclasses.replace(unsigned[1], signed=False)
    return {
        "an extra op": (DEFAULT_OPS.with_op(mirror), "op 'Mirror' not in the file"),
        "another order": (reordered, "the ops in another order \\('Rotate' where this op set "
                                     "has 'Contrast'\\)"),
        "another magnitude mapping": (rotate_mapped_otherwise(),
                                      "Rotate maps magnitude 1 to 2.0 here, 3.0 in the file"),
        "another sign": (OpSet(tuple(unsigned)), "TranslateX is unsigned here, signed in the file"),
    }


@pytest.mark.parametrize("case", list(other_op_sets()))
def test_a_schedule_is_refused_under_another_op_set(tmp_path, case):
    ops, difference = other_op_sets()[case]
    random_schedule(4, seed=5).save(tmp_path / "s.json")
    with pytest.raises(PBAError, match=difference) as info:
        load_schedule(tmp_path / "s.json", ops=ops)
    message = str(info.value)
    assert "\n" not in message and "saved with another op set" in message
    assert "load it with the op set it was saved with" in message
    # and the other way round: saved under `ops`, refused under the paper's
    Schedule((Policy.zeros(ops),)).save(tmp_path / "t.json")
    with pytest.raises(PBAError, match="saved with another op set"):
        load_schedule(tmp_path / "t.json")
    assert load_schedule(tmp_path / "t.json", ops=ops).ops == ops


def test_a_single_policy_file_records_its_op_set_too(tmp_path):
    save_policy(Policy.zeros(rotate_mapped_otherwise()), tmp_path / "p.json")
    with pytest.raises(PBAError, match="Rotate maps magnitude"):
        load_policy(tmp_path / "p.json")


def test_an_edited_file_is_refused_until_its_hash_is_removed(tmp_path):
    schedule = random_schedule(3, seed=6)
    schedule.save(tmp_path / "s.json")
    doc = json.loads((tmp_path / "s.json").read_text())
    doc["policies"][0][0] = 10 - doc["policies"][0][0]
    (tmp_path / "s.json").write_text(json.dumps(doc))
    with pytest.raises(PBAError, match="does not match its sha256"):
        load_schedule(tmp_path / "s.json")
    del doc["sha256"]
    (tmp_path / "s.json").write_text(json.dumps(doc))
    assert load_schedule(tmp_path / "s.json").policies[0].values[0] == doc["policies"][0][0]
    doc["op_set"]["magnitude_version"] = 0
    (tmp_path / "s.json").write_text(json.dumps(doc))
    with pytest.raises(PBAError, match="magnitude mapping version 0 in the file, 1 in this pba"):
        load_schedule(tmp_path / "s.json")


def test_files_from_before_the_record_still_load_under_the_default_op_set(tmp_path):
    schedule = random_schedule(3, seed=7)
    doc = schedule.to_dict()
    del doc["op_set"], doc["sha256"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert load_schedule(tmp_path / "old.json") == schedule


REPLAY = """
import hashlib, sys
import numpy as np, torch
from PIL import Image
from pba import BatchPBAugment, PBAugment, load_schedule


def replay(schedule_path: str, images_path: str, seed: int) -> str:
    schedule = load_schedule(schedule_path)
    images = torch.from_numpy(np.load(images_path))
    digest = hashlib.sha256()
    aug = PBAugment(schedule, epochs=6, seed=seed)
    batch = BatchPBAugment(schedule, epochs=6, seed=seed)
    for epoch in (0, 4):
        aug.set_epoch(epoch)
        batch.set_epoch(epoch)
        for img in images:
            pil = Image.fromarray(img.permute(1, 2, 0).numpy())
            digest.update(np.asarray(aug(pil)).tobytes())
            digest.update(aug(img).numpy().tobytes())
        digest.update(batch(images).numpy().tobytes())
    return digest.hexdigest()


if __name__ == "__main__":
    print(replay(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_the_same_schedule_and_seed_replay_bit_for_bit_in_another_process(tmp_path,
                                                                           cifar_images):
    busy = (Policy.zeros().replace("Rotate", 0, probability=8, magnitude=7)
            .replace("Cutout", 1, probability=9, magnitude=6)
            .replace("Equalize", 0, probability=5).replace("ShearY", 1, probability=6,
                                                           magnitude=9))
    schedule, images = tmp_path / "schedule.json", tmp_path / "images.npy"
    Schedule((busy, busy.replace("Solarize", 0, probability=10, magnitude=4), busy)).save(
        schedule)
    np.save(images, cifar_images[:24].numpy())
    (tmp_path / "replay.py").write_text(REPLAY)
    # A fresh interpreter (nothing shared but the files) against this one.
    done = subprocess.run([sys.executable, str(tmp_path / "replay.py"), str(schedule),
                           str(images), "3"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    here: dict = {}
    exec(compile(REPLAY, "replay.py", "exec"), here)
    assert done.stdout.strip() == here["replay"](str(schedule), str(images), 3)
    assert here["replay"](str(schedule), str(images), 4) != done.stdout.strip()
