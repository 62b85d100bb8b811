"""Where the modules of the flat layout moved when the package was grouped by layer: code that
imports them by their old paths (`import pba.transforms`, `from pba.run import fit`) gets the
module as it is now, imported only when asked for. Nothing in pba imports an old path.

    import pba.schedule                      # is pba.augmentation.schedule
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# old module (under pba) -> where it is now (under pba)
MOVED = {
    "errors": "core.errors",
    "options": "core.options",
    "atomic": "core.atomic",
    "lock": "core.lock",
    "directory": "core.directory",
    "device": "core.device",
    "precision": "core.precision",
    "parallel": "core.parallel",
    "verdict": "core.verdict",
    "formatting": "core.formatting",
    "timing": "core.timing",
    "allocator": "core.allocator",
    "policy": "augmentation.policy",
    "sampling": "augmentation.sampling",
    "schedule": "augmentation.schedule",
    "epoch": "augmentation.epoch",
    "fused": "augmentation.fused",
    "transforms": "augmentation.transforms",
    "baseline": "augmentation.baseline",
    "ramp": "augmentation.ramp",
    "augment": "training.augment",
    "train": "training.loop",
    "baseline_check": "training.baseline_check",
    "recipes": "training.recipes",
    "search_cost": "search.cost",
    "search_summary": "search.summary",
    "run": "runs.training_run",
    "run_config": "runs.training_config",
    "final_models": "runs.final_models",
    "report": "reporting.report",
    "plot": "reporting.plot",
    "tensorboard": "reporting.tensorboard",
    "progress": "reporting.progress",
    "recorders": "reporting.recorders",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `pba.OLD` for every OLD of MOVED and hands out the module that replaced it."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith("pba.") and name[len("pba."):] in MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module("pba." + MOVED[spec.name[len("pba."):]])

    def exec_module(self, module) -> None:
        pass  # already executed under its own name


def install() -> None:
    """Put the finder on `sys.meta_path`, after the real ones, once."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
