"""`pba report`: a search's cost and the test errors of the models trained with its schedule."""

from __future__ import annotations

import argparse
from pathlib import Path

from pba.core.errors import UserError


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="a search's cost, and its final models' test errors beside baselines",
        description="Print what a `pba search` run directory cost (wall time, device, "
        "member-epochs) and found, then a table of test errors of `pba train` runs: those "
        "under DIR/final/ and those named after DIR (run directories or folders of them). Runs "
        "that used DIR's schedule are marked 'pba (this search)'; baselines and other "
        "schedules of the same dataset and model stand beside them, with the verdicts and the "
        "augmentation to train with. For a `pba demo` directory: its recommendation, verdicts "
        "and table (written again to DIR/results.json and DIR/summary.md), then its search.",
    )
    p.add_argument("run_dir", type=Path, metavar="DIR",
                   help="a pba search run directory or a pba demo directory")
    p.add_argument("train_runs", type=Path, nargs="*", metavar="TRAIN_RUN",
                   help="pba train run directories (or folders of them) to include")
    return p


def run(args: argparse.Namespace) -> int:
    from pba.demo import demo_report, is_demo_dir
    from pba.reporting.report import report

    if is_demo_dir(args.run_dir):
        if args.train_runs:
            raise UserError("a pba demo directory reports its own final models: name no "
                           "TRAIN_RUN after it")
        print(demo_report(args.run_dir), end="")
    else:
        print(report(args.run_dir, args.train_runs), end="")
    return 0
