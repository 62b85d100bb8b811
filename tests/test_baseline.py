"""The baseline's parts: chosen per dataset or on the command line, each applied on its own,
the default drawing what it always drew, old configs read as they ran, and `auto` deciding on
the data so that a flip that destroys the label is left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from pba.augmentation.baseline import PARTS, Baseline, legacy, resolve
from pba.augmentation.transforms import cutout, random_crop_flip
from pba.cli.main import main
from pba.core.errors import PBAError
from pba.core.options import RunOptions
from pba.data import DatasetSplits, ImageSet, channel_stats, load_dataset
from pba.data.datasets import default_baseline
from pba.reporting.recorders import search_recorders
from pba.runs.training_run import resumed_config
from pba.search import SearchConfig, preset
from pba.search.runner import run_search
from pba.training.baseline_check import best, check_baseline, combined, margin
from pba.training.recipes import Recipe

FP32 = RunOptions(precision="fp32")  # the same numbers on any CPU

FILL = (125, 123, 114)


def test_parts_parse_print_and_refuse_what_is_not_a_part() -> None:
    base = Baseline.parse("cutout, crop", 12)
    assert base.parts == ("crop", "cutout") and str(base) == "crop,cutout"  # PARTS order
    assert base.describe() == "crop, Cutout 12 px"
    assert str(Baseline.parse("none", 16)) == "none" and Baseline.parse("none", 16).parts == ()
    for bad in ("crop,flop", "crop,crop", ""):
        with pytest.raises(PBAError, match="comma-separated subset"):
            Baseline.parse(bad, 16)
    with pytest.raises(PBAError, match="Cutout size"):
        Baseline(("cutout",), 0)
    with pytest.raises(PBAError, match="comma-separated subset"):
        Recipe(epochs=1, lr=0.1, weight_decay=0, baseline="crop,flop")


def test_each_dataset_has_its_default_and_a_request_overrides_it() -> None:
    assert default_baseline("reduced_cifar10") == Baseline(PARTS, 16)
    assert default_baseline("svhn") == Baseline(("cutout",), 20)
    assert default_baseline("reduced_svhn").parts == ()
    cifar = default_baseline("cifar10")
    assert resolve(None, None, cifar) == cifar
    assert resolve("flip", None, cifar) == Baseline(("flip",), 16)
    assert resolve(None, 8, cifar) == Baseline(PARTS, 8)
    with pytest.raises(PBAError, match="decided on the data first"):
        resolve("auto", None, cifar)


def test_the_default_draws_as_before_and_each_part_works_alone(cifar_images) -> None:
    images = cifar_images[:64]

    def run(fn):
        return fn(torch.Generator().manual_seed(5))

    everything = run(lambda g: Baseline(PARTS, 16)(images, FILL, g))
    by_hand = run(lambda g: cutout(random_crop_flip(images, 4, FILL, g), 16, FILL, g))
    assert torch.equal(everything, by_hand)

    flipped = run(lambda g: Baseline(("flip",), 16)(images, FILL, g))
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(flipped, images, strict=True)]
    same = [torch.equal(a, b) for a, b in zip(flipped, images, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert 10 < sum(mirrored) < 54  # about half of 64 (5 sigma: 32 +- 20)

    cropped = run(lambda g: Baseline(("crop",), 16)(images, FILL, g))
    crop_flip = run(lambda g: random_crop_flip(images, 4, FILL, g))
    # The same offsets as crop-and-flip, never mirrored: equal wherever that one did not flip.
    unflipped = [torch.equal(a, b) for a, b in zip(cropped, crop_flip, strict=True)]
    assert 10 < sum(unflipped) < 54 and not torch.equal(cropped, images)

    holes = run(lambda g: Baseline(("cutout",), 8)(images, FILL, g))
    changed = (holes != images).any(dim=1).flatten(1).sum(1)
    assert changed.max() <= 64 and changed.float().mean() > 16  # an 8x8 square, partly off-edge


def test_configs_from_before_parts_read_as_they_ran(tmp_path: Path) -> None:
    assert legacy(default_baseline("reduced_cifar10"), cutout=False) == "crop,flip"
    assert legacy(default_baseline("reduced_svhn"), cutout=True) == "cutout"
    assert legacy(default_baseline("folder:x"), cutout=True) == "crop,flip,cutout"
    doc = preset("smoke").to_dict()
    del doc["baseline"], doc["cutout_size"]
    old = SearchConfig.from_dict(doc | {"cutout": False})
    assert str(old.settled_baseline()) == "crop,flip" and old.recipe().baseline == "crop,flip"
    run = tmp_path / "train"
    run.mkdir()
    config = {"dataset": "reduced_svhn", "model": "wrn_10_1", "augment": "baseline",
              "schedule": None, "schedule_epochs": None, "seed": 0, "train_size": 8,
              "val_size": 0, "eval_every": 0, "epochs": 1, "lr": 0.1, "weight_decay": 0.0,
              "batch_size": 8, "cutout": True}
    (run / "config.json").write_text(json.dumps(config))
    resumed = resumed_config(run)
    assert (resumed.recipe.baseline, resumed.recipe.cutout_size) == ("cutout", None)
    assert "cutout" not in resumed.to_dict()


def test_the_command_line_records_the_parts_and_refuses_unknown_ones(tmp_path, capsys) -> None:
    common = ["train", "--dataset", "reduced_cifar10", "--model", "wrn_10_1", "--epochs", "1",
              "--train-size", "64", "--val-size", "0", "--batch-size", "32",
              "--precision", "fp32", "--device", "cpu"]
    assert main([*common, "--baseline", "crop,flop", "--out", str(tmp_path / "bad")]) == 2
    assert "comma-separated subset of crop,flip,cutout" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main([*common, "--baseline", "flip,cutout", "--cutout-size", "8",
                 "--out", str(tmp_path / "run")]) == 0
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (doc["baseline"], doc["cutout_size"], doc["baseline_check"]) == ("flip,cutout", 8, None)
    assert main([*common, "--out", str(tmp_path / "default")]) == 0  # the dataset's, recorded
    doc = json.loads((tmp_path / "default" / "config.json").read_text())
    assert (doc["baseline"], doc["cutout_size"]) == ("crop,flip,cutout", 16)


def test_the_decision_keeps_what_beats_none_by_more_than_noise() -> None:
    candidate = Baseline(PARTS, 16)
    scores = {"none": 0.70, "crop": 0.75, "flip": 0.60, "cutout": 0.72}
    gap = margin(0.70, 10_000)  # two standard errors of the difference: 0.013
    assert gap == pytest.approx(2 * (2 * 0.7 * 0.3 / 10_000) ** 0.5)
    together = combined(candidate, scores, gap)
    assert together == Baseline(("crop", "cutout"), 16)
    arms = [candidate.only(), *(candidate.only(p) for p in PARTS), together]
    assert best(arms, scores | {"crop,cutout": 0.74}, gap) == Baseline(("crop",), 16)
    assert best(arms, scores | {"crop,cutout": 0.78}, gap) == together
    level = {"none": 0.8, "crop": 0.7, "flip": 0.8, "cutout": 0.79}
    assert combined(candidate, level, gap) is None
    assert best(arms[:4], level, gap).parts == ()  # a tie with none goes to none
    # On 150 images the same gaps are noise (margin 0.10): none stays.
    assert combined(candidate, scores, margin(0.70, 150)) is None
    assert best(arms[:4], scores, margin(0.70, 150)).parts == ()


def _sided(n: int, size: int, seed: int) -> ImageSet:
    """Class 0 is bright on the left, class 1 on the right: a flip turns one into the other."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randint(0, 60, (n, 3, size, size), generator=g, dtype=torch.uint8)
    half = size // 2
    for i, label in enumerate(labels.tolist()):
        cols = slice(0, half) if label == 0 else slice(half, size)
        images[i, :, :, cols] += 180
    return ImageSet(images, labels)


def test_auto_leaves_out_a_flip_that_destroys_the_label() -> None:
    train, val = _sided(128, 16, 0), _sided(64, 16, 1)
    mean, std = channel_stats(train.images)
    data = DatasetSplits("folder:sided", train, val, val, 2, mean, std, Baseline(PARTS, 8))
    recipe = Recipe(epochs=8, lr=0.05, weight_decay=5e-4, batch_size=32)
    check = check_baseline(data, data.baseline, model="wrn_10_1", recipe=recipe, seed=0,
                           device=torch.device("cpu"), progress=False)
    acc = check.accuracy
    assert set(acc) >= {"none", "crop", "flip", "cutout"}
    assert acc["none"] > 0.9 and acc["flip"] < 0.75, acc  # mirrored, the classes swap
    assert "flip" not in check.chosen.parts
    assert acc[str(check.chosen)] >= acc["none"]
    assert check.to_dict()["chosen"] == str(check.chosen)


def test_a_folder_search_decides_its_baseline_and_records_why(tmp_path: Path) -> None:
    root = tmp_path / "sided"
    images = _sided(96, 16, 2)
    for i, (image, label) in enumerate(zip(images.images, images.labels, strict=True)):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / f"c{label}" / f"{i}.png")
    data = load_dataset(f"folder:{root}", image_size=16)
    assert data.baseline == Baseline(PARTS, 8)
    config = preset("smoke").replace(dataset=f"folder:{root}", train_size=64, val_size=12,
                                     epochs=2, batch_size=32, population=2)
    run_search(config, tmp_path / "auto", options=FP32,
               recorders=search_recorders(progress=False))
    doc = json.loads((tmp_path / "auto" / "config.json").read_text())
    check = doc["baseline_check"]
    assert set(check["val_accuracy"]) >= {"none", "crop", "flip", "cutout"}
    assert doc["search"]["baseline"] == check["chosen"] and check["epochs"] == 2
    assert "decided on the data" in (tmp_path / "auto" / "summary.md").read_text()
    run_search(config.replace(baseline="crop"), tmp_path / "given", options=FP32,
               recorders=search_recorders(progress=False))
    doc = json.loads((tmp_path / "given" / "config.json").read_text())
    assert doc["baseline_check"] is None and doc["search"]["baseline"] == "crop"
