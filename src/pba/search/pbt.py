"""Population Based Training as PBA runs it (docs/algorithm.md §5): a small state machine.

Each round: every member trains `interval` epochs with its own policy (train), is scored on the
validation split (evaluate), the bottom quantile clones the weights, optimiser state and policy
of members drawn from the top quantile (exploit), the clones perturb their policies (explore),
and the round's events go to `on_round` (which commits them to the run directory and tells
the recorders, `pba.search.recorder`). The decisions are pure functions of the
scores and a numpy Generator; how members are trained, scored and copied is an `Engine`'s
business, so that a time-multiplexed, a vectorised and a Ray engine share this file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from pba.augmentation.policy import Policy, explore
from pba.core.errors import RunStopped, UserError
from pba.core.timing import EVALUATION, EXPLOIT_EXPLORE, TRAINING, Stopwatch
from pba.data import DatasetSplits
from pba.ops.registry import DEFAULT_OPS, OpSet
from pba.search.events import Evaluate, Event, Exploit, Explore, Round, Train
from pba.search.lineage import Lineage

if TYPE_CHECKING:
    from pba.training.recipes import Recipe

# How the members train (`pba search --engine`): on this device one after another or side by
# side (local), packed into one network (vectorized, WRNs), as Ray Tune trials (ray); auto picks
# local or vectorized.
ENGINES = ("auto", "local", "vectorized", "ray")
# Metric name -> sign that makes larger better (the evaluation dict's keys).
METRICS = {"accuracy": 1.0, "loss": -1.0}
# Who copies whom (`pba search --selection`). truncation, the paper's: every bottom-quantile
# member clones a member drawn from the top quantile. significant: the same draw, but the copy
# goes ahead only where the source's validation accuracy beats the target's by more than
# SELECTION_Z standard errors of the difference (as PBT's t-test selection copies only on a
# significant difference); a target that is not clearly worse keeps its weights and explores
# its own policy, so the population explores as much as under truncation.
SELECTIONS = ("truncation", "significant")
SELECTION_Z = 2.0
DIVERGED = "every member's loss is nan or infinite: the search diverged (try a lower --lr)"


@dataclass(frozen=True)
class PBTConfig:
    population: int = 16
    epochs: int = 200
    interval: int = 3  # epochs per round (the perturbation interval)
    quantile: float = 0.25  # fraction of the population in each of the top and bottom tails
    metric: str = "accuracy"  # validation accuracy (maximised) or loss (minimised)
    seed: int = 0
    ops: OpSet = DEFAULT_OPS  # what the policies are made of
    selection: str = "truncation"  # one of SELECTIONS

    def __post_init__(self) -> None:
        if self.population < 2:
            raise UserError(f"a population needs at least 2 members, got {self.population}")
        if self.epochs < 1 or self.interval < 1:
            raise UserError(f"epochs and interval must be >= 1, got {self.epochs}, "
                           f"{self.interval}")
        if not 0 < self.quantile <= 0.5:
            raise UserError(f"quantile must be in (0, 0.5], got {self.quantile}")
        if self.metric not in METRICS:
            raise UserError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        if self.selection not in SELECTIONS:
            raise UserError(f"unknown selection {self.selection!r}; known: "
                           f"{', '.join(SELECTIONS)}")
        if self.selection == "significant" and self.metric != "accuracy":
            raise UserError("--selection significant tests validation accuracies: it needs "
                           "--metric accuracy")

    @property
    def rounds(self) -> int:
        return math.ceil(self.epochs / self.interval)


@dataclass(frozen=True)
class TrainStats:
    """What an engine reports of one member's round of training."""

    loss: float  # mean training loss over the round; nan/inf when the member diverged
    accuracy: float
    images: int  # images trained on in the round
    seconds: float


class Engine(Protocol):
    """How members are trained, evaluated and cloned. Member i is index i in every call."""

    progress: Callable[[int], None] | None  # called with the images of every training step
    data: DatasetSplits  # what the members train on (train) and are scored on (val)
    recipe: Recipe  # every member's (its precision is the one the engine trains in)
    images_per_epoch: int  # training images one member sees in one epoch

    def train(self, policies: Sequence[Policy], epochs: int) -> list[TrainStats]:
        """Train every member `epochs` more epochs, member i with `policies[i]`."""
        ...

    def evaluate(self) -> list[dict[str, float]]:
        """Every member's validation {"accuracy", "loss"}."""
        ...

    def copy(self, source: int, target: int) -> None:
        """Give `target` the weights and optimiser state of `source`."""
        ...

    def save(self, member: int, path: Path, extra: dict) -> None:
        """Write `member`'s checkpoint, with `extra` (plain values), atomically to `path`."""
        ...

    def load(self, member: int, path: Path) -> dict:
        """Load `member` from a checkpoint that `save` wrote; return its `extra`."""
        ...


def require_validation(data: DatasetSplits) -> None:
    """The search ranks members on the validation split: refuse data without one."""
    if data.val is None or len(data.val) == 0:
        raise UserError(f"the search scores members on a validation split, but {data.name} "
                       "has none here: give --val-size > 0")


# ---- the decisions: pure functions -------------------------------------------------------


def score(evaluation: dict[str, float], train_loss: float, metric: str) -> float:
    """The member's metric signed so that larger is better; nan for a member whose training or
    validation loss is not finite (such a member is treated as the worst)."""
    if not (math.isfinite(train_loss) and math.isfinite(evaluation["loss"])):
        return math.nan
    value = METRICS[metric] * evaluation[metric]
    return value if math.isfinite(value) else math.nan


def tail_size(population: int, quantile: float) -> int:
    """Members in each tail: ceil(population * quantile), at most half (as Ray Tune's PBT)."""
    return min(math.ceil(population * quantile), population // 2)


class Copy(NamedTuple):
    """One exploit: `target` takes `source`'s weights and policy (the order of `Engine.copy`)."""

    source: int
    target: int


def exploit_pairs(
    scores: Sequence[float], quantile: float, rng: np.random.Generator
) -> list[Copy]:
    """Who copies whom, sorted by target: each member of the bottom quantile, and every
    member whose score is nan, clones a member drawn uniformly from the top quantile.

    Ties are ordered by a random permutation so that no member index is favoured.
    """
    values = np.asarray(scores, dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        raise RunStopped(DIVERGED)
    k = tail_size(len(values), quantile)
    shuffled = rng.permutation(len(values))
    ranked = shuffled[np.argsort(np.where(finite, values, -np.inf)[shuffled], kind="stable")]
    top = [int(m) for m in ranked[len(values) - k :] if finite[m]]
    bottom = set(ranked[:k].tolist()) | set(np.flatnonzero(~finite).tolist())
    targets = sorted(int(m) for m in bottom)
    sources = rng.choice(top, size=len(targets))
    return [Copy(int(s), t) for t, s in zip(targets, sources, strict=True)]


def beyond_noise(source: float, target: float, images: int, z: float = SELECTION_Z) -> bool:
    """Whether validation accuracy `source` beats `target` by more than `z` standard errors of
    the difference of two accuracies measured on `images` images each (binomial:
    sqrt((p_s (1 - p_s) + p_t (1 - p_t)) / n)). The members are scored on the same images, so
    their errors are correlated and this standard error is on the large side: a copy needs
    clear evidence."""
    standard_error = math.sqrt((source * (1 - source) + target * (1 - target)) / images)
    return source - target > z * standard_error


def significant_copies(
    pairs: Sequence[Copy], accuracies: Sequence[float], scores: Sequence[float],
    images: int,
) -> list[Copy]:
    """The pairs of `exploit_pairs` whose copy goes ahead under the significant selection:
    those whose source is better beyond noise (`beyond_noise`), and every diverged target
    (nan score)."""
    return [c for c in pairs if not math.isfinite(scores[c.target])
            or beyond_noise(accuracies[c.source], accuracies[c.target], images)]


# ---- the state machine ------------------------------------------------------------------


@dataclass
class SearchState:
    """Everything that decides the rest of a search besides the engine's members."""

    config: PBTConfig
    policies: list[Policy]
    rng: np.random.Generator
    lineage: Lineage
    epoch: int = 0  # epochs every member has completed
    round: int = 0  # rounds completed
    scores: list[float] = field(default_factory=list)  # of the last evaluation

    @classmethod
    def initial(cls, config: PBTConfig) -> SearchState:
        """All members start with the zero policy (no augmentation)."""
        return cls(
            config=config,
            policies=[Policy.zeros(config.ops)] * config.population,
            rng=np.random.default_rng(config.seed),
            lineage=Lineage(config.population, config.ops),
        )

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs

    def best(self) -> int:
        """The member with the best last score (the lowest index among equals)."""
        scores = np.asarray(self.scores, dtype=float)
        if not np.isfinite(scores).any():
            raise RunStopped(DIVERGED)
        return int(np.nanargmax(scores))


# Called with the state after a round and the round's events, to persist or display them.
OnRound = Callable[[SearchState, list[Event]], None]


class PBT:
    """Runs rounds of PBT over an engine's population, one `step()` per round. `watch` times
    each round's phases (and holds what the caller timed between rounds) for its `Round`."""

    def __init__(
        self, engine: Engine, state: SearchState, on_round: OnRound,
        watch: Stopwatch | None = None,
    ) -> None:
        self.engine = engine
        self.state = state
        self.on_round = on_round
        self.watch = watch or Stopwatch()

    def run(self) -> SearchState:
        while not self.state.finished:
            self.step()
        return self.state

    def step(self) -> list[Event]:
        """One round: train, evaluate, then (unless it was the last) exploit and explore;
        record the events. Returns them."""
        state, watch = self.state, self.watch
        started = time.perf_counter()
        start, end = state.epoch, min(state.epoch + state.config.interval, state.config.epochs)
        with watch.phase(TRAINING):
            events: list[Event] = list(self._train(start, end))
        with watch.phase(EVALUATION):
            events += self._evaluate(end, [e.loss for e in events])
        if end < state.config.epochs:
            with watch.phase(EXPLOIT_EXPLORE):
                pairs = exploit_pairs(state.scores, state.config.quantile, state.rng)
                copies = pairs
                if state.config.selection == "significant":
                    accuracies = [e.accuracy for e in events if isinstance(e, Evaluate)]
                    copies = significant_copies(pairs, accuracies, state.scores,
                                                len(self.engine.data.val))
                events += self._exploit(end, copies)
                events += self._explore(end, pairs, copies)
        events.append(self._summary(end, events, time.perf_counter() - started))
        state.epoch, state.round = end, state.round + 1
        for event in events:
            state.lineage.apply(event)
        self.on_round(state, events)
        return events

    def _train(self, start: int, end: int) -> list[Train]:
        stats = self.engine.train(self.state.policies, end - start)
        return [Train(self.state.round, m, (start, end), tuple(self.state.policies[m].to_list()),
                      s.loss, s.accuracy, s.images, s.seconds) for m, s in enumerate(stats)]

    def _evaluate(self, epoch: int, train_losses: list[float]) -> list[Evaluate]:
        evaluations = self.engine.evaluate()
        metric = self.state.config.metric
        self.state.scores = [
            score(e, loss, metric) for e, loss in zip(evaluations, train_losses, strict=True)
        ]
        return [Evaluate(self.state.round, m, epoch, e["accuracy"], e["loss"],
                         self.state.scores[m]) for m, e in enumerate(evaluations)]

    def _exploit(self, epoch: int, copies: list[Copy]) -> list[Exploit]:
        scores = self.state.scores
        for c in copies:
            self.engine.copy(c.source, c.target)
        return [Exploit(self.state.round, epoch, c.target, c.source, scores[c.target],
                        scores[c.source]) for c in copies]

    def _explore(self, epoch: int, pairs: list[Copy], copies: list[Copy]) -> list[Explore]:
        """Every target of `pairs` perturbs the policy it now holds: its source's where it
        copied it (`copies`), else its own."""
        policies = self.state.policies
        copied = set(copies)
        events = []
        for pair in pairs:
            source, target = pair
            old = policies[source] if pair in copied else policies[target]
            policies[target] = explore(old, self.state.rng)
            events.append(Explore(self.state.round, epoch, target, tuple(old.to_list()),
                                  tuple(policies[target].to_list())))
        return events

    def _summary(self, epoch: int, events: list[Event], seconds: float) -> Round:
        accuracies = [e.accuracy for e in events if isinstance(e, Evaluate)]
        best = self.state.best()
        return Round(self.state.round, epoch, best, accuracies[best],
                     float(np.median(accuracies)),
                     sum(e.images for e in events if isinstance(e, Train)), seconds, time.time(),
                     self.watch.lap())
