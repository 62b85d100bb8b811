"""Lineage: the policy each member trained with, epoch by epoch, carried through clones.

When a member clones another (PBT's exploit) it inherits the other's past as its own: the
weights it now holds were trained with those policies. So the schedule a search outputs is the
best final member's history (docs/algorithm.md §8). The history is rebuilt from the search's event
log (population.jsonl) by replaying its "train" and "exploit" events in order, which is also
how a resumed search recovers it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pba.augmentation.policy import Policy
from pba.augmentation.schedule import Schedule
from pba.core.errors import UserError
from pba.ops.registry import DEFAULT_OPS, OpSet
from pba.search.events import Event, Exploit, Train


@dataclass(frozen=True)
class Step:
    """One epoch of a member's history: which member trained it (the member itself or the
    ancestor it cloned) and with which policy."""

    member: int
    policy: Policy


class Lineage:
    """Every member's history. Apply a search's events in the order they happened."""

    def __init__(self, population: int, ops: OpSet = DEFAULT_OPS) -> None:
        self._history: list[list[Step]] = [[] for _ in range(population)]
        self.ops = ops  # what the events' policy vectors are laid out over

    @classmethod
    def replay(cls, population: int, events: Iterable[Event],
               ops: OpSet = DEFAULT_OPS) -> Lineage:
        lineage = cls(population, ops)
        for event in events:
            lineage.apply(event)
        return lineage

    def apply(self, event: Event) -> None:
        """Take one event of the log into account; events other than train/exploit are ignored."""
        if isinstance(event, Train):
            start, end = event.epochs
            self.record(event.member, Policy(event.policy, self.ops), start, end)
        elif isinstance(event, Exploit):
            self.clone(event.source, event.target)

    def record(self, member: int, policy: Policy, start: int, end: int) -> None:
        """`member` trained epochs start..end-1 with `policy`."""
        history = self._history[member]
        if start != len(history):
            raise UserError(
                f"member {member} trained from epoch {start}, but its history ends at "
                f"{len(history)}: the event log is out of order or incomplete"
            )
        history.extend([Step(member, policy)] * (end - start))

    def clone(self, source: int, target: int) -> None:
        self._history[target] = list(self._history[source])

    def history(self, member: int) -> tuple[Step, ...]:
        return tuple(self._history[member])

    def schedule(self, member: int) -> Schedule:
        """The policy of every epoch `member`'s weights went through."""
        return Schedule(tuple(step.policy for step in self._history[member]))

    def pbt_log(self, member: int) -> str:
        """`member`'s schedule in Ray Tune's PBT policy-log format (`Schedule.pbt_log`), naming
        the members on either side of each policy change as the trials that Ray would name."""
        history = self._history[member]
        return self.schedule(member).pbt_log(lambda epoch: str(history[epoch].member))
