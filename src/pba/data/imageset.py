"""In-memory image sets, the splits of a dataset, and normalisation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from pba.augmentation.baseline import Baseline
from pba.core.errors import UserError

Triple = tuple[float, float, float]


@dataclass
class ImageSet:
    """Images and their labels, held whole in memory so that loaders can live on the GPU."""

    images: torch.Tensor  # uint8 (N, 3, H, W), contiguous, CPU
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device | str) -> ImageSet:
        return ImageSet(self.images.to(device), self.labels.to(device))


@dataclass
class DatasetSplits:
    """A dataset cut into the splits one run uses, with what the augmentation pipeline needs."""

    name: str
    train: ImageSet
    val: ImageSet | None  # the search metric; None when the training pool is used whole
    test: ImageSet
    num_classes: int
    mean: Triple  # per channel, of the training subset, in [0, 1] units
    std: Triple
    # the dataset's default (pba.augmentation.baseline): CIFAR crop, flip, Cutout 16
    baseline: Baseline
    skipped: tuple[str, ...] = ()  # unreadable files of an image folder that were left out

    @property
    def fill(self) -> tuple[int, int, int]:
        """The mean colour as uint8: pixels filled with it become 0 after normalisation."""
        r, g, b = (round(m * 255) for m in self.mean)
        return r, g, b


def take(images: ImageSet, index: torch.Tensor) -> ImageSet:
    """The images at `index`, copied into contiguous tensors."""
    return ImageSet(images.images[index].contiguous(), images.labels[index].contiguous())


def fit_images(images: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """uint8 (N, C, H, W) images at size x size: the shorter side resized to `size` (bilinear,
    antialiased when shrinking), then the centre crop, as image files are read
    (`pba.data.image_files.fit_image`). Images already that size are returned as they are."""
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    resized = (max(size, round(h * scale)), max(size, round(w * scale)))
    top, left = (resized[0] - size) // 2, (resized[1] - size) // 2
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    for start in range(0, n, chunk):  # a float copy of every image at once could be gigabytes
        part = torch.nn.functional.interpolate(
            images[start:start + chunk].float(), size=resized, mode="bilinear",
            align_corners=False, antialias=scale < 1)
        out[start:start + chunk] = part[:, :, top:top + size, left:left + size].round_().clamp_(
            0, 255).to(torch.uint8)
    return out


def channel_stats(images: torch.Tensor) -> tuple[Triple, Triple]:
    """Per-channel mean and (population) standard deviation of uint8 images, in [0, 1] units.

    Counting the 256 pixel values per channel is exact in float64 and needs no float copy of the
    images, which for CIFAR-10 would be 600 MB.
    """
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * (values - mean) ** 2).sum() / total
        means.append(mean.item())
        stds.append(var.sqrt().item())
    return (means[0], means[1], means[2]), (stds[0], stds[1], stds[2])


def normalize(images: torch.Tensor, mean: Triple, std: Triple) -> torch.Tensor:
    """Standardise images per channel; uint8 input is first mapped to [0, 1].

    Works for (C, H, W) and (N, C, H, W) on any device; the result has the input's memory
    format (channels_last stays channels_last). Float input is not modified.
    """
    if images.dtype == torch.uint8:
        x = images.float().div_(255)
    elif images.is_floating_point():
        x = images.clone()
    else:
        raise UserError(f"normalize expects uint8 or floating-point images, got {images.dtype}")
    m, s = _channel_constants(tuple(mean), tuple(std), x.dtype, x.device)
    return x.sub_(m).div_(s)


@lru_cache(maxsize=32)
def _channel_constants(mean: Triple, std: Triple, dtype: torch.dtype,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """mean and std as (C, 1, 1) tensors on `device`, made once rather than at every step."""
    return (torch.tensor(mean, dtype=dtype, device=device).view(-1, 1, 1),
            torch.tensor(std, dtype=dtype, device=device).view(-1, 1, 1))
