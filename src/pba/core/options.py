"""`RunOptions`: where and how a run executes, as opposed to what it computes. Every entry point
that trains (the demo, the final models, the budget's measurements) takes one instead of
threading the same six settings through each call; none of them changes a result beyond the
precision's rounding.

    options = RunOptions(device="cpu", precision="fp32", workers=2, progress=False)
    run_demo(DEMO, "runs/demo", options=options)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunOptions:
    """How runs execute here: `device` (auto, cpu, cuda, cuda:N), `precision` (auto, fp32,
    bf16), `workers` (models trained at once; None: one per CPU core, one on a GPU),
    `data_dir` (where datasets live; None: $PBA_DATA_DIR, else ./data), `download` (fetch
    CIFAR-10 when missing) and `progress` (bars and lines on the terminal)."""

    device: str = "auto"
    precision: str = "auto"
    workers: int | None = None
    data_dir: str | Path | None = None
    download: bool = False
    progress: bool = True

    def replace(self, **changes: object) -> RunOptions:
        return dataclasses.replace(self, **changes)


DEFAULTS = RunOptions()  # a default argument: frozen, so one instance serves every call
