"""`pba plot`: draw a schedule's probabilities and magnitudes over epochs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    from pba.cli.options import add_schedule_arguments

    p = sub.add_parser(
        "plot",
        help="plot a schedule: probability and magnitude of each op over epochs",
        description="Draw a schedule as the paper's figures do: stacked areas of each op's "
        "probability (summed over its two slots) and magnitude (mean of the slots) per epoch.",
    )
    p.add_argument("schedule", type=Path, help="pba JSON schedule or a PBT policy log")
    add_schedule_arguments(p, log_length="e.g. 200 for the published reduced CIFAR-10 log")
    p.add_argument("--title", default=None, help="figure title")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    return p


def run(args: argparse.Namespace) -> int:
    from pba.augmentation.schedule import load_schedule
    from pba.ops import load_op_set
    from pba.reporting.plot import plot_schedule

    schedule = load_schedule(args.schedule, args.schedule_epochs, load_op_set(args.ops))
    plot_schedule(schedule, args.out, args.title or f"{args.schedule.name}")
    print(f"wrote {args.out} ({len(schedule)} epochs)")
    return 0
