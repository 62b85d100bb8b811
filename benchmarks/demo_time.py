"""Where `pba demo --budget` spends its wall time, before and after a change.

    python benchmarks/demo_time.py runs/demo runs/demo-1core         # finished demos
    python benchmarks/demo_time.py --run --budget 5m --before 3eeb726 --pin 0 --out /tmp/dt

A demo of this version records its breakdown (demo.json's "time", `pba.core.timing`): every phase
is printed. A demo of a version from before it has only its logs: the wall time, the search's
training (the members' training seconds over the members trained at once) and the final
models' (their training seconds over the models trained at once); the rest is not broken
down. With --run, the demo of --before (a git revision, run from a worktree with this
environment) and of this checkout take turns, --repeats times, each pinned to the CPUs --pin
names, and each is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from pba.core.timing import PHASES, TRAINING, TimeBreakdown

ROOT = Path(__file__).resolve().parent.parent


def breakdown(demo: Path) -> TimeBreakdown:
    """The demo's recorded breakdown, or for an older demo what its logs give."""
    doc = json.loads((demo / "demo.json").read_text())
    if doc.get("time"):
        return TimeBreakdown.from_dict(doc["time"])
    events = [json.loads(line) for line in (demo / "search" / "population.jsonl").open()]
    start = next(e for e in events if e["event"] == "start")
    at_once = re.search(r"(\d+) members at once", start["device"])
    members = int(at_once.group(1)) if at_once else 1
    search = sum(e["seconds"] for e in events if e["event"] == "train") / members
    results = [json.loads(p.read_text()) for p in (demo / "final").glob("*/result.json")]
    finals = sum(r["train_time_s"] for r in results) / min(members, max(len(results), 1))
    return TimeBreakdown(doc["wall_s"], {TRAINING: search + finals})


def row(name: str, time: TimeBreakdown) -> str:
    cells = [f"{time.share(p):.1%}" if p in time.phases else "-" for p in PHASES]
    other = time.other_s / time.wall_s
    return f"| {name} | {time.wall_s:.0f} | " + " | ".join(cells) + f" | {other:.1%} |"


def table(demos: list[tuple[str, Path]]) -> None:
    print("| demo | wall s | " + " | ".join(PHASES) + " | other |")
    print("|" + " --- |" * (len(PHASES) + 3))
    for name, demo in demos:
        print(row(name, breakdown(demo)), flush=True)


def run_demo(checkout: Path, out: Path, budget: str, pin: str | None) -> None:
    env = os.environ | {"PYTHONPATH": str(checkout / "src")}
    command = [sys.executable, "-m", "pba.cli.main", "demo", "--budget", budget,
               "--out", str(out)]
    if pin:
        command = ["taskset", "-c", pin, *command]
    with (out.parent / f"{out.name}.log").open("w") as log:
        subprocess.run(command, cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT,
                       check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demos", nargs="*", type=Path, help="finished demo directories")
    parser.add_argument("--run", action="store_true", help="run the demos first")
    parser.add_argument("--budget", default="15m")
    parser.add_argument("--before", help="a git revision to compare with")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--pin", help="CPUs for taskset, e.g. 0")
    parser.add_argument("--out", type=Path, default=Path("/tmp/demo_time"))
    args = parser.parse_args()
    demos = [(str(d), d) for d in args.demos]
    if args.run:
        checkouts = {"after": ROOT}
        if args.before:
            worktree = args.out / "before-src"
            if not worktree.exists():
                subprocess.run(["git", "worktree", "add", "--detach", str(worktree),
                                args.before], cwd=ROOT, check=True)
            checkouts = {"before": worktree, "after": ROOT}
        args.out.mkdir(parents=True, exist_ok=True)
        for k in range(args.repeats):
            for name, checkout in checkouts.items():
                out = args.out / f"{name}-{k}"
                run_demo(checkout, out, args.budget, args.pin)
                demos.append((f"{name} {k}", out))
    table(demos)


if __name__ == "__main__":
    main()
