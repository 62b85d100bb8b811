"""The batched tensor ops against the Pillow reference ops, on real CIFAR-10 images.

Every op is compared at every magnitude 0..9 (both signs for signed ops) in one batch that mixes
all the settings, so the per-image parameters are exercised too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pba.core.errors import PBAError
from pba.ops import DEFAULT_OPS, Op, pil, tensor

FILL = (125, 123, 114)  # CIFAR-10's mean colour
FILL_T = torch.tensor(FILL, dtype=torch.uint8)

# Largest |tensor - Pillow| allowed per op, in intensity levels. Every op is reproduced exactly,
# so every bound is 0:
# - Rotate, ShearX, ShearY: Pillow's nearest affine runs in 16.16 fixed point from the pixel
#   centre; the tensor op rebuilds the same matrix (rotate: angle mod 360, cos/sin rounded to
#   15 decimals) and does the same integer arithmetic, so every source index is identical.
# - TranslateX/Y: Pillow's float "scale" path, floor(x + 0.5 + p), evaluated the same way.
# - Brightness, Color, Contrast, Sharpness: Image.blend replayed in float32 (the C code's
#   precision, separate multiply and add) on degenerates that are exact: black; the L image
#   with Pillow's integer weights; the rounded mean of L; SMOOTH, whose S / 13 is never within
#   float32 error of a half-integer so integer rounding matches Pillow's float sum.
# - Invert, Posterize, Solarize: integer point ops.
# - Equalize, AutoContrast: Pillow's lookup tables computed per channel with the same integer
#   (Equalize) and float64 (AutoContrast) arithmetic.
# - Cutout: the same integer rectangle (checked with shared centres through the pure `cutout`).
MAX_DIFF = {
    "Rotate": 0,
    "TranslateX": 0,
    "TranslateY": 0,
    "Brightness": 0,
    "Color": 0,
    "Invert": 0,
    "Sharpness": 0,
    "Posterize": 0,
    "ShearX": 0,
    "Solarize": 0,
    "ShearY": 0,
    "Equalize": 0,
    "AutoContrast": 0,
    "Cutout": 0,
    "Contrast": 0,
}


def to_pil(img: torch.Tensor) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(img.permute(1, 2, 0).numpy()))


def from_pil(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)


def reference(op: Op, imgs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The Pillow op applied image by image."""
    rng = np.random.default_rng(0)
    return torch.stack(
        [
            from_pil(op.pil(to_pil(img), float(p), FILL, rng))
            for img, p in zip(imgs, params, strict=True)
        ]
    )


def settings(op: Op) -> list[float]:
    """The op parameter at every magnitude, with both signs when the op is signed."""
    values = [op.magnitude(m) for m in range(10)]
    return values + [-v for v in values] if op.signed else values


@pytest.fixture(scope="module")
def images(cifar_images: torch.Tensor) -> torch.Tensor:
    return cifar_images[:64]


def test_every_op_has_a_bound() -> None:
    assert set(MAX_DIFF) == set(DEFAULT_OPS.names)


@pytest.mark.parametrize("name", [n for n in DEFAULT_OPS.names if n != "Cutout"])
def test_tensor_op_matches_pillow(name: str, images: torch.Tensor) -> None:
    op = DEFAULT_OPS[DEFAULT_OPS.index(name)]
    values = settings(op)
    batch = images.repeat(len(values), 1, 1, 1)
    params = torch.tensor(values, dtype=torch.float64).repeat_interleave(len(images))
    out = op.tensor(batch, params, FILL_T, None)
    diff = (out.int() - reference(op, batch, params).int()).abs()
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    assert diff.max().item() <= MAX_DIFF[name], f"{name}: mean diff {diff.float().mean():.4f}"


def test_cutout_matches_pillow(images: torch.Tensor) -> None:
    op = DEFAULT_OPS[DEFAULT_OPS.index("Cutout")]
    sizes = torch.tensor([int(op.magnitude(m)) for m in range(10)] + [1, 3, 5, 40])
    batch = images.repeat(len(sizes), 1, 1, 1)
    sizes = sizes.repeat_interleave(len(images))
    # Centres anywhere, including the corners, so clipping is covered.
    centres = torch.from_numpy(np.random.default_rng(1).integers(0, 32, (len(batch), 2)))
    centres[:4] = torch.tensor([[0, 0], [31, 31], [0, 31], [31, 0]])
    out = tensor.cutout(batch, sizes, centres, FILL_T)
    ref = torch.stack(
        [
            from_pil(pil.cutout(to_pil(img), int(s), (int(c[0]), int(c[1])), FILL))
            for img, s, c in zip(batch, sizes, centres, strict=True)
        ]
    )
    assert torch.equal(out, ref)


def test_cutout_op_draws_a_centre_per_image(images: torch.Tensor) -> None:
    params = torch.full((len(images),), 8.0)
    first = tensor.cutout_op(images, params, FILL_T, torch.Generator().manual_seed(3))
    again = tensor.cutout_op(images, params, FILL_T, torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    filled = (first == FILL_T.view(1, 3, 1, 1)).all(dim=1) & (first != images).any(dim=1)
    assert (filled.sum(dim=(1, 2)) <= 64).all()
    left = filled.any(dim=1).float().argmax(dim=1)  # leftmost filled column of each image
    assert len(set(left.tolist())) > 1

    img = to_pil(images[0])
    out = pil.cutout_op(img, 8.0, FILL, np.random.default_rng(3))
    assert 0 < (from_pil(out) == FILL_T.view(3, 1, 1)).all(dim=0).sum() <= 64


def edge_images() -> torch.Tensor:
    """Constant colours, one grey level, and channels whose top level dominates."""
    noise = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (3, 32, 32), np.uint8))
    constant = torch.tensor(FILL, dtype=torch.uint8).view(3, 1, 1).expand(3, 32, 32)
    grey = torch.full((3, 32, 32), 77, dtype=torch.uint8)
    mixed = noise.clone()
    mixed[1] = 200  # one flat channel next to varied ones
    dominant = noise.clone()
    # Equalize's step, (pixels - count of the top level) // 255, is 0: Pillow leaves it as is.
    dominant.view(3, -1)[:, :900] = 255
    black, white = torch.zeros_like(grey), torch.full_like(grey, 255)
    return torch.stack([constant, grey, mixed, dominant, black, white]).contiguous()


@pytest.mark.parametrize("name", ["Equalize", "AutoContrast"])
def test_histogram_ops_on_flat_images(name: str) -> None:
    op = DEFAULT_OPS[DEFAULT_OPS.index(name)]
    imgs = edge_images()
    params = torch.zeros(len(imgs))
    out = op.tensor(imgs, params, FILL_T, None)
    assert torch.equal(out, reference(op, imgs, params))
    flat = [0, 1, 4, 5]  # constant or single-level images: identity, as in Pillow
    assert torch.equal(out[flat], imgs[flat])
    assert torch.equal(out[2, 1], imgs[2, 1])
    if name == "Equalize":
        assert torch.equal(out[3], imgs[3])


@pytest.mark.parametrize("name", ["Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"])
def test_geometric_ops_on_non_square_images_with_any_parameter(name: str) -> None:
    op = DEFAULT_OPS[DEFAULT_OPS.index(name)]
    rng = np.random.default_rng(4)
    imgs = torch.from_numpy(rng.integers(0, 256, (24, 3, 20, 36), np.uint8))
    scale = {"Rotate": 200.0, "ShearX": 0.8, "ShearY": 0.8}.get(name, 25.0)
    params = torch.from_numpy(rng.uniform(-scale, scale, len(imgs)))
    assert torch.equal(op.tensor(imgs, params, FILL_T, None), reference(op, imgs, params))


@pytest.mark.parametrize("name", DEFAULT_OPS.names)
def test_a_non_contiguous_batch_gets_the_contiguous_batchs_result(name: str, images) -> None:
    op = DEFAULT_OPS[DEFAULT_OPS.index(name)]
    odd = images[:16].transpose(2, 3)  # a view whose rows are not contiguous
    params = torch.from_numpy(np.random.default_rng(5).uniform(0.1, 1.9, len(odd)))
    expected = op.tensor(odd.contiguous(), params, FILL_T, torch.Generator().manual_seed(0))
    out = op.tensor(odd, params, FILL_T, torch.Generator().manual_seed(0))
    assert torch.equal(out, expected)


@pytest.mark.parametrize("name", DEFAULT_OPS.names)
def test_empty_batch(name: str) -> None:
    op = DEFAULT_OPS[DEFAULT_OPS.index(name)]
    empty = torch.zeros((0, 3, 32, 32), dtype=torch.uint8)
    assert op.tensor(empty, torch.zeros(0), FILL_T, None).shape == empty.shape


@pytest.mark.parametrize("name", DEFAULT_OPS.names)
def test_bad_input_is_a_pba_error(name: str, images: torch.Tensor) -> None:
    fn = DEFAULT_OPS[DEFAULT_OPS.index(name)].tensor
    params = torch.ones(4)
    with pytest.raises(PBAError, match="uint8"):
        fn(images[:4].float() / 255, params, FILL_T, None)
    with pytest.raises(PBAError, match=r"\(N, C, H, W\)"):
        fn(images[0], params[:1], FILL_T, None)
    with pytest.raises(PBAError, match="4 channels but the fill colour"):
        fn(torch.cat([images[:4], images[:4, :1]], dim=1), params, FILL_T, None)
    with pytest.raises(PBAError, match="one parameter per image"):
        fn(images[:4], torch.ones(3), FILL_T, None)


def test_cutout_shape_errors(images: torch.Tensor) -> None:
    with pytest.raises(PBAError, match="centres of shape"):
        tensor.cutout(images[:4], torch.ones(4), torch.zeros(4, 3), FILL_T)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", DEFAULT_OPS.names)
def test_cuda_matches_cpu(name: str, images: torch.Tensor) -> None:
    op = DEFAULT_OPS[DEFAULT_OPS.index(name)]
    values = settings(op)
    batch = images.repeat(len(values), 1, 1, 1)
    params = torch.tensor(values, dtype=torch.float64).repeat_interleave(len(images))
    if name == "Cutout":
        centres = torch.from_numpy(np.random.default_rng(5).integers(0, 32, (len(batch), 2)))
        cpu = tensor.cutout(batch, params.long(), centres, FILL_T)
        gpu = tensor.cutout(batch.cuda(), params.long().cuda(), centres.cuda(), FILL_T.cuda())
    else:
        cpu = op.tensor(batch, params, FILL_T, None)
        gpu = op.tensor(batch.cuda(), params.cuda(), FILL_T.cuda(), None)
    assert torch.equal(gpu.cpu(), cpu)


def test_warp_reads_the_fill_colour_after_the_last_pixel(images: torch.Tensor) -> None:
    # Index h * w is the fill pixel, y * w + x the image's own: the same source everywhere
    # paints one colour, and the source of (y, x) being (y, w - 1 - x) mirrors the image.
    n, c, h, w = images.shape
    fill = FILL_T
    filled = tensor.warp(images, torch.full((n, h * w), h * w), fill)
    assert torch.equal(filled, fill.view(1, c, 1, 1).expand_as(images))
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    mirror = tensor.source_index((w - 1 - x).expand(n, h, w), y.expand(n, h, w), h, w)
    assert torch.equal(tensor.warp(images, mirror, fill), images.flip(3))
    outside = tensor.source_index(x - w, y, h, w).expand(n, -1)  # every source left of the image
    assert torch.equal(tensor.warp(images, outside, fill), filled)
