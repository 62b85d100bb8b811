"""Images where users keep them: `--image-size` on any source, a torchvision dataset class read
from its files on disk (never downloaded), and Datasets in Python through the API."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pba.core.errors import PBAError
from pba.core.options import RunOptions
from pba.data import load_dataset
from pba.data.datasets import save_datasets
from pba.data.imageset import fit_images


def _write_mnist(root: Path, train: int, test: int) -> None:
    """Files in torchvision's MNIST layout (root/MNIST/raw/*-ubyte), digits drawn as bars: the
    class is the bar's row, so every image differs and the label is visible."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label:4 + 2 * label, 2:26] = 255
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x801, n) + labels.tobytes())


def _write_dtd(root: Path, per_class: int) -> None:
    """Files in torchvision's DTD layout (a `split=` class): images/<class>/*.jpg and
    labels/{train,val,test}1.txt listing them."""
    base = root / "dtd" / "dtd"
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for c, name in enumerate(("banded", "dotted")):
        (base / "images" / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((48, 64, 3), 40 + 150 * c, dtype=np.uint8)
            Image.fromarray(pixels).save(base / "images" / name / f"{name}_{i}.jpg")
            split = ("train", "val", "test")[i % 3]
            lines[split].append(f"{name}/{name}_{i}.jpg")
    (base / "labels").mkdir()
    for split, names in lines.items():
        (base / "labels" / f"{split}1.txt").write_text("\n".join(names) + "\n")


def test_fit_images_resizes_the_shorter_side_and_crops_the_centre() -> None:
    # A 2 x 4 image whose left and right quarters are black and middle white: fitted to 2 x 2,
    # the centre crop keeps the white middle, where squashing would have kept some black.
    image = torch.zeros(1, 3, 2, 4, dtype=torch.uint8)
    image[..., 1:3] = 255
    fitted = fit_images(image, 2)
    assert fitted.shape == (1, 3, 2, 2)
    assert fitted.min() == 255
    # Larger: the shorter side scales to the size, the longer one proportionally, then cropped.
    assert fit_images(torch.zeros(3, 3, 20, 40, dtype=torch.uint8), 64).shape == (3, 3, 64, 64)
    same = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert fit_images(same, 8) is same


def test_a_named_dataset_at_another_size_scales_its_cutout_and_restates_its_statistics() -> None:
    small = load_dataset("reduced_cifar10", train_size=64, val_size=16)
    large = load_dataset("reduced_cifar10", train_size=64, val_size=16, image_size=64)
    assert large.train.images.shape == (64, 3, 64, 64)
    assert large.test.images.shape[-2:] == (64, 64) and large.val.images.shape[-2:] == (64, 64)
    assert small.baseline.cutout_size == 16 and large.baseline.cutout_size == 32
    assert large.baseline.parts == small.baseline.parts
    assert torch.equal(large.train.labels, small.train.labels)
    # Bilinear upsampling keeps the mean colour within a rounding step.
    assert np.allclose(large.mean, small.mean, atol=2 / 255)


def test_a_torchvision_class_with_train_and_test_is_read_from_disk_by_its_split(
        tmp_path: Path) -> None:
    _write_mnist(tmp_path, train=40, test=20)
    data = load_dataset(f"torchvision:MNIST:{tmp_path}", image_size=32)
    # Its own split: all 20 test images; 10% of the 40 training ones validate.
    assert len(data.test) == 20 and len(data.train) + len(data.val) == 40 and len(data.val) == 4
    assert data.train.images.shape[1:] == (3, 32, 32) and data.num_classes == 10
    # Grey bars became RGB, each class's bar in its own rows.
    first = data.test.images[0]
    assert torch.equal(first[0], first[1]) and first.max() > 200
    assert torch.equal(data.test.labels, torch.arange(20) % 10)


def test_a_torchvision_class_with_a_split_argument_and_no_download(tmp_path: Path) -> None:
    _write_dtd(tmp_path, per_class=9)
    data = load_dataset(f"torchvision:DTD:{tmp_path}", image_size=24)
    assert data.train.images.shape[-2:] == (24, 24)
    assert len(data.test) == 6  # the test1.txt third of each class
    assert data.num_classes == 2
    with pytest.raises(PBAError, match="could not be read from .*--download"):
        load_dataset(f"torchvision:DTD:{tmp_path / 'empty'}")


def test_torchvision_sources_say_what_is_wrong() -> None:
    with pytest.raises(PBAError, match="no dataset class 'NoSuchSet'; known: .*CIFAR10"):
        load_dataset("torchvision:NoSuchSet:/tmp")
    with pytest.raises(PBAError, match="torchvision:CLASS:ROOT"):
        load_dataset("torchvision:MNIST")
    with pytest.raises(PBAError, match="ImageFolder cannot download"):
        load_dataset("torchvision:ImageFolder:/tmp", download=True)


def test_an_image_folder_class_reads_non_square_images_as_one_pool(tmp_path: Path) -> None:
    for c in range(2):
        (tmp_path / f"c{c}").mkdir()
        for i in range(10):
            Image.new("RGB", (60, 30), (200 * c, 50, 50)).save(tmp_path / f"c{c}" / f"{i}.png")
    data = load_dataset(f"torchvision:ImageFolder:{tmp_path}", image_size=16)
    assert len(data.test) == 4 and len(data.train) + len(data.val) == 16
    assert data.train.images.shape[1:] == (3, 16, 16)


class _Squares(torch.utils.data.Dataset):
    """A map-style Dataset of (PIL image, label): bright squares for class 1, dark for 0."""

    def __init__(self, n: int, size: tuple[int, int]) -> None:
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.new("RGB", self.size, (230, 230, 230) if i % 2 else (20, 20, 20)), i % 2


def test_python_datasets_become_a_dataset_file_that_trains(tmp_path: Path) -> None:
    from pba.runs import training_run

    test = (torch.randint(0, 256, (8, 3, 40, 40), dtype=torch.uint8), torch.arange(8) % 2)
    name = save_datasets(tmp_path / "mine.npz", _Squares(40, (50, 30)), test, image_size=16)
    assert name == f"npz:{tmp_path / 'mine.npz'}"
    data = load_dataset(name)
    assert data.train.images.shape[1:] == (3, 16, 16) and len(data.test) == 8
    assert len(data.val) == 4 and data.num_classes == 2  # 10% of train validates
    config = training_run.new_config({"dataset": name, "model": "wrn_10_1", "epochs": 1,
                                      "batch_size": 16, "baseline": "flip"}, device="cpu")
    result = training_run.fit(config, tmp_path / "run",
                              options=RunOptions(device="cpu", progress=False))
    assert 0 <= result["test_error"] <= 100


def test_python_items_may_be_tensors_or_arrays_and_bad_ones_are_named(tmp_path: Path) -> None:
    items = [(torch.rand(3, 20, 20), 0), (np.zeros((20, 20, 3), np.uint8), 1)] * 3
    name = save_datasets(tmp_path / "t.npz", items, items, image_size=8)
    assert load_dataset(name).test.images.shape == (6, 3, 8, 8)
    with pytest.raises(PBAError, match="train item 0 is a str"):
        save_datasets(tmp_path / "bad.npz", [("cat.jpg", 0)], items)


def _non_square_folder(root: Path, per_class: int = 12) -> str:
    """Two classes of 72 x 40 photos-to-be: a bright or a dark disc in the middle."""
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.random.default_rng(i).integers(0, 60, (40, 72, 3), dtype=np.uint8)
            yy, xx = np.mgrid[:40, :72]
            pixels[(yy - 20) ** 2 + (xx - 36) ** 2 < 150] = 40 + 200 * c
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.jpg")
    return f"folder:{root}"


def test_the_cli_trains_a_torchvision_model_at_the_size_given_and_records_it(
        tmp_path: Path) -> None:
    import json

    from pba.cli.main import main

    folder = _non_square_folder(tmp_path / "photos")
    out = tmp_path / "run"
    assert main(["train", "--dataset", folder, "--image-size", "64", "--model", "resnet18",
                 "--epochs", "1", "--batch-size", "8", "--baseline", "crop,flip",
                 "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["image_size"] == 64 and config["model"] == "resnet18"
    result = json.loads((out / "result.json").read_text())
    assert 0 <= result["test_error"] <= 100
    # A resumed run keeps its size: another one is refused.
    assert main(["train", "--resume", "--out", str(out), "--image-size", "32",
                 "--no-progress"]) == 2


def test_a_search_at_a_size_records_it_and_its_schedule_carries_it(tmp_path: Path) -> None:
    import json

    from pba.augmentation.schedule import load_schedule
    from pba.cli.main import main

    folder = _non_square_folder(tmp_path / "photos")
    out = tmp_path / "search"
    assert main(["search", "--preset", "smoke", "--dataset", folder, "--image-size", "24",
                 "--epochs", "2", "--interval", "1", "--train-size", "14", "--val-size", "4",
                 "--batch-size", "7", "--baseline", "flip", "--device", "cpu",
                 "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["search"]["image_size"] == 24 and config["images"]["size"] == [24, 24]
    assert load_schedule(out / "schedule.json").image_size == (24, 24)
