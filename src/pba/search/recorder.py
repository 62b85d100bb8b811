"""What a search tells the world while it runs: the hooks a recorder may override.

The search layer emits; it draws nothing. Progress bars, plots, summaries and TensorBoard logs
are recorders that the application passes in (`pba.reporting.recorders`,
`pba.reporting.tensorboard`), as Ray
Tune's callbacks are:

    class Printer(Recorder):
        def round_done(self, state, events):
            print(state.round, events[-1].best_accuracy)

    run_search(config, "runs/try", recorders=[Printer()])

Every hook has a default that does nothing. A recorder must not change the search: what it
reads (the state, the events, the run directory) is the search's own, and the search's files
are written before the recorders hear of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pba.augmentation.schedule import Schedule
    from pba.search.events import Event
    from pba.search.pbt import SearchState
    from pba.search.rundir import SearchDir


class Recorder:
    # Whether the search may print lines of its own for people (the baseline check's verdict).
    verbose: bool = False

    def loading(self, done: int, total: int) -> None:
        """`done` of `total` images read so far."""

    def started(self, run: SearchDir, state: SearchState, images_per_epoch: int) -> None:
        """The search starts (or resumes) at `state`; every member trains `images_per_epoch`
        images an epoch."""

    def trained(self, images: int) -> None:
        """A training step of `images` images (all members' for a packed population)."""

    def round_done(self, state: SearchState, events: list[Event]) -> None:
        """A round is committed to the run directory: its events end with the `Round`."""

    def finished(self, run: SearchDir, state: SearchState, schedule: Schedule, best: int) -> None:
        """The search is over: `schedule` (the best member's, as saved) is in the run
        directory."""

    def close(self) -> None:
        """The search ends, finished or not."""


class Recorders(Recorder):
    """Several recorders heard as one, in order."""

    def __init__(self, recorders: Sequence[Recorder]) -> None:
        self.recorders = list(recorders)
        self.verbose = any(r.verbose for r in self.recorders)

    def loading(self, done: int, total: int) -> None:
        for r in self.recorders:
            r.loading(done, total)

    def started(self, run: SearchDir, state: SearchState, images_per_epoch: int) -> None:
        for r in self.recorders:
            r.started(run, state, images_per_epoch)

    def trained(self, images: int) -> None:
        for r in self.recorders:
            r.trained(images)

    def round_done(self, state: SearchState, events: list[Event]) -> None:
        for r in self.recorders:
            r.round_done(state, events)

    def finished(self, run: SearchDir, state: SearchState, schedule: Schedule, best: int) -> None:
        for r in self.recorders:
            r.finished(run, state, schedule, best)

    def close(self) -> None:
        for r in self.recorders:
            r.close()
