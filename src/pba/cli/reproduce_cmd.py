"""`pba reproduce`: the paper's reduced CIFAR-10 table, `prepare` here and `run` on a GPU
machine; the pipeline is `pba.reproduce`'s."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# Beside the repository, where this project keeps its data and the published schedules.
SHARED = Path("../shared")


def add_parser(sub) -> argparse.ArgumentParser:
    from pba.cli.options import add_device_argument
    from pba.reproduce import DATA_FILE, INCOMPLETE, REFERENCE_FILE, STAGES, STATE_FILE, VAL_SIZE

    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper's reduced CIFAR-10 table (a search, then 5 WRN-28-10s; GPU)",
        description="The paper's reduced CIFAR-10 table in two steps. `prepare`, where the "
        f"data is, writes the data ({DATA_FILE}) and the published schedule ({REFERENCE_FILE}) "
        "into one folder to carry to a GPU machine. `run`, there, runs the stages in order: "
        f"{', '.join(STAGES)} (a PBA search with the paper-rcifar10 preset, then WRN-28-10 "
        "for 200 epochs with this search's schedule, the published one, the baseline, "
        "AutoAugment and RandAugment), each in its own process, and writes results.md and "
        "results.json beside the paper's figures. Every stage resumes; with --budget-s the "
        f"run stops at a resume point in time and exits with {INCOMPLETE}: run the same "
        f"command again to continue. --export writes {STATE_FILE} (the run without its "
        "checkpoints): carried in the folder, it continues the run on a fresh machine.",
        epilog="example: pba reproduce prepare --out carry/, then on the GPU machine: pba "
        'reproduce run --carry carry/ --out runs/rcifar10 --budget-s 540 --export "$OUT"',
    )
    steps = p.add_subparsers(dest="step", required=True, metavar="STEP")

    prepare = steps.add_parser(
        "prepare",
        help="write the data file and the published schedule into the folder to carry",
        description=f"Write {DATA_FILE} (reduced CIFAR-10: the paper's 4,000 training images "
        "and statistics, the search's validation images, the test set) and a copy of the "
        f"published schedule {REFERENCE_FILE} into --out.",
        epilog="example: pba reproduce prepare --out /tmp/carry-dry --val-size 512 "
        "--test-size 500   (a small folder for --dry-run)",
    )
    prepare.add_argument("--out", type=Path, required=True, metavar="DIR",
                         help="the folder to carry (e.g. carry/)")
    prepare.add_argument("--data-dir", type=Path,
                         default=Path(os.environ.get("PBA_DATA_DIR") or SHARED / "data"),
                         help="holds cifar-10-batches-py/ (default: $PBA_DATA_DIR, else "
                         f"{SHARED / 'data'})")
    prepare.add_argument("--reference", type=Path, default=SHARED / "reference" / REFERENCE_FILE,
                         help="the published schedule, a PBT policy log (default: "
                         f"{SHARED / 'reference' / REFERENCE_FILE})")
    prepare.add_argument("--val-size", type=int, default=VAL_SIZE,
                         help=f"validation images for the search (default {VAL_SIZE}, to fit "
                         "the 64 MiB carry limit)")
    prepare.add_argument("--test-size", type=int, metavar="N",
                         help="keep only the first N test images (default: all 10,000; for "
                         "dry runs)")

    run = steps.add_parser(
        "run",
        help="run (or continue) the pipeline and write the results table",
        description="Run the stages that have not finished, each in a child process, and "
        "write results.md and results.json into --out. A finished stage is skipped, an "
        "unfinished one resumes. Exit status 0: complete; "
        f"{INCOMPLETE}: stopped for --budget-s, run the same command again.",
        epilog="example: pba reproduce run --carry carry/ --out runs/rcifar10 --budget-s 540 "
        '--export "$OUT"',
    )
    run.add_argument("--carry", type=Path, required=True, metavar="DIR",
                     help=f"the prepared folder: {DATA_FILE}, {REFERENCE_FILE}, and "
                     f"{STATE_FILE} when continuing on another machine")
    run.add_argument("--out", type=Path, required=True, metavar="DIR",
                     help="the run's folder (kept across runs)")
    run.add_argument("--budget-s", type=float, metavar="S",
                     help="stop at a resume point before S seconds have passed")
    run.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), metavar="STAGE",
                     help=f"the stages to run, of {', '.join(STAGES)}; they run in this order "
                     "(default: all)")
    add_device_argument(run)
    run.add_argument("--dry-run", action="store_true",
                     help="CPU-sized: 4 x wrn_10_1 for 4 epochs on 512 images, final models "
                     "wrn_10_1 for 2 epochs")
    run.add_argument("--export", type=Path, metavar="DIR",
                     help=f"write {STATE_FILE} (--out without checkpoints) and the results here")
    return p


def run(args: argparse.Namespace) -> int:
    from pba import reproduce

    if args.step == "prepare":
        reproduce.prepare(args.out, args.reference, data_dir=args.data_dir,
                          val_size=args.val_size, test_size=args.test_size)
        return 0
    complete = reproduce.run(args.carry, args.out, budget_s=args.budget_s, stages=args.stages,
                             device=args.device, dry_run=args.dry_run, export=args.export)
    return 0 if complete else reproduce.INCOMPLETE
