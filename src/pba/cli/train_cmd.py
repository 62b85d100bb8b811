"""`pba train`: train one model with a PBA schedule (or another augmentation), resumably.

A run directory holds everything the run needs and produces:
  config.json     the resolved settings (flags plus the paper's defaults for dataset and model)
  schedule.*      a copy of the schedule file (--augment pba), so that --resume needs nothing else
  checkpoint.pt   model, optimiser, epoch and random state after the last finished epoch
  metrics.jsonl   one line per epoch: epoch, train_loss, train_acc, lr (of the epoch's last
                  step), grad_norm (mean, before clipping), nonfinite_steps, images_per_s,
                  time_s; test_acc/test_loss every --eval-every epochs and after the last epoch,
                  with val_acc/val_loss there too when the dataset has a validation split
  result.json     the final test error (%) and accuracy
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import fields
from pathlib import Path

from pba.atomic import write_text_atomic
from pba.errors import PBAError

CONFIG, CHECKPOINT, METRICS, RESULT = "config.json", "checkpoint.pt", "metrics.jsonl", "result.json"
# The settings that define a run: a resumed run must not change them.
RUN_KEYS = (
    "dataset", "model", "augment", "schedule", "schedule_epochs", "seed", "train_size",
    "val_size", "eval_every", "epochs", "lr", "weight_decay", "batch_size", "cutout",
)
# The model of the paper's searches; its default epochs are a search's length (200 CIFAR, 160 SVHN).
SEARCH_MODEL = "wrn_40_2"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a model with a PBA schedule or a baseline augmentation",
        description="Train one model with the paper's recipe (SGD, Nesterov momentum 0.9, cosine "
        "learning rate to 0, gradient clipping at norm 5) and report its test error. The "
        "learning rate, weight decay, epochs, batch size and Cutout default to the paper's "
        "values for the dataset and model. Writes config.json, metrics.jsonl, checkpoint.pt "
        "(every epoch) and result.json into --out.",
        epilog="example: pba train --dataset reduced_cifar10 --model wrn_28_10 --augment pba "
        "--schedule rcifar10_16_wrn.txt --out runs/rc10_wrn",
    )
    p.add_argument("--dataset", metavar="NAME",
                   help="cifar10, reduced_cifar10, cifar100, reduced_cifar100, svhn, "
                   "reduced_svhn, or folder:PATH (one subfolder of images per class)")
    p.add_argument("--model", metavar="NAME",
                   help="wrn_10_1, wrn_16_1, wrn_40_2, wrn_28_10, "
                   "shake_shake_26_2x{32,96,112}d, pyramidnet_272_200, or another valid size")
    p.add_argument("--augment", metavar="MODE",
                   help="none, baseline (crop/flip and Cutout), pba (needs --schedule), "
                   "autoaugment, randaugment or trivialaugment (torchvision's, per image, then "
                   "the baseline); default: pba with --schedule, else baseline")
    p.add_argument("--schedule", metavar="FILE", type=Path,
                   help="PBA schedule: pba JSON (from `pba search`) or a Ray Tune PBT policy "
                   "log such as the published rcifar10_16_wrn.txt; stretched to --epochs")
    p.add_argument("--schedule-epochs", metavar="S", type=int,
                   help="length of the search that wrote a PBT policy log (default: the "
                   "paper's search on --dataset, 200 for CIFAR and 160 for SVHN); JSON "
                   "schedules know their length")
    p.add_argument("--epochs", metavar="E", type=int,
                   help="epochs of the whole run (default: the paper's)")
    p.add_argument("--lr", metavar="LR", type=float,
                   help="base learning rate (default: the paper's)")
    p.add_argument("--wd", metavar="WD", dest="weight_decay", type=float,
                   help="L2 weight decay (default: the paper's)")
    p.add_argument("--batch-size", metavar="N", type=int, help="default 128 (PyramidNet 64)")
    p.add_argument("--no-cutout", dest="cutout", action="store_const", const=False,
                   help="leave out Cutout (default: on, except for reduced_svhn)")
    p.add_argument("--seed", metavar="N", type=int,
                   help="seed of the weights, data order and augmentation (default 0); the "
                   "dataset's reduced split is always the paper's")
    p.add_argument("--train-size", metavar="N", type=int,
                   help="training images (default: the dataset's, e.g. 4,000 for reduced_cifar10)")
    p.add_argument("--val-size", metavar="N", type=int,
                   help="validation images, evaluated after the last epoch (default: the "
                   "dataset's, e.g. the other 46,000 for reduced_cifar10; 0 for none)")
    p.add_argument("--eval-every", metavar="N", type=int,
                   help="also evaluate the test set every N epochs (default: after the last only)")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="run directory to write")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (same results as an "
                   "uninterrupted run on the CPU); settings come from its config.json")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (default: cuda when available)")
    p.add_argument("--data-dir", metavar="DIR", type=Path,
                   help="dataset root (default: $PBA_DATA_DIR, else ./data)")
    p.add_argument("--download", action="store_true",
                   help="download the dataset into the root if it is missing")
    return p


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from pba import train as training
    from pba.data import ImageSet, load_dataset

    out: Path = args.out
    config = _resumed_config(args) if args.resume else _new_config(args)
    recipe = training.Recipe(**{f.name: config[f.name] for f in fields(training.Recipe)})
    device = str(training.resolve_device(args.device))
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once

    schedule = schedule_copy = None
    if config["augment"] == "pba":
        schedule_copy = out / ("schedule" + Path(config["schedule"]).suffix)
        schedule = _load_schedule(schedule_copy if args.resume else Path(config["schedule"]),
                                  config)
    data_dir = args.data_dir or config["data_dir"]
    data = load_dataset(config["dataset"], data_dir, train_size=config["train_size"],
                        val_size=config["val_size"], download=args.download)
    augment = training.make_augment(config["augment"], data, recipe, schedule=schedule)
    state = training.init_state(config["model"], data.num_classes, recipe, seed=config["seed"],
                                device=device)
    history: list[dict] = []
    if args.resume and (out / CHECKPOINT).exists():
        history = training.load_checkpoint(out / CHECKPOINT, state)["history"]
    elif not args.resume:
        out.mkdir(parents=True, exist_ok=True)
        if schedule is not None:
            shutil.copyfile(config["schedule"], schedule_copy)
        write_text_atomic(out / CONFIG, json.dumps(config, indent=2) + "\n")

    # Upload the uint8 training set once; `train` then finds it on the model's device.
    train_set = ImageSet(data.train.images.to(device), data.train.labels.to(device))
    per_epoch = len(train_set) // recipe.batch_size * recipe.batch_size
    bar = tqdm(total=recipe.epochs * per_epoch, initial=state.epoch * per_epoch, unit="img",
               unit_scale=True, desc="pba train", disable=None)
    norm = {"mean": data.mean, "std": data.std}
    while state.epoch < recipe.epochs:
        state, (metrics,) = training.train(state, train_set, 1, augment, recipe,
                                           progress=bar.update, **norm)
        final = state.epoch == recipe.epochs
        evals = {}
        if final or (config["eval_every"] and state.epoch % config["eval_every"] == 0):
            evals["test"] = data.test
        if final and data.val is not None:
            evals["val"] = data.val
        for split, images in evals.items():
            scores = training.evaluate(state.model, images, **norm)
            metrics |= {f"{split}_acc": scores["accuracy"], f"{split}_loss": scores["loss"]}
        history.append(metrics)
        training.save_checkpoint(out / CHECKPOINT, state, {"history": history})
        write_text_atomic(out / METRICS, "".join(json.dumps(m) + "\n" for m in history))
        bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", acc=f"{metrics['train_acc']:.3f}")
        tqdm.write(_epoch_line(metrics, recipe.epochs), file=sys.stdout)
    bar.close()

    last = history[-1]
    result = {
        "test_error": 100 * (1 - last["test_acc"]),
        "test_acc": last["test_acc"],
        "test_loss": last["test_loss"],
        **({"val_acc": last["val_acc"]} if "val_acc" in last else {}),
        "epochs": recipe.epochs,
        "train_time_s": sum(m["time_s"] for m in history),
    }
    write_text_atomic(out / RESULT, json.dumps(result, indent=2) + "\n")
    print(f"test error {result['test_error']:.2f}% ({out / RESULT})")
    return 0


def _new_config(args: argparse.Namespace) -> dict:
    from pba.train import AUGMENT_MODES, default_recipe

    for name in (CONFIG, CHECKPOINT):
        if (args.out / name).exists():
            raise PBAError(f"{args.out} already holds a run ({name}); continue it with --resume "
                           "or choose another --out")
    given = _given(args)
    if "dataset" not in given or "model" not in given:
        raise PBAError("--dataset and --model are required (or --resume to continue a run)")
    augment = given.get("augment", "pba" if "schedule" in given else "baseline")
    if augment not in AUGMENT_MODES:
        raise PBAError(f"unknown --augment {augment!r}; known: {', '.join(AUGMENT_MODES)}")
    if augment == "pba" and "schedule" not in given:
        raise PBAError("--augment pba needs --schedule FILE")
    if augment != "pba" and "schedule" in given:
        raise PBAError(f"--schedule is used by --augment pba only, not {augment!r}")
    recipe = default_recipe(given["dataset"], given["model"])
    defaults = {f.name: getattr(recipe, f.name) for f in fields(recipe)}
    defaults |= {"augment": augment, "schedule": None, "schedule_epochs": None, "seed": 0,
                 "train_size": None, "val_size": None, "eval_every": 0}
    data_dir = None if args.data_dir is None else str(args.data_dir.resolve())
    return defaults | given | {"data_dir": data_dir}


def _resumed_config(args: argparse.Namespace) -> dict:
    path = args.out / CONFIG
    if not path.is_file():
        raise PBAError(f"nothing to resume: {path} does not exist")
    try:
        config = json.loads(path.read_text())
        missing = [key for key in RUN_KEYS if key not in config]
    except (json.JSONDecodeError, TypeError):
        raise PBAError(f"{path} is not a pba train config") from None
    if missing:
        raise PBAError(f"{path} is not a pba train config (no {', '.join(missing)})")
    for key, value in _given(args).items():
        if value != config[key]:
            raise PBAError(f"--{key.replace('_', '-')} {value} differs from the run in "
                           f"{args.out} ({config[key]}); a resumed run keeps its settings")
    return config


def _given(args: argparse.Namespace) -> dict:
    """The run settings given on the command line, in config form."""
    given = {key: getattr(args, key) for key in RUN_KEYS if getattr(args, key) is not None}
    if "schedule" in given:
        given["schedule"] = str(given["schedule"].resolve())
    return given


def _load_schedule(path: Path, config: dict):
    from pba.schedule import load_schedule
    from pba.train import default_recipe

    search_epochs = config["schedule_epochs"]
    is_json = path.is_file() and path.read_text(errors="replace").lstrip().startswith("{")
    if search_epochs is None and not is_json:
        # A PBT policy log does not record its search's length: assume the paper's search.
        search_epochs = default_recipe(config["dataset"], SEARCH_MODEL).epochs
    return load_schedule(path, search_epochs)


def _epoch_line(metrics: dict, epochs: int) -> str:
    line = (f"epoch {metrics['epoch']}/{epochs} loss {metrics['train_loss']:.4f} "
            f"acc {metrics['train_acc']:.4f} lr {metrics['lr']:.5f} "
            f"{metrics['images_per_s']:.0f} img/s")
    for split in ("test", "val"):
        if f"{split}_acc" in metrics:
            line += f" {split}_acc {metrics[f'{split}_acc']:.4f}"
    return line
