"""Small models side by side on a CPU: one Python thread per model, each with one torch thread.

A WRN-10-1 step is a few dozen small kernels; torch's intra-op threads split each kernel across
cores and wait at every one, so on 2 cores one process trains about 1.4x as fast as on one.
Two models trained at once, each single-threaded, keep both cores busy: 1.5x the throughput of
training them in turn with two threads (benchmarks/train_throughput.py --parallel 2). torch
releases the GIL inside its kernels, so threads suffice, and each model's arithmetic is the
same whatever runs beside it: results stay reproducible.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def cpu_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers(jobs: int, device: torch.device) -> int:
    """Models to train at once: on a CPU one per core (at most `jobs`), on a GPU one (its
    kernels already fill it, and one stream keeps the host from waiting)."""
    if device.type != "cpu":
        return 1
    return max(1, min(jobs, cpu_cores()))


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to `threads` for the block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# torch's global RNG is one per process: a thread that seeds it and draws from it must not
# interleave with another doing the same.
_GLOBAL_RNG = threading.Lock()


@contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """torch's global CPU RNG seeded with `seed` for the block (for code that only draws from
    it: model initialisation, torchvision's transforms), restored after; one thread at a
    time, so that models trained side by side stay reproducible."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def map_parallel(fn: Callable[[T], R], items: Sequence[T] | Iterable[T], workers: int) -> list[R]:
    """`[fn(x) for x in items]`, with up to `workers` calls at once, each call's torch kernels
    single-threaded when more than one runs (one worker keeps torch's threads as they are).
    The first exception is raised after the running calls end."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    threads = max(1, torch.get_num_threads() // workers)
    with torch_threads(threads), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))
