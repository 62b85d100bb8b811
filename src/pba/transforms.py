"""Applying policies to images: functional batched path, per-image path, and user transforms.

`PBAugment` drops into a torchvision `Compose` (PIL images or (C, H, W) tensors);
`BatchPBAugment` augments whole (N, C, H, W) batches on the GPU or CPU, each image with its own
ops. Both follow a Schedule through `set_epoch`. Images are 8-bit: uint8 tensors, or float
tensors in [0, 1] which are quantised to 8 bits for the ops (the ops' semantics are Pillow's).
"""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from pba.errors import PBAError
from pba.fused import apply_drawn
from pba.ops import tensor as tensor_ops
from pba.ops.registry import OpSet
from pba.policy import SETTINGS_PER_OP, Policy, SampledOps, sample_ops
from pba.schedule import Schedule

# CIFAR-10's mean colour: the default fill for pixels the ops uncover (spec section 1).
CIFAR10_FILL = (125, 123, 114)


def apply_policy(
    imgs: torch.Tensor,
    policy: Policy,
    fill: tuple[int, ...] | torch.Tensor = CIFAR10_FILL,
    generator: torch.Generator | None = None,
    *,
    sync_free: bool | None = None,
) -> torch.Tensor:
    """Apply `policy` to a uint8 batch (N, C, H, W), each image its own ops, order and signs.
    `sync_free` as in `apply_sampled`."""
    _check_batch(imgs, fill)
    with torch.inference_mode():  # the draws stay inside this call (see `pba.fused`)
        sampled = sample_ops(policy, imgs.shape[0], generator, device=imgs.device)
    candidates = _candidates(policy) if _is_sync_free(sync_free, imgs) else None
    return apply_sampled(imgs, policy.ops, sampled, fill, generator, sync_free=sync_free,
                         candidates=candidates)


def _candidates(policy: Policy) -> set[int]:
    """The ops the policy can apply: those with a non-zero probability in a slot."""
    return {i % len(policy.ops) for i, p in enumerate(policy.values[0::2]) if p}


def _is_sync_free(sync_free: bool | None, imgs: torch.Tensor) -> bool:
    """Whether a batch goes the sync-free way: by default on any device but the CPU."""
    return imgs.device.type != "cpu" if sync_free is None else sync_free


def apply_sampled(
    imgs: torch.Tensor,
    ops: OpSet,
    sampled: SampledOps,
    fill: tuple[int, ...] | torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    sync_free: bool | None = None,
    candidates: Collection[int] | None = None,
) -> torch.Tensor:
    """Apply already drawn ops to a uint8 batch, in a few fused passes a slot (`pba.fused`).

    `sync_free` (None: on any device but the CPU) runs every family of ops over the whole
    batch, so that nothing waits for the device; otherwise the images are grouped by op, one
    host synchronisation a slot. Both give the same images, except for the random draws of
    ops that draw (Cutout's centres). In the sync-free way an op that is neither a lookup nor
    a warp (`pba.ops.tensor`) runs on every image, with that image's parameter in the slot,
    and only the images that drew it keep the result. `candidates`, the ops `sampled` can hold
    (None: any), lets the sync-free way skip the others.
    """
    _check_batch(imgs, fill)
    return apply_drawn(imgs, ops, sampled, fill_tensor(fill, imgs.device), generator,
                       sync_free=_is_sync_free(sync_free, imgs), candidates=candidates)


def apply_sampled_pil(
    img: Image.Image,
    ops: OpSet,
    sampled: SampledOps,
    fill: tuple[int, ...],
    rng: np.random.Generator,
) -> Image.Image:
    """Apply the first row of already drawn ops to one PIL RGB image, with the parameters of
    its size (`pba.ops.registry`: lengths are fractions of the side)."""
    if not isinstance(img, Image.Image):
        raise PBAError(f"expected a PIL image, got {type(img).__name__}")
    if img.mode != "RGB":
        raise PBAError(f"expected an RGB image, got mode {img.mode!r} (use img.convert('RGB'))")
    first = sampled[0]
    settings = first.settings(ops)[0].tolist()
    params = first.parameters(ops, img.height, img.width)[0].tolist()
    for setting, param in zip(settings, params, strict=True):
        if setting != sampled.none:
            img = ops[setting // SETTINGS_PER_OP].pil(img, param, tuple(fill), rng)
    return img


def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """Pillow ops that need randomness (Cutout's centre) take a numpy generator: derive it from
    the torch one so that a single seed fixes everything."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))


def random_crop_flip(
    imgs: torch.Tensor,
    pad: int = 4,
    fill: tuple[int, ...] | torch.Tensor = CIFAR10_FILL,
    generator: torch.Generator | None = None,
    *,
    flip: bool = True,
) -> torch.Tensor:
    """Pad by `pad` pixels of the fill colour, crop back to size at a random offset per image,
    then flip horizontally with probability 0.5 (spec section 4). `pad` 0 only flips, `flip`
    False only crops; the random numbers drawn are the same."""
    _check_batch(imgs, fill)
    n, c, h, w = imgs.shape
    fill_t = fill_tensor(fill, imgs.device).view(1, c, 1, 1)
    padded = fill_t.expand(n, c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, :, pad : pad + h, pad : pad + w] = imgs
    u = _rand(generator, imgs.device, n, 3)
    dy = (u[:, 0] * (2 * pad + 1)).long().clamp(max=2 * pad)
    dx = (u[:, 1] * (2 * pad + 1)).long().clamp(max=2 * pad)
    flipped = (u[:, 2] < 0.5) & flip
    rows = dy[:, None] + torch.arange(h, device=imgs.device)
    cols = torch.arange(w, device=imgs.device).expand(n, w)
    cols = dx[:, None] + torch.where(flipped[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=imgs.device)[:, None, None]
    # Advanced indexing puts the indexed dims first: (N, H, W, C) -> (N, C, H, W).
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout(
    imgs: torch.Tensor,
    size: int,
    fill: tuple[int, ...] | torch.Tensor = CIFAR10_FILL,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A `size` x `size` square of the fill colour at a uniform random centre per image."""
    _check_batch(imgs, fill)
    n, _, h, w = imgs.shape
    u = _rand(generator, imgs.device, n, 2)
    centres = torch.stack([(u[:, 0] * w).long(), (u[:, 1] * h).long()], dim=1)
    sizes = torch.full((n,), size, dtype=torch.int64, device=imgs.device)
    return tensor_ops.cutout(imgs, sizes, centres, fill_tensor(fill, imgs.device))


def fill_tensor(fill: tuple[int, ...] | torch.Tensor, device: torch.device) -> torch.Tensor:
    """The fill colour as uint8 (C,) on `device`. A tuple's is made once per device rather than
    at every batch: a host-to-device copy in a training step stalls a GPU's queue."""
    if isinstance(fill, torch.Tensor):
        return fill.to(device=device, dtype=torch.uint8)
    return _fill_on(tuple(int(v) for v in fill), torch.device(device))


@lru_cache(maxsize=32)
def _fill_on(fill: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.tensor(fill, dtype=torch.uint8, device=device)


def _rand(generator: torch.Generator | None, device: torch.device, *shape: int) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(*shape, generator=generator, device=gen_device).to(device)


def _check_batch(imgs: torch.Tensor, fill) -> None:
    if not isinstance(imgs, torch.Tensor):
        raise PBAError(f"expected a tensor batch (N, C, H, W), got {type(imgs).__name__}")
    if imgs.dtype != torch.uint8:
        raise PBAError(f"expected uint8 images, got {imgs.dtype}")
    if imgs.ndim != 4:
        raise PBAError(f"expected a batch of shape (N, C, H, W), got shape {tuple(imgs.shape)}")
    if imgs.shape[1] != len(fill):
        raise PBAError(
            f"images have {imgs.shape[1]} channels but the fill colour has {len(fill)} "
            "(expected RGB images in (N, C, H, W) layout)"
        )


def _to_uint8(imgs: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    """Quantise float images in [0, 1] to uint8; return the original dtype to convert back."""
    if imgs.dtype == torch.uint8:
        return imgs, imgs.dtype
    if not imgs.is_floating_point():
        raise PBAError(f"expected uint8 images or float images in [0, 1], got {imgs.dtype}")
    return (imgs.clamp(0, 1) * 255).round().to(torch.uint8), imgs.dtype


class PBAugment:
    """Per-image PBA augmentation for a torchvision pipeline, following a schedule.

    Accepts a PIL RGB image (Pillow reference ops) or a (C, H, W) tensor (uint8, or float in
    [0, 1]; the batched ops on a batch of one). Put it before ToTensor/Normalize::

        aug = PBAugment(load_schedule("schedule.json"), epochs=200, fill=(125, 123, 114))
        pipeline = Compose([aug, RandomCrop(32, 4), RandomHorizontalFlip(), ToTensor(), ...])
        for epoch in range(200):
            aug.set_epoch(epoch)

    `epochs` is the length of the training run: the schedule is stretched to it. With
    DataLoader workers, call `set_epoch` before creating each epoch's iterator (workers copy
    the transform when they start); each worker reseeds from its own worker seed, so workers
    draw different ops.
    """

    # Per-image calls draw their ops this many images at a time: the draws are independent per
    # image, so a block costs what one draw does and the semantics are unchanged.
    BLOCK = 256

    def __init__(
        self,
        schedule: Schedule | Policy,
        *,
        epochs: int | None = None,
        fill: tuple[int, ...] = CIFAR10_FILL,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(schedule, Policy):
            schedule, epochs = Schedule((schedule,)), None
        if not isinstance(schedule, Schedule):
            raise PBAError(f"expected a Schedule or a Policy, got {type(schedule).__name__}")
        self.schedule = schedule
        self.epochs = epochs
        self.fill = tuple(int(v) for v in fill)
        if generator is None:
            generator = torch.Generator()
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        self.generator = generator
        self.epoch = 0
        self._device_generators: dict[torch.device, torch.Generator] = {}
        self._worker: int | None = None
        self._block: tuple[Policy, SampledOps, np.random.Generator] | None = None
        self._next = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the policy of training epoch `epoch` (stretched when `epochs` was given)."""
        if len(self.schedule) > 1 or self.epochs is not None:
            self.schedule.policy_at(epoch, self.epochs)  # fail here, not in a worker later
        self.epoch = epoch

    @property
    def policy(self) -> Policy:
        if len(self.schedule) == 1 and self.epochs is None:
            return self.schedule.policies[0]
        return self.schedule.policy_at(self.epoch, self.epochs)

    def __call__(self, img: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
        if isinstance(img, Image.Image):
            sampled, rng = self._draw_one()
            return apply_sampled_pil(img, self.policy.ops, sampled, self.fill, rng)
        if isinstance(img, torch.Tensor) and img.ndim == 3:
            batch, dtype = _to_uint8(img[None])
            _check_batch(batch, self.fill)
            sampled, _ = self._draw_one()
            sampled = sampled.to(img.device)
            out = apply_sampled(batch, self.policy.ops, sampled, self.fill,
                                self._generator_for(img))[0]
            return out if dtype == torch.uint8 else out.to(dtype) / 255
        raise PBAError(
            "PBAugment takes a PIL image or a (C, H, W) tensor; for (N, C, H, W) batches use "
            f"BatchPBAugment (got {type(img).__name__} "
            f"{tuple(img.shape) if isinstance(img, torch.Tensor) else ''})"
        )

    def _draw_one(self) -> tuple[SampledOps, np.random.Generator]:
        self._reseed_in_worker()
        policy = self.policy
        if self._block is None or self._block[0] is not policy or self._next == self.BLOCK:
            sampled = sample_ops(policy, self.BLOCK, self.generator, device="cpu")
            self._block, self._next = (policy, sampled, _numpy_rng(self.generator)), 0
        _, sampled, rng = self._block
        self._next += 1
        return sampled[self._next - 1], rng

    def _reseed_in_worker(self) -> None:
        """DataLoader workers start with copies of one generator state: give each its own."""
        info = torch.utils.data.get_worker_info()
        if info is not None and self._worker != info.id:
            self._worker, self._block = info.id, None
            self.generator.manual_seed(info.seed % 2**63)
            self._device_generators.clear()

    def _generator_for(self, img: torch.Tensor) -> torch.Generator:
        """The generator for images on `img`'s device; one on another device (the GPU) is
        seeded from the main generator so that one seed fixes everything."""
        if img.device == self.generator.device:
            return self.generator
        if img.device not in self._device_generators:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
            self._device_generators[img.device] = torch.Generator(img.device).manual_seed(seed)
        return self._device_generators[img.device]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(epochs={self.epochs or len(self.schedule)}, "
                f"epoch={self.epoch})")


class BatchPBAugment(PBAugment):
    """Batched PBA augmentation of (N, C, H, W) tensors, each image its own ops, on the images'
    device (a generator there is seeded from this one's)."""

    def __call__(self, imgs: torch.Tensor) -> torch.Tensor:
        if isinstance(imgs, torch.Tensor) and imgs.ndim == 3:
            raise PBAError("BatchPBAugment takes (N, C, H, W) batches; for one (C, H, W) "
                           "image use PBAugment or add a batch dimension")
        if not isinstance(imgs, torch.Tensor):
            raise PBAError(f"BatchPBAugment takes tensors, got {type(imgs).__name__}")
        self._reseed_in_worker()
        batch, dtype = _to_uint8(imgs)
        out = apply_policy(batch, self.policy, self.fill, self._generator_for(imgs))
        return out if dtype == torch.uint8 else out.to(dtype) / 255
