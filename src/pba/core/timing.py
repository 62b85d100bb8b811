"""Where a run's wall time goes: named phases beside the wall time (`TimeBreakdown`), and the
`Stopwatch` that times them.

    watch = Stopwatch()
    with watch.phase(LOADING):
        data = load_dataset(...)
    with watch.phase(TRAINING):
        train(...)
    print(watch.breakdown().describe())   # "training steps 91% (1m 02s), loading 4% ..., other 5%"

Phases are timed on the thread that waits for them, so they partition that thread's wall
time; what no phase covers is `other_s`. Work that ran on several threads at once (final models
side by side) is added as worker-seconds divided by the threads (`TimeBreakdown.scaled`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from pba.core.formatting import duration

LOADING = "loading"  # reading and decoding the data, building models
MEASURING = "measuring"  # the budget's measurement of this device
BASELINE_CHECK = "baseline_check"  # deciding the baseline on an image folder
TRAINING = "training"  # training steps: augmentation, forward, backward, optimiser
EVALUATION = "evaluation"  # scoring on validation or test images
CHECKPOINTS = "checkpoints"  # writing checkpoints, state and logs
EXPLOIT_EXPLORE = "exploit_explore"  # PBT's copies and policy perturbations
REPORTING = "reporting"  # progress bars, plots, summaries, TensorBoard
WAITING = "waiting"  # threads idle while the last of several jobs run side by side ends
PHASES = (TRAINING, EVALUATION, LOADING, MEASURING, BASELINE_CHECK, CHECKPOINTS,
          EXPLOIT_EXPLORE, REPORTING, WAITING)
NAMES = {TRAINING: "training steps", EXPLOIT_EXPLORE: "exploit/explore",
         BASELINE_CHECK: "baseline check"}


@dataclass(frozen=True)
class TimeBreakdown:
    """Seconds of named phases within `wall_s` seconds of wall time."""

    wall_s: float = 0.0
    phases: Mapping[str, float] = field(default_factory=dict)

    @property
    def other_s(self) -> float:
        """Wall time no phase covers (Python between phases, the interpreter's start)."""
        return self.wall_s - sum(self.phases.values())

    def share(self, phase: str) -> float:
        """The fraction of the wall time spent in `phase` (0 for an empty breakdown)."""
        return self.phases.get(phase, 0.0) / self.wall_s if self.wall_s > 0 else 0.0

    def __add__(self, other: TimeBreakdown) -> TimeBreakdown:
        phases = dict(self.phases)
        for name, seconds in other.phases.items():
            phases[name] = phases.get(name, 0.0) + seconds
        return TimeBreakdown(self.wall_s + other.wall_s, phases)

    def scaled(self, factor: float) -> TimeBreakdown:
        """Every figure times `factor` (worker-seconds of n threads to wall: 1 / n)."""
        return TimeBreakdown(self.wall_s * factor,
                             {name: s * factor for name, s in self.phases.items()})

    def to_dict(self) -> dict:
        return {"wall_s": self.wall_s, "phases": dict(self.phases), "other_s": self.other_s}

    @classmethod
    def from_dict(cls, doc: Mapping | None) -> TimeBreakdown:
        if not doc:
            return cls()
        return cls(float(doc["wall_s"]), {k: float(v) for k, v in doc["phases"].items()})

    def describe(self) -> str:
        """One line: every phase's share of the wall time, largest first, then the rest."""
        if self.wall_s <= 0:
            return "no time recorded"
        parts = [f"{NAMES.get(name, name)} {self.share(name):.0%} ({duration(seconds)})"
                 for name, seconds in sorted(self.phases.items(), key=lambda kv: -kv[1])
                 if seconds >= 0.005 * self.wall_s]
        parts.append(f"other {self.other_s / self.wall_s:.0%}")
        return f"{duration(self.wall_s)} wall: " + ", ".join(parts)


class Stopwatch:
    """Wall time since it was made, and the phases timed within it. `lap()` hands over the
    phases timed since the previous lap (a search records them round by round)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._total: dict[str, float] = {}
        self._lap: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - begin)

    def add(self, name: str, seconds: float) -> None:
        for phases in (self._total, self._lap):
            phases[name] = phases.get(name, 0.0) + seconds

    def add_breakdown(self, breakdown: TimeBreakdown) -> None:
        """Count the phases of work timed elsewhere within this watch's wall time."""
        for name, seconds in breakdown.phases.items():
            self.add(name, seconds)

    def lap(self) -> dict[str, float]:
        lap, self._lap = self._lap, {}
        return lap

    def breakdown(self) -> TimeBreakdown:
        return TimeBreakdown(time.perf_counter() - self.started, dict(self._total))
