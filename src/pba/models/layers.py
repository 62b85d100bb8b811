"""Pieces shared by the networks."""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import FunctionCtx


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: every convolution here is followed by BatchNorm, whose shift makes it redundant.
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def init_weights(model: nn.Module) -> None:
    """He (fan-out) initialisation for convolutions, unit BatchNorm, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


class _ScaleForwardBackward(torch.autograd.Function):
    """x * forward_scale in the forward pass; the gradient is scaled by backward_scale instead."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: torch.Tensor,
        forward_scale: torch.Tensor,
        backward_scale: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(backward_scale)
        return x * forward_scale

    @staticmethod
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (backward_scale,) = ctx.saved_tensors
        return grad * backward_scale, None, None


def scale_forward_backward(
    x: torch.Tensor, forward_scale: torch.Tensor, backward_scale: torch.Tensor
) -> torch.Tensor:
    """Multiply by forward_scale, but back-propagate as if the factor were backward_scale.

    Shake-Shake and ShakeDrop use different random factors in the two passes; the scales
    broadcast against x (per-sample factors have shape (N, 1, 1, 1)).
    """
    return _ScaleForwardBackward.apply(x, forward_scale, backward_scale)


def per_sample_uniform(x: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """One uniform draw per sample of x, shaped (N, 1, 1, 1), on x's device and dtype.

    Drawn from torch's global RNG of that device: training code seeds it with
    torch.manual_seed, which is the reproducibility these regularisers need.
    """
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return torch.empty(shape, device=x.device, dtype=x.dtype).uniform_(low, high)
