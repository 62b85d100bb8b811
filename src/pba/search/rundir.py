"""A search's run directory: the unit of persistence, and all that `--resume` reads.

    DIR/config.json              what was searched (SearchConfig) and how (preset, device, ...)
    DIR/population.jsonl         one JSON event per line: train, evaluate, exploit, explore,
                                 round (one per round), start (one per process)
    DIR/state.json               the commit record of the last complete round (see below)
    DIR/checkpoints/round-NNNN/member-MM.pt   every member after round NNNN (exploit included)
    DIR/checkpoints/round-NNNN/round.json     that round's commit record
    DIR/schedule.json, schedule_pbt_log.txt, schedule.png, population.png, summary.md
                                 written at the end
    DIR/.lock                    held by the process that writes DIR (`pba.core.lock`)

A round is committed in this order: its checkpoints (each written atomically) into a fresh
round directory, its events appended to population.jsonl, then its commit record (which names
the round directory and the length of the log that belongs to it) into the round directory and
into state.json, each atomically; round directories older than the newest two are removed last.
A search killed at any point, or failing to write (a full disk), therefore resumes from the last
record: the log is cut back to the recorded length and later checkpoints are dropped. When the
newest round cannot be read back (a damaged checkpoint, state.json deleted), it resumes from the
round before, from that round's own record.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pba.augmentation.policy import Policy
from pba.augmentation.schedule import Schedule
from pba.core.directory import CONFIG, RunDirectory
from pba.core.errors import PBAError, UserError
from pba.core.lock import LOCK
from pba.search.events import Event, Round, from_json, to_json
from pba.search.lineage import Lineage
from pba.search.pbt import Engine, PBTConfig, SearchState
from pba.search.presets import SearchConfig

FORMAT = "pba.search"
STATE_FORMAT = "pba.search.state"
VERSION = 1
LOG = "population.jsonl"
STATE = "state.json"
CHECKPOINTS = "checkpoints"
SCHEDULE = "schedule.json"
PBT_LOG = "schedule_pbt_log.txt"
PLOT = "schedule.png"
POPULATION_PLOT = "population.png"
SUMMARY = "summary.md"
ROUND_RECORD = "round.json"  # in each round directory: its commit record
KEEP_ROUNDS = 2  # complete rounds kept, so that a damaged newest one costs one round


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    schedule: Schedule  # the best final member's, one policy per search epoch
    best_member: int
    best_accuracy: float  # its validation accuracy at the end


class SearchDir(RunDirectory):
    kind = "search run"
    format = FORMAT
    version = VERSION

    def resume_hint(self) -> str:
        return f"pba search --resume {self.path}"

    def kept(self) -> str:
        return "the rounds before it are kept"

    def is_finished(self) -> bool:
        return (self.path / STATE).is_file() and self._read_state()["finished"]

    # ---- creating and opening ----------------------------------------------------------

    @staticmethod
    def check_new(path: str | Path) -> None:
        """Fail early when `path` cannot hold a new search (its lock file aside)."""
        path = Path(path)
        if path.exists() and (not path.is_dir()
                              or any(p.name != LOCK for p in path.iterdir())):
            what = "search run" if (path / CONFIG).is_file() else "non-empty path"
            raise UserError(f"{path} already exists ({what}): continue it with --resume {path}, "
                           "or choose another --out")

    @staticmethod
    @contextmanager
    def discarded_on_failure(
        path: str | Path, progress: tuple[str, ...] = (STATE,)
    ) -> Iterator[None]:
        """For a new run directory: when the block fails before any of the files `progress`
        (relative paths; by default the first committed round's state.json) exists, as with
        missing data, a bad Ray address or Ctrl+C in round 1, remove what it wrote, so that the
        same command can run again; nothing of value is lost."""
        path = Path(path)
        try:
            yield
        except BaseException:
            if path.is_dir() and not any((path / p).is_file() for p in progress):
                for child in path.iterdir():
                    if child.name != LOCK:
                        shutil.rmtree(child) if child.is_dir() else child.unlink()
            raise

    @classmethod
    def create(cls, path: str | Path, config: dict) -> SearchDir:
        """A new run directory holding `config` (a JSON-able dict)."""
        cls.check_new(path)
        run = cls(path)
        run.write_config(config)
        return run

    @classmethod
    def open(cls, path: str | Path) -> SearchDir:
        """An existing run directory, checked to be one of ours."""
        run = cls(path)
        if not run.path.is_dir():
            raise UserError(f"no search run at {run.path}")
        run.read_config()
        return run

    @classmethod
    def open_unfinished(cls, path: str | Path) -> SearchDir:
        """An existing run directory whose search has not finished, to resume it."""
        run = cls.open(path)
        if run.is_finished():
            raise UserError(f"the search in {run.path} already finished (its schedule is "
                           f"{run.path / SCHEDULE}); there is nothing to resume")
        return run

    def config(self) -> dict:
        return json.loads((self.path / CONFIG).read_text())

    # ---- the event log ------------------------------------------------------------------

    def append(self, events: list[Event]) -> None:
        """Append events to population.jsonl and flush them to disk."""
        with (self.path / LOG).open("a") as f:
            f.writelines(json.dumps(_json_safe(to_json(e))) + "\n" for e in events)
            f.flush()
            os.fsync(f.fileno())

    def events(self) -> Iterator[Event]:
        path = self.path / LOG
        if not path.is_file():
            return
        with path.open() as f:
            for number, line in enumerate(f, start=1):
                try:
                    yield from_json(json.loads(line))
                except (ValueError, PBAError):
                    raise UserError(f"{path}:{number} is not a JSON event (the file was changed "
                                   "by hand?)") from None

    def last_round(self) -> Round | None:
        """The summary of the last round in the log."""
        rounds = [e for e in self.events() if isinstance(e, Round)]
        return rounds[-1] if rounds else None

    def _log_bytes(self) -> int:
        path = self.path / LOG
        return path.stat().st_size if path.is_file() else 0

    # ---- committing and resuming rounds -------------------------------------------------

    def commit(self, state: SearchState, events: list[Event], engine: Engine) -> None:
        """Persist a completed round: checkpoints, events, then the commit records (the
        round's own, then state.json); the two newest complete rounds are kept."""
        name = f"round-{state.round:04d}"
        with self.writing(f"round {state.round}"):  # the last complete round stays intact
            for member in range(state.config.population):
                engine.save(member, self._checkpoint(name, member),
                            {"member": member, "round": state.round, "epoch": state.epoch})
            self.append(events)
            self._write_state(state, name, finished=False)
        self._prune_checkpoints(keep=self._round_names()[-KEEP_ROUNDS:])

    def save_schedule(self, state: SearchState, schedule: Schedule, best: int) -> Schedule:
        """schedule.json (with the baseline and image size it was searched with) and the PBT
        policy log of the best member `best`; the schedule as saved."""
        doc = self.config()
        baseline = SearchConfig.from_dict(doc["search"]).settled_baseline()
        schedule = dataclasses.replace(schedule, baseline=str(baseline),
                                       cutout_size=baseline.cutout_size,
                                       image_size=doc["images"].get("size"))
        with self.writing(SCHEDULE):
            schedule.save(self.path / SCHEDULE)
        self.write_text(PBT_LOG, state.lineage.pbt_log(best))
        return schedule

    def mark_finished(self, state: SearchState) -> None:
        self._write_state(state, self._read_state()["checkpoints"], finished=True)

    def restore(self, config: PBTConfig, engine: Engine) -> SearchState:
        """The state of the last committed round whose checkpoints all load, with the engine's
        members loaded; a fresh state when no round was committed. Uncommitted events and
        checkpoints are dropped. When the newest round cannot be read (a damaged checkpoint, a
        missing state.json) the search goes back to the round before, and says so."""
        records, problems = self._records()
        if not records and not problems:
            self._truncate_log(0)
            self._prune_checkpoints(keep=[])
            return SearchState.initial(config)
        newest = max((d["epoch"] for d in records), default=0)
        for doc in records:
            try:
                for member in range(config.population):
                    engine.load(member, self._checkpoint(doc["checkpoints"], member))
            except PBAError as err:
                problems.append(str(err))
                continue
            if problems:
                lost = newest - doc["epoch"]
                print(f"pba search: {'; '.join(problems)}. Resuming from round {doc['round']} "
                      f"(epoch {doc['epoch']}): {lost} epoch(s) will be trained again.",
                      file=sys.stderr)
            break
        else:
            raise UserError(f"{self.path}: no complete round can be read ({'; '.join(problems)})"
                           "; start the search again with another --out")
        self._truncate_log(doc["log_bytes"])
        names = self._round_names()
        self._prune_checkpoints(keep=names[:names.index(doc["checkpoints"]) + 1][-KEEP_ROUNDS:])
        self.write_text(STATE, json.dumps(doc) + "\n")
        bit_generator = np.random.PCG64()  # what default_rng(seed) made; its state follows
        bit_generator.state = doc["rng"]
        return SearchState(
            config=config,
            policies=[Policy(tuple(p), config.ops) for p in doc["policies"]],
            rng=np.random.Generator(bit_generator),
            lineage=Lineage.replay(config.population, self.events(), config.ops),
            epoch=doc["epoch"],
            round=doc["round"],
            scores=[math.nan if s is None else s for s in doc["scores"]],
        )

    def _records(self) -> tuple[list[dict], list[str]]:
        """The commit records of the complete rounds, newest first (state.json's, then each
        round directory's own), and what was wrong with the ones that cannot be read."""
        problems, found = [], {}
        try:
            doc = self._read_state()
            found[doc["checkpoints"]] = doc
        except PBAError as err:
            if (self.path / STATE).exists():
                problems.append(str(err))
            elif self._round_names():
                problems.append(f"{self.path / STATE} is missing")
        for name in self._round_names():
            path = self.path / CHECKPOINTS / name / ROUND_RECORD
            doc = _read_record(path)
            if doc is not None:
                found.setdefault(name, doc)
        return sorted(found.values(), key=lambda d: d["round"], reverse=True), problems

    def _round_names(self) -> list[str]:
        """The round directories, oldest first."""
        folder = self.path / CHECKPOINTS
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def _prune_checkpoints(self, keep: list[str]) -> None:
        """Remove every round directory not in `keep`: older rounds, or uncommitted ones."""
        for name in self._round_names():
            if name not in keep:
                shutil.rmtree(self.path / CHECKPOINTS / name)

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
        text = json.dumps(_json_safe(doc)) + "\n"
        # The round's own copy marks it complete, so that it can be resumed from without
        # state.json (which only ever names the newest).
        self.write_text(f"{CHECKPOINTS}/{checkpoints}/{ROUND_RECORD}", text)
        self.write_text(STATE, text)

    def _read_state(self) -> dict:
        path = self.path / STATE
        doc = _read_record(path) if path.is_file() else None
        if doc is None:
            raise UserError(f"{path} is not a pba search state (changed by hand?)")
        return doc

    def _truncate_log(self, size: int) -> None:
        path = self.path / LOG
        if path.is_file():
            os.truncate(path, size)


def _read_record(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == STATE_FORMAT else None


def _json_safe(value: object) -> object:
    """nan and inf (a diverged member's loss) become null: strict JSON, readable anywhere."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
