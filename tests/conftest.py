"""Shared fixtures: real CIFAR-10 images from ../shared/data (tests never download)."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("PBA_DATA_DIR", REPO.parent / "shared" / "data"))
# Everything under test that looks for data finds the shared copy, never the network.
os.environ["PBA_DATA_DIR"] = str(DATA_DIR)


def _test_batch() -> dict:
    path = DATA_DIR / "cifar-10-batches-py" / "test_batch"
    if not path.is_file():
        pytest.fail(f"CIFAR-10 test data missing at {path}: set PBA_DATA_DIR to ../shared/data")
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")


@pytest.fixture(scope="session", autouse=True)
def _image_cache(tmp_path_factory) -> Iterator[None]:
    """Folder loads cache their images in a temporary folder, never the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PBA_CACHE_DIR", str(tmp_path_factory.mktemp("pba_cache")))
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def cifar_images() -> torch.Tensor:
    """256 real CIFAR-10 test images, uint8 (N, 3, 32, 32)."""
    data = np.asarray(_test_batch()["data"][:256], dtype=np.uint8)
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())


@pytest.fixture(scope="session")
def cifar_folder(tmp_path_factory) -> str:
    """640 real CIFAR-10 test images as PNG files, one subfolder per class (`folder:PATH`):
    a user-style folder whose held-out 20% (128 images) keeps runs short."""
    from PIL import Image

    batch = _test_batch()
    images = np.asarray(batch["data"][:640], dtype=np.uint8).reshape(-1, 3, 32, 32)
    root = tmp_path_factory.mktemp("cifar_folder")
    for i, (image, label) in enumerate(zip(images, batch["labels"][:640], strict=True)):
        (root / f"class_{label}").mkdir(exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(root / f"class_{label}" / f"{i}.png")
    return f"folder:{root}"


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance of two CPUs for a test module (skipped without Ray)."""
    need = "the Ray backend's extra is not installed (pip install -e '.[ray]')"
    with pytest.MonkeyPatch.context() as env:
        # Ray without cluster support uses and listens on 127.0.0.1 alone (read at import).
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        ray = pytest.importorskip("ray", reason=need)
        pytest.importorskip("ray.tune", reason=need)
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
        ray.shutdown()
