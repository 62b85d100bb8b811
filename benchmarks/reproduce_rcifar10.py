"""Reproduce the paper's reduced CIFAR-10 table: a PBA search, then WRN-28-10 with 5 augmentations.

    # 1. here, where the data is: the data and the published schedule, as one folder to carry
    python benchmarks/reproduce_rcifar10.py prepare --out carry/
    # 2. on the GPU machine, repeated until it prints "complete" (exit 0; 75 = stopped for time)
    python benchmarks/reproduce_rcifar10.py run --carry carry/ --out runs/rcifar10 \
        --budget-s 540 --export "$OUT"
    # the identical pipeline, CPU-sized (4 x WRN-10-1 for 4 epochs on 512 images, then five
    # WRN-10-1 for 2 epochs), from a small folder: 500 test images keep evaluation short
    python benchmarks/reproduce_rcifar10.py prepare --out /tmp/carry-dry --val-size 512 \
        --test-size 500
    OMP_NUM_THREADS=1 python benchmarks/reproduce_rcifar10.py run --dry-run --carry /tmp/carry-dry \
        --out /tmp/dry   # one thread: on a busy 2-core machine, 4x faster than two

Stages, each a directory under --out, in this order:
  search         `pba search --preset paper-rcifar10`: 16 x WRN-40-2, 200 epochs, on the paper's
                 4,000 training images, scored on the carried validation subset (the paper
                 scores on the other 46,000; see VAL_SIZE)
  pba_search     `pba train`: WRN-28-10, 200 epochs, lr 0.05, wd 5e-3 with this search's schedule
  pba_reference  ... with the published schedule (rcifar10_16_wrn.txt, a 200-epoch search)
  baseline       ... with pad-crop, flip and Cutout only
  autoaugment    ... torchvision's AutoAugment (CIFAR-10 policy), then the baseline
  randaugment    ... torchvision's RandAugment (N=2, M=9), then the baseline
then results.md and results.json under --out: the test errors beside the paper's, the search's
cost and each model's training time and device.

Resuming: a stage whose result exists is skipped; an unfinished one continues with the library's
own resume (`pba search --resume`, `pba train --resume`). Each stage runs as a child process that
this script watches: with --budget-s, once a stage has written a resume point (the search's
state.json after a round, the training's metrics.jsonl after an epoch) and the next round or
epoch would not end in time, the child is interrupted there, and the script exits with 75 so
that the next command, the same one, continues. Children also give the GPU's memory back between
stages.

Between machines: a fresh GPU machine starts bare, and checkpoints (a WRN-28-10's is ~300 MB, the
search's 16 members ~300 MB) cannot travel through the 64 MiB carry limit. --export DIR writes
DIR/state.tar.gz (--out without checkpoints), results.md and results.json; put state.tar.gz into
the carried folder and `run` unpacks it when --out does not exist yet. Finished stages survive
that trip; an unfinished training starts again from epoch 0 and an unfinished search from round
0 (both are announced), so a stage must finish within one machine's lease.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from pba import run as train_cmd
from pba.atomic import write_text_atomic
from pba.data import DatasetSplits, load_dataset, save_npz
from pba.data.imageset import take
from pba.errors import PBAError
from pba.report import PAPER_PBA_ERROR, cost_line, search_cost
from pba.schedule import load_schedule
from pba.search import preset, rundir
from pba.train import Recipe, default_recipe, resolve_device

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATASET = "reduced_cifar10"
SEARCH_PRESET = "paper-rcifar10"
FINAL_MODEL = "wrn_28_10"
# The published schedule comes from the paper's search, so it has that search's length (200).
REFERENCE_EPOCHS = preset(SEARCH_PRESET).epochs
# The search's validation subset: the next 6,000 images of the paper's shuffled pool. The 4,000
# training and 10,000 test images compress to ~38.5 MiB; 6,000 validation images add ~16.5, so
# that the file (~55 MiB) and the working tree stay under the device's 64 MiB carry limit.
VAL_SIZE = 6000
PAPER_SEARCH_GPU_HOURS = 5.0  # spec section 6: about 5 GPU-hours on a Titan XP

DATA_FILE = "rcifar10.npz"
REFERENCE_FILE = "rcifar10_16_wrn.txt"
STATE_FILE = "state.tar.gz"
PROGRESS = "progress.json"  # per stage: wall time and devices of the processes that ran it
RESULTS_MD, RESULTS_JSON = "results.md", "results.json"

INCOMPLETE = 75  # exit status when stopped for the budget (EX_TEMPFAIL: run again)
RESERVE_S = 20.0  # of --budget-s, kept to stop a child and write the table and the archive
MIN_START_S = 60.0  # no stage is started with less left: its start-up alone takes a good part
SAFETY = 1.25  # the next round or epoch is assumed to take this much longer than the last
POLL_S = 0.5
STOP_WAIT_S = 60.0  # after the interrupt, before the child is killed

PBA_STAGES = ("pba_search", "pba_reference")
# stage -> (row label, `pba train --augment` mode), in the table's order
FINALS = {
    "pba_search": ("PBA, this search's schedule", "pba"),
    "pba_reference": (f"PBA, published schedule ({REFERENCE_FILE})", "pba"),
    "baseline": ("Baseline: pad-crop, flip, Cutout", "baseline"),
    "autoaugment": ("AutoAugment (torchvision, CIFAR-10 policy) + baseline", "autoaugment"),
    "randaugment": ("RandAugment (torchvision, N=2, M=9) + baseline", "randaugment"),
}
STAGES = ("search", *FINALS)


@dataclass(frozen=True)
class Plan:
    """The sizes of one run: the paper's, or the CPU-sized dry run."""

    search_flags: tuple[str, ...]  # `pba search` flags that change the preset
    final_model: str
    recipe: Recipe  # of the final models
    train_size: int | None  # None: all 4,000 carried training images
    val_size: int | None  # the search's; None: the whole carried subset
    dry_run: bool


def paper_plan() -> Plan:
    return Plan((), FINAL_MODEL, default_recipe(DATASET, FINAL_MODEL), None, None, False)


def dry_plan() -> Plan:
    train_size, val_size = 512, 512
    flags = ("--model", "wrn_10_1", "--population", "4", "--epochs", "4", "--interval", "2",
             "--train-size", str(train_size), "--val-size", str(val_size))
    recipe = dataclasses.replace(default_recipe(DATASET, FINAL_MODEL), epochs=2)
    return Plan(flags, "wrn_10_1", recipe, train_size, val_size, True)


# ---- prepare: the folder to carry -----------------------------------------------------------


def prepare(
    out: Path, data_dir: Path, reference: Path, val_size: int, test_size: int | None
) -> None:
    """Write the reduced CIFAR-10 splits (with the paper's statistics) and the published
    schedule into `out`; `test_size` keeps the first test images only (for dry runs)."""
    load_schedule(reference, REFERENCE_EPOCHS)  # fail here, not on the GPU machine
    data = load_dataset(DATASET, data_dir, val_size=val_size)  # the paper's 4,000 and seed
    if test_size is not None:
        if not 1 <= test_size <= len(data.test):
            raise PBAError(f"--test-size must be in 1..{len(data.test)}, got {test_size}")
        data = dataclasses.replace(data, test=take(data.test, torch.arange(test_size)))
    out.mkdir(parents=True, exist_ok=True)
    path = save_npz(out / DATA_FILE, data)
    shutil.copyfile(reference, out / REFERENCE_FILE)
    print(f"{path}: {len(data.train)} train, {len(data.val)} validation, {len(data.test)} test "
          f"images, mean {data.mean}, std {data.std}, fill {data.fill}; "
          f"{path.stat().st_size / 2**20:.1f} MiB")
    print(f"{out / REFERENCE_FILE}: the published schedule ({REFERENCE_EPOCHS} search epochs)")


# ---- run: the stages ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    path: Path
    done_file: str  # written when the stage has finished
    resume_point: str  # rewritten at every point the stage can resume from
    checkpoints: str  # glob, relative to path: what a resume needs besides the logs


def stage(out: Path, name: str) -> Stage:
    if name == "search":
        return Stage(name, out / name, rundir.SUMMARY, rundir.STATE, f"{rundir.CHECKPOINTS}/*/*.pt")
    return Stage(name, out / name, train_cmd.RESULT, train_cmd.METRICS, train_cmd.CHECKPOINT)


def is_done(s: Stage) -> bool:
    return (s.path / s.done_file).is_file()


def command(s: Stage, plan: Plan, data_file: Path, reference: Path, device: str) -> list[str]:
    """The `pba` command line that starts or continues stage `s`."""
    pba = [sys.executable, "-c", "import sys; from pba.cli import main; sys.exit(main())"]
    dataset = f"npz:{data_file}"
    if s.name == "search":
        if (s.path / rundir.CONFIG).is_file():
            return [*pba, "search", "--resume", str(s.path), "--device", device, "--no-progress"]
        return [*pba, "search", "--preset", SEARCH_PRESET, "--dataset", dataset,
                "--out", str(s.path), "--device", device, "--no-progress", *plan.search_flags]
    if (s.path / train_cmd.CONFIG).is_file():
        return [*pba, "train", "--resume", "--out", str(s.path), "--device", device]
    augment = FINALS[s.name][1]
    r = plan.recipe
    cmd = [*pba, "train", "--dataset", dataset, "--model", plan.final_model, "--augment", augment,
           "--epochs", str(r.epochs), "--lr", str(r.lr), "--wd", str(r.weight_decay),
           "--batch-size", str(r.batch_size), "--val-size", "0", "--out", str(s.path),
           "--device", device]
    if r.baseline is not None:
        cmd += ["--baseline", r.baseline]
    if plan.train_size is not None:
        cmd += ["--train-size", str(plan.train_size)]
    if s.name == "pba_search":  # our JSON schedule knows its length
        cmd += ["--schedule", str(s.path.parent / "search" / rundir.SCHEDULE)]
    elif s.name == "pba_reference":
        cmd += ["--schedule", str(reference), "--schedule-epochs", str(REFERENCE_EPOCHS)]
    return cmd


def supervise(
    cmd: list[str],
    resume_point: Path,
    deadline: float | None,
    on_resume_point: Callable[[], None] | None = None,
) -> tuple[int, bool]:
    """Run `cmd`; with a `deadline` (time.monotonic()), interrupt it just after it writes
    `resume_point` when the next unit of work would not end by then, or at the deadline.
    Returns (exit status, whether it was interrupted)."""

    def mark() -> tuple[int, int] | None:
        try:
            st = resume_point.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns  # atomic writes replace the file: a new inode

    with subprocess.Popen(cmd) as child:
        last_mark, last_time = mark(), time.monotonic()
        while True:
            try:
                return child.wait(timeout=POLL_S), False
            except subprocess.TimeoutExpired:
                pass
            now, current = time.monotonic(), mark()
            why = None
            if current != last_mark:
                # A resume point, just written. The last unit's duration (the first one's
                # includes the start-up, so it errs long) predicts the next.
                unit = now - last_time
                last_mark, last_time = current, now
                if on_resume_point is not None:
                    on_resume_point()
                if deadline is not None and now + SAFETY * unit > deadline:
                    why = f"at a resume point: the next ~{unit:.0f} s would pass the budget"
            if why is None and deadline is not None and now >= deadline:
                why = "at the budget's end: the unit under way will be redone"
            if why is not None:
                print(f"[reproduce] stopping {why}", flush=True)
                child.send_signal(signal.SIGINT)  # pba exits cleanly on KeyboardInterrupt
                try:
                    return child.wait(timeout=STOP_WAIT_S), True
                except subprocess.TimeoutExpired:
                    child.kill()
                    return child.wait(), True


def restart_if_unresumable(s: Stage) -> None:
    """A stage carried here without its checkpoints cannot continue where it stopped."""
    if not s.path.exists() or any(s.path.glob(s.checkpoints)):
        return
    if s.name == "search":  # resume_search needs the members' checkpoints
        print(f"[reproduce] {s.name}: no checkpoints here; starting it over", flush=True)
        shutil.rmtree(s.path)
    elif (s.path / train_cmd.METRICS).is_file():  # `pba train --resume` starts at epoch 0
        print(f"[reproduce] {s.name}: no checkpoint here; starting it over", flush=True)


def progress_printer(s: Stage) -> Callable[[], None] | None:
    """The search's progress at each round (`pba search --no-progress` prints none); the
    training prints a line per epoch itself."""
    if s.name != "search":
        return None

    def show() -> None:
        try:
            print(f"[reproduce] search: {cost_line(search_cost(s.path))}", flush=True)
        except (PBAError, OSError) as err:  # a display only: never stop the watch over it
            print(f"[reproduce] search: progress unreadable ({err})", flush=True)

    return show


def device_label(device: str) -> str:
    """What the stages will run on, for the table; fails now where `device` is not there."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return torch.cuda.get_device_name(resolved)
    return f"cpu ({os.cpu_count()} cores)"


def record_process(out: Path, name: str, wall_s: float, device: str) -> None:
    path = out / PROGRESS
    progress = json.loads(path.read_text()) if path.is_file() else {}
    entry = progress.setdefault(name, {"wall_s": 0.0, "processes": 0, "devices": []})
    entry["wall_s"] += wall_s
    entry["processes"] += 1
    if device not in entry["devices"]:
        entry["devices"].append(device)
    write_text_atomic(path, json.dumps(progress, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    deadline = None if args.budget_s is None else started + args.budget_s - RESERVE_S
    plan = dry_plan() if args.dry_run else paper_plan()
    carry, out = args.carry, args.out
    data_file, reference = carry / DATA_FILE, carry / REFERENCE_FILE
    for needed in (data_file, reference):
        if not needed.is_file():
            raise PBAError(f"{needed} is missing: write the folder with `prepare --out {carry}`")
    # Fails now on a bad file or sizes, not minutes into a stage.
    data = load_dataset(f"npz:{data_file}", train_size=plan.train_size, val_size=plan.val_size)
    archive = carry / STATE_FILE
    if archive.is_file() and not out.exists():
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
        print(f"[reproduce] unpacked {archive} into {out}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    device = device_label(args.device)
    complete = True
    try:
        for name in args.stages:
            s = stage(out, name)
            if is_done(s):
                print(f"[reproduce] {name}: done, skipped", flush=True)
                continue
            if name == "pba_search" and not is_done(stage(out, "search")):
                print(f"[reproduce] {name}: waits for the search", flush=True)
                complete = False
                continue
            if deadline is not None and deadline - time.monotonic() < MIN_START_S:
                print(f"[reproduce] {name}: too little of the budget left to start", flush=True)
                complete = False
                break
            restart_if_unresumable(s)
            cmd = command(s, plan, data_file, reference, args.device)
            print(f"[reproduce] {name}: pba {' '.join(cmd[3:])}", flush=True)
            began = time.monotonic()
            status, interrupted = supervise(cmd, s.path / s.resume_point, deadline,
                                            on_resume_point=progress_printer(s))
            record_process(out, name, time.monotonic() - began, device)
            if is_done(s):
                continue
            if interrupted:
                complete = False
                break
            raise PBAError(f"stage {name} failed with exit status {status} (its output is above)")
    finally:
        table = write_results(out, plan, data, args.stages)
        if args.export is not None:
            export(out, args.export)
    print(table)
    if complete:
        print(f"[reproduce] complete: {out / RESULTS_MD}")
        return 0
    print("[reproduce] not complete: run the same command again to continue")
    return INCOMPLETE


def export(out: Path, folder: Path) -> None:
    """--out without checkpoints, as one archive, with the results beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / STATE_FILE, "w:gz") as tar:
        tar.add(out, arcname=".", filter=lambda info: None if info.name.endswith(".pt") else info)
    for name in (RESULTS_MD, RESULTS_JSON):
        shutil.copyfile(out / name, folder / name)
    print(f"[reproduce] exported {folder / STATE_FILE} "
          f"({(folder / STATE_FILE).stat().st_size / 2**20:.1f} MiB) and the results", flush=True)


# ---- the results table ----------------------------------------------------------------------


def write_results(out: Path, plan: Plan, data: DatasetSplits, stages: list[str]) -> str:
    """results.json and results.md from the run directories; returns the markdown."""
    progress = json.loads((out / PROGRESS).read_text()) if (out / PROGRESS).is_file() else {}
    paper_error = PAPER_PBA_ERROR[(DATASET, FINAL_MODEL)]
    search_dir = out / "search"
    search = {"status": "not started", "paper_gpu_hours": PAPER_SEARCH_GPU_HOURS}
    if (search_dir / rundir.CONFIG).is_file():
        cost = search_cost(search_dir)
        config = json.loads((search_dir / rundir.CONFIG).read_text())["search"]
        search |= {
            "status": "done" if is_done(stage(out, "search")) else
            f"{cost.epochs}/{config['epochs']} epochs",
            "config": config,
            "wall_s": cost.wall_s,
            "gpu_hours": cost.wall_s / 3600,
            "devices": list(cost.devices),
            "processes": cost.processes,
            "best_val_accuracy": cost.best_accuracy,
            "summary": cost_line(cost),
        }
    rows = []
    for name, (label, _) in FINALS.items():
        path = out / name
        result = json.loads((path / train_cmd.RESULT).read_text()) if (
            path / train_cmd.RESULT).is_file() else {}
        metrics = path / train_cmd.METRICS
        epochs_done = len(metrics.read_text().splitlines()) if metrics.is_file() else 0
        rows.append({
            "stage": name,
            "augmentation": label,
            "test_error": result.get("test_error"),
            "paper_test_error": paper_error if name in PBA_STAGES else None,
            "search_gpu_hours": search.get("gpu_hours") if name == "pba_search" else None,
            "paper_search_gpu_hours": PAPER_SEARCH_GPU_HOURS if name in PBA_STAGES else None,
            "train_time_s": result.get("train_time_s"),
            "wall_s": progress.get(name, {}).get("wall_s"),
            "devices": progress.get(name, {}).get("devices", []),
            "epochs_done": epochs_done,
            "epochs": plan.recipe.epochs,
            "status": "done" if result else "pending" if name in stages else "not selected",
        })
    r = plan.recipe
    doc = {
        "dry_run": plan.dry_run,
        "dataset": DATASET,
        "data": {"train": len(data.train), "val": len(data.val) if data.val else 0,
                 "test": len(data.test), "mean": data.mean, "std": data.std, "fill": data.fill},
        "search": search,
        "final": {"model": plan.final_model, **dataclasses.asdict(r)},
        "rows": rows,
    }
    write_text_atomic(out / RESULTS_JSON, json.dumps(doc, indent=2) + "\n")

    def num(value: float | None, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    def duration(seconds: float | None) -> str:
        if seconds is None:
            return "—"
        return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

    title = f"# Reduced CIFAR-10, {plan.final_model}: test error (%)"
    if plan.dry_run:
        title += " — DRY RUN (CPU-sized; not comparable with the paper's figures)"
    search_line = f"- search ({search['status']})"
    if "config" in search:
        c = search["config"]
        search_line += (f": {c['population']} x {c['model']}, {c['epochs']} epochs, interval "
                        f"{c['interval']}, lr {c['lr']}, wd {c['weight_decay']}; "
                        f"{search['summary']}; {search['gpu_hours']:.2f} GPU-hours")
    lines = [
        title,
        "",
        f"- data: {DATASET}, {len(data.train)} training images (the paper's split), "
        f"{doc['data']['val']} validation images for the search (the paper: the other 46,000), "
        f"{len(data.test)} test images",
        search_line + f" (paper: about {PAPER_SEARCH_GPU_HOURS:g} GPU-hours on a Titan XP)",
        f"- final models: {plan.final_model}, {r.epochs} epochs, lr {r.lr}, weight decay "
        f"{r.weight_decay}, batch {r.batch_size}, baseline {r.baseline or 'the dataset default'}; "
        "one run each",
        "",
        "| augmentation | test error % | paper % | search GPU-h | paper search GPU-h "
        "| training time | epochs | device |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['augmentation']} | {num(row['test_error'], '.2f')} | "
            f"{num(row['paper_test_error'], '.2f')} | {num(row['search_gpu_hours'], '.2f')} | "
            f"{num(row['paper_search_gpu_hours'], 'g')} | "
            f"{duration(row['train_time_s'])} | "
            f"{row['epochs_done']}/{row['epochs']} | {', '.join(row['devices']) or '—'} |"
        )
    lines += ["", "Test error of one run each (final epoch). Training time: the epochs' own "
              "time, without start-up and evaluation. '—': not run yet, or no figure in the "
              "paper's text that this project relies on."]
    table = "\n".join(lines) + "\n"
    write_text_atomic(out / RESULTS_MD, table)
    return table


# ---- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the data file and the published schedule to carry")
    p.add_argument("--out", type=Path, required=True, help="the folder to carry (e.g. carry/)")
    default_data = os.environ.get("PBA_DATA_DIR") or SHARED / "data"
    p.add_argument("--data-dir", type=Path, default=Path(default_data),
                   help="holds cifar-10-batches-py/ (default: $PBA_DATA_DIR, else ../shared/data)")
    p.add_argument("--reference", type=Path, default=SHARED / "reference" / REFERENCE_FILE,
                   help="the published schedule (default: ../shared/reference/)")
    p.add_argument("--val-size", type=int, default=VAL_SIZE,
                   help=f"validation images for the search (default {VAL_SIZE}, to fit the carry "
                   "limit)")
    p.add_argument("--test-size", type=int,
                   help="keep only the first N test images (default: all 10,000; for dry runs)")
    r = sub.add_parser("run", help="run (or continue) the pipeline and write the results table")
    r.add_argument("--carry", type=Path, required=True,
                   help=f"the prepared folder: {DATA_FILE}, {REFERENCE_FILE}, and {STATE_FILE} "
                   "when continuing on another machine")
    r.add_argument("--out", type=Path, required=True, help="the run's folder (kept across runs)")
    r.add_argument("--budget-s", type=float,
                   help="stop at a resume point before this many seconds have passed")
    r.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                   help="the stages to run, in the pipeline's order (default: all)")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    r.add_argument("--dry-run", action="store_true",
                   help="CPU-sized: 4 x wrn_10_1 for 4 epochs on 512 images, final models "
                   "wrn_10_1 for 2 epochs")
    r.add_argument("--export", type=Path, metavar="DIR",
                   help=f"write {STATE_FILE} (--out without checkpoints) and the results here")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            prepare(args.out, args.data_dir, args.reference, args.val_size, args.test_size)
            return 0
        args.stages = [s for s in STAGES if s in args.stages]  # the pipeline's order
        return run(args)
    except PBAError as err:
        print(f"reproduce_rcifar10: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
