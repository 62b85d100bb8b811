"""The Ray backend's records, read without Ray: where Tune's experiment lives in a run
directory, and the embedded engine's events rebuilt from the members' rows and Tune's PBT log.

`ray_backend` (the driver) and `ray_tune` (what runs inside Ray) both use this; neither imports
the other's module at import time.
"""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path

import numpy as np

from pba.core.errors import RunStopped
from pba.search.events import Evaluate, Event, Exploit, Explore, Round, Start, Train
from pba.search.pbt import DIVERGED, score
from pba.search.presets import SearchConfig

EXPERIMENT = "ray"  # DIR/ray: Tune's experiment
BACKEND_FILE = "backend.json"  # DIR/ray/backend.json
ROWS_FILE = "members.jsonl"  # DIR/ray/members.jsonl: every member's row of every epoch
# The trial-config key of a member's policy: the key the reference PBT policy logs use, so
# that Tune's pbt_policy_*.txt files parse as schedules (docs/algorithm.md §9).
POLICY_KEY = "hp_policy"


def member_index(trial_id: str) -> int:
    """The population index of a trial: Tune numbers the trials of one experiment
    `<experiment id>_00000`, `_00001`, ... in the order it creates them."""
    return int(trial_id.rsplit("_", 1)[1])


def is_ray_run(path: str | Path) -> bool:
    """Whether the run directory at `path` holds a search started with the Ray backend."""
    return (Path(path) / EXPERIMENT / BACKEND_FILE).is_file()


def population_events(
    config: SearchConfig, rows: list[dict], exploits: list[list]
) -> list[list[Event]]:
    """The embedded engine's events (`pba.search.pbt.PBT.step`), round by round, rebuilt from
    the members' rows (`ray_tune.train_member`'s reports, in the order they arrived) and Tune's
    PBT log lines [target tag, source tag, target epoch, source epoch, source config, explored
    config]."""
    # A trial restored from its last checkpoint may report an epoch again; the later row is
    # the one its weights went on from.
    row = {(r["member"], r["epoch"]): r for r in rows}
    rounds = []
    for number, start in enumerate(range(0, config.epochs, config.interval)):
        end = min(start + config.interval, config.epochs)
        try:
            trained = [[row[m, e] for e in range(start + 1, end + 1)]
                       for m in range(config.population)]
        except KeyError as missing:
            raise RunStopped(f"Tune reported no row for (member, epoch) {missing}: the Ray "
                             "experiment is incomplete") from None
        trains = [_train_event(number, start, end, epochs) for epochs in trained]
        scores = [score(_evaluation(epochs[-1]), e.loss, config.metric)
                  for epochs, e in zip(trained, trains, strict=True)]
        if not any(math.isfinite(s) for s in scores):
            raise RunStopped(DIVERGED)
        events: list[Event] = list(trains)
        events += [Evaluate(number, m, end, epochs[-1]["val_accuracy"], epochs[-1]["val_loss"],
                            scores[m]) for m, epochs in enumerate(trained)]
        pairs = sorted(((_tag_member(line[0]), _tag_member(line[1]), line)
                        for line in exploits if line[3] == end), key=lambda p: p[0])
        events += [Exploit(number, end, target, source, scores[target], scores[source])
                   for target, source, _ in pairs]
        events += [Explore(number, end, target, tuple(line[4][POLICY_KEY]),
                           tuple(line[5][POLICY_KEY])) for target, _, line in pairs]
        best = int(np.nanargmax(scores))
        accuracies = [_evaluation(epochs[-1])["accuracy"] for epochs in trained]
        began = min(epochs[0]["finished_at"] - epochs[0]["time_s"] for epochs in trained)
        finished = max(epochs[-1]["finished_at"] for epochs in trained)
        events.append(Round(number, end, best, accuracies[best], float(np.median(accuracies)),
                            sum(e.images for e in trains), finished - began, finished))
        rounds.append(events)
    return rounds


def _train_event(number: int, start: int, end: int, epochs: list[dict]) -> Train:
    return Train(number, epochs[0]["member"], (start, end), tuple(epochs[0]["policy"]),
                 # A mean, as the embedded engine's: one diverged epoch makes the loss nan.
                 float(np.mean([r["train_loss"] for r in epochs])),
                 float(np.mean([r["train_acc"] for r in epochs])),
                 int(sum(r["images"] for r in epochs)), float(sum(r["time_s"] for r in epochs)))


def _evaluation(row: dict) -> dict[str, float]:
    return {"accuracy": row["val_accuracy"], "loss": row["val_loss"]}


def _tag_member(tag: str) -> int:
    # Tune tags a trial with its index, then appends "@perturbed[...]" after each exploit.
    match = re.match(r"\d+", tag)
    if match is None:
        raise RuntimeError(f"unexpected trial tag {tag!r} in Tune's PBT log")
    return int(match.group())


def read_log(path: Path) -> list:
    """The JSON lines of one of the experiment's logs; a line cut short by a crash is the last
    one, and is dropped."""
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            break
    return lines


def in_time_order(starts: list[Start], rounds: list[list[Event]]) -> list[Event]:
    """The start events of every process that ran the search, each before the first round
    that finished after it (so that `pba report` counts each process's own time)."""
    events: list[Event] = []
    pending = list(starts)
    for block in rounds:
        while pending and pending[0].time <= block[-1].time:
            events.append(pending.pop(0))
        events += block
    return events + pending


def checkpoint_bytes(experiment: Path) -> int:
    """Bytes of every member checkpoint Tune keeps in a search's DIR/ray now."""
    total = 0
    for directory in Path(experiment).glob("*/checkpoint_*"):
        for path in directory.rglob("*"):
            try:
                total += path.stat().st_size if path.is_file() else 0
            except FileNotFoundError:  # Tune deleted it meanwhile
                pass
    return total


class PeakCheckpointBytes:
    """The most checkpoint bytes `experiment` held while the block ran, sampled every
    `every` seconds on a thread (`.peak`)."""

    def __init__(self, experiment: Path, every: float = 0.05) -> None:
        self.experiment, self.every, self.peak = Path(experiment), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, checkpoint_bytes(self.experiment))

    def __enter__(self) -> PeakCheckpointBytes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
