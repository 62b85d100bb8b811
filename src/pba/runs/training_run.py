"""A training run directory: one model trained with one augmentation, resumably. `pba train` and
the demo's final models call this.

    config = new_config({"dataset": "reduced_cifar10", "model": "wrn_28_10",  # training_config
                         "augment": "pba", "schedule": "runs/quick/schedule.json"})
    result = fit(config, "runs/final")            # and after a kill: fit(config, out, resume=True)
    print(result["test_error"])

DIR holds everything the run needs and produces:

    config.json     the resolved settings (given values plus the paper's defaults for dataset and
                    model, and the precision it trains in)
    schedule.*      a copy of the schedule file (augment 'pba'), so that a resume needs nothing else
    checkpoint.pt   model, optimiser, epoch and random state after the last finished epoch
    metrics.jsonl   one line per epoch: epoch, train_loss, train_acc, lr (of the epoch's last
                    step), grad_norm (mean, before clipping), nonfinite_steps, images_per_s,
                    time_s; test_acc/test_loss every eval_every epochs and after the last epoch,
                    with val_acc/val_loss there too when the dataset has a validation split
    result.json     the final test error (%) and accuracy, and where the wall time of the
                    process that finished the run went ("time": `pba.core.timing.TimeBreakdown`)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pba.core.device import resolve_device
from pba.core.directory import CONFIG, RunDirectory
from pba.core.errors import UserError
from pba.core.options import DEFAULTS, RunOptions
from pba.core.precision import resolve_precision
from pba.core.timing import (
    BASELINE_CHECK,
    CHECKPOINTS,
    EVALUATION,
    LOADING,
    REPORTING,
    TRAINING,
    Stopwatch,
)
from pba.ops.registry import load_op_set
from pba.runs.training_config import TrainConfig, load_run_schedule, new_config, resumed_config
from pba.training import loop as training
from pba.training.augment import make_augment
from pba.training.baseline_check import settle

if TYPE_CHECKING:
    import torch

    from pba.augmentation.schedule import Schedule
    from pba.data import DatasetSplits
    from pba.training.augment import Augment
    from pba.training.loop import TrainState
    from pba.training.recipes import Recipe

__all__ = ["CHECKPOINT", "CONFIG", "METRICS", "RESULT", "TrainConfig", "TrainingDir", "epoch_line",
           "fit", "new_config", "read_result", "resumed_config"]

CHECKPOINT, METRICS, RESULT = "checkpoint.pt", "metrics.jsonl", "result.json"


class TrainingDir(RunDirectory):
    kind = "training run"

    def resume_hint(self) -> str:
        return f"pba train --resume {self.path}"

    def kept(self) -> str:
        return "the epochs before it are kept (checkpoint.pt)"

    def is_finished(self) -> bool:
        return (self.path / RESULT).is_file()



@dataclass
class _Run:
    """What `_set_up` prepares for the loop: the settled config, where it trains, with what."""

    config: TrainConfig
    recipe: Recipe
    device: torch.device
    data: DatasetSplits
    augment: Augment
    state: TrainState
    schedule: Schedule | None
    schedule_copy: Path | None


def fit(
    config: TrainConfig,
    out: str | Path,
    *,
    options: RunOptions = DEFAULTS,
    resume: bool = False,
    data: DatasetSplits | None = None,
    on_images: Callable[[int], None] | None = None,
    tensorboard: bool = False,
    compile: bool = False,
) -> dict:
    """Train the run `config` (from `new_config`, or `resumed_config` with `resume`) in `out`
    and return its result.json. A resumed run goes on from its last checkpoint: on the CPU the
    result equals an uninterrupted run's bit for bit. `options` say where it trains and finds
    its data (`pba.core.options`; the precision is the config's, part of the run, and one model
    trains, so `options.precision` and `options.workers` do not apply); `options.progress`
    shows a bar and a line per epoch. `data`, when given, is the config's dataset already
    loaded (runs that share it load it once); `on_images(n)` is called after every step with
    its n images. `tensorboard` also logs every epoch to DIR/tensorboard
    (`pba.reporting.tensorboard`). `compile` hands the model to `torch.compile` (how this
    machine trains, not part of the run; off unless asked for: its compilation costs more than
    it gains on a small CPU, docs/benchmarks.md, "Training steps on the CPU: layout and
    torch.compile")."""
    from pba.reporting.tensorboard import require_tensorboard

    if tensorboard:
        require_tensorboard()
    watch = Stopwatch()
    out = Path(out)
    if not resume:
        for name in (CONFIG, CHECKPOINT):
            if (out / name).exists():
                raise UserError(f"{out} already holds a run ({name}); continue it with --resume "
                               "or choose another --out")
    options = options.starting()
    job = _set_up(config, out, resume=resume, options=options, data=data, watch=watch)
    if compile:
        job.state.model.compile()  # in place: the state dict, and so the checkpoints, stay
    # Written only by this process from here on (checked after the settings, so that a bad
    # setting leaves nothing behind).
    run = TrainingDir(out)
    with run.owned("pba train"):
        history: list[dict] = []
        if resume and (out / CHECKPOINT).exists():
            with watch.phase(LOADING):
                history = training.load_checkpoint(out / CHECKPOINT, job.state)["history"]
        elif not resume:
            out.mkdir(parents=True, exist_ok=True)
            if job.schedule_copy is not None:
                run.write_bytes(job.schedule_copy.name, Path(job.config.schedule).read_bytes())
            run.write_json(CONFIG, job.config.to_dict())
        _train(job, run, history, watch, progress=options.progress, on_images=on_images,
               tensorboard=tensorboard)
        result = _result(job, history, watch)
        run.write_json(RESULT, result)
        return result


def _set_up(
    config: TrainConfig, out: Path, *, resume: bool, options: RunOptions,
    data: DatasetSplits | None, watch: Stopwatch,
) -> _Run:
    """The device, the schedule, the data, the baseline settled on it (recorded in the
    config), the augmentation and the model: everything the loop needs, nothing written."""
    import torch

    from pba.data import load_dataset
    from pba.reporting.progress import loading_bar

    recipe = config.recipe
    resolved = resolve_device(options.device)
    progress = options.progress
    resolve_precision(recipe.precision, resolved)  # refuses bf16 where it cannot run
    if resolved.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once

    schedule = schedule_copy = None
    with watch.phase(LOADING):
        if config.augment == "pba":
            schedule_copy = out / ("schedule" + Path(config.schedule).suffix)
            schedule = load_run_schedule(schedule_copy if resume else Path(config.schedule),
                                         config.schedule_epochs, config.dataset,
                                         load_op_set(config.ops))
        if data is None:
            data = load_dataset(config.dataset, options.data_dir or config.data_dir,
                                train_size=config.train_size, val_size=config.val_size,
                                download=options.download, image_size=config.image_size,
                                skip_unreadable=config.skip_unreadable,
                                progress=loading_bar(progress))
    if not resume and config.augment != "none":
        # Settled on the data (a check on image folders), then recorded in config.json.
        with watch.phase(BASELINE_CHECK):
            baseline, check = settle(recipe.baseline, recipe.cutout_size, data,
                                     model=config.model, recipe=recipe, seed=config.seed,
                                     device=resolved, progress=progress)
        config = config.replace(baseline=str(baseline), cutout_size=baseline.cutout_size,
                                baseline_check=None if check is None else check.to_dict())
        recipe = config.recipe
    with watch.phase(LOADING):
        augment = make_augment(config.augment, data, recipe, schedule=schedule,
                               ops=load_op_set(config.ops))
        state = training.init_state(config.model, data.num_classes, recipe, seed=config.seed,
                                    device=resolved,
                                    image_size=tuple(data.train.images.shape[-2:]))
    return _Run(config, recipe, resolved, data, augment, state, schedule, schedule_copy)


def _train(
    job: _Run, run: TrainingDir, history: list[dict], watch: Stopwatch, *, progress: bool,
    on_images: Callable[[int], None] | None, tensorboard: bool,
) -> None:
    """The epochs left, each followed by its checkpoint and metrics line (`history` grows)."""
    from tqdm import tqdm

    from pba.reporting.tensorboard import TensorBoardLog

    config, recipe, data, state = job.config, job.recipe, job.data, job.state
    with contextlib.ExitStack() as stack:
        # Upload the uint8 training set once; `train` then finds it on the model's device.
        train_set = data.train.to(job.device)
        per_epoch = training.images_per_epoch(len(train_set), recipe.batch_size)
        bar = stack.enter_context(tqdm(
            total=recipe.epochs * per_epoch, initial=state.epoch * per_epoch, unit="img",
            unit_scale=True, desc="pba train", disable=None if progress else True))
        board = stack.enter_context(TensorBoardLog(run.path)) if tensorboard else None
        policies = None if job.schedule is None else job.schedule.stretch(recipe.epochs).policies

        def images_done(n: int) -> None:
            bar.update(n)
            if on_images is not None:
                on_images(n)

        def evaluations(epoch: int) -> dict:
            final = epoch == recipe.epochs
            splits = {}
            if final or (config.eval_every and epoch % config.eval_every == 0):
                splits["test"] = data.test
            if final and data.val is not None:
                splits["val"] = data.val
            return splits

        for metrics in training.epoch_by_epoch(state, train_set, job.augment, recipe,
                                               mean=data.mean, std=data.std,
                                               evaluations=evaluations, progress=images_done):
            watch.add(TRAINING, metrics["time_s"])
            watch.add(EVALUATION, metrics["eval_time_s"])
            history.append(metrics)
            with watch.phase(CHECKPOINTS), run.writing(f"epoch {metrics['epoch']}"):
                training.save_checkpoint(run.path / CHECKPOINT, state, {"history": history})
                run.write_text(METRICS, "".join(json.dumps(m) + "\n" for m in history))
            with watch.phase(REPORTING):
                bar.set_postfix(loss=f"{metrics['train_loss']:.3f}",
                                acc=f"{metrics['train_acc']:.3f}")
                if board is not None:
                    board.train_epoch(metrics, None if policies is None else
                                      policies[state.epoch - 1].strength)
                if progress:
                    bar.write(epoch_line(metrics, recipe.epochs))


def _result(job: _Run, history: list[dict], watch: Stopwatch) -> dict:
    """result.json's document of a finished run."""
    last = history[-1]
    return {
        "test_error": 100 * (1 - last["test_acc"]),
        "test_acc": last["test_acc"],
        "test_loss": last["test_loss"],
        **({"val_acc": last["val_acc"]} if "val_acc" in last else {}),
        "epochs": job.recipe.epochs,
        "precision": job.recipe.precision,
        "skipped_unreadable": len(job.data.skipped),
        "train_images": len(job.data.train),
        "test_images": len(job.data.test),
        "train_time_s": sum(m["time_s"] for m in history),
        "time": watch.breakdown().to_dict(),
    }


def read_result(out: str | Path) -> dict | None:
    """result.json of the run in `out`, None while it has not finished."""
    path = Path(out) / RESULT
    return json.loads(path.read_text()) if path.is_file() else None


def epoch_line(metrics: dict, epochs: int) -> str:
    line = (f"epoch {metrics['epoch']}/{epochs} loss {metrics['train_loss']:.4f} "
            f"acc {metrics['train_acc']:.4f} lr {metrics['lr']:.5f} "
            f"{metrics['images_per_s']:.0f} img/s")
    for split in ("test", "val"):
        if f"{split}_acc" in metrics:
            line += f" {split}_acc {metrics[f'{split}_acc']:.4f}"
    return line
