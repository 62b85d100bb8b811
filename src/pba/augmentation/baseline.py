"""The baseline augmentation every run applies after its policy: any of pad-crop, horizontal flip
and Cutout (docs/algorithm.md §4), chosen per dataset.

    base = Baseline.parse("crop,flip,cutout", cutout_size=16)   # CIFAR's
    images = base(images, fill, generator)

CIFAR uses all three, SVHN Cutout only (digits are not mirror-symmetric), reduced SVHN none.
What suits a user's own images is not known in advance: a flip ruins text and a 16-pixel
square hides small objects. There `auto` (the default for image folders) measures it
(`pba.training.baseline_check`).

The crop's pad is relative to the image, like the policies' lengths (`pba.ops.registry`): the
paper's 4 pixels at 32 x 32, the same eighth of the shorter side at other sizes (`crop_pad`).
The Cutout size is pixels at the size of the images the run trains on: what `--cutout-size`
gives, and what each dataset's default is at its size (an image folder's: half the side).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pba.augmentation.transforms import cutout, random_crop_flip
from pba.core.errors import UserError
from pba.ops.registry import REFERENCE_SIDE

PARTS = ("crop", "flip", "cutout")
NONE, AUTO = "none", "auto"
CROP_PAD = 4  # pixels at REFERENCE_SIDE, the paper's pad on CIFAR's 32 x 32 images


def crop_pad(height: int, width: int) -> int:
    """The crop's pad on height x width images: CROP_PAD pixels at REFERENCE_SIDE, the same
    fraction of the shorter side at other sizes (both axes alike, like Cutout's square),
    rounded half up, at least 1 pixel so that a crop always moves something."""
    return max(1, int(CROP_PAD * min(height, width) / REFERENCE_SIDE + 0.5))


@dataclass(frozen=True)
class Baseline:
    """Which of PARTS a run applies (in that order) and the side of the Cutout square, in
    pixels of the images it is applied to (not scaled: the run's size is known when it is
    chosen). The crop pads by `crop_pad` of the batch's size."""

    parts: tuple[str, ...]
    cutout_size: int

    def __post_init__(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or len(set(self.parts)) != len(self.parts):
            raise UserError(f"a baseline is a comma-separated subset of {','.join(PARTS)} (or "
                           f"{NONE!r}), got {','.join(self.parts)!r}")
        if self.cutout_size < 1:
            raise UserError(f"the Cutout size must be >= 1 pixel, got {self.cutout_size}")
        object.__setattr__(self, "parts", tuple(p for p in PARTS if p in self.parts))

    @classmethod
    def parse(cls, text: str, cutout_size: int) -> Baseline:
        """'crop,flip,cutout', any subset, or 'none'."""
        names = [] if text.strip() == NONE else [p.strip() for p in text.split(",")]
        return cls(tuple(names), cutout_size)

    def __str__(self) -> str:
        return ",".join(self.parts) or NONE

    def describe(self) -> str:
        """For people: 'crop, flip, Cutout 16 px'."""
        words = [f"Cutout {self.cutout_size} px" if p == "cutout" else p for p in self.parts]
        return ", ".join(words) or "none"

    def only(self, *parts: str) -> Baseline:
        return Baseline(parts, self.cutout_size)

    def __call__(self, images: torch.Tensor, fill: tuple[int, int, int],
                 generator: torch.Generator) -> torch.Tensor:
        crop, flip = "crop" in self.parts, "flip" in self.parts
        if crop or flip:
            # One function for both, so that the default draws the same numbers as ever.
            pad = crop_pad(*images.shape[-2:]) if crop else 0
            images = random_crop_flip(images, pad, fill, generator, flip=flip)
        if "cutout" in self.parts:
            images = cutout(images, self.cutout_size, fill, generator)
        return images


def cutout_at(cutout_size: int, from_side: int, to_side: int) -> int:
    """A Cutout side given in pixels at images of shorter side `from_side`, at `to_side`: the
    square keeps its share of the side (CIFAR's 16 of 32 is 32 of 64)."""
    return max(1, round(cutout_size * to_side / from_side))


def check_request(text: str | None) -> None:
    """Refuse a malformed `--baseline` before anything is loaded (None: the dataset's)."""
    if text is not None and text != AUTO:
        Baseline.parse(text, 1)


def resolve(text: str | None, cutout_size: int | None, default: Baseline) -> Baseline:
    """The baseline a run asked for: `text` (None: the dataset's `default`), the Cutout size
    `cutout_size` (None: the dataset's). 'auto' must be settled first
    (`pba.training.baseline_check`)."""
    if text == AUTO:
        raise UserError("baseline 'auto' is decided on the data first "
                        "(pba.training.baseline_check)")
    size = default.cutout_size if cutout_size is None else cutout_size
    return Baseline(default.parts, size) if text is None else Baseline.parse(text, size)


def legacy(default: Baseline, cutout: bool) -> str:
    """What a config written before --baseline meant by its `cutout` flag: the dataset's crop
    and flip, with Cutout when on."""
    parts = [p for p in default.parts if p != "cutout"] + (["cutout"] if cutout else [])
    return str(Baseline(tuple(parts), default.cutout_size))
