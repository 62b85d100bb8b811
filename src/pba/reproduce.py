"""Reproduce the paper's reduced CIFAR-10 table: a PBA search, then WRN-28-10 with 5 augmentations.
`pba reproduce`.

    # 1. here, where the data is: the data and the published schedule, as one folder to carry
    pba reproduce prepare --out carry/
    # 2. on the GPU machine, repeated until it prints "complete" (exit 0; 75 = stopped for time)
    pba reproduce run --carry carry/ --out runs/rcifar10 --budget-s 540 --export "$OUT"
    # the identical pipeline, CPU-sized (4 x WRN-10-1 for 4 epochs on 512 images, then five
    # WRN-10-1 for 2 epochs), from a small folder: 500 test images keep evaluation short
    pba reproduce prepare --out /tmp/carry-dry --val-size 512 --test-size 500
    OMP_NUM_THREADS=1 pba reproduce run --dry-run --carry /tmp/carry-dry --out /tmp/dry
    # (one thread: on a busy 2-core machine, 4x faster than two)

    from pba.reproduce import prepare, run
    if __name__ == "__main__":  # each stage's process is spawned, and imports this script first
        prepare("carry/", reference="rcifar10_16_wrn.txt")
        complete = run("carry/", "runs/rcifar10", budget_s=540, export="out/")

Stages, each a directory under --out, in this order:
  search         `run_search` of the paper-rcifar10 preset: 16 x WRN-40-2, 200 epochs, on the
                 paper's 4,000 training images, scored on the carried validation subset (the
                 paper scores on the other 46,000; see VAL_SIZE)
  pba_search     `pba.run.fit`: WRN-28-10, 200 epochs, lr 0.05, wd 5e-3 with this search's
                 schedule
  pba_reference  ... with the published schedule (rcifar10_16_wrn.txt, a 200-epoch search)
  baseline       ... with pad-crop, flip and Cutout only
  autoaugment    ... torchvision's AutoAugment (CIFAR-10 policy), then the baseline
  randaugment    ... torchvision's RandAugment (N=2, M=9), then the baseline
then results.md and results.json under --out: the test errors beside the paper's, the search's
cost and each model's training time and device.

Resuming: a stage whose result exists is skipped; an unfinished one continues with the library's
own resume (`resume_search`, `fit(..., resume=True)`). Each stage runs in a child process (a
fresh interpreter, multiprocessing's spawn) that this module watches: with a budget, once a
stage has written a resume point (the search's state.json after a round, the training's
metrics.jsonl after an epoch) and the next round or epoch would not end in time, the child is
interrupted there (SIGINT; killed STOP_WAIT_S later), and `run` reports the pipeline incomplete,
which `pba reproduce run` exits with 75 so that the next command, the same one, continues.
Children also give the GPU's memory back between stages.

Between machines: a fresh GPU machine starts bare, and checkpoints (a WRN-28-10's is ~300 MB, the
search's 16 members ~300 MB) cannot travel through the 64 MiB carry limit. --export DIR writes
DIR/state.tar.gz (--out without checkpoints), results.md and results.json; put state.tar.gz into
the carried folder and `run` unpacks it when --out does not exist yet. Finished stages survive
that trip; an unfinished training starts again from epoch 0 and an unfinished search from round
0 (both are announced), so a stage must finish within one machine's lease.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import NamedTuple

import torch

from pba import run as train_run
from pba.atomic import atomic_path, write_text_atomic
from pba.data import DatasetSplits, load_dataset, save_npz
from pba.data.imageset import take
from pba.device import resolve_device
from pba.errors import PBAError
from pba.recipes import Recipe, default_recipe
from pba.report import PAPER_PBA_ERROR, cost_line, duration, markdown_table, search_cost
from pba.schedule import load_schedule
from pba.search import SearchConfig, preset, rundir
from pba.search.rundir import RunDir

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
RESERVE_S = 20.0  # of the budget, kept to stop a child and write the table and the archive
MIN_START_S = 60.0  # no stage is started with less left: its start-up alone takes a good part
SAFETY = 1.25  # the next round or epoch is assumed to take this much longer than the last
POLL_S = 0.5
STOP_WAIT_S = 60.0  # after the interrupt, before the child is killed
# A child's exit status when interrupted, and when it stopped on a PBAError (the CLI's).
INTERRUPTED, FAILED = 130, 2

PBA_STAGES = ("pba_search", "pba_reference")
# stage -> (row label, `pba.run` augment mode), in the table's order
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

    search_changes: Mapping[str, object]  # SearchConfig fields that change the preset's
    final_model: str
    recipe: Recipe  # of the final models
    train_size: int | None  # None: all 4,000 carried training images
    val_size: int | None  # the search's; None: the whole carried subset
    dry_run: bool


def paper_plan() -> Plan:
    """The paper's sizes: the preset's search, WRN-28-10 final models with its recipe."""
    return Plan({}, FINAL_MODEL, default_recipe(DATASET, FINAL_MODEL), None, None, False)


def dry_plan() -> Plan:
    """CPU-sized: 4 x WRN-10-1 for 4 epochs on 512 images, WRN-10-1 final models for 2."""
    train_size, val_size = 512, 512
    changes = {"model": "wrn_10_1", "population": 4, "epochs": 4, "interval": 2,
               "train_size": train_size, "val_size": val_size}
    recipe = dataclasses.replace(default_recipe(DATASET, FINAL_MODEL), epochs=2)
    return Plan(changes, "wrn_10_1", recipe, train_size, val_size, True)


# ---- prepare: the folder to carry -----------------------------------------------------------


def prepare(
    out: str | Path,
    reference: str | Path,
    *,
    data_dir: str | Path | None = None,
    val_size: int = VAL_SIZE,
    test_size: int | None = None,
) -> Path:
    """Write the reduced CIFAR-10 splits (with the paper's statistics) and the published
    schedule `reference` into `out`; `data_dir` holds cifar-10-batches-py/ (default
    `pba.data.data_root`'s); `test_size` keeps the first test images only (for dry runs).
    Returns the data file."""
    out = Path(out)
    load_schedule(reference, REFERENCE_EPOCHS)  # fail here, not on the GPU machine
    data = load_dataset(DATASET, data_dir, val_size=val_size)  # the paper's 4,000 and seed
    if test_size is not None:
        if not 1 <= test_size <= len(data.test):
            raise PBAError(f"--test-size must be in 1..{len(data.test)}, got {test_size}")
        data = dataclasses.replace(data, test=take(data.test, torch.arange(test_size)))
    out.mkdir(parents=True, exist_ok=True)
    path = save_npz(out / DATA_FILE, data)
    with atomic_path(out / REFERENCE_FILE) as tmp:
        shutil.copyfile(reference, tmp)
    print(f"{path}: {len(data.train)} train, {len(data.val)} validation, {len(data.test)} test "
          f"images, mean {data.mean}, std {data.std}, fill {data.fill}; "
          f"{path.stat().st_size / 2**20:.1f} MiB")
    print(f"{out / REFERENCE_FILE}: the published schedule ({REFERENCE_EPOCHS} search epochs)")
    return path


# ---- the stages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    path: Path
    done_file: str  # written when the stage has finished
    resume_point: str  # rewritten at every point the stage can resume from
    checkpoints: str  # glob, relative to path: what a resume needs besides the logs


def stage(out: Path, name: str) -> Stage:
    """Stage `name` of the run in `out`."""
    if name == "search":
        return Stage(name, out / name, rundir.SUMMARY, rundir.STATE, f"{rundir.CHECKPOINTS}/*/*.pt")
    return Stage(name, out / name, train_run.RESULT, train_run.METRICS, train_run.CHECKPOINT)


def is_done(s: Stage) -> bool:
    return (s.path / s.done_file).is_file()


@dataclass(frozen=True)
class Job:
    """What a stage's child process runs, `target(*args)`, and how it is announced."""

    target: Callable[..., None]
    args: tuple
    what: str


def job(s: Stage, plan: Plan, data_file: Path, reference: Path, device: str) -> Job:
    """The library call that starts or continues stage `s` (what `pba search` and `pba train`
    would call with the same settings)."""
    dataset = f"npz:{data_file}"
    if s.name == "search":
        if (s.path / rundir.CONFIG).is_file():
            return Job(_search, (s.path, None, device), "resuming from its last complete round")
        changes = {"dataset": dataset, **plan.search_changes}
        return Job(_search, (s.path, preset(SEARCH_PRESET).replace(**changes), device),
                   f"new search, preset {SEARCH_PRESET} with {_settings(changes)}")
    if (s.path / train_run.CONFIG).is_file():
        return Job(_train, (s.path, None, device), "resuming from its last checkpoint")
    r = plan.recipe
    given = {"dataset": dataset, "model": plan.final_model, "augment": FINALS[s.name][1],
             "epochs": r.epochs, "lr": r.lr, "weight_decay": r.weight_decay,
             "batch_size": r.batch_size, "val_size": 0}
    if r.baseline is not None:
        given["baseline"] = r.baseline
    if plan.train_size is not None:
        given["train_size"] = plan.train_size
    if s.name == "pba_search":  # our JSON schedule knows its length
        given["schedule"] = str(s.path.parent / "search" / rundir.SCHEDULE)
    elif s.name == "pba_reference":
        given |= {"schedule": str(reference), "schedule_epochs": REFERENCE_EPOCHS}
    return Job(_train, (s.path, given, device), f"new training, {_settings(given)}")


def _settings(settings: Mapping[str, object]) -> str:
    return ", ".join(f"{key} {value}" for key, value in settings.items())


def _search(out: Path, config: SearchConfig | None, device: str) -> None:
    """A search stage's child: a new search with `config`, or (None) the one in `out` resumed.
    Without a progress bar: the parent prints the cost at every round."""
    from pba.search.runner import resume_search, run_search  # the engines: in the child only

    if config is None:
        result = resume_search(out, device=device, progress=False)
    else:
        result = run_search(config, out, preset=SEARCH_PRESET, device=device, progress=False)
    print(f"best member {result.best_member}: validation accuracy {result.best_accuracy:.4f}")


def _train(out: Path, given: dict | None, device: str) -> None:
    """A training stage's child: a new run with the settings `given`, or (None) the run in
    `out` resumed. It prints a line per epoch itself."""
    resume = given is None
    config = (train_run.resumed_config(out) if resume
              else train_run.new_config(given, device=device))
    result = train_run.fit(config, out, resume=resume, device=device)
    print(f"test error {result['test_error']:.2f}% ({out / train_run.RESULT})")


# ---- the child processes and their watchdog -------------------------------------------------


@dataclass(frozen=True)
class Child:
    """A stage's process, and the end of the pipe its PBAError comes through."""

    process: BaseProcess
    errors: Connection


class Exit(NamedTuple):
    status: int  # the child's exit code (negative: the signal that ended it)
    interrupted: bool  # by the watchdog
    error: str | None  # the PBAError the child stopped with


def start(target: Callable[..., None], *args: object) -> Child:
    """`target(*args)` in a fresh interpreter (spawn: nothing of this process's CUDA state or
    threads is inherited, and its GPU memory is given back when it exits). `target` must be
    importable by name."""
    context = multiprocessing.get_context("spawn")
    errors, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(target, args, sender))
    process.start()
    sender.close()  # this process's copy: the child's exit then ends the pipe
    return Child(process, errors)


def _child_main(target: Callable[..., None], args: tuple, errors: Connection) -> None:
    # Line by line, so that in a log the child's lines and the watchdog's stay in order.
    sys.stdout.reconfigure(line_buffering=True)
    try:
        target(*args)
    except KeyboardInterrupt:  # the watchdog's stop (or Ctrl-C): resume points are intact
        sys.exit(INTERRUPTED)
    except PBAError as err:
        errors.send(str(err))
        sys.exit(FAILED)


def supervise(
    child: Child,
    resume_point: Path,
    deadline: float | None,
    on_resume_point: Callable[[], None] | None = None,
) -> Exit:
    """Wait for `child`; with a `deadline` (time.monotonic()), interrupt it just after it
    writes `resume_point` when the next unit of work would not end by then, or at the
    deadline. A child still running when this process is interrupted is stopped too."""
    try:
        interrupted = _watch(child.process, resume_point, deadline, on_resume_point)
    finally:
        if child.process.is_alive():
            os.kill(child.process.pid, signal.SIGINT)
            child.process.join(STOP_WAIT_S)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
    error = None
    if child.errors.poll():  # data, or the end of the pipe
        try:
            error = child.errors.recv()
        except EOFError:
            pass
    child.errors.close()
    return Exit(child.process.exitcode, interrupted, error)


def _watch(
    process: BaseProcess,
    resume_point: Path,
    deadline: float | None,
    on_resume_point: Callable[[], None] | None,
) -> bool:
    """Until `process` ends (False) or should be stopped (True)."""

    def mark() -> tuple[int, int] | None:
        try:
            st = resume_point.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns  # atomic writes replace the file: a new inode

    last_mark, last_time = mark(), time.monotonic()
    while True:
        process.join(POLL_S)
        if process.exitcode is not None:
            return False
        now, current = time.monotonic(), mark()
        why = None
        if current != last_mark:
            # A resume point, just written. The last unit's duration (the first one's includes
            # the start-up, so it errs long) predicts the next.
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
            return True


def restart_if_unresumable(s: Stage) -> None:
    """A stage carried here without its checkpoints cannot continue where it stopped."""
    if not s.path.exists() or any(s.path.glob(s.checkpoints)):
        return
    if s.name == "search":  # resume_search needs the members' checkpoints
        print(f"[reproduce] {s.name}: no checkpoints here; starting it over", flush=True)
        shutil.rmtree(s.path)
    elif (s.path / train_run.METRICS).is_file():  # a resumed fit starts at epoch 0
        print(f"[reproduce] {s.name}: no checkpoint here; starting it over", flush=True)


def progress_printer(s: Stage) -> Callable[[], None] | None:
    """The search's progress at each round (its child prints none); the training prints a
    line per epoch itself."""
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
    """Add one process's wall time and device to stage `name` in progress.json."""
    path = out / PROGRESS
    progress = json.loads(path.read_text()) if path.is_file() else {}
    entry = progress.setdefault(name, {"wall_s": 0.0, "processes": 0, "devices": []})
    entry["wall_s"] += wall_s
    entry["processes"] += 1
    if device not in entry["devices"]:
        entry["devices"].append(device)
    write_text_atomic(path, json.dumps(progress, indent=2) + "\n")


# ---- run: the pipeline ----------------------------------------------------------------------


def run(
    carry: str | Path,
    out: str | Path,
    *,
    budget_s: float | None = None,
    stages: Sequence[str] = STAGES,
    device: str = "auto",
    dry_run: bool = False,
    export: str | Path | None = None,
) -> bool:
    """Run or continue `stages` (of STAGES, run in the pipeline's order) from the `prepare`d
    folder `carry` into `out`, within `budget_s` seconds if given, then write results.md and
    results.json (and, with `export`, the state archive and the results there). Returns
    whether every stage asked for has finished; False: run it again to continue."""
    started = time.monotonic()
    deadline = None if budget_s is None else started + budget_s - RESERVE_S
    unknown = [name for name in stages if name not in STAGES]
    if unknown:
        raise PBAError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    stages = [name for name in STAGES if name in stages]
    plan = dry_plan() if dry_run else paper_plan()
    carry, out = Path(carry), Path(out)
    data_file, reference = carry / DATA_FILE, carry / REFERENCE_FILE
    for needed in (data_file, reference):
        if not needed.is_file():
            raise PBAError(f"{needed} is missing: write the folder with "
                           f"`pba reproduce prepare --out {carry}`")
    # Fails now on a bad file or sizes, not minutes into a stage.
    data = load_dataset(f"npz:{data_file}", train_size=plan.train_size, val_size=plan.val_size)
    if (carry / STATE_FILE).is_file() and not out.exists():
        unpack_state(carry / STATE_FILE, out)
    out.mkdir(parents=True, exist_ok=True)
    label = device_label(device)
    complete = True
    try:
        for name in stages:
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
            j = job(s, plan, data_file, reference, device)
            print(f"[reproduce] {name}: {j.what}", flush=True)
            began = time.monotonic()
            try:
                ended = supervise(start(j.target, *j.args), s.path / s.resume_point, deadline,
                                  on_resume_point=progress_printer(s))
            finally:
                record_process(out, name, time.monotonic() - began, label)
            if is_done(s):
                continue
            if ended.error is not None:
                raise PBAError(f"stage {name}: {ended.error}")
            if ended.interrupted:
                complete = False
                break
            raise PBAError(f"stage {name} failed with exit status {ended.status} (its output is "
                           "above)")
    finally:
        table = write_results(out, plan, data, stages)
        if export is not None:
            export_state(out, Path(export))
    print(table)
    if complete:
        print(f"[reproduce] complete: {out / RESULTS_MD}")
    else:
        print("[reproduce] not complete: run the same command again to continue")
    return complete


def unpack_state(archive: Path, out: Path) -> None:
    """A state archive (`export_state`) into the new directory `out`, whole or not at all."""
    partial = out.with_name(f".{out.name}.unpacking")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
    except (tarfile.TarError, OSError) as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise PBAError(f"{archive} cannot be unpacked ({err}); export it again or remove "
                       "it to start afresh") from None
    partial.rename(out)
    print(f"[reproduce] unpacked {archive} into {out}", flush=True)


def export_state(out: Path, folder: Path) -> None:
    """`out` without checkpoints, as one archive, with the results beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / STATE_FILE) as tmp, tarfile.open(tmp, "w:gz") as tar:
        tar.add(out, arcname=".", filter=lambda info: None if info.name.endswith(".pt") else info)
    for name in (RESULTS_MD, RESULTS_JSON):
        write_text_atomic(folder / name, (out / name).read_text())
    print(f"[reproduce] exported {folder / STATE_FILE} "
          f"({(folder / STATE_FILE).stat().st_size / 2**20:.1f} MiB) and the results", flush=True)


# ---- the results table ----------------------------------------------------------------------


def write_results(out: Path, plan: Plan, data: DatasetSplits, stages: Sequence[str]) -> str:
    """results.json and results.md from the run directories; returns the markdown."""
    doc = results(out, plan, data, stages)
    write_text_atomic(out / RESULTS_JSON, json.dumps(doc, indent=2) + "\n")
    table = results_markdown(doc)
    write_text_atomic(out / RESULTS_MD, table)
    return table


def results(out: Path, plan: Plan, data: DatasetSplits, stages: Sequence[str]) -> dict:
    """What results.json holds: the data, the search's cost, a row per final model."""
    progress = json.loads((out / PROGRESS).read_text()) if (out / PROGRESS).is_file() else {}
    paper_error = PAPER_PBA_ERROR[(DATASET, FINAL_MODEL)]
    search_dir = out / "search"
    search = {"status": "not started", "paper_gpu_hours": PAPER_SEARCH_GPU_HOURS}
    if (search_dir / rundir.CONFIG).is_file():
        cost = search_cost(search_dir)
        config = RunDir.open(search_dir).config()["search"]
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
        result = train_run.read_result(out / name) or {}
        metrics = out / name / train_run.METRICS
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
            "epochs_done": len(metrics.read_text().splitlines()) if metrics.is_file() else 0,
            "epochs": plan.recipe.epochs,
            "status": "done" if result else "pending" if name in stages else "not selected",
        })
    return {
        "dry_run": plan.dry_run,
        "dataset": DATASET,
        "data": {"train": len(data.train), "val": len(data.val) if data.val else 0,
                 "test": len(data.test), "mean": data.mean, "std": data.std, "fill": data.fill},
        "search": search,
        "final": {"model": plan.final_model, **dataclasses.asdict(plan.recipe)},
        "rows": rows,
    }


def results_markdown(doc: dict) -> str:
    """results.md: the test errors beside the paper's, from `results`' document."""
    final, data, search = doc["final"], doc["data"], doc["search"]

    def num(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    title = f"# Reduced CIFAR-10, {final['model']}: test error (%)"
    if doc["dry_run"]:
        title += " — DRY RUN (CPU-sized; not comparable with the paper's figures)"
    search_line = f"- search ({search['status']})"
    if "config" in search:
        c = search["config"]
        search_line += (f": {c['population']} x {c['model']}, {c['epochs']} epochs, interval "
                        f"{c['interval']}, lr {c['lr']}, wd {c['weight_decay']}; "
                        f"{search['summary']}; {search['gpu_hours']:.2f} GPU-hours")
    table = markdown_table(
        ("augmentation", "test error %", "paper %", "search GPU-h", "paper search GPU-h",
         "training time", "epochs", "device"),
        [[row["augmentation"], num(row["test_error"], ".2f"),
          num(row["paper_test_error"], ".2f"), num(row["search_gpu_hours"], ".2f"),
          num(row["paper_search_gpu_hours"], "g"),
          "—" if row["train_time_s"] is None else duration(row["train_time_s"]),
          f"{row['epochs_done']}/{row['epochs']}", ", ".join(row["devices"]) or "—"]
         for row in doc["rows"]],
    )
    lines = [
        title,
        "",
        f"- data: {doc['dataset']}, {data['train']} training images (the paper's split), "
        f"{data['val']} validation images for the search (the paper: the other 46,000), "
        f"{data['test']} test images",
        search_line + f" (paper: about {PAPER_SEARCH_GPU_HOURS:g} GPU-hours on a Titan XP)",
        f"- final models: {final['model']}, {final['epochs']} epochs, lr {final['lr']}, weight "
        f"decay {final['weight_decay']}, batch {final['batch_size']}, baseline "
        f"{final['baseline'] or 'the dataset default'}; one run each",
        "",
        table,
        "",
        "Test error of one run each (final epoch). Training time: the epochs' own time, without "
        "start-up and evaluation. '—': not run yet, or no figure in the paper's text that this "
        "project relies on.",
    ]
    return "\n".join(lines) + "\n"
