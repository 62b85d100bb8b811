"""Where the time goes (`pba.core.timing`): the breakdown of a search, a training run and a demo
covers their wall time; the evaluation batch rule; the allocator; the layouts train alike."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from pba.core.allocator import keep_freed_memory
from pba.core.options import RunOptions
from pba.core.timing import (
    CHECKPOINTS,
    EVALUATION,
    LOADING,
    TRAINING,
    WAITING,
    Stopwatch,
    TimeBreakdown,
)
from pba.data import ImageSet, load_dataset, normalize
from pba.search import preset
from pba.search.cost import search_cost
from pba.search.runner import run_search
from pba.search.summary import summary_markdown
from pba.training import loop as training
from pba.training.augment import make_augment
from pba.training.loop import (
    CPU_ACTIVATION_BYTES,
    EVAL_BATCH,
    MIN_EVAL_BATCH,
    evaluation_batch,
    largest_activation_bytes,
)
from pba.training.recipes import Recipe

COVERED = 0.05  # of the wall time, the most that no phase may cover


@pytest.fixture(scope="module")
def cifar(data_dir):
    return load_dataset("cifar10", data_dir, train_size=1000)


def test_breakdowns_add_and_scale() -> None:
    a = TimeBreakdown(10.0, {TRAINING: 8.0, EVALUATION: 1.0})
    b = TimeBreakdown(4.0, {TRAINING: 2.0, LOADING: 1.0})
    total = a + b
    assert total.wall_s == 14.0 and total.phases == {TRAINING: 10.0, EVALUATION: 1.0,
                                                      LOADING: 1.0}
    assert total.other_s == pytest.approx(2.0) and total.share(TRAINING) == pytest.approx(10 / 14)
    assert TimeBreakdown.from_dict(json.loads(json.dumps(total.to_dict()))) == total
    half = total.scaled(0.5)
    assert half.wall_s == 7.0 and half.phases[TRAINING] == 5.0
    assert "training steps 71%" in total.describe() and "other 14%" in total.describe()


def test_a_stopwatch_times_phases_and_hands_over_laps() -> None:
    watch = Stopwatch()
    with watch.phase(TRAINING):
        sum(range(100_000))
    watch.add(EVALUATION, 0.25)
    lap = watch.lap()
    assert set(lap) == {TRAINING, EVALUATION} and lap[EVALUATION] == 0.25
    watch.add(CHECKPOINTS, 0.5)
    assert watch.lap() == {CHECKPOINTS: 0.5}  # only what came after the last lap
    total = watch.breakdown()
    assert set(total.phases) == {TRAINING, EVALUATION, CHECKPOINTS}
    with pytest.raises(ValueError), watch.phase(LOADING):
        raise ValueError  # a failing phase is still timed
    assert LOADING in watch.breakdown().phases


def test_a_search_records_where_its_time_went(data_dir, tmp_path) -> None:
    config = preset("quick").replace(epochs=4, interval=2, population=4, train_size=128,
                                     val_size=128, batch_size=32)
    run_search(config, tmp_path / "s", options=RunOptions(device="cpu", precision="fp32",
                                                          data_dir=data_dir, workers=1))
    events = [json.loads(line) for line in (tmp_path / "s" / "population.jsonl").open()]
    rounds = [e for e in events if e["event"] == "round"]
    assert all({TRAINING, EVALUATION, CHECKPOINTS} <= set(r["phases"]) for r in rounds[1:])
    assert rounds[0]["phases"][LOADING] > 0  # the data, before the first round
    assert [e["event"] for e in events][-1] == "finish"
    cost = search_cost(tmp_path / "s")
    time = cost.time
    # The phases cover the wall time from the process's start to the finish.
    start = next(e for e in events if e["event"] == "start")["time"]
    assert time.wall_s == pytest.approx(events[-1]["time"] - start)
    assert 0 <= time.other_s <= COVERED * time.wall_s
    assert time.share(TRAINING) > time.share(EVALUATION) > 0
    summary = summary_markdown(tmp_path / "s")
    assert f"- time: {time.describe()}" in summary


def test_a_training_run_records_where_its_time_went(data_dir, tmp_path) -> None:
    from pba.runs import training_run

    config = training_run.new_config(
        {"dataset": "reduced_cifar10", "model": "wrn_10_1", "augment": "baseline",
         "epochs": 2, "train_size": 128, "val_size": 0, "batch_size": 32},
        device="cpu", data_dir=data_dir)
    result = training_run.fit(config, tmp_path / "t", options=RunOptions(
        device="cpu", data_dir=data_dir, progress=False))
    time = TimeBreakdown.from_dict(result["time"])
    assert {LOADING, TRAINING, EVALUATION, CHECKPOINTS} <= set(time.phases)
    assert 0 <= time.other_s <= COVERED * time.wall_s
    history = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").open()]
    assert time.phases[EVALUATION] == pytest.approx(sum(m["eval_time_s"] for m in history))


def test_side_by_side_work_counts_as_wall_time_with_the_waiting() -> None:
    # Two workers: 3 models of 10 s each take 20 s of wall, of which 15 s is the models' own
    # (30 worker-seconds over 2) and 5 s one worker waiting for the last model.
    watch = Stopwatch()
    models = TimeBreakdown(30.0, {TRAINING: 27.0, EVALUATION: 3.0})
    side_by_side = models.scaled(1 / 2)
    watch.add_breakdown(side_by_side)
    watch.add(WAITING, 20.0 - side_by_side.wall_s)
    phases = watch.breakdown().phases
    assert phases[TRAINING] == 13.5 and phases[EVALUATION] == 1.5 and phases[WAITING] == 5.0


def test_the_evaluation_batch_keeps_activations_off_the_kernel_on_a_cpu() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert evaluation_batch(10**9, cuda) == EVAL_BATCH  # a GPU takes the large batch
    assert evaluation_batch(1, cpu) == EVAL_BATCH
    for per_image in (64 * 1024, 128 * 1024, 3 * 100_000, 10**6):
        batch = evaluation_batch(per_image, cpu)
        assert batch & (batch - 1) == 0  # a power of two
        assert batch * per_image <= CPU_ACTIVATION_BYTES < 2 * batch * per_image
    assert evaluation_batch(10**9, cpu) == MIN_EVAL_BATCH
    # WRN-10-1's widest activation on 32x32 images: 16 channels at full size in float32.
    assert evaluation_batch(16 * 32 * 32 * 4, cpu) == 256


def test_the_largest_activation_is_measured_on_one_image() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 40, 3, padding=1))
    image = torch.zeros(3, 32, 32)
    assert largest_activation_bytes(model, image, "fp32") == 16 * 32 * 32 * 4
    assert not any(m._forward_hooks for m in model.modules())  # the hooks are removed


def test_evaluate_gives_the_same_scores_whatever_the_batch(cifar) -> None:
    recipe = Recipe(epochs=1, lr=0.1, weight_decay=5e-4, batch_size=64)
    state = training.init_state("wrn_10_1", 10, recipe, seed=0, device="cpu")
    images = ImageSet(cifar.test.images[:300], cifar.test.labels[:300])
    norm = {"mean": cifar.mean, "std": cifar.std}
    by_rule = training.evaluate(state.model, images, **norm)
    for batch in (7, 1024):
        other = training.evaluate(state.model, images, **norm, batch_size=batch)
        assert other["accuracy"] == by_rule["accuracy"]
        assert other["loss"] == pytest.approx(by_rule["loss"], rel=1e-5)


def test_the_allocator_is_tuned_on_glibc_only(monkeypatch) -> None:
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory() is True
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    assert keep_freed_memory() is False


def test_importing_pba_leaves_the_allocator_alone() -> None:
    import subprocess
    import sys

    code = ("import ctypes.util, pba, pba.training.loop, pba.search, pba.demo, pba.cli.main\n"
            "import pba.core.allocator as a\n"
            "calls = []\n"
            "a.keep_freed_memory = lambda: calls.append(1)\n"
            "print(len(calls))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "0"


def test_channels_last_trains_like_the_contiguous_layout(cifar, monkeypatch) -> None:
    """fp32 on a CPU trains in channels_last (pba.core.precision): the same run in either layout
    differs by float rounding only. After 2 epochs the training loss agrees within 0.1%, and
    the two models' test predictions agree far more often than those of the same run on
    another seed (near chance a rounding difference flips a few borderline images)."""
    recipe = Recipe(epochs=2, lr=0.1, weight_decay=5e-4, batch_size=64)
    images = ImageSet(cifar.train.images[:512], cifar.train.labels[:512])
    test = normalize(cifar.test.images[:500], cifar.mean, cifar.std)
    losses, predictions = [], []
    for layout, seed in ((torch.contiguous_format, 3), (torch.channels_last, 3),
                         (torch.contiguous_format, 4)):
        monkeypatch.setattr(training, "memory_format", lambda precision, device, f=layout: f)
        state = training.init_state("wrn_10_1", 10, recipe, seed=seed, device="cpu")
        _, metrics = training.train(state, images, 2, make_augment("baseline", cifar, recipe),
                                    recipe, mean=cifar.mean, std=cifar.std)
        losses.append(metrics[-1]["train_loss"])
        state.model.eval()
        with torch.no_grad():
            predictions.append(state.model(test.contiguous(memory_format=layout)).argmax(1))
    assert math.isclose(losses[0], losses[1], rel_tol=1e-3)
    layouts = (predictions[0] == predictions[1]).float().mean().item()
    seeds = (predictions[0] == predictions[2]).float().mean().item()
    assert layouts >= 0.85 and layouts >= seeds + 0.2
