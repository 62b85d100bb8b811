"""Planned against actual wall time of `pba demo --budget`, per dataset and budget.

    python benchmarks/budget_fit.py --budgets 5m 15m 30m                  # CIFAR-10 (default)
    python benchmarks/budget_fit.py --dataset folder:runs/shapes --budgets 5m 15m

Runs `pba demo --dataset D --budget B --out OUT/NAME-B` for every budget, one after the other
(each alone on the machine: the plan measures its speed; what each prints, its plan first, goes
to OUT/NAME-B.log), then prints per run the budget, the
time the plan expected, the wall time of the command, its ratio to the budget (the issue asks
for 0.85-1.15), the regime the planner chose and the verdicts. A finished run is reported
again, not rerun; a killed one continues.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from pba.budget import parse_duration
from pba.core.formatting import duration


def run(dataset: str | None, budget: str, out: Path, extra: list[str]) -> float | None:
    """The command's wall time, or None when it had finished before."""
    if (out / "results.json").is_file() and not (out / ".lock").exists():
        doc = json.loads((out / "results.json").read_text())
        if all(len(a["seeds"]) >= 1 for a in doc["arms"].values()) and doc["arms"]:
            return None
    command = [sys.executable, "-m", "pba.cli.main", "demo", "--budget", budget, "--out",
               str(out), *(["--dataset", dataset] if dataset else []), *extra]
    print("$", " ".join(command), f"> {out}.log", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(f"{out}.log", "a") as log:  # what it prints (the plan first); bars go nowhere
        done = subprocess.run(command, stdout=log, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:  # a budget refused, for one: say why, go on with the others
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"
        print(f"  failed ({done.returncode}): {reason}", flush=True)
        return None
    return time.monotonic() - started


def row(out: Path, budget: str, wall: float | None) -> str:
    demo = json.loads((out / "demo.json").read_text())
    results = json.loads((out / "results.json").read_text())
    plan, regime = demo["plan"], demo["plan"]["regime"]
    wall = demo["wall_s"] if wall is None else wall
    final = demo["demo"]
    verdicts = ", ".join(f"vs {arm}: {v['outcome']} ({v['gain']:+.2f})"
                         for arm, v in results["verdicts"].items() if arm in
                         ("baseline", "trivialaugment", "none"))
    return (f"| {budget} | {duration(plan['expected_s'])} | {duration(wall)} | "
            f"{wall / parse_duration(budget):.2f} | {regime['population']} x {regime['model']}, "
            f"{regime['train_size']} img, {regime['epochs']} ep; {final['model']} "
            f"{final['epochs']} ep | {verdicts}; recommended {results['recommended']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", help="pba demo --dataset (default: its own, CIFAR-10)")
    parser.add_argument("--budgets", nargs="+", default=["5m", "15m", "30m"])
    parser.add_argument("--out", type=Path, default=Path("runs/budget_fit"))
    parser.add_argument("extra", nargs="*", help="more pba demo arguments, after --")
    args = parser.parse_args()
    name = "cifar10" if args.dataset is None else Path(args.dataset.split(":", 1)[-1]).name
    walls = {}
    for budget in args.budgets:
        out = args.out / f"{name}-{budget}"
        walls[budget] = run(args.dataset, budget, out, args.extra)
    print(f"\n{args.dataset or 'reduced_cifar10 (the demo default)'}")
    print("| budget | planned | actual | actual / budget | regime | verdicts |")
    print("| --- | --- | --- | --- | --- | --- |")
    for budget in args.budgets:
        out = args.out / f"{name}-{budget}"
        if (out / "results.json").is_file():
            print(row(out, budget, walls[budget]))
        else:
            print(f"| {budget} | - | - | - | refused or unfinished: see {out}.log | - |")


if __name__ == "__main__":
    main()
