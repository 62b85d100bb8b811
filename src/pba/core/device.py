"""Where a run trains: `--device auto|cpu|cuda|cuda:N` checked (one grammar for every command
and the library) and resolved to a torch device."""

from __future__ import annotations

import torch

from pba.core.errors import UserError

NAMES = ("auto", "cpu", "cuda")
FORMS = "auto, cpu, cuda or cuda:N"  # for help texts and errors


def parse_device(text: str) -> str:
    """`text` checked against the grammar: auto, cpu, cuda or cuda:N (the GPU numbered N).
    Returns it spelled as torch spells it ('cuda:01' -> 'cuda:1')."""
    if text in NAMES:
        return text
    kind, _, index = text.partition(":")
    if kind == "cuda" and index.isascii() and index.isdigit():
        return f"cuda:{int(index)}"
    raise UserError(f"unknown device {text!r}; use {FORMS}")


def resolve_device(device: str) -> torch.device:
    """'auto' is the GPU when there is one, else the CPU; cpu, cuda and cuda:N are torch's."""
    device = parse_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but this machine has no usable CUDA GPU")
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise UserError(f"device {device!r} asked for, but this machine has "
                       f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    return resolved
