"""TensorBoard logs of a search or a training run (`--tensorboard`): DIR/tensorboard/.

    tensorboard --logdir runs/quick/tensorboard

A search writes, at the end of every round (x axis: epochs), each member's mean training loss
over the round, its validation accuracy and the strength of the policy it trained with
(`pba.augmentation.policy.strength`), under member_MM/...; a training run writes its metrics.jsonl
line of
every epoch. Needs the optional extra: pip install 'pba[tensorboard]'. Ray runs keep Tune's own
logs instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from pba.augmentation.policy import strength
from pba.core.errors import UserError
from pba.search.events import Evaluate, Event, Round, Train
from pba.search.recorder import Recorder

if TYPE_CHECKING:
    from pba.search.pbt import SearchState
    from pba.search.rundir import SearchDir

FOLDER = "tensorboard"
INSTALL_HINT = "--tensorboard needs TensorBoard: pip install 'pba[tensorboard]'"


def require_tensorboard() -> None:
    """Fail now, before minutes of work, when TensorBoard is not installed."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None


class TensorBoardLog:
    """A SummaryWriter into `run_dir`/tensorboard, closed with the block that opens it."""

    def __init__(self, run_dir: str | Path) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(run_dir) / FOLDER))

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.writer.close()

    def search_round(self, events: list[Event]) -> None:
        """A search round's events (`pba.search.pbt.PBT.step`)."""
        for e in events:
            if isinstance(e, Train):
                tag, step = f"member_{e.member:02d}", e.epochs[1]
                self._scalar(f"{tag}/train_loss", e.loss, step)
                self._scalar(f"{tag}/policy_strength", strength(e.policy), step)
            elif isinstance(e, Evaluate):
                self._scalar(f"member_{e.member:02d}/val_accuracy", e.accuracy, e.epoch)
            elif isinstance(e, Round):
                self._scalar("population/best_val_accuracy", e.best_accuracy, e.epoch)
                self._scalar("population/median_val_accuracy", e.median_accuracy, e.epoch)
        self.writer.flush()

    def train_epoch(self, metrics: dict, policy_strength: float | None = None) -> None:
        """One line of a training run's metrics.jsonl, and the strength of its epoch's policy
        (augment 'pba')."""
        step = metrics["epoch"]
        for key in ("train_loss", "train_acc", "lr", "grad_norm", "test_acc", "test_loss",
                    "val_acc", "val_loss", "images_per_s"):
            if key in metrics:
                self._scalar(f"train/{key}", metrics[key], step)
        if policy_strength is not None:
            self._scalar("train/policy_strength", policy_strength, step)
        self.writer.flush()

    def _scalar(self, tag: str, value: float | None, step: int) -> None:
        # A diverged member's nan loss is written as json null: leave the point out.
        if value is not None and math.isfinite(value):
            self.writer.add_scalar(tag, value, step)


class SearchBoard(Recorder):
    """A search's rounds into DIR/tensorboard, as a recorder (`pba.search.recorder`)."""

    def __init__(self) -> None:
        require_tensorboard()  # now, before minutes of work
        self.log: TensorBoardLog | None = None

    def started(self, run: SearchDir, state: SearchState, images_per_epoch: int) -> None:
        self.log = TensorBoardLog(run.path)

    def round_done(self, state: SearchState, events: list[Event]) -> None:
        self.log.search_round(events)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
