"""Where a run trains: `--device auto|cpu|cuda|cuda:N` to a torch device, checked."""

from __future__ import annotations

import torch

from pba.errors import PBAError


def resolve_device(device: str) -> torch.device:
    """'auto' is the GPU when there is one, else the CPU; other names are torch's."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise PBAError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise PBAError(f"device {device!r} asked for, but this machine has no usable CUDA GPU")
    return resolved

