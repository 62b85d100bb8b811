"""What `pba reproduce` runs: the paper's reduced CIFAR-10 table (its dataset, search preset,
final model, published schedule), the stages in order, and the sizes of a run: the paper's, or
the CPU-sized dry run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pba.runs.final_models import FinalSettings
from pba.search import preset
from pba.training.recipes import Recipe, default_recipe

DATASET = "reduced_cifar10"
SEARCH_PRESET = "paper-rcifar10"
FINAL_MODEL = "wrn_28_10"
REFERENCE_FILE = "rcifar10_16_wrn.txt"  # the published schedule, a PBT policy log
# The published schedule comes from the paper's search, so it has that search's length (200).
REFERENCE_EPOCHS = preset(SEARCH_PRESET).epochs

PBA_STAGES = ("pba_search", "pba_reference")
# stage -> (row label, `pba.runs.training_run` augment mode), in the table's order
FINALS = {
    "pba_search": ("PBA, this search's schedule", "pba"),
    "pba_reference": (f"PBA, published schedule ({REFERENCE_FILE})", "pba"),
    "baseline": ("Baseline: pad-crop, flip, Cutout", "baseline"),
    "autoaugment": ("AutoAugment (torchvision, CIFAR-10 policy) + baseline", "autoaugment"),
    "randaugment": ("RandAugment (torchvision, N=2, M=9) + baseline", "randaugment"),
}
STAGES = ("search", *FINALS)


@dataclass(frozen=True)
class ReproductionPlan:
    """The sizes of one run: the paper's, or the CPU-sized dry run."""

    search_changes: Mapping[str, object]  # SearchConfig fields that change the preset's
    final_model: str
    recipe: Recipe  # of the final models
    train_size: int | None  # None: all 4,000 carried training images
    val_size: int | None  # the search's; None: the whole carried subset
    dry_run: bool

    def final_settings(self, data_file: Path) -> FinalSettings:
        """What every final model trains with, on the carried data file."""
        r = self.recipe
        return FinalSettings(f"npz:{data_file}", self.final_model, r.epochs, r.lr,
                             r.weight_decay, r.batch_size, val_size=0, baseline=r.baseline,
                             train_size=self.train_size)


def paper_plan() -> ReproductionPlan:
    """The paper's sizes: the preset's search, WRN-28-10 final models with its recipe."""
    return ReproductionPlan({}, FINAL_MODEL, default_recipe(DATASET, FINAL_MODEL), None, None,
                            False)


def dry_plan() -> ReproductionPlan:
    """CPU-sized: 4 x WRN-10-1 for 4 epochs on 512 images, WRN-10-1 final models for 2."""
    train_size, val_size = 512, 512
    changes = {"model": "wrn_10_1", "population": 4, "epochs": 4, "interval": 2,
               "train_size": train_size, "val_size": val_size}
    recipe = dataclasses.replace(default_recipe(DATASET, FINAL_MODEL), epochs=2)
    return ReproductionPlan(changes, "wrn_10_1", recipe, train_size, val_size, True)
