"""Datasets: real CIFAR-10 splits and statistics; the other formats with small files made here."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pba.augmentation.baseline import Baseline
from pba.core.errors import PBAError
from pba.data import (
    DATASET_NAMES,
    channel_stats,
    data_root,
    load_dataset,
    normalize,
    split_indices,
)

# Spec section 4, copied by hand so that a typo in the package cannot hide.
SPEC_STATS = {
    "cifar10": (
        (0.49139968, 0.48215841, 0.44653091),
        (0.24703223, 0.24348513, 0.26158784),
    ),
    "reduced_cifar10": (
        (0.49056774, 0.48116026, 0.44726052),
        (0.24710728, 0.24451308, 0.26235099),
    ),
    "cifar100": (
        (0.50707516, 0.48654887, 0.44091784),
        (0.26733429, 0.25643846, 0.27615047),
    ),
    "reduced_svhn": (
        (0.45163885, 0.4557915, 0.48093327),
        (0.20385217, 0.20957996, 0.20804394),
    ),
}


def _cifar10_root() -> Path | None:
    candidates = [Path(__file__).resolve().parents[1].parent / "shared" / "data"]
    if os.environ.get("PBA_DATA_DIR"):
        candidates.insert(0, Path(os.environ["PBA_DATA_DIR"]))
    for root in candidates:
        if (root / "cifar-10-batches-py" / "test_batch").is_file():
            return root
    return None


CIFAR10_ROOT = _cifar10_root()
needs_cifar10 = pytest.mark.skipif(CIFAR10_ROOT is None, reason="CIFAR-10 files not found")


@pytest.fixture(scope="module")
def cifar10():
    return load_dataset("cifar10", CIFAR10_ROOT)


@pytest.fixture(scope="module")
def reduced_cifar10():
    return load_dataset("reduced_cifar10", CIFAR10_ROOT)


def _assert_close(actual, expected, tol: float) -> None:
    assert max(abs(a - e) for a, e in zip(actual, expected, strict=True)) <= tol, (actual, expected)


# ---- real CIFAR-10 ----


@needs_cifar10
def test_cifar10_sizes(cifar10):
    assert (len(cifar10.train), len(cifar10.test)) == (50_000, 10_000)
    assert cifar10.val is None
    assert cifar10.train.images.shape == (50_000, 3, 32, 32)
    assert cifar10.train.images.dtype == torch.uint8 and cifar10.train.images.is_contiguous()
    assert cifar10.train.labels.dtype == torch.int64
    assert torch.bincount(cifar10.train.labels).tolist() == [5000] * 10
    assert torch.bincount(cifar10.test.labels).tolist() == [1000] * 10
    assert cifar10.num_classes == 10
    assert cifar10.baseline == Baseline(("crop", "flip", "cutout"), 16)


@needs_cifar10
def test_reduced_cifar10_is_a_prefix_of_the_shuffled_pool(cifar10, reduced_cifar10):
    assert (len(reduced_cifar10.train), len(reduced_cifar10.val), len(reduced_cifar10.test)) == (
        4000,
        46_000,
        10_000,
    )
    # Both shuffle the same pool with seed 0, so reduced = the first 4,000 + the next 46,000.
    assert torch.equal(reduced_cifar10.train.images, cifar10.train.images[:4000])
    assert torch.equal(reduced_cifar10.val.labels, cifar10.train.labels[4000:])


@needs_cifar10
def test_reduced_split_is_deterministic_per_seed(reduced_cifar10):
    again = load_dataset("reduced_cifar10", CIFAR10_ROOT, val_size=10)
    other = load_dataset("reduced_cifar10", CIFAR10_ROOT, seed=1, val_size=10)
    assert torch.equal(again.train.images, reduced_cifar10.train.images)
    assert torch.equal(again.val.images, reduced_cifar10.val.images[:10])
    assert not torch.equal(other.train.images, reduced_cifar10.train.images)


def test_split_indices_deterministic_and_disjoint():
    train, val = split_indices(50_000, 4000, 46_000, seed=0)
    same_train, _ = split_indices(50_000, 4000, 46_000, seed=0)
    other_train, _ = split_indices(50_000, 4000, 46_000, seed=1)
    assert torch.equal(train, same_train) and not torch.equal(train, other_train)
    assert (len(train), len(val)) == (4000, 46_000)
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(50_000))


@needs_cifar10
def test_paper_statistics_for_standard_subsets(cifar10, reduced_cifar10):
    for splits in (cifar10, reduced_cifar10):
        mean, std = SPEC_STATS[splits.name]
        _assert_close(splits.mean, mean, 1e-4)
        _assert_close(splits.std, std, 1e-4)
    assert cifar10.fill == (125, 123, 114)


@needs_cifar10
def test_our_copy_has_statistics_close_to_the_paper(cifar10, reduced_cifar10):
    # Our copy is a JPEG re-encoding (smoother: lower std), in another order, so the reduced
    # subset holds other images. Observed: full mean 1.5e-4, std 1.8e-3; reduced 7.5e-4, 2.1e-3.
    for splits, tol in ((cifar10, (5e-4, 3e-3)), (reduced_cifar10, (2e-3, 4e-3))):
        mean, std = channel_stats(splits.train.images)
        _assert_close(mean, SPEC_STATS[splits.name][0], tol[0])
        _assert_close(std, SPEC_STATS[splits.name][1], tol[1])


@needs_cifar10
def test_non_standard_subset_gets_computed_statistics(reduced_cifar10):
    other = load_dataset("reduced_cifar10", CIFAR10_ROOT, seed=3, val_size=0)
    assert other.val is None
    assert (other.mean, other.std) == channel_stats(other.train.images)


# ---- statistics and normalisation ----


def test_channel_stats_matches_float_computation():
    images = torch.randint(0, 256, (20, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    images = images.to(torch.uint8)
    mean, std = channel_stats(images)
    as_float = images.double() / 255
    _assert_close(mean, as_float.mean(dim=(0, 2, 3)).tolist(), 1e-12)
    _assert_close(std, as_float.std(dim=(0, 2, 3), correction=0).tolist(), 1e-12)


def test_normalize_uint8_float_and_channels_last():
    mean, std = (0.5, 0.25, 0.0), (0.5, 0.25, 1.0)
    images = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1).expand(2, 3, 2, 2)
    out = normalize(images.contiguous(), mean, std)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([-1.0, -1.0, 0.0]))
    torch.testing.assert_close(out[0, :, 1, 0], torch.tensor([1.0, 3.0, 1.0]))

    floats = torch.rand(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    before = floats.clone()
    out = normalize(floats, mean, std)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(floats, before)
    torch.testing.assert_close(out[:, 1], (floats[:, 1] - 0.25) / 0.25)

    single = normalize(images[0].contiguous(), mean, std)
    assert single.shape == (3, 2, 2)
    with pytest.raises(PBAError, match="int32"):
        normalize(images.int(), mean, std)


# ---- CIFAR-100 and SVHN in their real formats, written here ----


def _write_cifar100(root: Path, n_train: int, n_test: int) -> np.ndarray:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (n_train + n_test, 3072), dtype=np.uint8)
    labels = rng.integers(0, 100, n_train + n_test)
    for name, part in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        batch = {
            "data": data[part],
            "fine_labels": labels[part].tolist(),
            "coarse_labels": (labels[part] // 5).tolist(),
            "filenames": [f"{i}.png" for i in range(len(labels[part]))],
            "batch_label": name,
        }
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f)
    return data


def test_cifar100_format(tmp_path):
    data = _write_cifar100(tmp_path, 60, 20)
    splits = load_dataset("cifar100", tmp_path)
    assert (len(splits.train), len(splits.test), splits.num_classes) == (60, 20, 100)
    # Row = R, G, B planes of 32x32; test images stay in file order.
    assert torch.equal(splits.test.images[3, 1], torch.from_numpy(data[63, 1024:2048]).view(32, 32))
    _assert_close(splits.mean, SPEC_STATS["cifar100"][0], 1e-8)  # the whole pool: the paper's

    held_out = load_dataset("cifar100", tmp_path, val_size=10, seed=5)
    assert (len(held_out.train), len(held_out.val)) == (50, 10)
    assert (held_out.mean, held_out.std) == channel_stats(held_out.train.images)


def test_bad_sizes_raise(tmp_path):
    _write_cifar100(tmp_path, 60, 20)
    with pytest.raises(PBAError, match="exceeds the 60 images"):
        load_dataset("cifar100", tmp_path, train_size=50, val_size=11)
    with pytest.raises(PBAError, match="train_size must be >= 1"):
        load_dataset("cifar100", tmp_path, train_size=0)
    with pytest.raises(PBAError, match="exceeds"):
        load_dataset("reduced_cifar100", tmp_path)  # 4,000 by default


def test_corrupt_cifar_file_raises(tmp_path):
    _write_cifar100(tmp_path, 4, 4)
    (tmp_path / "cifar-100-python" / "test").write_bytes(b"not a pickle")
    with pytest.raises(PBAError, match="not a CIFAR python batch"):
        load_dataset("cifar100", tmp_path)


def _write_svhn(root: Path, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    savemat = pytest.importorskip("scipy.io").savemat
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (32, 32, 3, n_train + n_test), dtype=np.uint8)
    y = rng.integers(1, 11, (n_train + n_test, 1)).astype(np.uint8)  # digit 0 is stored as 10
    savemat(root / "train_32x32.mat", {"X": x[..., :n_train], "y": y[:n_train]})
    savemat(root / "test_32x32.mat", {"X": x[..., n_train:], "y": y[n_train:]})
    return x[..., n_train:], y[n_train:, 0]


def test_svhn_format(tmp_path):
    test_x, test_y = _write_svhn(tmp_path, 50, 30)
    splits = load_dataset("svhn", tmp_path)
    assert (len(splits.train), splits.val, len(splits.test)) == (50, None, 30)
    assert (splits.baseline, splits.num_classes) == (Baseline(("cutout",), 20), 10)
    expected_labels = torch.from_numpy(test_y.astype(np.int64)) % 10
    assert torch.equal(splits.test.labels, expected_labels)
    assert splits.test.labels.min() == 0 and splits.test.labels.max() == 9
    # X is (H, W, C, N): pixel (h=2, w=5) of channel 1 of image 7.
    assert splits.test.images[7, 1, 2, 5].item() == test_x[2, 5, 1, 7]
    assert splits.test.images.is_contiguous()

    reduced = load_dataset("reduced_svhn", tmp_path, train_size=20, val_size=25)
    assert (len(reduced.train), len(reduced.val)) == (20, 25)
    assert (reduced.mean, reduced.std) == channel_stats(reduced.train.images)
    with pytest.raises(PBAError, match="1000 \\+ val_size 7325"):
        load_dataset("reduced_svhn", tmp_path)


def test_svhn_paper_statistics_constant():
    from pba.data.datasets import DATASETS

    stats = DATASETS["reduced_svhn"].paper_stats
    _assert_close(stats.mean, SPEC_STATS["reduced_svhn"][0], 1e-4)
    _assert_close(stats.std, SPEC_STATS["reduced_svhn"][1], 1e-4)
    stats = DATASETS["cifar100"].paper_stats
    _assert_close(stats.mean, SPEC_STATS["cifar100"][0], 1e-4)
    _assert_close(stats.std, SPEC_STATS["cifar100"][1], 1e-4)


# ---- image folders ----


def _write_folder(root: Path) -> None:
    sizes = [(10, 10), (40, 30), (7, 50), (32, 32), (64, 16)]
    for c, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        (root / f"class_{c}").mkdir(parents=True)
        for i, size in enumerate(sizes):
            mode = "L" if i == 0 else "RGB"  # a grayscale image must come out RGB
            Image.new(mode, size, 255 if mode == "L" else colour).save(
                root / f"class_{c}" / f"{i}.png"
            )
    (root / "class_0" / "notes.txt").write_text("not an image")


def test_image_folder(tmp_path):
    _write_folder(tmp_path / "imgs")
    splits = load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=16, seed=2)
    assert splits.num_classes == 3
    assert (len(splits.test), len(splits.val), len(splits.train)) == (3, 2, 10)  # 20%, 10%, rest
    assert splits.train.images.shape[1:] == (3, 16, 16)
    assert splits.baseline == Baseline(("crop", "flip", "cutout"), 8)
    assert (splits.mean, splits.std) == channel_stats(splits.train.images)
    # Solid-colour images: every image's label is the channel it lights up (grayscale: all three).
    everything = [splits.train, splits.val, splits.test]
    for part in everything:
        for image, label in zip(part.images, part.labels, strict=True):
            assert image[label].min() == 255
    all_labels = torch.cat([p.labels for p in everything])
    assert torch.bincount(all_labels).tolist() == [5, 5, 5]

    again = load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=16, seed=2)
    assert torch.equal(again.test.images, splits.test.images)
    sized = load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=16, train_size=4, val_size=0)
    assert (len(sized.train), sized.val) == (4, None)


def test_image_folder_errors(tmp_path):
    with pytest.raises(PBAError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PBAError, match="no class subfolders"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    _write_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "class_1" / "broken.png").write_bytes(b"garbage")
    with pytest.raises(PBAError, match="broken.png"):
        load_dataset(f"folder:{tmp_path / 'imgs'}")


# ---- user mistakes ----


def test_missing_dataset_names_path_and_fixes(tmp_path):
    with pytest.raises(PBAError) as info:
        load_dataset("cifar10", tmp_path / "nowhere")
    message = str(info.value)
    assert str((tmp_path / "nowhere").resolve()) in message
    assert "--download" in message and "PBA_DATA_DIR" in message


def test_download_fetches_only_what_is_missing(tmp_path, monkeypatch):
    from pba.data import formats

    calls = []

    def fake_torchvision_fetch(dataset_class):
        def fetch(root):
            calls.append((dataset_class, root))
            _write_cifar100(root, 6, 4)

        return fetch

    monkeypatch.setattr(formats, "_torchvision_fetch", fake_torchvision_fetch)
    assert len(load_dataset("cifar100", tmp_path, download=True).train) == 6
    assert calls == [("CIFAR100", tmp_path.resolve())]
    load_dataset("cifar100", tmp_path, download=True)  # present now: nothing is fetched
    assert len(calls) == 1


def test_unknown_dataset_lists_known_names():
    with pytest.raises(PBAError) as info:
        load_dataset("imagenet")
    assert all(name in str(info.value) for name in DATASET_NAMES)
    assert "folder:" in str(info.value)


def test_image_size_only_for_folders(tmp_path):
    with pytest.raises(PBAError, match="image_size"):
        load_dataset("cifar10", tmp_path, image_size=64)


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("PBA_DATA_DIR", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root("elsewhere") == Path("elsewhere")
    monkeypatch.delenv("PBA_DATA_DIR")
    assert data_root() == Path("data")


def test_dataset_names():
    assert {"cifar10", "reduced_cifar10", "cifar100", "svhn", "reduced_svhn"} <= set(DATASET_NAMES)
