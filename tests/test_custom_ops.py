"""A user's own op through the whole product: `--ops` for search, resume, train, apply and plot,
with a real new op (tests/custom_ops.py: a horizontal mirror) whose batched path agrees with
its Pillow path on real images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pba.augmentation.policy import Policy
from pba.augmentation.transforms import CIFAR10_FILL, apply_policy
from pba.core.errors import PBAError
from pba.ops import load_op_set

TESTS = Path(__file__).resolve().parent
OPS = f"{TESTS / 'custom_ops.py'}:MIRROR_OPS"
PBA = [sys.executable, "-m", "pba.cli.main"]


def pba(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PBA, *args], capture_output=True, text=True, timeout=300)


def test_the_mirror_ops_batched_path_is_its_pillow_path(cifar_images) -> None:
    ops = load_op_set(OPS)
    mirror = ops[ops.index("Mirror")]
    batched = mirror.tensor(cifar_images, torch.zeros(len(cifar_images)), None, None)
    for image, out in zip(cifar_images, batched, strict=True):
        pil = Image.fromarray(image.permute(1, 2, 0).numpy())
        expected = np.asarray(mirror.pil(pil, 0.0, CIFAR10_FILL, np.random.default_rng(0)))
        assert np.array_equal(out.permute(1, 2, 0).numpy(), expected)
    # In a policy it mirrors the images that draw it.
    policy = Policy.zeros(ops).replace("Mirror", 0, probability=10)
    out = apply_policy(cifar_images, policy, CIFAR10_FILL, torch.Generator().manual_seed(0))
    mirrored = (out == cifar_images.flip(-1)).flatten(1).all(1).float().mean()
    assert 0.7 < mirrored < 0.9  # 80% of images get at least one op (docs/algorithm.md §3)


def test_op_specs_fail_clearly() -> None:
    with pytest.raises(PBAError, match="MODULE:NAME"):
        load_op_set("custom_ops")
    with pytest.raises(PBAError, match="cannot import no_such_module"):
        load_op_set("no_such_module:OPS")
    with pytest.raises(PBAError, match="int called 'NOT_AN_OP_SET', not an OpSet"):
        load_op_set(f"{TESTS / 'custom_ops.py'}:NOT_AN_OP_SET")
    assert load_op_set(OPS) is load_op_set(OPS)  # imported once


def test_a_custom_op_reaches_the_search_and_everything_after(tmp_path: Path) -> None:
    out = tmp_path / "search"
    done = pba("search", "--preset", "smoke", "--epochs", "4", "--ops", OPS, "--precision",
               "fp32", "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "config.json").read_text())["search"]["ops"] == OPS
    doc = json.loads((out / "schedule.json").read_text())
    assert doc["ops"][-1] == "Mirror" and len(doc["ops"]) == 16
    assert {len(p) for p in doc["policies"]} == {64}
    events = [json.loads(line) for line in (out / "population.jsonl").open()]
    assert {len(e["policy"]) for e in events if e["event"] == "train"} == {64}
    assert f"--ops {OPS}" in (out / "summary.md").read_text()
    # The policy log round-trips with the 16 ops too.
    assert load_op_set(OPS).names == tuple(doc["ops"])

    schedule = str(out / "schedule.json")
    train = ["train", "--dataset", "reduced_cifar10", "--model", "wrn_10_1", "--epochs", "1",
             "--train-size", "128", "--val-size", "0", "--batch-size", "64", "--precision",
             "fp32", "--schedule", schedule]
    refused = pba(*train, "--out", str(tmp_path / "no-ops"))
    assert refused.returncode == 2 and "unknown op 'Mirror'" in refused.stderr
    assert "--ops" in refused.stderr and "Traceback" not in refused.stderr
    trained = pba(*train, "--ops", OPS, "--out", str(tmp_path / "train"))
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "train/config.json").read_text())["ops"] == OPS
    assert pba("apply", "--schedule", schedule, "--ops", OPS, "--out",
               str(tmp_path / "grid.png")).returncode == 0
    assert pba("plot", schedule, "--ops", OPS, "--out", str(tmp_path / "plot.png")).returncode == 0
    for png in ("grid.png", "plot.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")

    # A resumed search imports the ops again from config.json, and says so when it cannot.
    state = json.loads((out / "state.json").read_text())
    (out / "state.json").write_text(json.dumps({**state, "finished": False}))
    resumed = pba("search", "--resume", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "schedule.json").read_text())["policies"] == doc["policies"]
    (out / "state.json").write_text(json.dumps({**state, "finished": False}))
    config = json.loads((out / "config.json").read_text())
    config["search"]["ops"] = "no_such_module:OPS"
    (out / "config.json").write_text(json.dumps(config))
    gone = pba("search", "--resume", str(out), "--no-progress")
    assert gone.returncode == 2 and "cannot import no_such_module" in gone.stderr
    assert "Traceback" not in gone.stderr
