"""What a budgeted run trains (`Regime`), what the planner knows of the data (`Facts`), and the
time a regime takes on this device, predicted from the measured `Rates`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pba.augmentation.baseline import AUTO
from pba.budget.rates import Rates
from pba.data import DatasetSplits
from pba.data.datasets import FOLDER_PREFIX, has_own_val
from pba.search import SearchConfig
from pba.training.baseline_check import CHECK_EPOCHS
from pba.training.loop import images_per_epoch

SAFETY = 0.95  # of the budget planned: the predictions err by a few percent either way
OVERHEAD_S = 3.0  # a stage's fixed cost: checkpoints, plots, summaries
# The final models train slower than the measured rate: TrivialAugment's per-image ops (its
# arm took 12% longer than the others in the 15-minute CIFAR demo) and a last wave that may
# run alone. Measured: 10 final models took 10% longer than predicted from the rates.
FINAL_SLOWER = 1.1


@dataclass(frozen=True)
class Facts:
    """What the planner knows of the data and the run before choosing."""

    pool: int  # images to cut training and validation from
    test: int  # test images every final model scores
    own_val: int | None  # a folder's val/ split, fixed; None: cut from the pool
    batch_size: int  # the largest batch a run may take (the preset's or the user's)
    check_arms: int  # arms of the baseline check (pba.training.baseline_check), 0 when none runs
    final_models: int  # of the demo; 0 for a search alone


def data_facts(search: SearchConfig, data: DatasetSplits, final_models: int) -> Facts:
    """What the planner knows of `data` (loaded with its default split) for `search`."""
    own_val = len(data.val) if has_own_val(search.dataset) and data.val is not None else None
    pool = len(data.train) + (0 if own_val is not None or data.val is None else len(data.val))
    checked = search.baseline == AUTO or (search.baseline is None and
                                          search.dataset.startswith(FOLDER_PREFIX))
    # none, each part alone, then the helpful parts together (pba.training.baseline_check)
    arms = 2 + len(data.baseline.parts) if checked else 0
    return Facts(pool, len(data.test), own_val, search.batch_size, arms, final_models)


@dataclass(frozen=True)
class Regime:
    """What a budgeted run trains: the search, and for the demo its final models."""

    population: int
    epochs: int
    interval: int
    train_size: int
    val_size: int
    model: str  # searched
    batch_size: int = 128
    final_model: str | None = None  # None: no final models (a search alone)
    final_epochs: int = 0
    final_models: int = 0

    def seconds(self, facts: Facts, rates: Mapping[str, Rates]) -> dict[str, float]:
        """Predicted seconds of each stage from the measured rates."""
        per_epoch = images_per_epoch(self.train_size, self.batch_size)
        search = rates[self.model]
        workers = search.workers
        waves = math.ceil(self.population / workers)
        rounds = math.ceil(self.epochs / self.interval)
        times = {"search": OVERHEAD_S + waves * (
            self.epochs * per_epoch / search.train + rounds * self.val_size / search.evaluate)}
        if facts.check_arms:
            # The arms run `workers` at once; the parts together, when they run, alone.
            check_waves = math.ceil((facts.check_arms - 1) / workers) + 1
            times["baseline_check"] = check_waves * (
                min(self.epochs, CHECK_EPOCHS) * per_epoch / search.train
                + self.val_size / search.evaluate)
        if self.final_model is not None and self.final_models:
            final = rates[self.final_model]
            one = self.final_epochs * per_epoch / final.train + facts.test / final.evaluate
            times["final_models"] = OVERHEAD_S + FINAL_SLOWER * math.ceil(
                self.final_models / workers) * one
        return times

    def search_changes(self) -> dict:
        """The `SearchConfig` fields this regime sets."""
        return {"model": self.model, "population": self.population, "epochs": self.epochs,
                "interval": self.interval, "train_size": self.train_size,
                "val_size": self.val_size, "batch_size": self.batch_size}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
