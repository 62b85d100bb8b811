"""The training recipe and `pba train`, on real CIFAR-10 images with a tiny model on the CPU."""

from __future__ import annotations

import copy
import dataclasses
import errno
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pba.augmentation.policy import Policy
from pba.augmentation.schedule import Schedule, load_schedule
from pba.cli.main import main
from pba.core.errors import PBAError
from pba.data import ImageSet, load_dataset
from pba.data.datasets import default_baseline
from pba.runs.training_run import new_config
from pba.training import loop as training
from pba.training.augment import AUGMENT_MODES, make_augment
from pba.training.recipes import Recipe, cosine_lr, default_recipe, learning_rate

MODEL = "wrn_10_1"
TIME_KEYS = ("images_per_s", "time_s", "eval_time_s")


@pytest.fixture(scope="module")
def cifar(data_dir):
    return load_dataset("cifar10", data_dir, train_size=2000)


def random_schedule(epochs: int, seed: int) -> Schedule:
    """A schedule of strong random policies, so that 'pba' really changes images."""
    rng = np.random.default_rng(seed)
    caps = np.tile([10, 9], 30)  # probability, magnitude, interleaved per op
    return Schedule(tuple(Policy(tuple(rng.integers(caps // 2, caps + 1))) for _ in range(epochs)))


def subset(images: ImageSet, n: int, seed: int = 0) -> ImageSet:
    index = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return ImageSet(images.images[index], images.labels[index])


def without_time(metrics: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in TIME_KEYS} for m in metrics]


def assert_same_state(a: training.TrainState, b: training.TrainState) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["epoch"] == sb["epoch"]
    assert torch.equal(sa["generator"], sb["generator"])
    for key, value in sa["model"].items():
        assert torch.equal(value, sb["model"][key]), key
    for key, value in sa["optimizer"]["state"].items():
        other = sb["optimizer"]["state"][key]
        assert torch.equal(value["momentum_buffer"], other["momentum_buffer"])


def test_two_epochs_beat_chance(cifar):
    recipe = Recipe(epochs=2, lr=0.1, weight_decay=5e-4, batch_size=64)
    state = training.init_state(MODEL, 10, recipe, seed=0, device="cpu")
    augment = make_augment("baseline", cifar, recipe)
    state, metrics = training.train(state, cifar.train, 2, augment, recipe,
                                    mean=cifar.mean, std=cifar.std)
    assert [m["epoch"] for m in metrics] == [1, 2] and state.epoch == 2
    assert all(m["nonfinite_steps"] == 0 for m in metrics)
    assert metrics[1]["train_loss"] < metrics[0]["train_loss"]
    test = training.evaluate(state.model, subset(cifar.test, 2000), mean=cifar.mean, std=cifar.std)
    assert test["accuracy"] > 0.2, test  # chance is 0.1; this run reaches about 0.3


def test_split_runs_and_resume_equal_one_run(cifar, tmp_path):
    """2 epochs in one call == 1 + 1 == 1, checkpoint, load into a fresh state, 1 == a deep
    copy after 1 epoch trained 1 more: weights, optimiser, generator and metrics, bitwise."""
    recipe = Recipe(epochs=2, lr=0.1, weight_decay=5e-4, batch_size=64)
    train_set = subset(cifar.train, 256)
    lrs: list[float] = []

    def run(state, epochs):
        pba = make_augment("pba", cifar, recipe, schedule=random_schedule(5, seed=1))

        def augment(images, epoch, generator):  # records the lr each step trains with
            lrs.append(state.optimizer.param_groups[0]["lr"])
            return pba(images, epoch, generator)

        return training.train(state, train_set, epochs, augment, recipe,
                              mean=cifar.mean, std=cifar.std)

    def fresh():
        return training.init_state(MODEL, 10, recipe, seed=3, device="cpu")

    whole, whole_metrics = run(fresh(), 2)
    whole_lrs = lrs.copy()
    lrs.clear()

    half, first = run(fresh(), 1)
    clone = copy.deepcopy(half)
    training.save_checkpoint(tmp_path / "ckpt.pt", half, {"metrics": first})
    half, second = run(half, 1)
    assert_same_state(half, whole)
    assert without_time(first + second) == without_time(whole_metrics)
    assert lrs == whole_lrs  # the cosine continues across calls

    resumed = fresh()
    extra = training.load_checkpoint(tmp_path / "ckpt.pt", resumed)
    assert extra == {"metrics": first} and resumed.epoch == 1
    resumed, resumed_second = run(resumed, 1)
    assert_same_state(resumed, whole)
    assert without_time(resumed_second) == without_time(second)

    clone, _ = run(clone, 1)
    assert_same_state(clone, whole)


def test_cosine_lr_runs_from_base_to_zero(cifar):
    total = 1000
    lrs = [cosine_lr(0.1, step, total) for step in range(total)]
    assert lrs[0] == 0.1 and lrs[-1] < 1e-6 and lrs[total // 2] == pytest.approx(0.05)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    # In a run, the last step uses the formula's last value: near 0 with no jump at the end.
    recipe = Recipe(epochs=1, lr=0.1, weight_decay=0, batch_size=64)
    state = training.init_state(MODEL, 10, recipe, seed=0, device="cpu")
    _, (metrics,) = training.train(state, subset(cifar.train, 256), 1,
                                   make_augment("none", cifar, recipe), recipe,
                                   mean=cifar.mean, std=cifar.std)
    assert metrics["lr"] == cosine_lr(0.1, 3, 4) == state.optimizer.param_groups[0]["lr"]


def _flat(model: torch.nn.Module) -> torch.Tensor:
    # reshape, not parameters_to_vector's view: weights may be channels_last (pba.core.precision)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_gradient_clipping_bounds_the_updates(cifar):
    """With the data gradient clipped to norm c, Nesterov SGD (momentum 0.9, no weight decay)
    moves the weights by at most lr * 10c per step."""
    train_set = subset(cifar.train, 256)  # 4 steps of 64
    moved = {}
    for clip in (1e-4, 1e9):
        recipe = Recipe(epochs=1, lr=0.1, weight_decay=0, batch_size=64, grad_clip=clip)
        state = training.init_state(MODEL, 10, recipe, seed=0, device="cpu")
        before = _flat(state.model).clone()
        _, (metrics,) = training.train(state, train_set, 1,
                                       make_augment("none", cifar, recipe), recipe,
                                       mean=cifar.mean, std=cifar.std)
        after = _flat(state.model)
        moved[clip] = (after - before).norm().item()
        assert metrics["grad_norm"] > 1e-3  # the norm before clipping, far above 1e-4
    assert moved[1e-4] <= 4 * 0.1 * 10 * 1e-4 * 1.001
    assert moved[1e9] > 100 * moved[1e-4]


def test_nonfinite_loss_is_recorded_not_raised(cifar):
    recipe = Recipe(epochs=1, lr=0.1, weight_decay=5e-4, batch_size=64)
    state = training.init_state(MODEL, 10, recipe, seed=0, device="cpu")
    with torch.no_grad():
        for p in state.model.parameters():
            p.fill_(float("nan"))
    _, (metrics,) = training.train(state, subset(cifar.train, 128), 1,
                                   make_augment("baseline", cifar, recipe), recipe,
                                   mean=cifar.mean, std=cifar.std)
    assert metrics["nonfinite_steps"] == 2 and math.isnan(metrics["train_loss"])


@pytest.mark.parametrize("mode", AUGMENT_MODES)
def test_every_augment_mode_gives_uint8_batches(cifar, mode):
    recipe = Recipe(epochs=10, lr=0.1, weight_decay=5e-4)
    schedule = random_schedule(5, seed=0) if mode == "pba" else None
    augment = make_augment(mode, cifar, recipe, schedule=schedule)
    images = cifar.train.images[:64]
    out = augment(images, 9, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, augment(images, 9, torch.Generator().manual_seed(0)))  # seeded
    if mode == "none":
        assert torch.equal(out, images)
    else:
        changed = (out != images).flatten(1).any(1).float().mean().item()
        assert changed > 0.9, changed


def test_default_recipes_follow_the_paper():
    assert default_recipe("reduced_cifar10", "wrn_28_10") == Recipe(
        epochs=200, lr=0.05, weight_decay=5e-3)
    svhn = default_recipe("reduced_svhn", "wrn_28_10")
    assert (svhn.epochs, svhn.lr, svhn.weight_decay) == (160, 0.05, 1e-2)
    assert str(default_baseline("reduced_svhn")) == "none"  # the paper's reduced SVHN runs
    search = default_recipe("reduced_cifar10", "wrn_40_2")
    assert (search.lr, search.weight_decay) == (0.1, 5e-4)
    pyramid = default_recipe("cifar10", "pyramidnet_272_200")
    assert (pyramid.epochs, pyramid.batch_size) == (1800, 64)
    # The reference code trained WRNs on SVHN with a step schedule, everything else cosine.
    assert svhn.lr_schedule == "step"
    assert default_recipe("svhn", "wrn_28_10").lr_schedule == "step"
    assert default_recipe("svhn", "shake_shake_26_2x96d").lr_schedule == "cosine"
    assert default_recipe("reduced_cifar10", "wrn_28_10").lr_schedule == "cosine"


def test_step_schedule_is_the_reference_codes_on_its_160_epochs():
    recipe = Recipe(epochs=160, lr=0.05, weight_decay=0, lr_schedule="step")
    rates = [learning_rate(recipe, epoch, step, 8) for epoch in range(160)
             for step in (0, 7)]
    expected = [0.05] * 160 + [0.005] * 80 + [0.0005] * 80  # x0.1 at 80, x0.01 at 120
    assert rates == pytest.approx(expected)
    cosine = Recipe(epochs=4, lr=0.1, weight_decay=0)
    assert learning_rate(cosine, 1, 2, 4) == cosine_lr(0.1, 6, 16)
    with pytest.raises(PBAError, match="unknown learning-rate schedule 'linear'"):
        Recipe(epochs=4, lr=0.1, weight_decay=0, lr_schedule="linear")


# ---- the command line --------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, cifar) -> str:
    """640 real CIFAR-10 images as PNG files, one folder per class: a dataset whose test split
    (20%, 128 images) keeps the command-line runs short."""
    root = tmp_path_factory.mktemp("folder")
    for i in range(640):
        image, label = cifar.train.images[i], int(cifar.train.labels[i])
        (root / f"class_{label}").mkdir(exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / f"class_{label}" / f"{i}.png")
    return f"folder:{root}"


def cli_args(dataset: str, out, *extra: str) -> list[str]:
    return ["train", "--dataset", dataset, "--model", MODEL, "--batch-size", "64", "--epochs",
            "2", "--out", str(out), "--device", "cpu", "--precision", "fp32", *extra]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, image_folder):
    """A finished 2-epoch run with the PBT policy log of a random 200-epoch schedule."""
    root = tmp_path_factory.mktemp("cli")
    log = root / "search_log.txt"
    log.write_text(random_schedule(200, seed=2).pbt_log())
    argv = cli_args(image_folder, root / "run", "--schedule", str(log))
    assert main(argv) == 0
    return root / "run", argv


def read_run(out) -> tuple[dict, list[dict], dict]:
    state = torch.load(out / "checkpoint.pt", weights_only=True)["state"]
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return state, metrics, json.loads((out / "result.json").read_text())


def test_cli_writes_the_run_directory(finished_run):
    out, _ = finished_run
    config = json.loads((out / "config.json").read_text())
    assert config["augment"] == "pba" and config["lr"] == 0.1 and config["epochs"] == 2
    assert config["schedule_epochs"] is None and (out / "schedule.txt").is_file()
    state, metrics, result = read_run(out)
    assert state["epoch"] == 2 and [m["epoch"] for m in metrics] == [1, 2]
    assert "test_acc" not in metrics[0] and {"test_acc", "val_acc"} <= metrics[1].keys()
    assert result["test_error"] == pytest.approx(100 * (1 - metrics[-1]["test_acc"]))


def test_cli_resume_after_interruption_equals_one_run(finished_run, tmp_path, monkeypatch):
    reference, argv = finished_run
    out = tmp_path / "run"
    argv = [*argv, "--out", str(out)]
    real_train = training.train
    calls = []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(training, "train", interrupted_in_epoch_2)
    assert main(argv) == 130
    assert torch.load(out / "checkpoint.pt", weights_only=True)["state"]["epoch"] == 1
    monkeypatch.setattr(training, "train", real_train)
    assert main(["train", "--out", str(out), "--resume", "--device", "cpu"]) == 0

    state, metrics, result = read_run(out)
    ref_state, ref_metrics, ref_result = read_run(reference)
    for key, value in ref_state["model"].items():
        assert torch.equal(value, state["model"][key]), key
    assert without_time(metrics) == without_time(ref_metrics)
    assert result["test_acc"] == ref_result["test_acc"]


def test_cli_compile_hands_the_model_to_torch_compile(finished_run, tmp_path, monkeypatch):
    _, argv = finished_run
    compiled = []
    # Recorded, not run: compiling takes minutes on a CPU. In place, the model keeps its
    # state dict, so the run directory is that of any run.
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    out = tmp_path / "compiled"
    assert main([*argv[:argv.index("--out")], "--out", str(out),
                 *argv[argv.index("--out") + 2:], "--compile"]) == 0
    assert len(compiled) == 1 and type(compiled[0]).__name__ == "WideResNet"
    assert (out / "result.json").is_file()


def test_cli_errors_are_one_line_with_exit_2(finished_run, image_folder, tmp_path, capsys):
    run_dir, _ = finished_run
    corrupt = tmp_path / "corrupt"
    shutil.copytree(run_dir, corrupt)
    (corrupt / "checkpoint.pt").write_bytes(b"not a checkpoint")
    short = tmp_path / "short.json"
    random_schedule(10, seed=0).save(short)
    cases = [
        (cli_args("cifar11", tmp_path / "a"), "unknown dataset 'cifar11'; known: cifar10,"),
        (cli_args(image_folder, tmp_path / "b", "--model", "resnet_9"),
         "unknown model 'resnet_9'; known: wrn_10_1,"),
        (cli_args("cifar10", tmp_path / "c", "--data-dir", str(tmp_path / "nowhere")),
         "CIFAR-10 not found"),
        (cli_args(image_folder, tmp_path / "d", "--schedule", str(short), "--schedule-epochs",
                  "20"), "has 10 epochs, not 20"),
        (cli_args(image_folder, tmp_path / "e", "--augment", "pba"),
         "--augment pba needs --schedule"),
        (cli_args(image_folder, tmp_path / "f", "--augment", "mixup"),
         "unknown --augment 'mixup'"),
        (["train", "--out", str(corrupt), "--resume"], "is not a readable checkpoint"),
        (cli_args(image_folder, run_dir), "already holds a run"),
        (["train", "--out", str(run_dir), "--resume", "--lr", "0.5"], "--lr 0.5 differs"),
        (["train", "--out", str(tmp_path / "g"), "--resume"], "nothing to resume"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not any((tmp_path / name).exists() for name in "abcdef")  # nothing written


def test_a_schedule_brings_the_baseline_it_was_searched_with(tmp_path):
    searched = dataclasses.replace(random_schedule(10, seed=3), baseline="flip", cutout_size=8,
                                   image_size=(32, 32))
    searched.save(tmp_path / "schedule.json")
    loaded = load_schedule(tmp_path / "schedule.json")
    assert loaded == searched and (loaded.baseline, loaded.cutout_size, loaded.image_size) == (
        "flip", 8, (32, 32))
    given = {"dataset": "reduced_cifar10", "model": MODEL, "schedule": tmp_path / "schedule.json"}
    config = new_config(given)
    assert (config.augment, config.recipe.baseline, config.recipe.cutout_size) == ("pba", "flip", 8)
    # Told otherwise, the flags win; a schedule that does not say (a PBT log) keeps the
    # dataset's default.
    config = new_config(given | {"baseline": "crop,cutout", "cutout_size": 12})
    assert (config.recipe.baseline, config.recipe.cutout_size) == ("crop,cutout", 12)
    assert new_config(given | {"cutout_size": 12}).recipe.baseline == "flip"
    (tmp_path / "log.txt").write_text(searched.pbt_log())
    config = new_config(given | {"schedule": tmp_path / "log.txt", "schedule_epochs": 10})
    assert config.recipe.baseline is None and config.recipe.cutout_size is None


def test_a_schedule_searched_small_trains_large_with_its_cutout_scaled(tmp_path):
    # Its magnitudes scale with the side (pba.ops.registry); the baseline's Cutout, given in
    # pixels at the searched size, keeps its share of the side too.
    searched = dataclasses.replace(random_schedule(2, seed=3), image_size=(32, 32),
                                   baseline="crop,flip,cutout", cutout_size=16)
    searched.save(tmp_path / "schedule.json")
    given = {"dataset": "cifar10", "model": MODEL, "schedule": tmp_path / "schedule.json"}
    assert new_config(given | {"image_size": 64}).recipe.cutout_size == 32
    assert new_config(given).recipe.cutout_size == 16
    assert new_config(given | {"image_size": 64, "cutout_size": 10}).recipe.cutout_size == 10


def test_cli_full_disk_is_one_line_and_the_run_resumes(finished_run, tmp_path, monkeypatch,
                                                        capsys):
    reference, argv = finished_run
    out = tmp_path / "run"
    real_replace, checkpoints = os.replace, []

    def full_at_the_second_checkpoint(src, dst, *args, **kwargs):
        if Path(dst).name == "checkpoint.pt":
            checkpoints.append(dst)
            if len(checkpoints) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_at_the_second_checkpoint)
    assert main([*argv, "--out", str(out)]) == 1  # a run that cannot go on: RunStopped
    message = capsys.readouterr().err
    assert (f"pba train: stopped: cannot write epoch 2 in {out} (No space left on device); the "
            f"epochs before it are kept (checkpoint.pt): fix the cause (free some space?) and "
            f"continue with pba train --resume {out}") in message
    assert "Traceback" not in message
    assert torch.load(out / "checkpoint.pt", weights_only=True)["state"]["epoch"] == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".checkpoint")]  # no temporary
    monkeypatch.setattr(os, "replace", real_replace)
    assert main(["train", "--out", str(out), "--resume", "--device", "cpu"]) == 0
    assert read_run(out)[2]["test_acc"] == read_run(reference)[2]["test_acc"]
