"""A search's summary.md, and what its user should know and do next: the schedule's notes, then
the final model to train with how long it takes on the search's device.

`pba search` prints `next_steps` when it ends; `pba report DIR` starts with `summary_markdown`.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from pba.augmentation.schedule import Schedule, load_schedule
from pba.core.formatting import duration
from pba.models import macs_per_image
from pba.search import rundir
from pba.search.cost import SearchCost, cost_line, search_cost
from pba.search.presets import SearchConfig
from pba.search.rundir import SearchDir
from pba.training.baseline_check import BaselineCheck
from pba.training.loop import images_per_epoch
from pba.training.recipes import default_recipe

FINAL = "final"  # DIR/final/NAME: where summary.md suggests training final models


def schedule_notes(schedule: Schedule) -> list[str]:
    """What a user should know about a searched schedule before training with it."""
    augmenting = sum(p.strength > 0 for p in schedule.policies)
    if augmenting == 0:
        return ["**The best member's lineage never augmented**: its schedule applies no "
                "augmentation at any epoch, so training with it is training without PBA. In "
                "this regime augmentation did not pay off during the search (the models "
                "underfit, or no lineage had time to mix). Try fewer training images or more "
                "epochs per image (`pba demo` searches 1,000 images for 50 epochs), or more "
                "rounds (a smaller --interval)."]
    strengths = [p.strength for p in schedule.policies]
    half = len(strengths) // 2
    first = statistics.mean(strengths[:half]) if half else strengths[0]
    second = statistics.mean(strengths[half:])
    trend = "grows" if second > first else "does not grow"
    return [f"The schedule augments on {augmenting} of {len(strengths)} epochs and {trend} over "
            f"the search (mean policy strength {first:.1f} in the first half, {second:.1f} in "
            "the second; the strength is the sum of a policy's probabilities)."]


def summary_markdown(run_dir: str | Path) -> str:
    """A search's summary: what ran, its cost, its outcome and how to use the schedule."""
    run = SearchDir.open(run_dir)
    doc = run.config()
    config = SearchConfig.from_dict(doc["search"])
    cost = search_cost(run.path)
    sizes = f"{doc['images']['train']} train / {doc['images']['val']} validation"
    if doc["images"].get("skipped"):
        sizes += f"; {doc['images']['skipped']} unreadable files skipped"
    lines = [
        f"# PBA search {run.path.name}" + (f" (preset {doc['preset']})" if doc["preset"] else ""),
        "",
        f"- search: {config.population} x {config.model} on {config.dataset} ({sizes} images),"
        f" {config.epochs} epochs, interval {config.interval}, quantile {config.quantile}, "
        f"metric validation {config.metric}; lr {config.lr}, weight decay "
        f"{config.weight_decay}, batch {config.batch_size}, baseline "
        f"{config.settled_baseline().describe()}, seed {config.seed}; precision "
        f"{', '.join(cost.precisions) or doc.get('precision') or 'fp32'}",
        f"- {cost_line(cost)}",
    ]
    if cost.time.phases:
        lines.append(f"- time: {cost.time.describe()}")
    if doc.get("baseline_check"):
        lines.append(f"- {BaselineCheck.from_dict(doc['baseline_check']).describe()}")
    if cost.best_member is not None:
        lines.append(f"- best member {cost.best_member}: validation accuracy "
                     f"{cost.best_accuracy:.4f} (population median {cost.median_accuracy:.4f})")
    if (run.path / rundir.SCHEDULE).is_file():
        schedule = load_schedule(run.path / rundir.SCHEDULE, ops=config.op_set())
        policies = schedule.policies
        changes = sum(a != b for a, b in zip(policies, policies[1:], strict=False))
        lines += [
            f"- schedule: `{rundir.SCHEDULE}` ({len(schedule)} epochs, {changes} policy changes"
            f" along the best member's lineage), `{rundir.PBT_LOG}` (Ray Tune PBT policy log; "
            f"give it --schedule-epochs {len(schedule)}), `{rundir.PLOT}`, "
            f"`{rundir.POPULATION_PLOT}`",
            f"- final policy: {schedule.policies[-1]}",
            "",
            *next_steps(run.path),
        ]
    return "\n".join(lines) + "\n"


def next_steps(run_dir: str | Path) -> list[str]:
    """What a finished search's user should know and do next (summary.md and the terminal):
    notes on the schedule, then the final model to train with how long it takes."""
    run = SearchDir.open(run_dir)
    doc = run.config()
    config = SearchConfig.from_dict(doc["search"])
    schedule = load_schedule(run.path / rundir.SCHEDULE, ops=config.op_set())
    return [*schedule_notes(schedule), "",
            *next_command(run.path, doc, config, search_cost(run.path))]


def next_command(run_dir: Path, doc: dict, config: SearchConfig, cost: SearchCost) -> list[str]:
    """The final model to train next, with how long it takes on the search's device: on a GPU
    the paper's WRN-28-10, on a CPU the search's own model in the search's regime (a
    200-epoch WRN-28-10 would take days there). The time scales the search's measured rate
    by the models' compute (`pba.models.macs_per_image`)."""
    gpu = bool(cost.devices) and cost.devices[-1].startswith("cuda") or (
        doc.get("engine") == "ray" and doc.get("device") == "cuda")
    schedule = run_dir / rundir.SCHEDULE
    train_images = doc["images"]["train"]
    if gpu:
        model, epochs = "wrn_28_10", default_recipe(config.dataset, "wrn_28_10").epochs
        flags = ""
    else:
        model, epochs = config.model, config.epochs
        flags = (f" --train-size {train_images} --val-size 0 --epochs {epochs} --lr {config.lr}"
                 f" --wd {config.weight_decay} --batch-size {config.batch_size}")
    if config.ops is not None:
        flags += f" --ops {config.ops}"
    if config.image_size is not None:
        flags += f" --image-size {config.image_size}"
    command = (f"    pba train --dataset {config.dataset} --model {model} --augment pba "
               f"--schedule {schedule}{flags} --out {run_dir / FINAL / model}")
    rate = cost.images_per_s
    if rate is None:
        when = ""
    else:
        rate *= macs_per_image(config.model) / macs_per_image(model)
        per_epoch = images_per_epoch(train_images, config.batch_size)
        device = cost.devices[-1] if cost.devices else "this device"
        when = (f" About {duration(epochs * per_epoch / rate)} on {device}, at "
                f"{rate:,.0f} training images/s"
                + ("" if model == config.model else
                   f" (the search's {cost.images_per_s:,.0f} img/s of {config.model} scaled by "
                   "the models' compute)") + ".")
    return [f"Train a model with it (then `pba report` shows its test error).{when}", "",
            command]

