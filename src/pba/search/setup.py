"""What every engine's search does before its first round, written once for all of them (the
local and vectorized engines in `runner`, Ray in `ray_backend`): read the data, decide the
baseline the members train with, and describe the run for config.json.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from pba.data import DatasetSplits, load_dataset
from pba.data.datasets import PAPER_SEED
from pba.search.pbt import require_validation
from pba.search.presets import SearchConfig
from pba.training.baseline_check import BaselineCheck, settle


def load_search_data(
    config: SearchConfig, data_dir: str | Path | None, download: bool,
    skip_unreadable: bool = False, loading: Callable[[int, int], None] | None = None,
) -> DatasetSplits:
    """The search's data: the paper's split whatever the search's seed (a seed varies the
    search, not the data), with a validation split to rank members on; `loading(done, total)`
    is told how far a long load is."""
    data = load_dataset(config.dataset, data_dir, train_size=config.train_size,
                        val_size=config.val_size, seed=PAPER_SEED, download=download,
                        image_size=config.image_size, skip_unreadable=skip_unreadable,
                        progress=loading)
    require_validation(data)
    return data


def settle_baseline(
    config: SearchConfig, data: DatasetSplits, *, device: torch.device, precision: str,
    workers: int | None = None, progress: bool = True,
) -> tuple[SearchConfig, BaselineCheck | None]:
    """`config` with the baseline its members train with decided on `data` (a check on image
    folders, `pba.training.baseline_check`), as config.json records it, and the check if one ran."""
    baseline, check = settle(config.baseline, config.cutout_size, data, model=config.model,
                             recipe=config.recipe(precision), seed=config.seed, device=device,
                             workers=workers, progress=progress)
    return config.replace(baseline=str(baseline), cutout_size=baseline.cutout_size), check


def run_record(
    config: SearchConfig, data: DatasetSplits, check: BaselineCheck | None, *,
    preset: str | None, device: str, engine: str, precision: str,
    data_dir: str | Path | None, skip_unreadable: bool, budget: dict | None = None,
) -> dict:
    """config.json of a new search (`rundir.SearchDir.create`), whatever its engine: what was
    searched and how, and what a resume needs to read the same data again."""
    return {
        "preset": preset, "search": config.to_dict(), "device": device,
        "engine": engine, "precision": precision,
        # Absolute, so that a resume from another working directory finds it.
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
        "skip_unreadable": skip_unreadable,
        "images": images_record(data),
        "baseline_check": None if check is None else check.to_dict(),
        **({} if budget is None else {"budget": budget}),
    }


def images_record(data: DatasetSplits) -> dict:
    """config.json's "images": how many the search trains and ranks on, how many unreadable
    files it left out, and their size (height, width), which schedule.json records too."""
    return {"train": len(data.train), "val": len(data.val), "skipped": len(data.skipped),
            "size": list(data.train.images.shape[-2:])}
