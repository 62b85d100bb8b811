"""What a search has cost and found so far, from its event log alone: `search_cost`, and the
one line the summaries and `pba reproduce` print of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pba.core.formatting import duration
from pba.core.timing import TimeBreakdown
from pba.search.events import Finish, Round, Start, Train
from pba.search.rundir import SearchDir


@dataclass(frozen=True)
class SearchCost:
    """A search's cost and outcome so far, from its event log."""

    wall_s: float  # of the processes that ran it, up to each one's last complete round (or end)
    devices: tuple[str, ...]
    processes: int  # 1 + the number of resumes
    rounds: int
    epochs: int  # completed by every member
    member_epochs: int
    best_member: int | None  # after the last complete round
    best_accuracy: float | None
    median_accuracy: float | None
    train_images: int = 0  # summed over the members
    train_seconds: float = 0.0  # the members' training time, evaluation excluded
    precisions: tuple[str, ...] = ()
    # where the wall time went (`pba.core.timing`); phases are empty in runs of before it and Ray's
    time: TimeBreakdown = TimeBreakdown()

    @property
    def images_per_s(self) -> float | None:
        """The rate one member trained at on the search's device."""
        return self.train_images / self.train_seconds if self.train_seconds > 0 else None


def search_cost(run_dir: str | Path) -> SearchCost:
    run = SearchDir.open(run_dir)
    devices, precisions, processes, rounds, member_epochs = [], [], 0, 0, 0
    images, seconds = 0, 0.0
    start = last = None
    time = TimeBreakdown()
    for event in run.events():
        if isinstance(event, Start):
            processes += 1
            start = event.time
            if event.device not in devices:
                devices.append(event.device)
            if event.precision and event.precision not in precisions:
                precisions.append(event.precision)
        elif isinstance(event, Train):
            member_epochs += event.epochs[1] - event.epochs[0]
            images += event.images
            seconds += event.seconds
        elif isinstance(event, Round | Finish):
            time += TimeBreakdown(event.time - start, event.phases)
            start = event.time
            if isinstance(event, Round):
                rounds += 1
                last = event
    return SearchCost(
        wall_s=time.wall_s,
        devices=tuple(devices),
        processes=processes,
        rounds=rounds,
        epochs=last.epoch if last else 0,
        member_epochs=member_epochs,
        best_member=last.best_member if last else None,
        best_accuracy=last.best_accuracy if last else None,
        median_accuracy=last.median_accuracy if last else None,
        train_images=images,
        train_seconds=seconds,
        precisions=tuple(precisions),
        time=time,
    )



def cost_line(cost: SearchCost) -> str:
    resumed = f", resumed {cost.processes - 1} time(s)" if cost.processes > 1 else ""
    return (f"cost: {duration(cost.wall_s)} wall on {', '.join(cost.devices) or '-'}; "
            f"{cost.member_epochs} member-epochs in {cost.rounds} rounds "
            f"({cost.epochs} epochs){resumed}")
