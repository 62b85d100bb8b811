"""Final models: models trained from scratch, one augmentation each (an arm: a searched schedule,
a published one, a baseline, torchvision's), to compare the augmentations. The demo and
`pba reproduce` describe them alike: what every arm shares (`FinalSettings`) and an `Arm` give
one final model's `pba.runs.training_run` settings, and `final_job` the job that trains it or
continues it.
They run the jobs their own way: the demo trains several small models at once on threads
(`train_finals`), `pba reproduce` each large one in a process of its own
(`pba.reproduce.stages`).

    settings = FinalSettings("reduced_cifar10", "wrn_10_2", epochs=64, lr=0.1,
                             weight_decay=5e-4, batch_size=128)
    arm = Arm("pba", schedule="runs/quick/schedule.json")
    job = final_job("pba", 1, Path("runs/final/pba-seed1"), settings, arm)
    train_finals([job], options=RunOptions(device="cpu"))
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from pba.core.device import resolve_device
from pba.core.options import DEFAULTS, RunOptions
from pba.core.parallel import default_workers, map_parallel
from pba.core.timing import LOADING, WAITING, Stopwatch, TimeBreakdown
from pba.data import load_dataset
from pba.reporting.progress import loading_bar
from pba.runs import training_run
from pba.runs.training_config import TrainConfig
from pba.training.loop import images_per_epoch


@dataclass(frozen=True)
class Arm:
    """One augmentation of a comparison: its `pba train --augment` mode, and the schedule of a
    'pba' arm."""

    augment: str
    schedule: str | Path | None = None
    schedule_epochs: int | None = None  # a PBT policy log's search length; None: the paper's


@dataclass(frozen=True)
class FinalSettings:
    """What the final models of every arm share: the data, the model and its training. A
    setting left None is not given: `pba.runs.training_run.new_config` fills in its default."""

    dataset: str
    model: str
    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    val_size: int | None = None
    baseline: str | None = None
    train_size: int | None = None
    cutout_size: int | None = None
    precision: str | None = None
    ops: str | None = None
    image_size: int | None = None

    def given(self, arm: Arm, seed: int | None = None) -> dict:
        """The settings `pba.runs.training_run.new_config` is given for the final model of `arm` on
        `seed`
        (None: the run's default seed), the common ones first."""
        settings = {"dataset": self.dataset, "model": self.model, "augment": arm.augment,
                    "epochs": self.epochs, "lr": self.lr, "weight_decay": self.weight_decay,
                    "batch_size": self.batch_size, "val_size": self.val_size,
                    "baseline": self.baseline, "train_size": self.train_size,
                    "schedule": arm.schedule, "schedule_epochs": arm.schedule_epochs,
                    "seed": seed, "cutout_size": self.cutout_size, "precision": self.precision,
                    "ops": self.ops, "image_size": self.image_size}
        return {key: value for key, value in settings.items() if value is not None}


@dataclass(frozen=True)
class FinalJob:
    """One final model to train: its arm, its seed, its `pba.runs.training_run` directory and the
    settings
    of a new run; `given` None continues the run in `out` as it was."""

    arm: str
    seed: int | None
    out: Path
    given: dict | None

    @property
    def resume(self) -> bool:
        return self.given is None

    def config(self, *, device: str, data_dir: str | Path | None = None) -> TrainConfig:
        """The run's `pba.runs.training_run` config (a new one's resolved for `device` and
        `data_dir`)."""
        if self.given is None:
            return training_run.resumed_config(self.out)
        return training_run.new_config(self.given, device=device, data_dir=data_dir)


def final_job(
    arm_name: str, seed: int | None, out: Path, settings: FinalSettings, arm: Arm
) -> FinalJob:
    """The job of `arm`'s final model on `seed` in `out`: a run there continues."""
    if (out / training_run.CONFIG).is_file():
        return FinalJob(arm_name, seed, out, None)
    return FinalJob(arm_name, seed, out, settings.given(arm, seed))


def train_finals(
    jobs: list[FinalJob], *, options: RunOptions = DEFAULTS,
    watch: Stopwatch | None = None,
) -> None:
    """Train (or resume) `jobs`, `options.workers` at once (`pba.core.parallel`; default: one per
    CPU core, one on a GPU), on `options.device`, under one progress bar. They share one
    dataset and recipe shape. `watch` counts the stage's time: the loading, each model's
    phases as wall time (its seconds over the workers), and the workers' waiting for the last
    models."""
    watch = watch or Stopwatch()
    options = options.starting()
    device, progress = options.device, options.progress
    configs = [job.config(device=device, data_dir=options.data_dir) for job in jobs]
    first = configs[0]
    with watch.phase(LOADING):
        data = load_dataset(first.dataset, options.data_dir or first.data_dir,
                            train_size=first.train_size, val_size=first.val_size,
                            download=options.download, image_size=first.image_size,
                            progress=loading_bar(progress))
    workers = options.workers or default_workers(len(jobs), resolve_device(device))
    workers = max(1, min(workers, len(jobs)))
    models = TimeBreakdown()
    bar = tqdm(total=sum(_images(config, config.recipe.epochs) for config in configs),
               initial=sum(_images(config, _epochs_done(job))
                           for job, config in zip(jobs, configs, strict=True)),
               unit="img", unit_scale=True, dynamic_ncols=True, disable=not progress,
               desc=f"final models 0/{len(jobs)}")
    lock = threading.Lock()
    done = 0

    def on_images(images: int) -> None:
        with lock:
            bar.update(images)

    def train(job_config: tuple[FinalJob, TrainConfig]) -> None:
        nonlocal done, models
        job, config = job_config
        result = training_run.fit(config, job.out, options=options.replace(progress=False),
                                  resume=job.resume, data=data, on_images=on_images)
        with lock:
            models += TimeBreakdown.from_dict(result["time"])
            done += 1
            bar.set_description(f"final models {done}/{len(jobs)}")
            if progress:
                bar.write(f"{job.arm} seed {job.seed}: test error {result['test_error']:.2f}% "
                          f"({result['train_time_s']:.0f} s)")

    begun = watch.breakdown().wall_s
    with bar:
        map_parallel(train, list(zip(jobs, configs, strict=True)), workers)
    side_by_side = models.scaled(1 / workers)
    watch.add_breakdown(side_by_side)
    # What the models' own wall time leaves of the stage's: workers idle at the end.
    watch.add(WAITING, max(0.0, watch.breakdown().wall_s - begun - side_by_side.wall_s))


def _images(config: TrainConfig, epochs: int) -> int:
    """Training images of `epochs` of the run `config`."""
    return epochs * images_per_epoch(config.train_size, config.recipe.batch_size)


def _epochs_done(job: FinalJob) -> int:
    """Epochs a resumed job will not train again (metrics.jsonl has one line per epoch)."""
    path = job.out / training_run.METRICS
    return len(path.read_text().splitlines()) if path.is_file() else 0
