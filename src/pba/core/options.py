"""`RunOptions`: where and how a run executes, as opposed to what it computes. Every entry point
that trains (a search, with any engine, and its resume; a training run; the demo; the final
models; the budget's measurements) takes one instead of threading the same six settings
through each call; none of them changes a result beyond the precision's rounding.

    options = RunOptions(device="cpu", precision="fp32", workers=2, progress=False)
    run_demo(DEMO, "runs/demo", options=options)
    resume_search("runs/quick", options=AS_STARTED.replace(workers=1))

What hears a search's progress (its recorders: bars, plots, TensorBoard) is the application's
choice and stays an argument of its own: the layers below the application draw nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pba.core.errors import UserError


@dataclass(frozen=True)
class RunOptions:
    """How runs execute here: `device` (auto, cpu, cuda, cuda:N), `precision` (auto, fp32,
    bf16), `workers` (models trained at once; None: one per CPU core, one on a GPU),
    `data_dir` (where datasets live; None: $PBA_DATA_DIR, else ./data), `download` (fetch
    CIFAR-10 when missing) and `progress` (bars and lines on the terminal). A `device` or
    `precision` of None is auto for a new run (`starting`), a resumed run's own
    (`continuing`)."""

    device: str | None = "auto"
    precision: str | None = "auto"
    workers: int | None = None
    data_dir: str | Path | None = None
    download: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UserError(f"--workers must be >= 1, got {self.workers}")

    def replace(self, **changes: object) -> RunOptions:
        return dataclasses.replace(self, **changes)

    def starting(self) -> RunOptions:
        """These options for a new run: a device or precision of None is auto."""
        return self.replace(device=self.device or "auto", precision=self.precision or "auto")

    def continuing(self, recorded: Mapping[str, object]) -> RunOptions:
        """These options for going on with the run whose record (its config.json) is
        `recorded`: a device, precision or data_dir of None is the one it started with."""
        return self.replace(
            device=self.device or recorded.get("device") or "auto",
            # runs from before the precision was recorded trained the CPU's way: fp32
            precision=self.precision or recorded.get("precision") or "fp32",
            data_dir=self.data_dir if self.data_dir is not None else recorded.get("data_dir"))


DEFAULTS = RunOptions()  # a default argument: frozen, so one instance serves every call
AS_STARTED = RunOptions(device=None, precision=None)  # a resumed run, where and how it began
