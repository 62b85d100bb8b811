"""What a search did, as small typed records (docs/algorithm.md §5's steps).

Each round produces, in order: a `Train` per member, an `Evaluate` per member, then an
`Exploit` per clone (a bottom-quantile target copies a top-quantile source), an `Explore` per
bottom-quantile member (its perturbed policy: the source's where it cloned one; under
`--selection significant` a member that was not clearly worse perturbs its own), and last one
`Round` summary. Each process that ran the search
leaves a `Start`, and the process that finished it a `Finish`. A `Round` and the `Finish` carry
the seconds of each phase (`pba.core.timing`) since the event before them: the round's training,
evaluation and exploit/explore, and what came between (loading, the previous round's
checkpoints and reporting). Both backends produce these (`pba.search.pbt.PBT.step`, and
`pba.search.ray_log.population_events` from Tune's logs); the lineage, the report, the progress
line, the plots and TensorBoard read them.

population.jsonl holds one per line, as JSON with an "event" key naming the kind and the
fields by name (`to_json` / `from_json`); a field added later has a default, so that older
files still read.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from pba.core.errors import UserError


@dataclass(frozen=True)
class Start:
    KIND: ClassVar[str] = "start"
    time: float  # time.time() when the process started
    round: int  # rounds complete when it started
    epoch: int
    device: str  # for people: "cpu (torch threads: 2)", "cuda:0 (NVIDIA H100 ...)"
    precision: str | None = None  # as asked for; absent from runs of before --precision


@dataclass(frozen=True)
class Train:
    KIND: ClassVar[str] = "train"
    round: int
    member: int
    epochs: tuple[int, int]  # [start, end): the epochs trained in the round
    policy: tuple[int, ...]  # the member's policy through them (`Policy.to_list()`)
    loss: float  # mean over the epochs; nan or inf once the member diverged
    accuracy: float
    images: int
    seconds: float


@dataclass(frozen=True)
class Evaluate:
    KIND: ClassVar[str] = "evaluate"
    round: int
    member: int
    epoch: int
    accuracy: float  # on the validation split
    loss: float
    score: float  # the metric signed so that larger is better; nan for a diverged member


@dataclass(frozen=True)
class Exploit:
    KIND: ClassVar[str] = "exploit"
    round: int
    epoch: int
    target: int
    source: int
    target_score: float
    source_score: float


@dataclass(frozen=True)
class Explore:
    KIND: ClassVar[str] = "explore"
    round: int
    epoch: int
    member: int
    old_policy: tuple[int, ...]  # the source's, which the target cloned (or the member's own)
    new_policy: tuple[int, ...]


@dataclass(frozen=True)
class Round:
    KIND: ClassVar[str] = "round"
    round: int
    epoch: int
    best_member: int
    best_accuracy: float
    median_accuracy: float
    images: int  # trained by every member together
    seconds: float
    time: float  # time.time() when it ended
    # phase -> seconds since the event before (`pba.core.timing`); empty in runs of before it and
    # with Ray
    phases: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Finish:
    KIND: ClassVar[str] = "finish"
    time: float  # time.time() when the schedule and the reports were written
    phases: dict = field(default_factory=dict)  # since the last round


Event = Start | Train | Evaluate | Exploit | Explore | Round | Finish
KINDS: dict[str, type[Event]] = {c.KIND: c for c in (Start, Train, Evaluate, Exploit, Explore,
                                                     Round, Finish)}


def to_json(event: Event) -> dict:
    """The event as a JSON object (population.jsonl writes a non-finite float as null, which
    `from_json` reads back as nan)."""
    doc: dict = {"event": event.KIND}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        doc[f.name] = list(value) if isinstance(value, tuple) else value
    return doc


def from_json(doc: dict) -> Event:
    """The event of one population.jsonl line (keys it does not know are ignored)."""
    kind = KINDS.get(doc.get("event")) if isinstance(doc, dict) else None
    if kind is None:
        raise UserError(f"not a search event: {str(doc)[:80]}")
    values = {}
    for f in dataclasses.fields(kind):
        if f.name not in doc:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"a {kind.KIND} event without {f.name!r}: {str(doc)[:80]}")
            continue
        value = doc[f.name]
        if isinstance(value, list):
            value = tuple(value)
        elif value is None and f.type in ("float", "float | None"):
            value = math.nan
        values[f.name] = value
    return kind(**values)
