"""Image folders as users have them: unreadable files listed in one error or skipped, every
image mode made RGB, non-image files ignored, too-small classes refused, and a folder that
comes split into train/ and test/ (and val/) used as given."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pba.augmentation.schedule import load_schedule
from pba.cli.main import main
from pba.core.errors import PBAError
from pba.core.options import RunOptions
from pba.data import load_dataset
from pba.data.folders import MAX_LISTED
from pba.data.image_files import to_rgb
from pba.reporting.recorders import search_recorders
from pba.search import preset
from pba.search.runner import run_search

FP32 = RunOptions(precision="fp32")  # the same numbers on any CPU


def solid_folder(root: Path, classes: int = 2, per_class: int = 6, size: int = 8) -> None:
    """Solid-colour PNGs: class c lights up channel c."""
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
        colour = tuple(255 if i == c else 0 for i in range(3))
        for i in range(per_class):
            Image.new("RGB", (size, size), colour).save(root / f"class_{c}" / f"{i}.png")


def test_unreadable_files_are_listed_together_or_skipped(tmp_path: Path) -> None:
    solid_folder(tmp_path / "imgs")
    bad = [tmp_path / "imgs" / f"class_{i % 2}" / f"broken{i}.png" for i in range(MAX_LISTED + 3)]
    for path in bad:
        path.write_bytes(b"not a png")
    with pytest.raises(PBAError) as info:
        load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=8)
    message = str(info.value)
    assert message.startswith(f"{len(bad)} unreadable image(s)")
    assert sum(path.name in message for path in bad) == MAX_LISTED and "and 3 more" in message
    assert "--skip-unreadable" in message
    data = load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=8, skip_unreadable=True)
    assert len(data.skipped) == len(bad)
    assert len(data.train) + len(data.val) + len(data.test) == 12


def test_every_image_mode_becomes_rgb(tmp_path: Path) -> None:
    grey = Image.new("L", (4, 4), 77)
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.info["transparency"] = 0
    deep = Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16))  # 16-bit grayscale
    expected = {"L": (77, 77, 77), "RGBA": (10, 20, 30), "P": (200, 100, 50),
                "I;16": (156, 156, 156)}  # 40000 of 65535 is 155.6 of 255
    for image in (grey, rgba, palette, deep):
        mode = image.mode
        path = tmp_path / f"{mode.replace(';', '_')}.png"
        image.save(path)
        with Image.open(path) as reread:  # as it comes back from disk (16-bit: I;16 or I)
            rgb = to_rgb(reread)
        assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == expected[mode], mode


def test_non_images_are_ignored_and_small_classes_refused(tmp_path: Path) -> None:
    solid_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "class_0" / "README.md").write_text("about these images")
    (tmp_path / "imgs" / "class_1" / ".DS_Store").write_bytes(b"\0\1")
    assert len(load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=8).test) == 2
    solid_folder(tmp_path / "small", per_class=6)
    (tmp_path / "small" / "class_2").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "small" / "class_2" / "only.png")
    with pytest.raises(PBAError, match=r"at least 5 image\(s\) to split.*class_2 \(1\)"):
        load_dataset(f"folder:{tmp_path / 'small'}", image_size=8)
    solid_folder(tmp_path / "one", classes=1)
    with pytest.raises(PBAError, match="has one class"):
        load_dataset(f"folder:{tmp_path / 'one'}", image_size=8)


def test_a_folder_split_into_train_val_test_is_used_as_given(tmp_path: Path) -> None:
    root = tmp_path / "split"
    solid_folder(root / "train", per_class=7)
    solid_folder(root / "test", per_class=3)
    data = load_dataset(f"folder:{root}", image_size=8)
    assert (len(data.train), len(data.val), len(data.test)) == (13, 1, 6)  # 10% of train/
    assert torch.bincount(data.test.labels).tolist() == [3, 3]
    solid_folder(root / "val", per_class=2)
    data = load_dataset(f"folder:{root}", image_size=8)
    assert (len(data.train), len(data.val), len(data.test)) == (14, 4, 6)
    for part in (data.train, data.val, data.test):  # labels follow the class folders
        for image, label in zip(part.images, part.labels, strict=True):
            assert image[label].min() == 255
    with pytest.raises(PBAError, match="leave --val-size out"):
        load_dataset(f"folder:{root}", image_size=8, val_size=2)
    (root / "test" / "class_9").mkdir()
    Image.new("RGB", (8, 8)).save(root / "test" / "class_9" / "x.png")
    with pytest.raises(PBAError, match="class folders that train/ lacks: class_9"):
        load_dataset(f"folder:{root}", image_size=8)


def test_a_search_records_what_it_skipped(tmp_path: Path, cifar_images) -> None:
    root = tmp_path / "imgs"
    for i, image in enumerate(cifar_images[:120]):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / f"c{i % 2}" / f"{i}.png")
    (root / "c0" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    config = preset("smoke").replace(dataset=f"folder:{root}", train_size=64, val_size=16,
                                     epochs=2)
    with pytest.raises(PBAError, match="broken.jpg"):
        run_search(config, tmp_path / "refused", recorders=search_recorders(progress=False))
    run_search(config, tmp_path / "run", skip_unreadable=True, options=FP32,
               recorders=search_recorders(progress=False))
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["skip_unreadable"] is True and doc["images"]["skipped"] == 1
    assert "1 unreadable files skipped" in (tmp_path / "run" / "summary.md").read_text()


def test_every_command_a_folder_search_suggests_runs_as_printed(tmp_path: Path,
                                                                cifar_images) -> None:
    # The baseline is decided on the data ('auto'); the suggested final model has no
    # validation split, so it must train with the baseline the schedule was searched with.
    root = tmp_path / "imgs"
    for i, image in enumerate(cifar_images[:120]):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / f"c{i % 2}" / f"{i}.png")
    config = preset("smoke").replace(dataset=f"folder:{root}", train_size=64, val_size=16,
                                     epochs=2)
    run_search(config, tmp_path / "run", options=FP32,
               recorders=search_recorders(progress=False))
    settled = json.loads((tmp_path / "run" / "config.json").read_text())["search"]
    schedule = load_schedule(tmp_path / "run" / "schedule.json")
    assert (schedule.baseline, schedule.cutout_size) == (settled["baseline"],
                                                         settled["cutout_size"])
    assert schedule.image_size == (32, 32)
    commands = [line.strip() for line in (tmp_path / "run" / "summary.md").read_text()
                .splitlines() if line.startswith("    pba ")]
    assert commands
    for command in commands:
        argv = shlex.split(command)[1:]
        assert main([*argv, "--no-progress"]) == 0, command
        out = Path(argv[argv.index("--out") + 1])
        trained = json.loads((out / "config.json").read_text())
        assert trained["baseline"] == settled["baseline"]
        assert json.loads((out / "result.json").read_text())["test_error"] >= 0
