"""The whole user story in one call: search a schedule, train final models with it and with the
usual baselines on seeds the search did not use, and report whether it wins. `pba demo`.

    from pba.demo import DEMO, run_demo
    table = run_demo(DEMO, "runs/demo", reference="rcifar10_16_wrn.txt")

    DIR/demo.json            what the demo runs (DemoConfig) and the published schedule's path
    DIR/search/              the search's run directory (`pba.search.rundir`): schedule.json,
                             schedule.png, population.png, summary.md, ...
    DIR/final/ARM-seedK/     one `pba.run` directory per final model
    DIR/summary.md           the report: test errors per arm, the verdict, the search's cost

`pba report DIR` prints the same report. Every stage resumes: the search from its last round,
each final model from its last epoch; finished ones are kept. On a CPU the final models train
side by side, one per core with one torch thread each (`pba.parallel`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pba.atomic import write_text_atomic
from pba.errors import PBAError
from pba.lock import LOCK, owned
from pba.parallel import default_workers, map_parallel
from pba.report import DEMO_FILE, DEMO_SEARCH, FINAL

if TYPE_CHECKING:
    from pba.search import SearchConfig

THIS_SCHEDULE = "pba"  # the arm trained with the search's own schedule
PUBLISHED = "published"
# The arms of the comparison, in the table's order: name -> `pba train --augment` mode.
ARMS = {THIS_SCHEDULE: "pba", "baseline": "baseline", PUBLISHED: "pba",
        "trivialaugment": "trivialaugment", "none": "none"}


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: the search preset, then every arm's final models in one recipe."""

    preset: str  # the search (pba.search.PRESETS)
    model: str  # of the final models
    epochs: int
    lr: float
    weight_decay: float
    seeds: dict[str, int]  # arm -> number of final models (seeds first_seed, first_seed + 1, ...)
    first_seed: int = 1  # the search's members derive their seeds from its seed 0

    def __post_init__(self) -> None:
        unknown = set(self.seeds) - set(ARMS)
        if unknown:
            raise PBAError(f"unknown arm(s) {sorted(unknown)}; known: {', '.join(ARMS)}")
        if self.seeds.get(THIS_SCHEDULE, 0) < 1 or self.seeds.get("baseline", 0) < 1:
            raise PBAError("the demo compares its schedule with the baseline: both need seeds")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> DemoConfig:
        try:
            return cls(**doc)
        except TypeError as err:
            raise PBAError(f"not a demo config: {err}") from None


# Chosen by measurement on 2 CPU cores (README, "The main job"): 1,000 training images and 100
# epochs, where augmentation pays off (the model overfits) and a final model trains in about a
# minute. The final models are the search's model trained in the search's regime.
DEMO = DemoConfig(preset="quick", model="wrn_10_1", epochs=100, lr=0.1, weight_decay=5e-4,
                  seeds={THIS_SCHEDULE: 3, "baseline": 3, PUBLISHED: 2, "trivialaugment": 1,
                         "none": 1})


@dataclass(frozen=True)
class FinalJob:
    """One final model: the arm, its seed and its `pba.run` config."""

    arm: str
    seed: int
    out: Path
    config: dict
    resume: bool  # the run directory exists: continue it


def run_demo(
    demo: DemoConfig,
    out: str | Path,
    *,
    reference: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    data_dir: str | Path | None = None,
    download: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> str:
    """Run (or continue) the demo in `out`; return its report (also DIR/summary.md).

    `reference` is a published schedule (the PBT policy log rcifar10_16_wrn.txt) for the
    'published' arm, which is left out without it. `workers` members of the search, and
    final models, train at once (default: one per CPU core on a CPU, one on a GPU).
    """
    out = Path(out)
    _check_demo_dir(out)  # before the lock creates anything
    with owned(out, "pba demo"):
        return _run_demo(demo, out, reference, device, precision, data_dir, download, workers,
                         progress)


def _run_demo(
    demo: DemoConfig, out: Path, reference: str | Path | None, device: str, precision: str,
    data_dir: str | Path | None, download: bool, workers: int | None, progress: bool,
) -> str:
    from pba import report
    from pba import run as training_run
    from pba.search import SearchConfig, rundir
    from pba.search import preset as search_preset
    from pba.search.rundir import RunDir
    from pba.search.runner import resume_search, run_search

    demo, reference = _demo_config(demo, out, reference)
    search = search_preset(demo.preset)
    search_dir = out / DEMO_SEARCH
    options = {"data_dir": data_dir, "download": download, "progress": progress,
               **({} if workers is None else {"workers": workers})}
    if not (search_dir / rundir.SCHEDULE).is_file():
        if (search_dir / rundir.CONFIG).is_file():
            _say(progress, f"pba demo 1/2: continuing the search in {search_dir}")
            resume_search(search_dir, **options)
        else:
            _say(progress, f"pba demo 1/2: searching a schedule ({search.population} x "
                           f"{search.model}, {search.epochs} epochs, {search.train_size} "
                           "training images)")
            run_search(search, search_dir, preset=demo.preset, device=device,
                       precision=precision, **options)
    doc = RunDir.open(search_dir).config()
    search = SearchConfig.from_dict(doc["search"])  # as it ran, whatever the preset is now
    data_dir = data_dir or doc.get("data_dir")
    jobs = final_jobs(demo, search, out, reference, device=device, precision=precision,
                      data_dir=data_dir)
    todo = [job for job in jobs if training_run.read_result(job.out) is None]
    if todo:
        _say(progress, f"pba demo 2/2: {len(todo)} final models ({demo.model}, {demo.epochs} "
                       f"epochs) of {len(jobs)}")
        train_finals(todo, device=device, data_dir=data_dir, download=download,
                     workers=workers, progress=progress)
    text = report.report(out)
    write_text_atomic(out / rundir.SUMMARY, text)
    return text


def final_jobs(
    demo: DemoConfig, search: SearchConfig, out: Path, reference: Path | None, *,
    device: str, precision: str, data_dir: str | Path | None,
) -> list[FinalJob]:
    """Every final model of the demo, seeds interleaved so that each arm's first seeds come
    first: a demo stopped early has the comparison's core."""
    from pba import run as training_run
    from pba.search import rundir

    schedules = {THIS_SCHEDULE: out / DEMO_SEARCH / rundir.SCHEDULE, PUBLISHED: reference}
    jobs = []
    for k in range(max(demo.seeds.values())):
        for arm, mode in ARMS.items():
            if k >= demo.seeds.get(arm, 0) or (arm == PUBLISHED and reference is None):
                continue
            seed = demo.first_seed + k
            run_out = out / FINAL / f"{arm}-seed{seed}"
            resume = (run_out / training_run.CONFIG).is_file()
            if resume:
                config = training_run.resumed_config(run_out)
            else:
                given = {"dataset": search.dataset, "model": demo.model, "augment": mode,
                         "seed": seed, "train_size": search.train_size, "val_size": 0,
                         "epochs": demo.epochs, "lr": demo.lr,
                         "weight_decay": demo.weight_decay, "batch_size": search.batch_size,
                         "baseline": search.baseline, "cutout_size": search.cutout_size,
                         "precision": precision, "ops": search.ops}
                if mode == "pba":
                    # A PBT policy log's length is taken to be the paper's search's.
                    given["schedule"] = schedules[arm]
                config = training_run.new_config(given, device=device, data_dir=data_dir)
            jobs.append(FinalJob(arm, seed, run_out, config, resume))
    return jobs


def train_finals(
    jobs: list[FinalJob], *, device: str, data_dir: str | Path | None, download: bool,
    workers: int | None, progress: bool,
) -> None:
    """Train (or resume) `jobs`, `workers` at once (`pba.parallel`; default: one per CPU
    core, one on a GPU), under one progress bar. They share one dataset and recipe shape."""
    import threading

    from tqdm import tqdm

    from pba import run as training_run
    from pba.data import load_dataset
    from pba.device import resolve_device

    first = jobs[0].config
    data = load_dataset(first["dataset"], data_dir or first["data_dir"],
                        train_size=first["train_size"], val_size=first["val_size"],
                        download=download)
    workers = workers or default_workers(len(jobs), resolve_device(device))
    bar = tqdm(total=sum(_images(job, job.config["epochs"]) for job in jobs),
               initial=sum(_images(job, _epochs_done(job)) for job in jobs), unit="img",
               unit_scale=True, dynamic_ncols=True, disable=not progress,
               desc=f"final models 0/{len(jobs)}")
    lock = threading.Lock()
    done = 0

    def on_images(images: int) -> None:
        with lock:
            bar.update(images)

    def train(job: FinalJob) -> None:
        nonlocal done
        result = training_run.fit(job.config, job.out, resume=job.resume, device=device,
                                  data=data, progress=False, on_images=on_images)
        with lock:
            done += 1
            bar.set_description(f"final models {done}/{len(jobs)}")
            if progress:
                bar.write(f"{job.arm} seed {job.seed}: test error {result['test_error']:.2f}% "
                          f"({result['train_time_s']:.0f} s)")

    with bar:
        map_parallel(train, jobs, workers)


def _demo_config(
    demo: DemoConfig, out: Path, reference: str | Path | None
) -> tuple[DemoConfig, Path | None]:
    """The demo in `out` and its published schedule: those it started with, or `demo` and
    `reference` for a new directory."""
    _check_demo_dir(out)
    path = out / DEMO_FILE
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
            stored = DemoConfig.from_dict(doc["demo"]), doc["reference"]
        except (ValueError, KeyError, TypeError):
            raise PBAError(f"{path} is not a pba demo record (changed by hand?)") from None
        return stored[0], None if stored[1] is None else Path(stored[1])
    if reference is not None:
        reference = Path(reference).resolve()
        if not reference.is_file():
            raise PBAError(f"no published schedule at {reference}")
    write_text_atomic(path, json.dumps({"demo": demo.to_dict(), "reference": None if
                                        reference is None else str(reference)}, indent=2) + "\n")
    return demo, reference


def _check_demo_dir(out: Path) -> None:
    """`out` must be a demo directory, or new (empty, or holding only a lock)."""
    if (out / DEMO_FILE).is_file() or not out.exists():
        return
    if not out.is_dir() or any(p.name != LOCK for p in out.iterdir()):
        raise PBAError(f"{out} exists and holds no demo; choose another --out")


def _images(job: FinalJob, epochs: int) -> int:
    """Training images of `epochs` of the job."""
    from pba.train import images_per_epoch

    return epochs * images_per_epoch(job.config["train_size"], job.config["batch_size"])


def _epochs_done(job: FinalJob) -> int:
    """Epochs a resumed job will not train again (metrics.jsonl has one line per epoch)."""
    from pba import run as training_run

    path = job.out / training_run.METRICS
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, flush=True)
