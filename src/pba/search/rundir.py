"""A search's run directory: the unit of persistence, and all that `--resume` reads.

    DIR/config.json              what was searched (SearchConfig) and how (preset, device, ...)
    DIR/population.jsonl         one JSON event per line: train, evaluate, exploit, explore,
                                 round (one per round), start (one per process)
    DIR/state.json               the commit record of the last complete round (see below)
    DIR/checkpoints/round-NNNN/member-MM.pt   every member after round NNNN (exploit included)
    DIR/schedule.json, schedule_pbt_log.txt, schedule.png, population.png, summary.md
                                 written at the end

A round is committed in this order: its checkpoints (each written atomically) into a fresh
round directory, its events appended to population.jsonl, then state.json (atomically), which
names that round directory and the length of the log that belongs to it; older round
directories are removed last. A search killed at any point therefore resumes from the last
state.json: the log is cut back to the recorded length and later checkpoints are dropped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pba.atomic import write_text_atomic
from pba.errors import PBAError
from pba.policy import Policy
from pba.search.lineage import Lineage
from pba.search.pbt import Engine, PBTConfig, SearchState

FORMAT = "pba.search"
STATE_FORMAT = "pba.search.state"
VERSION = 1
CONFIG = "config.json"
LOG = "population.jsonl"
STATE = "state.json"
CHECKPOINTS = "checkpoints"
SCHEDULE = "schedule.json"
PBT_LOG = "schedule_pbt_log.txt"
PLOT = "schedule.png"
POPULATION_PLOT = "population.png"
SUMMARY = "summary.md"


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ---- creating and opening ----------------------------------------------------------

    @staticmethod
    def check_new(path: str | Path) -> None:
        """Fail early when `path` cannot hold a new search."""
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            what = "search run" if (path / CONFIG).is_file() else "non-empty path"
            raise PBAError(f"{path} already exists ({what}): continue it with --resume {path}, "
                           "or choose another --out")

    @classmethod
    def create(cls, path: str | Path, config: dict) -> RunDir:
        """A new run directory holding `config` (a JSON-able dict)."""
        cls.check_new(path)
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, "version": VERSION, **config}
        write_text_atomic(run.path / CONFIG, json.dumps(doc, indent=2) + "\n")
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory, checked to be one of ours."""
        run = cls(path)
        if not run.path.is_dir():
            raise PBAError(f"no search run at {run.path}")
        try:
            doc = json.loads((run.path / CONFIG).read_text())
        except (OSError, ValueError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PBAError(f"{run.path} is not a pba search run directory (no {CONFIG} written "
                           "by pba search)")
        if doc.get("version") != VERSION:
            raise PBAError(f"{run.path} was written by a pba search of format version "
                           f"{doc.get('version')!r}; this pba reads version {VERSION}")
        return run

    @classmethod
    def open_unfinished(cls, path: str | Path) -> RunDir:
        """An existing run directory whose search has not finished, to resume it."""
        run = cls.open(path)
        if (run.path / STATE).is_file() and run._read_state()["finished"]:
            raise PBAError(f"the search in {run.path} already finished (its schedule is "
                           f"{run.path / SCHEDULE}); there is nothing to resume")
        return run

    def config(self) -> dict:
        return json.loads((self.path / CONFIG).read_text())

    # ---- the event log ------------------------------------------------------------------

    def append(self, events: list[dict]) -> None:
        """Append events to population.jsonl and flush them to disk."""
        with (self.path / LOG).open("a") as f:
            f.writelines(json.dumps(_json_safe(e)) + "\n" for e in events)
            f.flush()
            os.fsync(f.fileno())

    def events(self) -> Iterator[dict]:
        path = self.path / LOG
        if not path.is_file():
            return
        with path.open() as f:
            for number, line in enumerate(f, start=1):
                try:
                    yield json.loads(line)
                except ValueError:
                    raise PBAError(f"{path}:{number} is not a JSON event (the file was changed "
                                   "by hand?)") from None

    def _log_bytes(self) -> int:
        path = self.path / LOG
        return path.stat().st_size if path.is_file() else 0

    # ---- committing and resuming rounds -------------------------------------------------

    def commit(self, state: SearchState, events: list[dict], engine: Engine) -> None:
        """Persist a completed round: checkpoints, events, then the commit record."""
        name = f"round-{state.round:04d}"
        for member in range(state.config.population):
            engine.save(member, self._checkpoint(name, member),
                        {"member": member, "round": state.round, "epoch": state.epoch})
        self.append(events)
        self._write_state(state, name, finished=False)
        self._prune_checkpoints(keep=name)

    def mark_finished(self, state: SearchState) -> None:
        self._write_state(state, self._read_state()["checkpoints"], finished=True)

    def restore(self, config: PBTConfig, engine: Engine) -> SearchState:
        """The state of the last committed round, with the engine's members loaded; a fresh
        state when no round was committed. Uncommitted events and checkpoints are dropped."""
        if not (self.path / STATE).is_file():
            self._truncate_log(0)
            self._prune_checkpoints(keep=None)
            return SearchState.initial(config)
        doc = self._read_state()
        self._truncate_log(doc["log_bytes"])
        self._prune_checkpoints(keep=doc["checkpoints"])
        for member in range(config.population):
            engine.load(member, self._checkpoint(doc["checkpoints"], member))
        bit_generator = np.random.PCG64()  # what default_rng(seed) made; its state follows
        bit_generator.state = doc["rng"]
        return SearchState(
            config=config,
            policies=[Policy(tuple(p)) for p in doc["policies"]],
            rng=np.random.Generator(bit_generator),
            lineage=Lineage.replay(config.population, self.events()),
            epoch=doc["epoch"],
            round=doc["round"],
            scores=[math.nan if s is None else s for s in doc["scores"]],
        )

    def _prune_checkpoints(self, keep: str | None) -> None:
        """Remove every round directory but `keep`: older rounds, or an uncommitted one."""
        folder = self.path / CHECKPOINTS
        for round_dir in folder.iterdir() if folder.is_dir() else ():
            if round_dir.name != keep:
                shutil.rmtree(round_dir)

    def _checkpoint(self, round_name: str, member: int) -> Path:
        return self.path / CHECKPOINTS / round_name / f"member-{member:02d}.pt"

    def _write_state(self, state: SearchState, checkpoints: str, *, finished: bool) -> None:
        doc = {
            "format": STATE_FORMAT,
            "round": state.round,
            "epoch": state.epoch,
            "policies": [p.to_list() for p in state.policies],
            "scores": state.scores,
            "rng": state.rng.bit_generator.state,
            "checkpoints": checkpoints,
            "log_bytes": self._log_bytes(),
            "finished": finished,
        }
        write_text_atomic(self.path / STATE, json.dumps(_json_safe(doc)) + "\n")

    def _read_state(self) -> dict:
        path = self.path / STATE
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise PBAError(f"{path} is not a pba search state (changed by hand?)")
        return doc

    def _truncate_log(self, size: int) -> None:
        path = self.path / LOG
        if path.is_file():
            os.truncate(path, size)


def _json_safe(value: object) -> object:
    """nan and inf (a diverged member's loss) become null: strict JSON, readable anywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
