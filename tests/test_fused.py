"""The fused batched path (`pba.augmentation.fused`): every image's ops exactly as Pillow applies
them, both
ways of picking a family's images alike, and a sync-free step that never reads the device back
or uploads a constant (checked on the CPU with fake CUDA tensors, and on a GPU when there is
one)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
)
from torch.utils._python_dispatch import TorchDispatchMode

from pba.augmentation.baseline import Baseline
from pba.augmentation.fused import op_tables
from pba.augmentation.policy import Policy
from pba.augmentation.sampling import SETTINGS_PER_OP, sample_ops
from pba.augmentation.transforms import apply_policy, apply_sampled, apply_sampled_pil
from pba.data import normalize
from pba.ops import DEFAULT_OPS, Op, OpSet, tensor

FILL = (125, 123, 114)
# Cutout draws its centre from a generator that the two paths use differently.
DETERMINISTIC = tuple(k for k, name in enumerate(DEFAULT_OPS.names) if name != "Cutout")


def busy_policy(seed: int, ops: tuple[int, ...] = DETERMINISTIC) -> Policy:
    """Every op of `ops` in both slots, high probabilities, random magnitudes."""
    rng = np.random.default_rng(seed)
    policy = Policy.zeros()
    for k in ops:
        for slot in (0, 1):
            policy = policy.replace(k, slot, probability=int(rng.integers(4, 11)),
                                    magnitude=int(rng.integers(10)))
    return policy


def to_pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray(img.permute(1, 2, 0).numpy())


@pytest.mark.parametrize("sync_free", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_each_image_gets_exactly_the_pillow_result_of_its_ops(cifar_images, seed, sync_free):
    policy = busy_policy(seed)
    sampled = sample_ops(policy, len(cifar_images), torch.Generator().manual_seed(seed))
    assert (sampled.op >= 0).all(dim=1).float().mean() > 0.4  # most images get two ops
    out = apply_sampled(cifar_images, policy.ops, sampled, FILL, sync_free=sync_free)
    rng = np.random.default_rng(0)  # unused: no op here draws
    for i in range(len(cifar_images)):
        expected = apply_sampled_pil(to_pil(cifar_images[i]), policy.ops, sampled[i], FILL, rng)
        assert np.array_equal(out[i].permute(1, 2, 0).numpy(), np.asarray(expected)), (
            f"image {i}, ops {sampled.op[i].tolist()}")


def test_grouped_and_sync_free_give_the_same_images(cifar_images):
    policy = busy_policy(7)
    batch = cifar_images.repeat(4, 1, 1, 1)
    grouped = apply_policy(batch, policy, FILL, torch.Generator().manual_seed(1), sync_free=False)
    free = apply_policy(batch, policy, FILL, torch.Generator().manual_seed(1), sync_free=True)
    assert torch.equal(grouped, free)
    assert not torch.equal(grouped, batch)


@pytest.mark.parametrize("sync_free", [False, True])
def test_the_result_is_a_new_tensor_even_when_no_image_gets_an_op(cifar_images, sync_free):
    out = apply_policy(cifar_images, Policy.zeros(), FILL, torch.Generator().manual_seed(0),
                       sync_free=sync_free)
    assert torch.equal(out, cifar_images)
    out[0] = 0  # the caller may write into it
    assert cifar_images[0].any()


@pytest.mark.parametrize("sync_free", [False, True])
def test_a_non_contiguous_batch_gets_the_contiguous_batchs_images(cifar_images, sync_free):
    odd = cifar_images.transpose(2, 3)
    out, expected = (apply_policy(batch, busy_policy(4), FILL, torch.Generator().manual_seed(0),
                                  sync_free=sync_free) for batch in (odd, odd.contiguous()))
    assert torch.equal(out, expected)
    assert not torch.equal(out, odd)


@pytest.mark.parametrize("sync_free", [False, True])
def test_the_result_is_an_ordinary_tensor_a_model_can_train_on(cifar_images, sync_free):
    # The passes run in inference mode; what they return must not be an inference tensor,
    # which could neither be written in place nor saved for a backward pass.
    out = apply_policy(cifar_images, busy_policy(3), FILL, torch.Generator().manual_seed(0),
                       sync_free=sync_free)
    assert not out.is_inference()
    out[:, :, 0, 0] = 0
    weight = torch.ones(3, requires_grad=True)
    (out.float().mean(dim=(0, 2, 3)) * weight).sum().backward()
    assert torch.allclose(weight.grad, out.float().mean(dim=(0, 2, 3)))


def test_sync_free_cutout_fills_one_square_in_the_images_that_draw_it(cifar_images):
    cutout = DEFAULT_OPS.index("Cutout")
    policy = Policy.zeros().replace(cutout, 0, probability=5, magnitude=9)  # side 18
    sampled = sample_ops(policy, len(cifar_images), torch.Generator().manual_seed(2))
    out = apply_sampled(cifar_images, policy.ops, sampled, FILL, torch.Generator(),
                        sync_free=True)
    drew = sampled.op[:, 0] == cutout
    assert 0.2 < drew.float().mean() < 0.6
    assert torch.equal(out[~drew], cifar_images[~drew])
    filled = (out[drew] == torch.tensor(FILL, dtype=torch.uint8).view(1, 3, 1, 1)).all(dim=1)
    area = filled.flatten(1).sum(dim=1)
    assert (area <= 18 * 18).all() and (area >= 9 * 9).all()  # clipped at most to a quarter


def test_a_users_lookup_and_warp_ops_join_the_fused_passes(cifar_images):
    def halve(params: torch.Tensor) -> torch.Tensor:
        levels = torch.arange(256, device=params.device, dtype=torch.uint8)
        return (levels // 2).expand(len(params), 256)

    def mirror(params: torch.Tensor, h: int, w: int) -> torch.Tensor:
        y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        index = y * w + (w - 1 - x)  # the source of column x is column w - 1 - x
        return index.reshape(1, h * w).expand(len(params), h * w).to(params.device)

    ops = OpSet(DEFAULT_OPS.ops + (
        Op("Halve", lambda m: 0.0, lambda img, *a: img, tensor.Lookup(halve)),
        Op("Mirror", lambda m: 0.0, lambda img, *a: img, tensor.Warp(mirror))))
    policy = (Policy.zeros(ops).replace("Halve", 0, probability=10)
              .replace("Mirror", 1, probability=10))
    sampled = sample_ops(policy, len(cifar_images), torch.Generator().manual_seed(3))
    out = apply_sampled(cifar_images, ops, sampled, FILL)
    for i, (first, second) in enumerate(sampled.op.tolist()):
        expected = cifar_images[i]
        for k in (first, second):
            if k == ops.index("Halve"):
                expected = expected // 2
            elif k == ops.index("Mirror"):
                expected = expected.flip(-1)
        assert torch.equal(out[i], expected), f"image {i}"


class Uploads(TorchDispatchMode):
    """Records every op that takes a (non-scalar) CPU tensor and gives a CUDA one."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outputs = out if isinstance(out, (tuple, list)) else [out]
        to_cuda = any(isinstance(o, torch.Tensor) and o.device.type == "cuda" for o in outputs)
        if to_cuda and any(isinstance(a, torch.Tensor) and a.device.type == "cpu" and a.dim()
                           for a in [*args, *(kwargs or {}).values()]):
            self.seen.append(str(func))
        return out


@pytest.fixture
def fresh_caches():
    """Empty pba's per-device caches before and after: tensors made under FakeTensorMode
    must not outlive it."""
    def clear() -> None:
        for name, module in list(sys.modules.items()):
            if name == "pba" or name.startswith("pba."):
                for obj in list(vars(module).values()):
                    if callable(getattr(obj, "cache_clear", None)):
                        obj.cache_clear()
    clear()
    yield
    clear()


def fake_cuda_works() -> bool:
    """Whether this torch indexes fake CUDA tensors on a machine without a GPU (2.9 tries to
    start CUDA there; 2.14 does not)."""
    try:
        with FakeTensorMode():
            images = torch.empty(4, 3, 8, 8, dtype=torch.uint8, device="cuda")
            images[torch.arange(2, device="cuda")].float().mean(dim=(1, 2, 3))
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not fake_cuda_works(), reason="this torch cannot index fake CUDA tensors "
                    "without a GPU")
def test_a_sync_free_step_never_reads_the_device_and_uploads_nothing(fresh_caches):
    """Fake CUDA tensors have no data: any host read of a value (`.item()`, `.tolist()`,
    `bool()`, a data-dependent shape such as `nonzero` or a boolean mask) raises. The first
    step may upload the constants; the second must find them on the device."""
    policy = busy_policy(0, tuple(range(len(DEFAULT_OPS))))
    baseline = Baseline.parse("crop,flip,cutout", 16)
    with FakeTensorMode():
        images = torch.empty(64, 3, 32, 32, dtype=torch.uint8, device="cuda")

        def step(sync_free: bool | None = None) -> torch.Tensor:
            x = apply_policy(images, policy, FILL, sync_free=sync_free)
            return normalize(baseline(x, FILL, None), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))

        with Uploads() as first:
            step()
        assert first.seen  # the detector sees uploads
        with Uploads() as second:
            out = step()
        assert second.seen == []
        assert out.shape == images.shape and out.device.type == "cuda"
        # The grouped way reads the op counts back: the check catches that.
        with pytest.raises((DataDependentOutputException, DynamicOutputShapeException)):
            step(sync_free=False)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_step_has_no_host_synchronisation(cifar_images):
    policy = busy_policy(1, tuple(range(len(DEFAULT_OPS))))
    baseline = Baseline.parse("crop,flip,cutout", 16)
    images = cifar_images.cuda()
    generator = torch.Generator("cuda").manual_seed(0)

    def step() -> torch.Tensor:
        x = apply_policy(images, policy, FILL, generator)
        return normalize(baseline(x, FILL, generator), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))

    step()  # the constants go up once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("sync_free", [False, True])
def test_cuda_gives_the_cpus_images(cifar_images, sync_free):
    policy = busy_policy(2)
    sampled = sample_ops(policy, len(cifar_images), torch.Generator().manual_seed(4))
    cpu = apply_sampled(cifar_images, policy.ops, sampled, FILL)
    gpu = apply_sampled(cifar_images.cuda(), policy.ops, sampled.to("cuda"), FILL,
                        sync_free=sync_free)
    assert torch.equal(gpu.cpu(), cpu)


def test_a_setting_that_changes_nothing_skips_the_slot(cifar_images):
    # A shift by 0 pixels, an angle of 0 and an enhance factor of 1 tabulate to the identity:
    # their images sort with those of no op. Ops that are not tabulated always run.
    tables = op_tables(DEFAULT_OPS, 32, 32, torch.device("cpu"))

    def key(name: str, magnitude: int) -> int:
        return int(tables.key[DEFAULT_OPS.index(name) * SETTINGS_PER_OP + magnitude * 2 + 1])

    assert key("TranslateX", 0) == key("Rotate", 0) == key("Brightness", 5) == 0
    assert min(key("TranslateX", 5), key("Brightness", 4), key("Contrast", 5)) > 0
    policy = (Policy.zeros().replace("TranslateX", 0, probability=10, magnitude=0)
              .replace("Brightness", 1, probability=10, magnitude=5))
    for sync_free in (False, True):
        assert torch.equal(apply_policy(cifar_images, policy, FILL, sync_free=sync_free),
                           cifar_images)
