"""`pba demo`: search a schedule, train final models with it and the baselines, report."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from pba.core.errors import UserError

DEFAULT_OUT = Path("runs/demo")
# flag -> pba.budget.PLANNED name (and "model", the searched one), values the user may fix
PLANNED_FLAGS = {"--model": "model", "--population": "population", "--epochs": "epochs",
                 "--interval": "interval", "--train-size": "train_size",
                 "--val-size": "val_size", "--final-model": "final_model",
                 "--final-epochs": "final_epochs", "--image-size": "image_size"}


def add_parser(sub) -> argparse.ArgumentParser:
    from pba.cli.options import SOURCES, add_device_argument, add_image_size_argument
    from pba.demo import ARMS, DEFAULT_FIRST_SEED, DEMO, DEMO_TIME
    from pba.search.pbt import METRICS, SELECTIONS
    from pba.search.presets import PRESETS

    search = PRESETS[DEMO.preset]
    arms = ", ".join(f"{arm} x{DEMO.seeds[arm]}" for arm in ARMS if arm in DEMO.seeds)
    p = sub.add_parser(
        "demo",
        help="the main job: search a schedule and show whether it beats the baseline and "
        "TrivialAugment (CPU, minutes)",
        description=f"Search a PBA schedule (preset {DEMO.preset}: {search.population} x "
        f"{search.model}, {search.train_size} reduced CIFAR-10 training images, "
        f"{search.epochs} epochs, a round every {search.interval}, {search.selection} "
        f"selection), then train final models ({DEMO.model}, {DEMO.epochs} epochs, same "
        f"images) with it and with the usual augmentations on seeds the search did not use "
        f"({arms}), and report their test errors on the data's test split, mean +- "
        "standard deviation: whether the searched schedule beats the baseline and "
        "TrivialAugment (by more than two standard errors of the difference), and which "
        "augmentation to train with (never one that another arm clearly beats, no "
        "augmentation included). Writes DIR/summary.md and DIR/results.json. "
        f"{DEMO_TIME} --budget sizes the whole run to a wall-clock time on this machine "
        "instead: it measures how fast the models train here, prints the regime it chose "
        "with a line of why per choice, and ends within about 15% of the budget. "
        "Stop it at any time: the same command continues where it stopped. "
        "`pba report DIR` prints the report again.",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"demo directory, new or to continue (default: {DEFAULT_OUT})")
    p.add_argument("--dataset", metavar="SOURCE",
                   help=f"what to search and test on (default reduced_cifar10): {SOURCES}. "
                   "The baseline is decided on the data (image folders)")
    add_image_size_argument(p)
    p.add_argument("--budget", metavar="DURATION",
                   help="wall-clock time for the whole demo, e.g. 90s, 15m, 1h: the "
                   "training images, validation images, population, epochs, interval and "
                   "the final models' model and epochs are chosen to end within it on this "
                   "machine (flags below win over the plan). A budget too small to learn "
                   "anything is refused with the smallest that works")
    g = p.add_argument_group("the regime (each fixes what --budget would choose)")
    g.add_argument("--model", help=f"the searched model (default {search.model})")
    g.add_argument("--final-model",
                   help=f"the final models' model (default {DEMO.model}: search small, train "
                   "large, as the paper did)")
    g.add_argument("--final-epochs", type=int, help=f"the final models' epochs ({DEMO.epochs})")
    g.add_argument("--population", type=int, help=f"search members ({search.population})")
    g.add_argument("--epochs", type=int, help=f"search epochs ({search.epochs})")
    g.add_argument("--interval", type=int,
                   help=f"epochs between exploit/explore rounds ({search.interval})")
    g.add_argument("--train-size", type=int,
                   help=f"training images of the search and the final models ({search.train_size}"
                   ", at most 3/4 of the data's training pool)")
    g.add_argument("--val-size", type=int, help="validation images the search ranks on "
                   f"({search.val_size}, at most the rest of the pool)")
    p.add_argument("--arms", metavar="ARMS",
                   help="the arms to compare, comma-separated, each ARM or ARM:SEEDS (seeds "
                   f"per set), of {', '.join(ARMS)} (default: {arms}; with --budget the "
                   "search-free schedule 'ramp' is left out where its models would take the "
                   "final models below the epochs the verdict needs; 'published' needs "
                   "--reference). pba is required: the demo judges its search")
    v = p.add_argument_group("the search's variants (the study in docs/benchmarks.md measured "
                             "them; the defaults are the preset's)")
    v.add_argument("--metric", choices=list(METRICS),
                   help=f"what ranks the members on the validation images (default "
                   f"{search.metric}; loss still tells members apart when their accuracies "
                   "saturate)")
    v.add_argument("--selection", choices=list(SELECTIONS),
                   help=f"who copies whom (default {search.selection}: a member copies another "
                   "only when worse beyond noise; truncation: the paper's, the bottom quarter "
                   "always copies the top; significant needs --metric accuracy)")
    p.add_argument("--reference", type=Path, metavar="FILE",
                   help="the published reduced CIFAR-10 schedule (rcifar10_16_wrn.txt, a PBT "
                   "policy log) for the 'published' arm; left out without it")
    p.add_argument("--first-seed", type=int, metavar="N",
                   help=f"the final models' seeds start at N (default {DEFAULT_FIRST_SEED}; the "
                   "search uses seed 0). On a demo directory that has its search, another N "
                   "reuses the search, trains that set of seeds beside the earlier ones and "
                   "reports the verdicts per set and over all: a check on seeds the verdict "
                   "has never seen")
    add_device_argument(p)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (default): bf16 autocast where the device has native bf16 "
                   "(GPUs, CPUs with AVX512-BF16 or AMX), else fp32")
    p.add_argument("--workers", type=int, metavar="N",
                   help="search members and final models trained at once (default: one per "
                   "CPU core, each with one torch thread; one on a GPU)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where datasets live (default: $PBA_DATA_DIR, else ./data)")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 if missing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from pba.budget import parse_duration
    from pba.cli.options import run_options
    from pba.demo import DEMO, run_demo
    from pba.demo.config import VARIANTS, parse_arms

    options = run_options(args)
    started = time.monotonic()
    if args.first_seed is not None and args.first_seed < 1:
        raise UserError(f"--first-seed must be >= 1 (seed 0 is the search's), got "
                       f"{args.first_seed}")
    given = {name: getattr(args, name) for name in PLANNED_FLAGS.values()
             if getattr(args, name) is not None}
    for flag, name in PLANNED_FLAGS.items():
        if isinstance(given.get(name), int) and given[name] < 1:
            raise UserError(f"{flag} must be >= 1, got {given[name]}")
    given |= {name: getattr(args, name) for name in VARIANTS if getattr(args, name) is not None}
    if args.arms is not None:
        given["arms"] = parse_arms(args.arms, DEMO)
        if "published" in given["arms"] and args.reference is None:
            raise UserError("the arm 'published' needs --reference FILE")
    budget = None if args.budget is None else parse_duration(args.budget)
    demo = DEMO if args.dataset is None else dataclasses.replace(DEMO, dataset=args.dataset)
    text = run_demo(demo, args.out, reference=args.reference, first_seed=args.first_seed,
                    budget=budget, given=given, options=options)
    print()
    print(text, end="")
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    of = "" if budget is None else f" (budget {args.budget})"
    print(f"\npba demo: this run took {minutes}m {seconds:02d}s{of}; the report is "
          f"{args.out / 'summary.md'}")
    return 0
