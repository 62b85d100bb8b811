"""The examples under examples/ run, at smoke size, as a user would run them: a plain PyTorch
loop with persistent DataLoader workers, and a torchvision v2 pipeline (per sample, or per
batch on the device)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pba.augmentation.policy import Policy
from pba.augmentation.schedule import Schedule

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), "--smoke", *args],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_plain_loop_trains_with_a_schedule_file(tmp_path):
    policy = Policy.zeros().replace("Rotate", 0, probability=6, magnitude=4)
    schedule = Schedule((Policy.zeros(), policy, policy))
    schedule.save(tmp_path / "schedule.json")
    out = run_example("train_loop.py", "--schedule", str(tmp_path / "schedule.json"))
    assert f"sha256 {schedule.content_hash()[:12]}" in out
    # The two smoke epochs take the stretched schedule's first and last policies.
    assert "epoch 0: policy strength 0.0" in out and "epoch 1: policy strength 0.6" in out


def test_the_v2_pipeline_per_sample_builds_its_own_schedule():
    out = run_example("v2_pipeline.py")
    assert out.startswith("PBAugment per sample") and "epoch 1:" in out


def test_the_v2_pipeline_per_batch_on_cifar(data_dir):
    out = run_example("v2_pipeline.py", "--batched", "--data", "cifar10", "--data-dir",
                      str(data_dir))
    assert out.startswith("BatchPBAugment on ") and "epoch 1:" in out


def test_timm_create_transform_after_pbaugment(cifar_images):
    # The README's timm snippet: PBAugment in front of timm's own training transform.
    timm_data = pytest.importorskip("timm.data")
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    from pba import PBAugment

    invert = Policy.zeros().replace("Invert", 0, probability=10)
    aug = PBAugment(Schedule((Policy.zeros(), invert)), seed=0)
    timm_tf = timm_data.create_transform(32, is_training=True, auto_augment=None, re_prob=0.0)
    train_tf = v2.Compose([aug, timm_tf])
    images = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in cifar_images[:8]]

    def through(transform) -> list:
        torch.manual_seed(0)  # timm's crops and flips draw from torch's global generator
        return [transform(img) for img in images]

    timm_only = through(timm_tf)
    aug.set_epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(through(train_tf), timm_only, strict=True))
    aug.set_epoch(1)
    changed = [not torch.equal(a, b) for a, b in zip(through(train_tf), timm_only, strict=True)]
    assert sum(changed) >= 4
