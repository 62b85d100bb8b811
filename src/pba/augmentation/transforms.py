"""Applying policies to images: functional batched path, per-image path, and user transforms.

`PBAugment` is a torchvision v2 transform (PIL images, `tv_tensors.Image` or (C, H, W) tensors,
alone or in samples with labels); `BatchPBAugment` augments whole (N, C, H, W) batches on the
GPU or CPU, each image with its own ops, as an `nn.Module`. Both follow a Schedule through
`set_epoch`, which reaches DataLoader workers (`pba.augmentation.epoch`). Images are 8-bit: uint8
tensors,
or float tensors in [0, 1] which are quantised to 8 bits for the ops (the ops' semantics are
Pillow's).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from pba.augmentation import fused
from pba.augmentation.epoch import SharedEpoch, epoch_seed
from pba.augmentation.policy import Policy
from pba.augmentation.sampling import SETTINGS_PER_OP, SampledOps, sample_ops
from pba.augmentation.schedule import Schedule
from pba.core.errors import UserError
from pba.ops import tensor as tensor_ops
from pba.ops.registry import OpSet

# CIFAR-10's mean colour: the default fill for pixels the ops uncover (docs/algorithm.md §1).
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
    with torch.inference_mode():  # the draws stay inside this call (see `pba.augmentation.fused`)
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
    """Apply already drawn ops to a uint8 batch, in a few fused passes a slot
    (`pba.augmentation.fused`).

    `sync_free` (None: on any device but the CPU) runs every family of ops over the whole
    batch, so that nothing waits for the device; otherwise the images are grouped by op, one
    host synchronisation a slot. Both give the same images, except for the random draws of
    ops that draw (Cutout's centres). In the sync-free way an op that is neither a lookup nor
    a warp (`pba.ops.tensor`) runs on every image, with that image's parameter in the slot,
    and only the images that drew it keep the result. `candidates`, the ops `sampled` can hold
    (None: any), lets the sync-free way skip the others.
    """
    _check_batch(imgs, fill)
    return fused.apply_sampled(imgs, ops, sampled, fill_tensor(fill, imgs.device), generator,
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
        raise UserError(f"expected a PIL image, got {type(img).__name__}")
    if img.mode != "RGB":
        raise UserError(f"expected an RGB image, got mode {img.mode!r} (use img.convert('RGB'))")
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
    then flip horizontally with probability 0.5 (docs/algorithm.md §4). `pad` 0 only flips, `flip`
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
        raise UserError(f"expected a tensor batch (N, C, H, W), got {type(imgs).__name__}")
    if imgs.dtype != torch.uint8:
        raise UserError(f"expected uint8 images, got {imgs.dtype}")
    if imgs.ndim != 4:
        raise UserError(f"expected a batch of shape (N, C, H, W), got shape {tuple(imgs.shape)}")
    if imgs.shape[1] != len(fill):
        raise UserError(
            f"images have {imgs.shape[1]} channels but the fill colour has {len(fill)} "
            "(expected RGB images in (N, C, H, W) layout)"
        )


def _to_uint8(imgs: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    """Quantise float images in [0, 1] to uint8; return the original dtype to convert back."""
    if imgs.dtype == torch.uint8:
        return imgs, imgs.dtype
    if not imgs.is_floating_point():
        raise UserError(f"expected uint8 images or float images in [0, 1], got {imgs.dtype}")
    return (imgs.clamp(0, 1) * 255).round().to(torch.uint8), imgs.dtype


def _is_pure_tensor(x: object) -> bool:
    return isinstance(x, torch.Tensor) and not isinstance(x, tv_tensors.TVTensor)


def check_type(x: object, types: tuple) -> bool:
    """Whether `x` is one of `types` (classes, or predicates as v2's `_transformed_types`)."""
    return any(isinstance(x, t) if isinstance(t, type) else t(x) for t in types)


@dataclass
class _Draws:
    """A transform's random state in one process: its generator, the (worker, times the epoch
    was set) it was last seeded for, and the block of per-image draws in use."""

    generator: torch.Generator
    key: tuple[int | None, int] = (None, 0)
    block: tuple[Policy, SampledOps, np.random.Generator] | None = None
    next: int = 0
    device_generators: dict[torch.device, torch.Generator] = field(default_factory=dict)

    # A torch.Generator does not survive torch's pickler to a spawned process (its state
    # tensor is shared by a file descriptor the child cannot map): carry states as bytes.
    def __getstate__(self) -> dict:
        return {**vars(self), "generator": _generator_state(self.generator),
                "device_generators": [_generator_state(g) for g in self.device_generators.values()]}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state["generator"] = _generator_from(*state["generator"])
        generators = [_generator_from(*g) for g in state["device_generators"]]
        state["device_generators"] = {g.device: g for g in generators}
        vars(self).update(state)


def _generator_state(generator: torch.Generator) -> tuple[str, bytes]:
    return str(generator.device), generator.get_state().numpy().tobytes()


def _generator_from(device: str, state: bytes) -> torch.Generator:
    generator = torch.Generator(device)
    generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
    return generator


class PBAugment(v2.Transform):
    """Per-image PBA augmentation following a schedule: a torchvision v2 transform.

    It augments the image of a sample of any structure v2 accepts (an image alone, tuples,
    dicts, lists) and passes labels and everything else through untouched: a PIL RGB image
    (Pillow reference ops), a `tv_tensors.Image` (kept one) or a plain (C, H, W) tensor (uint8,
    or float in [0, 1]; the batched ops on a batch of one). A plain tensor is the image only
    where the sample has no PIL image or `tv_tensors.Image` (v2's rule: the first one). Every
    image of one sample gets the same drawn ops, as v2 transforms do. Boxes, masks and videos
    are refused: the geometric ops would move the image under them. In a pipeline:

        aug = PBAugment(load_schedule("schedule.json"), epochs=200, fill=(125, 123, 114), seed=0)
        pipeline = v2.Compose([v2.ToImage(), aug, v2.RandomCrop(32, 4), v2.ToDtype(...), ...])
        for epoch in range(start, 200):
            aug.set_epoch(epoch)          # before iterating the DataLoader
            for images, labels in loader: ...

    `epochs` is the length of the training run: the schedule is stretched to it. The epoch
    lives in shared memory (`pba.augmentation.epoch.SharedEpoch`), so `set_epoch` reaches DataLoader
    workers, persistent or not, forked or spawned. Each `set_epoch` restarts the draws from a
    seed of (`seed`, epoch, worker id): epoch k draws the same ops whether the run went through
    epochs 0..k-1 or resumed at k, provided the images reach the workers in the same order.
    Before the first `set_epoch`, workers draw from the DataLoader's worker seeds.
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
        super().__init__()
        if isinstance(schedule, Policy):
            schedule, epochs = Schedule((schedule,)), None
        if not isinstance(schedule, Schedule):
            raise UserError(f"expected a Schedule or a Policy, got {type(schedule).__name__}")
        self.schedule = schedule
        self.epochs = epochs
        self.fill = tuple(int(v) for v in fill)
        if generator is None:
            generator = torch.Generator()
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        if seed is None:  # the epochs' seeds then come from the generator, itself seeded
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        self.seed = int(seed)
        self._epoch = SharedEpoch()
        self._draws = _Draws(generator)

    @property
    def generator(self) -> torch.Generator:
        return self._draws.generator

    @property
    def epoch(self) -> int:
        return self._epoch.read()[0]

    def set_epoch(self, epoch: int) -> None:
        """Use the policy of training epoch `epoch` (stretched when `epochs` was given) here and
        in every DataLoader worker, and restart the draws for it. Call it before iterating the
        DataLoader: batches already prefetched keep the epoch they were made in."""
        if len(self.schedule) > 1 or self.epochs is not None:
            self.schedule.policy_at(epoch, self.epochs)  # fail here, not in a worker later
        self._epoch.set(epoch)

    @property
    def policy(self) -> Policy:
        if len(self.schedule) == 1 and self.epochs is None:
            return self.schedule.policies[0]
        return self.schedule.policy_at(self.epoch, self.epochs)

    # v2.Transform: which inputs are images, what a sample draws, how an image is augmented.

    _transformed_types = (Image.Image, tv_tensors.Image, _is_pure_tensor)

    def forward(self, *inputs):
        # A lone image, the common case, skips v2's walk over the sample: that walk costs
        # about a tenth of what augmenting a 32 x 32 PIL image does.
        if len(inputs) == 1 and check_type(inputs[0], self._transformed_types):
            return self.transform(inputs[0], self.make_params(list(inputs)))
        return super().forward(*inputs)

    def check_inputs(self, flat_inputs: list) -> None:
        refused = [type(x).__name__ for x in flat_inputs
                   if isinstance(x, tv_tensors.TVTensor) and not isinstance(x, tv_tensors.Image)]
        if refused:
            raise UserError(f"{type(self).__name__} augments images only; the sample holds "
                           f"{', '.join(sorted(set(refused)))}, which its geometric ops would "
                           "not move with the image")
        if not any(check_type(x, self._transformed_types) for x in flat_inputs):
            raise UserError(self._wrong_input(flat_inputs))

    def make_params(self, flat_inputs: list) -> dict:
        sampled, rng = self._draw_one()
        return {"sampled": sampled, "rng": rng}

    def transform(self, inpt, params: dict):
        ops, sampled = self.schedule.ops, params["sampled"]
        if isinstance(inpt, Image.Image):
            return apply_sampled_pil(inpt, ops, sampled, self.fill, params["rng"])
        img = inpt.as_subclass(torch.Tensor)
        if img.ndim != 3:
            raise UserError(self._wrong_input([inpt]))
        batch, dtype = _to_uint8(img[None])
        _check_batch(batch, self.fill)
        out = apply_sampled(batch, ops, sampled.to(img.device), self.fill,
                            self._generator_for(img))[0]
        out = out if dtype == torch.uint8 else out.to(dtype) / 255
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out

    def _wrong_input(self, flat_inputs: list) -> str:
        got = ", ".join(f"{type(x).__name__}"
                        f"{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}"
                        for x in flat_inputs[:4])
        return ("PBAugment takes samples holding a PIL image or a (C, H, W) tensor; for "
                f"(N, C, H, W) batches use BatchPBAugment (got {got})")

    # Draws: restarted when the epoch is set or the transform finds itself in another worker.

    def _sync(self) -> None:
        epoch, times = self._epoch.read()
        info = torch.utils.data.get_worker_info()
        key = (None if info is None else info.id, times)
        draws = self._draws
        if key == draws.key:
            return
        draws.key, draws.block = key, None
        draws.device_generators.clear()
        if times:
            draws.generator.manual_seed(epoch_seed(self.seed, epoch, key[0]))
        elif info is not None:  # workers start with copies of one generator state
            draws.generator.manual_seed(info.seed % 2**63)

    def _draw_one(self) -> tuple[SampledOps, np.random.Generator]:
        self._sync()
        policy, draws = self.policy, self._draws
        if draws.block is None or draws.block[0] is not policy or draws.next == self.BLOCK:
            sampled = sample_ops(policy, self.BLOCK, draws.generator, device="cpu")
            draws.block, draws.next = (policy, sampled, _numpy_rng(draws.generator)), 0
        _, sampled, rng = draws.block
        draws.next += 1
        return sampled[draws.next - 1], rng

    def _generator_for(self, img: torch.Tensor) -> torch.Generator:
        """The generator for images on `img`'s device; one on another device (the GPU) is
        seeded from the main generator so that one seed fixes everything."""
        draws = self._draws
        if img.device == draws.generator.device:
            return draws.generator
        if img.device not in draws.device_generators:
            seed = int(torch.randint(0, 2**62, (1,), generator=draws.generator))
            draws.device_generators[img.device] = torch.Generator(img.device).manual_seed(seed)
        return draws.device_generators[img.device]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(epochs={self.epochs or len(self.schedule)}, "
                f"epoch={self.epoch}, seed={self.seed})")


class BatchPBAugment(PBAugment):
    """Batched PBA augmentation of (N, C, H, W) tensors, each image its own ops, on the images'
    device (a generator there is seeded from this one's): an `nn.Module` for the GPU side of a
    training step (`nn.Sequential(BatchPBAugment(...), normalize)`) and a v2 transform of
    batch samples (`aug((images, labels))`: the labels pass through). In eval mode
    (`module.eval()`) it returns its input unchanged, so a model that holds it evaluates
    unaugmented images. `set_epoch` works as `PBAugment`'s, in DataLoader workers too."""

    _transformed_types = (tv_tensors.Image, _is_pure_tensor)

    def forward(self, *inputs):
        if not self.training:
            return inputs if len(inputs) > 1 else inputs[0]
        return super().forward(*inputs)

    def make_params(self, flat_inputs: list) -> dict:
        self._sync()
        return {}

    def transform(self, inpt, params: dict):
        imgs = inpt.as_subclass(torch.Tensor)
        if imgs.ndim == 3:
            raise UserError("BatchPBAugment takes (N, C, H, W) batches; for one (C, H, W) "
                           "image use PBAugment or add a batch dimension")
        batch, dtype = _to_uint8(imgs)
        out = apply_policy(batch, self.policy, self.fill, self._generator_for(imgs))
        out = out if dtype == torch.uint8 else out.to(dtype) / 255
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out

    def _wrong_input(self, flat_inputs: list) -> str:
        got = ", ".join(type(x).__name__ for x in flat_inputs[:4])
        return f"BatchPBAugment takes tensors (N, C, H, W), got {got}"
