"""What a training run trains: `TrainConfig`, the settings its config.json records, made for a new
run (`new_config`: the paper's recipe for the dataset and model fills what is not given) or read
back for a resume (`resumed_config`, runs written by earlier versions included).

    config = new_config({"dataset": "reduced_cifar10", "model": "wrn_28_10",
                         "augment": "pba", "schedule": "runs/quick/schedule.json"})
    config.recipe.epochs, config.to_dict()
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pba.augmentation.baseline import cutout_at, legacy
from pba.augmentation.schedule import Schedule, is_pbt_log, load_schedule
from pba.core.device import resolve_device
from pba.core.directory import CONFIG
from pba.core.errors import UserError
from pba.core.precision import resolve_precision
from pba.data.datasets import default_baseline
from pba.ops.registry import OpSet, load_op_set
from pba.training.augment import AUGMENT_MODES
from pba.training.recipes import Recipe, default_recipe

# The settings that define a run: a resumed run must not change them.
RUN_KEYS = (
    "dataset", "model", "augment", "schedule", "schedule_epochs", "seed", "train_size",
    "val_size", "eval_every", "epochs", "lr", "weight_decay", "batch_size", "baseline",
    "cutout_size", "precision", "lr_schedule", "ops", "image_size",
)
# What runs written before a setting existed trained with.
ADDED_KEYS = {"precision": "fp32", "lr_schedule": "cosine", "ops": None, "image_size": None}
RECIPE_KEYS = frozenset(f.name for f in fields(Recipe))
# The model of the paper's searches; its default epochs are a search's length (200 CIFAR, 160 SVHN).
SEARCH_MODEL = "wrn_40_2"


@dataclass(frozen=True)
class TrainConfig:
    """A training run's settings. config.json holds them as one flat JSON object, the recipe's
    fields beside the others (`to_dict`, `from_dict`)."""

    dataset: str
    model: str
    recipe: Recipe  # its baseline is settled on the data when the run starts (never 'auto')
    augment: str = "baseline"  # one of pba.training.augment.AUGMENT_MODES
    schedule: str | None = None  # absolute path of augment 'pba''s schedule
    schedule_epochs: int | None = None  # a PBT policy log's search length; None: the paper's
    seed: int = 0
    train_size: int | None = None
    val_size: int | None = None
    eval_every: int = 0  # test every this many epochs too (0: at the end only)
    ops: str | None = None  # `--ops MODULE:NAME`; None: the 15 of the paper
    image_size: int | None = None
    # Where the data was found and how, for a resume.
    data_dir: str | None = None
    skip_unreadable: bool = False
    baseline_check: dict | None = None  # the check that decided the baseline, if one ran

    def replace(self, **changes: object) -> TrainConfig:
        """A copy with `changes`, recipe fields included (`replace(baseline="flip")`)."""
        ours = {key: value for key, value in changes.items() if key not in RECIPE_KEYS}
        recipe = {key: value for key, value in changes.items() if key in RECIPE_KEYS}
        return dataclasses.replace(self, recipe=dataclasses.replace(self.recipe, **recipe),
                                   **ours)

    def to_dict(self) -> dict:
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "recipe"}
        return {"dataset": self.dataset, "model": self.model, **asdict(self.recipe), **doc}

    @classmethod
    def from_dict(cls, doc: dict, source: str | Path = "the config") -> TrainConfig:
        """A config as config.json holds it; one written before a setting existed gets what it
        trained with (ADDED_KEYS, the Cutout of the days before --baseline)."""
        if not isinstance(doc, dict):
            raise UserError(f"{source} is not a pba train config")
        doc = dict(doc)
        missing = [key for key in RUN_KEYS if key not in doc]
        doc |= {key: ADDED_KEYS[key] for key in missing if key in ADDED_KEYS}
        # Written before --baseline: the dataset's baseline, with or without its Cutout.
        if "cutout" in doc and "baseline" in missing and "dataset" in doc:
            doc["baseline"] = legacy(default_baseline(doc["dataset"]), doc.pop("cutout"))
            doc["cutout_size"] = None
            missing = [key for key in missing if key not in ("baseline", "cutout_size")]
        missing = [key for key in missing if key not in ADDED_KEYS]
        if missing:
            raise UserError(f"{source} is not a pba train config (no {', '.join(missing)})")
        return _build(doc)


def _build(doc: dict) -> TrainConfig:
    """A TrainConfig from a flat dict of settings (other keys are left out)."""
    ours = {f.name for f in fields(TrainConfig)} - {"recipe"}
    recipe = Recipe(**{key: value for key, value in doc.items() if key in RECIPE_KEYS})
    return TrainConfig(recipe=recipe, **{key: value for key, value in doc.items()
                                         if key in ours})


def new_config(
    given: dict, *, device: str = "auto", data_dir: str | Path | None = None,
    skip_unreadable: bool = False,
) -> TrainConfig:
    """The full settings of a new run from those `given` (RUN_KEYS; dataset and model needed):
    the paper's recipe for the dataset and model fills the rest, and `precision` ('auto' by
    default) is resolved for `device`. Where the data lives and whether an image folder's
    unreadable files are left out are recorded too, for a resume."""
    if "dataset" not in given or "model" not in given:
        raise UserError("--dataset and --model are required (or --resume to continue a run)")
    unknown = sorted(set(given) - set(RUN_KEYS))
    if unknown:
        raise UserError(f"unknown training settings: {', '.join(unknown)}")
    augment = given.get("augment", "pba" if given.get("schedule") else "baseline")
    if augment not in AUGMENT_MODES:
        raise UserError(f"unknown --augment {augment!r}; known: "
                       f"{', '.join(AUGMENT_MODES)}")
    if augment == "pba" and not given.get("schedule"):
        raise UserError("--augment pba needs --schedule FILE")
    if augment != "pba" and given.get("schedule"):
        raise UserError(f"--schedule is used by --augment pba only, not {augment!r}")
    recipe = default_recipe(given["dataset"], given["model"])
    config = {f.name: getattr(recipe, f.name) for f in fields(recipe)}
    config |= {"augment": augment} | given
    ops = load_op_set(config.get("ops"))  # an unknown module fails now, before any writing
    if config.get("schedule") is not None:
        config["schedule"] = str(Path(config["schedule"]).resolve())
        if given.get("baseline") is None:
            # A schedule is searched on top of a baseline: train with that one unless told not
            # to (the dataset's default may be 'auto', which needs a validation split).
            searched = load_run_schedule(Path(config["schedule"]), config.get("schedule_epochs"),
                                         config["dataset"], ops)
            if searched.baseline is not None:
                config["baseline"] = searched.baseline
                if given.get("cutout_size") is None:
                    config["cutout_size"] = _cutout_at(searched, config.get("image_size"))
    config["precision"] = resolve_precision(given.get("precision", "auto"),
                                            resolve_device(device))
    return _build(config | {"data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
                            "skip_unreadable": skip_unreadable})


def resumed_config(out: str | Path, given: dict | None = None) -> TrainConfig:
    """The settings of the run in `out` (its config.json); `given` settings must equal them."""
    path = Path(out) / CONFIG
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} does not exist")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{path} is not a pba train config") from None
    config = TrainConfig.from_dict(doc, path)
    settings = config.to_dict()
    for key, value in (given or {}).items():
        if key == "schedule" and value is not None:
            value = str(Path(value).resolve())
        if value != settings[key]:
            raise UserError(f"--{key.replace('_', '-')} {value} differs from the run in "
                           f"{out} ({settings[key]}); a resumed run keeps its settings")
    return config


def load_run_schedule(
    path: Path, schedule_epochs: int | None, dataset: str, ops: OpSet
) -> Schedule:
    """The schedule a run trains with; a PBT policy log, which does not record its search's
    length, without `schedule_epochs` is taken to be the paper's search on `dataset`."""
    if (schedule_epochs is None and path.is_file()
            and is_pbt_log(path.read_text(errors="replace"))):
        schedule_epochs = default_recipe(dataset, SEARCH_MODEL).epochs
    return load_schedule(path, schedule_epochs, ops)


def _cutout_at(searched: Schedule, image_size: int | None) -> int | None:
    """The Cutout side of the baseline a schedule was searched on, in pixels at the size the
    run trains at (search small, train large: the square keeps its share of the side)."""
    if searched.cutout_size is None or image_size is None or searched.image_size is None:
        return searched.cutout_size
    return cutout_at(searched.cutout_size, min(searched.image_size), image_size)
