"""A training run directory: one model trained with one augmentation, resumably. `pba train` and
the demo's final models call this.

    config = new_config({"dataset": "reduced_cifar10", "model": "wrn_28_10",
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
  result.json     the final test error (%) and accuracy
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pba import train as training
from pba.atomic import write_text_atomic
from pba.augment import AUGMENT_MODES, make_augment
from pba.baseline import cutout_at, legacy
from pba.baseline_check import settle
from pba.data.datasets import default_baseline
from pba.device import resolve_device
from pba.errors import PBAError
from pba.lock import owned
from pba.ops.registry import OpSet, load_op_set
from pba.precision import resolve_precision
from pba.recipes import Recipe, default_recipe

if TYPE_CHECKING:
    from pba.data import DatasetSplits
    from pba.schedule import Schedule

CONFIG, CHECKPOINT, METRICS, RESULT = "config.json", "checkpoint.pt", "metrics.jsonl", "result.json"
# The settings that define a run: a resumed run must not change them.
RUN_KEYS = (
    "dataset", "model", "augment", "schedule", "schedule_epochs", "seed", "train_size",
    "val_size", "eval_every", "epochs", "lr", "weight_decay", "batch_size", "baseline",
    "cutout_size", "precision", "lr_schedule", "ops", "image_size",
)
# What runs written before a setting existed trained with.
ADDED_KEYS = {"precision": "fp32", "lr_schedule": "cosine", "ops": None, "image_size": None}
# The model of the paper's searches; its default epochs are a search's length (200 CIFAR, 160 SVHN).
SEARCH_MODEL = "wrn_40_2"


def new_config(
    given: dict, *, device: str = "auto", data_dir: str | Path | None = None,
    skip_unreadable: bool = False,
) -> dict:
    """The full settings of a new run from those `given` (RUN_KEYS; dataset and model needed):
    the paper's recipe for the dataset and model fills the rest, and `precision` ('auto' by
    default) is resolved for `device`. Where the data lives and whether an image folder's
    unreadable files are left out are recorded too, for a resume."""
    if "dataset" not in given or "model" not in given:
        raise PBAError("--dataset and --model are required (or --resume to continue a run)")
    augment = given.get("augment", "pba" if given.get("schedule") else "baseline")
    if augment not in AUGMENT_MODES:
        raise PBAError(f"unknown --augment {augment!r}; known: "
                       f"{', '.join(AUGMENT_MODES)}")
    if augment == "pba" and not given.get("schedule"):
        raise PBAError("--augment pba needs --schedule FILE")
    if augment != "pba" and given.get("schedule"):
        raise PBAError(f"--schedule is used by --augment pba only, not {augment!r}")
    recipe = default_recipe(given["dataset"], given["model"])
    defaults = {f.name: getattr(recipe, f.name) for f in fields(recipe)}
    defaults |= {"augment": augment, "schedule": None, "schedule_epochs": None, "seed": 0,
                 "train_size": None, "val_size": None, "eval_every": 0, "ops": None,
                 "image_size": None}
    config = defaults | given
    ops = load_op_set(config["ops"])  # an unknown module fails now, before anything is written
    if config["schedule"] is not None:
        config["schedule"] = str(Path(config["schedule"]).resolve())
        if given.get("baseline") is None:
            # A schedule is searched on top of a baseline: train with that one unless told not
            # to (the dataset's default may be 'auto', which needs a validation split).
            searched = _load_schedule(Path(config["schedule"]), config, ops)
            if searched.baseline is not None:
                config["baseline"] = searched.baseline
                if given.get("cutout_size") is None:
                    config["cutout_size"] = _cutout_at(searched, config["image_size"])
    config["precision"] = resolve_precision(given.get("precision", "auto"),
                                            resolve_device(device))
    return config | {"data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
                     "skip_unreadable": skip_unreadable}


def resumed_config(out: str | Path, given: dict | None = None) -> dict:
    """The settings of the run in `out`; `given` settings must equal them."""
    path = Path(out) / CONFIG
    if not path.is_file():
        raise PBAError(f"nothing to resume: {path} does not exist")
    try:
        config = json.loads(path.read_text())
        missing = [key for key in RUN_KEYS if key not in config]
    except (json.JSONDecodeError, TypeError):
        raise PBAError(f"{path} is not a pba train config") from None
    config |= {key: ADDED_KEYS[key] for key in missing if key in ADDED_KEYS}
    if "cutout" in config and "baseline" in missing:  # written before --baseline
        config["baseline"] = legacy(default_baseline(config["dataset"]), config.pop("cutout"))
        config["cutout_size"] = None
        missing = [key for key in missing if key not in ("baseline", "cutout_size")]
    missing = [key for key in missing if key not in ADDED_KEYS]
    if missing:
        raise PBAError(f"{path} is not a pba train config (no {', '.join(missing)})")
    for key, value in (given or {}).items():
        if key == "schedule" and value is not None:
            value = str(Path(value).resolve())
        if value != config[key]:
            raise PBAError(f"--{key.replace('_', '-')} {value} differs from the run in "
                           f"{out} ({config[key]}); a resumed run keeps its settings")
    return config


def fit(
    config: dict,
    out: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    data_dir: str | Path | None = None,
    download: bool = False,
    data: DatasetSplits | None = None,
    progress: bool = True,
    on_images: Callable[[int], None] | None = None,
    tensorboard: bool = False,
    compile: bool = False,
) -> dict:
    """Train the run `config` (from `new_config`, or `resumed_config` with `resume`) in `out`
    and return its result.json. A resumed run goes on from its last checkpoint: on the CPU the
    result equals an uninterrupted run's bit for bit. `data`, when given, is the config's
    dataset already loaded (runs that share it load it once). `progress` shows a bar and a line
    per epoch; `on_images(n)` is called after every step with its n images. `tensorboard`
    also logs every epoch to DIR/tensorboard (`pba.tensorboard`). `compile` hands the model to
    `torch.compile` (how this machine trains, not part of the run: on a 2-core CPU it cost
    about a minute of compilation and gave no speed-up, so it is off unless asked for)."""
    import torch
    from tqdm import tqdm

    from pba.data import load_dataset
    from pba.progress import loading_bar
    from pba.tensorboard import TensorBoardLog, require_tensorboard

    if tensorboard:
        require_tensorboard()

    out = Path(out)
    if not resume:
        for name in (CONFIG, CHECKPOINT):
            if (out / name).exists():
                raise PBAError(f"{out} already holds a run ({name}); continue it with --resume "
                               "or choose another --out")
    recipe = Recipe(**{f.name: config[f.name] for f in fields(Recipe)})
    resolved = resolve_device(device)
    resolve_precision(recipe.precision, resolved)  # refuses bf16 where it cannot run
    if resolved.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once

    schedule = schedule_copy = None
    if config["augment"] == "pba":
        schedule_copy = out / ("schedule" + Path(config["schedule"]).suffix)
        schedule = _load_schedule(schedule_copy if resume else Path(config["schedule"]), config,
                                  load_op_set(config["ops"]))
    if data is None:
        data = load_dataset(config["dataset"], data_dir or config["data_dir"],
                            train_size=config["train_size"], val_size=config["val_size"],
                            download=download, image_size=config["image_size"],
                            skip_unreadable=config.get("skip_unreadable", False),
                            progress=loading_bar(progress))
    if not resume and config["augment"] != "none":
        # Settled on the data (a check on image folders), then recorded in config.json.
        baseline, check = settle(config["baseline"], config["cutout_size"], data,
                                 model=config["model"], recipe=recipe, seed=config["seed"],
                                 device=resolved, progress=progress)
        config = config | {"baseline": str(baseline), "cutout_size": baseline.cutout_size,
                           "baseline_check": None if check is None else check.to_dict()}
        recipe = replace(recipe, baseline=config["baseline"], cutout_size=config["cutout_size"])
    augment = make_augment(config["augment"], data, recipe, schedule=schedule)
    state = training.init_state(config["model"], data.num_classes, recipe, seed=config["seed"],
                                device=resolved,
                                image_size=tuple(data.train.images.shape[-2:]))
    if compile:
        state.model.compile()  # in place: the state dict, and so the checkpoints, stay as they are
    # Written only by this process from here on (checked after the settings, so that a bad
    # setting leaves nothing behind).
    with owned(out, "pba train"), contextlib.ExitStack() as stack:
        history: list[dict] = []
        if resume and (out / CHECKPOINT).exists():
            history = training.load_checkpoint(out / CHECKPOINT, state)["history"]
        elif not resume:
            out.mkdir(parents=True, exist_ok=True)
            if schedule is not None:
                shutil.copyfile(config["schedule"], schedule_copy)
            write_text_atomic(out / CONFIG, json.dumps(config, indent=2) + "\n")

        # Upload the uint8 training set once; `train` then finds it on the model's device.
        train_set = data.train.to(resolved)
        per_epoch = training.images_per_epoch(len(train_set), recipe.batch_size)
        bar = tqdm(total=recipe.epochs * per_epoch, initial=state.epoch * per_epoch, unit="img",
                   unit_scale=True, desc="pba train", disable=None if progress else True)
        board = stack.enter_context(TensorBoardLog(out)) if tensorboard else None
        policies = None if schedule is None else schedule.stretch(recipe.epochs).policies

        def images_done(n: int) -> None:
            bar.update(n)
            if on_images is not None:
                on_images(n)

        def evaluations(epoch: int) -> dict:
            final = epoch == recipe.epochs
            splits = {}
            if final or (config["eval_every"] and epoch % config["eval_every"] == 0):
                splits["test"] = data.test
            if final and data.val is not None:
                splits["val"] = data.val
            return splits

        for metrics in training.epoch_by_epoch(state, train_set, augment, recipe,
                                               mean=data.mean, std=data.std,
                                               evaluations=evaluations, progress=images_done):
            history.append(metrics)
            training.save_checkpoint(out / CHECKPOINT, state, {"history": history})
            write_text_atomic(out / METRICS, "".join(json.dumps(m) + "\n" for m in history))
            bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", acc=f"{metrics['train_acc']:.3f}")
            if board is not None:
                board.train_epoch(metrics, None if policies is None else
                                  policies[state.epoch - 1].strength)
            if progress:
                bar.write(epoch_line(metrics, recipe.epochs))
        bar.close()

        last = history[-1]
        result = {
            "test_error": 100 * (1 - last["test_acc"]),
            "test_acc": last["test_acc"],
            "test_loss": last["test_loss"],
            **({"val_acc": last["val_acc"]} if "val_acc" in last else {}),
            "epochs": recipe.epochs,
            "precision": recipe.precision,
            "skipped_unreadable": len(data.skipped),
            "train_images": len(data.train),
            "test_images": len(data.test),
            "train_time_s": sum(m["time_s"] for m in history),
        }
        write_text_atomic(out / RESULT, json.dumps(result, indent=2) + "\n")
        return result


def read_result(out: str | Path) -> dict | None:
    """result.json of the run in `out`, None while it has not finished."""
    path = Path(out) / RESULT
    return json.loads(path.read_text()) if path.is_file() else None


def _load_schedule(path: Path, config: dict, ops: OpSet):
    from pba.schedule import is_pbt_log, load_schedule

    search_epochs = config["schedule_epochs"]
    if search_epochs is None and path.is_file() and is_pbt_log(path.read_text(errors="replace")):
        # A PBT policy log does not record its search's length: assume the paper's search.
        search_epochs = default_recipe(config["dataset"], SEARCH_MODEL).epochs
    return load_schedule(path, search_epochs, ops)


def _cutout_at(searched: Schedule, image_size: int | None) -> int | None:
    """The Cutout side of the baseline a schedule was searched on, in pixels at the size the
    run trains at (search small, train large: the square keeps its share of the side)."""
    if searched.cutout_size is None or image_size is None or searched.image_size is None:
        return searched.cutout_size
    return cutout_at(searched.cutout_size, min(searched.image_size), image_size)


def epoch_line(metrics: dict, epochs: int) -> str:
    line = (f"epoch {metrics['epoch']}/{epochs} loss {metrics['train_loss']:.4f} "
            f"acc {metrics['train_acc']:.4f} lr {metrics['lr']:.5f} "
            f"{metrics['images_per_s']:.0f} img/s")
    for split in ("test", "val"):
        if f"{split}_acc" in metrics:
            line += f" {split}_acc {metrics[f'{split}_acc']:.4f}"
    return line
