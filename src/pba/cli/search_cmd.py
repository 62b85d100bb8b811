"""`pba search`: learn an augmentation policy schedule with Population Based Training."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pba.budget import Plan
    from pba.core.options import RunOptions
    from pba.search import SearchConfig

DEFAULT_PRESET = "quick"
# flag -> SearchConfig field, for every flag that overrides a preset's value
OVERRIDES = {
    "--dataset": "dataset", "--model": "model", "--population": "population",
    "--epochs": "epochs", "--interval": "interval", "--quantile": "quantile",
    "--metric": "metric", "--train-size": "train_size", "--val-size": "val_size",
    "--lr": "lr", "--wd": "weight_decay", "--batch-size": "batch_size", "--baseline": "baseline",
    "--cutout-size": "cutout_size", "--seed": "seed", "--lr-schedule": "lr_schedule",
    "--ops": "ops", "--selection": "selection", "--image-size": "image_size",
}


def add_parser(sub) -> argparse.ArgumentParser:
    from pba.cli.options import (
        SOURCES,
        add_baseline_arguments,
        add_device_argument,
        add_image_size_argument,
    )
    from pba.search.pbt import ENGINES, METRICS, SELECTION_Z, SELECTIONS
    from pba.search.presets import PRESETS

    p = sub.add_parser(
        "search",
        help="learn an augmentation schedule with Population Based Training",
        description="Train a population of models, each with its own augmentation policy, "
        "on one device (on a CPU --workers at a time); every --interval epochs the worst "
        "quarter copies the best quarter's weights and policy and perturbs the policy. The "
        "best final member's policy history is the schedule (DIR/schedule.json, for `pba "
        "train --augment pba --schedule`). Presets: "
        + "; ".join(f"{name}: {c.population} x {c.model}, {c.epochs} epochs, {c.dataset}"
                    for name, c in PRESETS.items())
        + ". The paper presets search WRN-40-2 as the paper says; the reference code's "
        "'wrn_40_2' was built at depth 28 (a WRN-28-2, about 2/3 of the compute), so compare "
        "search costs with that in mind. paper-rsvhn uses the step learning rate the reference "
        "code searched SVHN with. Every preset value can be changed by its flag.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None,
                       help="new run directory (default: runs/PRESET-YYYYmmdd-HHMMSS)")
    where.add_argument("--resume", type=Path, metavar="DIR", default=None,
                       help="continue the killed search in DIR from its last complete round")
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help=f"what to search (default: {DEFAULT_PRESET})")
    p.add_argument("--budget", metavar="DURATION",
                   help="wall-clock time for the search, e.g. 90s, 12m, 1h: measures how fast "
                   "this machine trains the model at the data's image size, then chooses "
                   "the training and validation images, population, epochs and interval to "
                   "end within it (about 15%%), printing the plan with a line of why per "
                   "choice (recorded in config.json); flags given win over the plan. Not "
                   "with the paper presets, whose regime is the paper's")
    p.add_argument("--dataset", metavar="SOURCE", help=SOURCES)
    add_image_size_argument(p)
    p.add_argument("--model", help="e.g. wrn_40_2, wrn_10_1")
    p.add_argument("--population", type=int, help="number of members")
    p.add_argument("--epochs", type=int, help="epochs of the whole search (schedule length)")
    p.add_argument("--interval", type=int, help="epochs between exploit/explore steps")
    p.add_argument("--quantile", type=float,
                   help="fraction of members in the top and bottom tails (0 < q <= 0.5)")
    p.add_argument("--metric", choices=list(METRICS),
                   help="validation metric that ranks members (accuracy: max, loss: min)")
    p.add_argument("--selection", choices=list(SELECTIONS),
                   help="who copies whom. truncation (the paper's): every bottom-quantile member "
                   "clones a top-quantile one. significant: only where the top member's "
                   f"validation accuracy is higher by more than {SELECTION_Z:g} standard errors "
                   "of the difference (a ranking on so many validation images is mostly noise "
                   "otherwise); a member not clearly worse keeps its weights and perturbs its "
                   "own policy. Default: the preset's")
    p.add_argument("--train-size", type=int, help="training images")
    p.add_argument("--val-size", type=int, help="validation images (the metric)")
    p.add_argument("--lr", type=float, help="base learning rate")
    p.add_argument("--lr-schedule", choices=["cosine", "step"],
                   help="cosine: decay to 0 over the search; step: x0.1 at half the epochs and "
                   "x0.01 at three quarters, as the reference code searched SVHN (the "
                   "paper-rsvhn preset's)")
    p.add_argument("--wd", type=float, dest="weight_decay", help="weight decay")
    p.add_argument("--batch-size", type=int, help="batch size")
    add_baseline_arguments(p)
    p.add_argument("--ops", metavar="MODULE:NAME",
                   help="search over an OpSet of your own (DEFAULT_OPS.with_op(...)): an "
                   "importable module or path/to/file.py, and the name in it; recorded in "
                   "config.json, so that --resume imports it again")
    p.add_argument("--seed", type=int, help="seed of member initialisation, data order, "
                   "exploit and explore (the reduced split itself is always the paper's)")
    add_device_argument(p, default=None,
                        more="; with --resume the search's own by default")
    p.add_argument("--engine", choices=ENGINES, default=None,
                   help="how the members train. local: on this device, --workers at a time "
                   "(on a CPU) or in turn; vectorized: the whole WRN population packed into one "
                   "network, one step for all members; ray: each member a Ray Tune trial, on "
                   "this machine or a cluster (options below); auto (default): vectorized for "
                   "WRNs on a GPU, else local. --resume continues with the search's own")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                   help="bf16: bf16 autocast and channels_last (2-3x faster on GPUs and on "
                   "CPUs with AVX512-BF16 or AMX); fp32: plain float32; auto (default): bf16 "
                   "where the device has native bf16, else fp32. With --resume the search's "
                   "own by default")
    p.add_argument("--workers", type=int, default=None,
                   help="local engine: members trained at once, each with its share of the "
                   "torch threads (default: one per CPU core, one on a GPU)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where datasets live (default: $PBA_DATA_DIR, else ./data)")
    p.add_argument("--download", action="store_true", help="download the dataset if missing")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="folder:PATH: leave unreadable image files out (they are counted in "
                   "config.json and the summary) instead of stopping with the list of them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--compile", action="store_true",
                   help="vectorized engine on a GPU: torch.compile its network and step (off by "
                   "default; on a CPU it is refused, compilation took minutes and gave no "
                   "speed-up)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log every member's training loss, validation accuracy and policy "
                   "strength to DIR/tensorboard (pip install 'pba[tensorboard]'; Ray runs "
                   "keep Tune's own logs)")
    g = p.add_argument_group("--engine ray (pip install 'pba[ray]')")
    g.add_argument("--address", help="Ray cluster to join (HOST:PORT or auto); default: start "
                   "Ray on this machine")
    g.add_argument("--cpus-per-member", type=float, help="CPUs per member (1)")
    g.add_argument("--gpus-per-member", type=float,
                   help="GPUs per member; 0.25 = four members per GPU (0)")
    g.add_argument("--max-failures", type=int, metavar="N",
                   help="restarts of a member from its last checkpoint when its worker process "
                   "or node dies (or its training raises), over the whole search (3). One more "
                   "failure stops the search, keeping DIR and every checkpoint, with the `pba "
                   "search --resume DIR` that goes on. Kept by --resume. The engines on this "
                   "machine ignore it: they have no workers or nodes to lose")
    return p


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from pba.cli.options import run_options
    from pba.core.options import AS_STARTED, DEFAULTS
    from pba.reporting.recorders import search_recorders
    from pba.search.presets import preset
    from pba.search.request import RAY, SearchRequest, engine_of
    from pba.search.runner import resume_search, run_search

    changes = {field: getattr(args, field) for field in OVERRIDES.values()
               if getattr(args, field) is not None}
    request = SearchRequest(
        resume=args.resume, preset=args.preset, changes=changes,
        flags={field: flag for flag, field in OVERRIDES.items()}, engine=args.engine,
        budget=args.budget, precision=args.precision, skip_unreadable=args.skip_unreadable,
        device=args.device, workers=args.workers, compile=args.compile,
        tensorboard=args.tensorboard, address=args.address,
        cpus_per_member=args.cpus_per_member, gpus_per_member=args.gpus_per_member,
        max_failures=args.max_failures)
    engine = engine_of(request)
    ray = engine == RAY
    if ray:
        from pba.search.ray_backend import resume_ray_search, run_ray_search
    options = run_options(args, defaults=DEFAULTS if args.resume is None else AS_STARTED)
    # Before any work: --tensorboard without TensorBoard installed fails here.
    recorders = search_recorders(progress=options.progress, tensorboard=args.tensorboard)
    if args.resume is not None:
        if ray:
            result = resume_ray_search(args.resume, options=options, address=args.address,
                                       recorders=recorders)
        else:
            result = resume_search(args.resume, options=options, engine=engine,
                                   compile=args.compile, recorders=recorders)
    else:
        name = args.preset or DEFAULT_PRESET
        config = preset(name).replace(**changes)
        out = args.out or Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if ray:
            result = run_ray_search(config, out, options=options, preset=name,
                                    address=args.address, skip_unreadable=args.skip_unreadable,
                                    recorders=recorders, **request.ray_settings())
        else:
            plan = None
            if args.budget is not None:
                config, plan = _planned(config, options, args.budget, changes, started)
            result = run_search(config, out, options=options, preset=name,
                                engine=engine or "auto", skip_unreadable=args.skip_unreadable,
                                compile=args.compile, recorders=recorders,
                                budget=None if plan is None else plan.to_dict())
    from pba.search.summary import next_steps

    if args.budget is not None:
        minutes, seconds = divmod(round(time.monotonic() - started), 60)
        print(f"the search took {minutes}m {seconds:02d}s of a budget of {args.budget}")
    print(f"best member {result.best_member}: validation accuracy {result.best_accuracy:.4f}")
    print(f"schedule ({len(result.schedule)} epochs): {result.run_dir / 'schedule.json'}")
    print("\n".join(["", *next_steps(result.run_dir)]))
    return 0


def _planned(config: SearchConfig, options: RunOptions, budget: str, changes: dict,
             started: float) -> tuple[SearchConfig, Plan]:
    """`config` sized to --budget on this machine (pba.budget), and the plan."""
    from pba.budget import PLANNED, parse_duration, plan_budget

    given = {field: value for field, value in changes.items() if field in PLANNED}
    plan = plan_budget(config, parse_duration(budget), started, given=given, options=options)
    return config.replace(**plan.regime.search_changes()), plan
