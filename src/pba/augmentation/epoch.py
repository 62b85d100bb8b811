"""The training epoch a transform follows, shared with every DataLoader worker.

A DataLoader worker holds its own copy of the dataset and so of its transforms: a plain
attribute set in the main process after the workers started (persistent workers) never reaches
them, and workers that start later see it only through the copy. `SharedEpoch` keeps the epoch
in a two-integer tensor in shared memory instead: copies made by fork map the same memory, and
copies pickled to spawned workers carry its handle (torch's multiprocessing pickler), so one
`set` in the main process is what every worker reads next. (A plain `pickle.dumps` or
`copy.deepcopy` still makes an independent copy, as for any tensor.)

The second integer counts the calls to `set`: a transform restarts its random draws whenever it
changes, from a seed of (its seed, the epoch, the worker), so that epoch k draws the same images
whether the run went through epochs 0..k-1 first or resumed at k (`epoch_seed`).
"""

from __future__ import annotations

import numpy as np
import torch

from pba.core.errors import UserError


class SharedEpoch:
    """An epoch number in shared memory, and how many times it was set (0: never)."""

    def __init__(self) -> None:
        # [epoch, times set]; int64 writes of one element are whole on every platform torch runs on.
        self._cell = torch.zeros(2, dtype=torch.int64).share_memory_()

    def set(self, epoch: int) -> None:
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise UserError(f"an epoch is an integer 0 or more, got {epoch!r}")
        self._cell[0] = int(epoch)
        self._cell[1] += 1

    def read(self) -> tuple[int, int]:
        """(epoch, how many times it was set)."""
        epoch, times = self._cell.tolist()
        return epoch, times

    def __repr__(self) -> str:
        epoch, times = self.read()
        return f"SharedEpoch(epoch={epoch}, set {times} times)"


def epoch_seed(seed: int, epoch: int, worker: int | None) -> int:
    """The seed of a transform's draws in `epoch` in DataLoader worker `worker` (None: the main
    process): a function of the three alone, so a resumed run draws what an uninterrupted one
    would, and each worker draws its own ops."""
    words = [seed % 2**64, epoch, 0 if worker is None else worker + 1]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] % 2**63)
