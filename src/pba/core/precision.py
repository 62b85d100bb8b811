"""Numeric precision of training: fp32, or bf16 autocast with channels_last activations.

    precision = resolve_precision("auto", torch.device("cpu"))   # "bf16" or "fp32"
    with autocast(device, precision):
        logits = model(x.contiguous(memory_format=memory_format(precision, device)))

bf16 autocast runs convolutions and matrix products in bfloat16 (weights, optimiser state and
the loss stay float32); channels_last is the layout that oneDNN's and cuDNN's bf16 kernels read
without transposes, and oneDNN's fp32 kernels too: on a CPU, fp32 trains in channels_last where
torch has oneDNN (a training step 1.2-1.4x the contiguous layout's speed for WRN-10-1 and
WRN-10-2; benchmarks/cpu_speed.py). On a CPU with native bf16 instructions (AVX512-BF16 or
AMX) bf16 trains small WRNs 2-3x faster than fp32 (benchmarks/train_throughput.py); on a CPU
without them bf16 is emulated and slower than fp32, so 'auto' takes it only where the hardware
has it. fp32 on a GPU keeps the default layout (not measured here).
"""

from __future__ import annotations

import contextlib

import torch

from pba.core.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
RESOLVED = ("fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles), as torch's own
    CPU feature detection reports it (cpuinfo, not the CPU's name)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def device_has_native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        # Ampere and newer; older GPUs would emulate it (slower than fp32).
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """'fp32' or 'bf16' for `precision` (one of PRECISIONS) on `device`: 'auto' is bf16 where
    the device has native bf16 support, else fp32; 'bf16' on a device without it is refused."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    native = device_has_native_bf16(device)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        what = "this CPU has neither AVX512-BF16 nor AMX" if device.type == "cpu" else (
            f"{device} has no native bf16 support")
        raise UserError(f"--precision bf16 asked for, but {what} (bf16 would be emulated, "
                       "slower than fp32): use --precision fp32 or auto")
    return precision


def check_resolved(precision: str) -> None:
    if precision not in RESOLVED:
        raise UserError(f"a training precision is one of {', '.join(RESOLVED)}, got "
                       f"{precision!r} (resolve 'auto' with resolve_precision first)")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of `precision` on `device` (a no-op for fp32)."""
    return torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16")


def memory_format(precision: str, device: torch.device | str) -> torch.memory_format:
    """channels_last for bf16 (what the bf16 kernels read) and for fp32 on a CPU with oneDNN
    (faster there); the default layout for fp32 elsewhere."""
    if precision == "bf16" or (torch.device(device).type == "cpu"
                               and torch.backends.mkldnn.is_available()):
        return torch.channels_last
    return torch.contiguous_format
