"""Networks: every name builds and runs, sizes match the papers, the shake regularisers behave."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pba.core.errors import PBAError
from pba.models import build, names
from pba.models.layers import scale_forward_backward
from pba.models.pyramidnet import shake_drop
from pba.models.shake_shake import shake_shake

# Published parameter counts (WRN, Shake-Shake and PyramidNet papers / AutoAugment tables).
PUBLISHED_PARAMS = {
    "wrn_40_2": 2.2e6,
    "wrn_28_10": 36.5e6,
    "shake_shake_26_2x32d": 2.9e6,
    "shake_shake_26_2x96d": 26.2e6,
    "pyramidnet_272_200": 26.0e6,
}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _shapes_only(name: str) -> nn.Module:
    """The model on the meta device: its structure without the cost of allocating weights."""
    with torch.device("meta"):
        return build(name, num_classes=10)


@pytest.mark.parametrize("name", names())
def test_every_name_builds_and_maps_a_batch_to_logits(name):
    torch.manual_seed(0)
    model = build(name, num_classes=10).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["wrn_10_1", "shake_shake_8_2x4d", "pyramidnet_11_8"])
def test_evaluation_is_deterministic(name):
    model = build(name, num_classes=10).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # shake factors are their expectations


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_counts_match_the_papers(name):
    assert _params(_shapes_only(name)) == pytest.approx(PUBLISHED_PARAMS[name], rel=0.02)


def test_batchnorm_momentum_and_num_classes():
    model = build("wrn_16_1", num_classes=7)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bn.momentum == 0.1 for bn in bns)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_wrn_layout():
    model = build("wrn_22_2", num_classes=10)  # not listed, valid: 3 blocks per group
    assert len(model.blocks) == 9
    widths = [block.conv2.out_channels for block in model.blocks]
    assert widths == [32] * 3 + [64] * 3 + [128] * 3
    projections = [block.projection is not None for block in model.blocks]
    assert projections == [True, False, False] * 3


def test_shake_shake_trains_and_is_random_in_training():
    model = build("shake_shake_8_2x4d", num_classes=10).train()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    out = model(x)
    out.logsumexp(dim=1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    torch.manual_seed(0)
    again = model(x)
    torch.manual_seed(1)
    other = model(x)
    assert torch.equal(out, again) and not torch.allclose(out, other)


def test_shake_shake_mixes_forward_by_alpha_and_backward_by_beta():
    a = torch.full((64, 1, 2, 2), 1.0, requires_grad=True)
    b = torch.full((64, 1, 2, 2), 3.0, requires_grad=True)
    torch.manual_seed(0)
    out = shake_shake(a, b, training=True)
    alpha = (3.0 - out) / 2.0  # out = alpha * 1 + (1 - alpha) * 3
    assert ((alpha >= 0) & (alpha <= 1)).all()
    assert torch.allclose(alpha, alpha[:, :, :1, :1].expand_as(alpha))  # one alpha per sample
    out.sum().backward()
    torch.testing.assert_close(a.grad + b.grad, torch.ones_like(a))  # beta + (1 - beta)
    assert not torch.allclose(a.grad, alpha)  # beta is drawn independently of alpha
    torch.testing.assert_close(shake_shake(a, b, training=False), torch.full_like(a, 2.0))


def test_scale_forward_backward():
    x = torch.ones(3, requires_grad=True)
    out = scale_forward_backward(x, torch.tensor(2.0), torch.tensor(-0.5))
    out.sum().backward()
    torch.testing.assert_close(out.detach(), torch.full((3,), 2.0))
    torch.testing.assert_close(x.grad, torch.full((3,), -0.5))


def test_shake_drop_factors():
    survival = 0.7
    x = torch.ones(4000, 1, 1, 1, requires_grad=True)
    torch.manual_seed(0)
    out = shake_drop(x, survival, training=True)
    out.sum().backward()
    kept = out.detach() == 1.0
    assert abs(kept.float().mean().item() - survival) < 0.03
    assert torch.all(x.grad[kept] == 1.0)
    dropped_forward, dropped_backward = out.detach()[~kept], x.grad[~kept]
    assert dropped_forward.min() >= -1 and dropped_forward.max() <= 1
    assert dropped_forward.min() < -0.9  # alpha spans [-1, 1] ...
    assert dropped_backward.min() >= 0 and dropped_backward.max() <= 1  # ... beta [0, 1]
    torch.testing.assert_close(shake_drop(x, survival, training=False), x * survival)


def test_pyramidnet_survival_decays_linearly_to_half():
    survivals = [block.survival for block in _shapes_only("pyramidnet_272_200").blocks]
    assert len(survivals) == 90
    assert survivals[-1] == pytest.approx(0.5)
    assert survivals[0] == pytest.approx(1 - 0.5 / 90)
    steps = torch.tensor(survivals, dtype=torch.float64).diff()
    torch.testing.assert_close(steps, torch.full_like(steps, -0.5 / 90), rtol=0, atol=1e-12)


def test_arbitrary_valid_sizes_and_mistakes():
    assert isinstance(build("wrn_34_3", 10), nn.Module)
    with pytest.raises(PBAError) as info:
        build("lenet5", 10)  # resnet50 is torchvision's (tests/test_model_zoo.py)
    assert all(name in str(info.value) for name in names())
    with pytest.raises(PBAError, match="6n \\+ 4"):
        build("wrn_27_2", 10)
    with pytest.raises(PBAError, match="6n \\+ 2"):
        build("shake_shake_25_2x32d", 10)
    with pytest.raises(PBAError, match="9n \\+ 2"):
        build("pyramidnet_100_48", 10)
    with pytest.raises(PBAError, match="num_classes"):
        build("wrn_10_1", 0)
