"""A demo directory (laid out as `pba.demo` says) and its record, demo.json: what the demo runs,
the published schedule, the first seed of every set of final models, the processes' wall time
and where it went (`pba.core.timing`), the budget's plan and the final models' refit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pba.budget import Plan
from pba.core.directory import RunDirectory
from pba.core.errors import PBAError, UserError
from pba.core.lock import LOCK
from pba.core.timing import TimeBreakdown
from pba.demo.config import DEFAULT_FIRST_SEED, DemoConfig

DEMO_FILE = "demo.json"
DEMO_SEARCH = "search"
FINAL = "final"
RESULTS = "results.json"


class DemoDir(RunDirectory):
    kind = "demo"

    def resume_hint(self) -> str:
        return f"the same `pba demo --out {self.path}` command"

    def kept(self) -> str:
        return "the search and the final models finished before it are kept"


def is_demo_dir(path: str | Path) -> bool:
    return (Path(path) / DEMO_FILE).is_file()


def open_demo(
    demo: DemoConfig, out: Path, reference: str | Path | None, first_seed: int | None,
    plan: Plan | None = None, given: Sequence[str] = (),
) -> tuple[DemoConfig, Path | None, list[int]]:
    """The demo in `out`, its published schedule and the first seed of each set of final
    models: those it started with (plus `first_seed` and `reference` when they are new), or
    `demo` and `reference` for a new directory (recorded with its `plan` and the names of the
    values the user `given`)."""
    check_demo_dir(out)
    path = out / DEMO_FILE
    if reference is not None:
        reference = Path(reference).resolve()
        if not reference.is_file():
            raise UserError(f"no published schedule at {reference}")
    if path.is_file():
        doc = read_demo_file(out)
        stored = DemoConfig.from_dict(doc["demo"])
        first_seeds = doc["first_seeds"]
        if first_seed is not None and first_seed not in first_seeds:
            first_seeds = [*first_seeds, first_seed]
        if reference is not None and doc["reference"] not in (None, str(reference)):
            raise UserError(f"{out} compares with the published schedule {doc['reference']}; "
                           f"it cannot take {reference} as well")
        reference = reference if doc["reference"] is None else Path(doc["reference"])
        write_demo_file(out, doc | {"first_seeds": first_seeds, "reference": None if
                                    reference is None else str(reference)})
        return stored, reference, first_seeds
    first_seeds = [DEFAULT_FIRST_SEED if first_seed is None else first_seed]
    write_demo_file(out, {"demo": demo.to_dict(), "reference": None if reference is None
                          else str(reference), "first_seeds": first_seeds, "wall_s": 0.0,
                          "plan": None if plan is None else plan.to_dict(),
                          "given": list(given)})
    return demo, reference, first_seeds


def read_demo_file(out: Path) -> dict:
    """demo.json, with the first seeds of a demo written before --first-seed."""
    path = out / DEMO_FILE
    try:
        doc = json.loads(path.read_text())
        DemoConfig.from_dict(doc["demo"])
        doc.setdefault("first_seeds", [doc["demo"].get("first_seed", DEFAULT_FIRST_SEED)])
        if "reference" not in doc:
            raise KeyError("reference")
    except (ValueError, KeyError, TypeError, AttributeError, PBAError):
        raise UserError(f"{path} is not a pba demo record (changed by hand?)") from None
    return doc


def write_demo_file(out: Path, doc: dict) -> None:
    DemoDir(out).write_json(DEMO_FILE, doc)


def add_wall_time(out: Path, seconds: float, breakdown: TimeBreakdown) -> None:
    """Count a demo process's wall time, and where it went, in demo.json (the report's time
    is their sum)."""
    doc = read_demo_file(out)
    time = TimeBreakdown.from_dict(doc.get("time")) + breakdown
    write_demo_file(out, doc | {"wall_s": doc.get("wall_s", 0.0) + seconds,
                                "time": time.to_dict()})


def check_demo_dir(out: Path) -> None:
    """`out` must be a demo directory, or new (empty, or holding only a lock)."""
    if (out / DEMO_FILE).is_file() or not out.exists():
        return
    if not out.is_dir() or any(p.name != LOCK for p in out.iterdir()):
        raise UserError(f"{out} exists and holds no demo; choose another --out")
