"""What a search cost and what its schedule bought: `pba report DIR` and the run's summary.md.

The cost comes from the search's event log alone. Final models are `pba train` run directories
(config.json + result.json) under DIR/final/ or named by the caller; those whose schedule is
this search's are shown beside the others (baselines, other schedules) of the same dataset and
model, with the paper's PBA error where it published one.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pba.baseline_check import BaselineCheck
from pba.errors import PBAError
from pba.run import CONFIG, read_result
from pba.search import rundir
from pba.search.events import Round, Start, Train
from pba.search.presets import SearchConfig
from pba.search.rundir import RunDir
from pba.verdict import ARM_NAMES, BEATS, EFFORT, Comparison, advice, recommend

FINAL = "final"  # DIR/final/NAME: where summary.md suggests training final models
THIS_SEARCH = "pba (this search)"
BASELINE = "baseline"

# Test error (%) of the paper's PBA schedules (spec section 9), by (dataset, model).
PAPER_PBA_ERROR = {
    ("cifar10", "wrn_28_10"): 2.58,
    ("cifar10", "shake_shake_26_2x32d"): 2.54,
    ("cifar10", "shake_shake_26_2x96d"): 2.03,
    ("cifar10", "shake_shake_26_2x112d"): 2.03,
    ("cifar10", "pyramidnet_272_200"): 1.46,
    ("reduced_cifar10", "wrn_28_10"): 12.82,
    ("reduced_cifar10", "shake_shake_26_2x96d"): 10.64,
    ("cifar100", "wrn_28_10"): 16.73,
    ("cifar100", "shake_shake_26_2x96d"): 15.31,
    ("cifar100", "pyramidnet_272_200"): 10.94,
    ("svhn", "wrn_28_10"): 1.18,
    ("svhn", "shake_shake_26_2x96d"): 1.13,
    ("reduced_svhn", "wrn_28_10"): 7.83,
    ("reduced_svhn", "shake_shake_26_2x96d"): 6.46,
}


@dataclass(frozen=True)
class SearchCost:
    """A search's cost and outcome so far, from its event log."""

    wall_s: float  # of the processes that ran it, up to each one's last complete round
    devices: tuple[str, ...]
    processes: int  # 1 + the number of resumes
    rounds: int
    epochs: int  # completed by every member
    member_epochs: int
    best_member: int | None  # after the last complete round
    best_accuracy: float | None
    median_accuracy: float | None
    train_images: int = 0  # summed over the members
    train_seconds: float = 0.0  # the members' training time, evaluation excluded
    precisions: tuple[str, ...] = ()

    @property
    def images_per_s(self) -> float | None:
        """The rate one member trained at on the search's device."""
        return self.train_images / self.train_seconds if self.train_seconds > 0 else None


def search_cost(run_dir: str | Path) -> SearchCost:
    run = RunDir.open(run_dir)
    wall, devices, precisions, processes, rounds, member_epochs = 0.0, [], [], 0, 0, 0
    images, seconds = 0, 0.0
    start = last = None
    for event in run.events():
        if isinstance(event, Start):
            processes += 1
            start = event.time
            if event.device not in devices:
                devices.append(event.device)
            if event.precision and event.precision not in precisions:
                precisions.append(event.precision)
        elif isinstance(event, Train):
            member_epochs += event.epochs[1] - event.epochs[0]
            images += event.images
            seconds += event.seconds
        elif isinstance(event, Round):
            rounds += 1
            wall += event.time - start
            start, last = event.time, event
    return SearchCost(
        wall_s=wall,
        devices=tuple(devices),
        processes=processes,
        rounds=rounds,
        epochs=last.epoch if last else 0,
        member_epochs=member_epochs,
        best_member=last.best_member if last else None,
        best_accuracy=last.best_accuracy if last else None,
        median_accuracy=last.median_accuracy if last else None,
        train_images=images,
        train_seconds=seconds,
        precisions=tuple(precisions),
    )


@dataclass(frozen=True)
class FinalRun:
    """One `pba train` run directory."""

    path: Path
    dataset: str
    model: str
    augment: str  # "baseline", ..., THIS_SEARCH or "pba (<schedule file name>)"
    test_error: float | None  # percent; None while the run has not finished
    epochs: int
    train_time_s: float = 0.0  # of the finished run


def final_runs(
    run_dir: str | Path, extra: Sequence[str | Path] = (), *, also: Sequence[Path] = ()
) -> list[FinalRun]:
    """The training runs under DIR/final/, in `extra` (run directories, or directories of
    them) and in the folders `also` if they exist, labelled against this search's schedule."""
    run = RunDir.open(run_dir)
    ours = {(run.path / name).resolve() for name in (rundir.SCHEDULE, rundir.PBT_LOG)}
    optional = [run.path / FINAL, *also]
    found: list[Path] = []
    for place in [*optional, *map(Path, extra)]:
        if (place / CONFIG).is_file():
            found.append(place)
        elif place.is_dir():
            found += sorted(p.parent for p in place.glob(f"*/{CONFIG}"))
        elif place not in optional:
            raise PBAError(f"{place} is neither a pba train run directory nor a folder of them")
    runs = [r for r in (_final_run(path, ours) for path in dict.fromkeys(found)) if r]
    if not runs and extra:
        raise PBAError(f"no pba train runs in {', '.join(map(str, extra))}")
    return runs


def _final_run(path: Path, ours: set[Path]) -> FinalRun | None:
    try:
        config = json.loads((path / CONFIG).read_text())
        result = read_result(path) or {}
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not {"dataset", "model", "augment"} <= set(config):
        return None  # a search, or something else that keeps a config.json
    augment = config["augment"]
    if augment == "pba":
        schedule = Path(config.get("schedule") or "")
        augment = THIS_SEARCH if schedule.resolve() in ours else f"pba ({schedule.name})"
    return FinalRun(path, config["dataset"], config["model"], augment,
                    result.get("test_error"), config.get("epochs", 0),
                    result.get("train_time_s", 0.0))


def _arm_order(augment: str) -> tuple[int, str]:
    """This search's schedule first, then other schedules, torchvision's, baseline, none."""
    rank = {THIS_SEARCH: 0, BASELINE: 3, "none": 4}.get(augment)
    if rank is None:
        rank = 1 if augment.startswith("pba") else 2
    return rank, augment


def group_runs(runs: Sequence[FinalRun]) -> dict[tuple[str, str, str], list[FinalRun]]:
    """Runs by (dataset, model, augmentation), this search's schedule first in each."""
    groups: dict[tuple[str, str, str], list[FinalRun]] = {}
    for r in sorted(runs, key=lambda r: (r.dataset, r.model, _arm_order(r.augment))):
        groups.setdefault((r.dataset, r.model, r.augment), []).append(r)
    return groups


def results_table(runs: Sequence[FinalRun]) -> str:
    """Markdown: test error (mean +- sd over seeds) per dataset, model and augmentation."""
    rows = []
    for (dataset, model, augment), members in group_runs(runs).items():
        errors = [r.test_error for r in members if r.test_error is not None]
        paper = PAPER_PBA_ERROR.get((dataset, model)) if augment.startswith("pba") else None
        unfinished = len(members) - len(errors)
        epochs = ", ".join(sorted({str(r.epochs) for r in members}))
        rows.append([dataset, model, augment, epochs,
                     f"{len(errors)}{f' (+{unfinished} unfinished)' if unfinished else ''}",
                     mean_sd(errors), "" if paper is None else f"{paper:.2f}"])
    return markdown_table(["dataset", "model", "augmentation", "epochs", "seeds",
                           "test error %", "paper PBA %"], rows)


def comparisons(runs: Sequence[FinalRun]) -> dict[tuple[str, str], dict[str, Comparison]]:
    """This search's schedule against every other augmentation trained on the same dataset and
    model for the same epochs (finished runs only): by (dataset, model), then by augmentation
    in the table's order."""
    groups = group_runs([r for r in runs if r.test_error is not None])
    out: dict[tuple[str, str], dict[str, Comparison]] = {}
    for (dataset, model, augment), members in groups.items():
        if augment == THIS_SEARCH:
            continue
        ours = groups.get((dataset, model, THIS_SEARCH), [])
        ours = [r.test_error for r in ours if r.epochs == members[0].epochs]
        theirs = [r.test_error for r in members if r.epochs == members[0].epochs]
        if ours:
            out.setdefault((dataset, model), {})[augment] = Comparison(tuple(ours), tuple(theirs))
    return out


def verdict(runs: Sequence[FinalRun]) -> list[str]:
    """Plain sentences for each dataset and model: does this search's schedule beat the
    baseline (first), where does it stand against the other augmentations, and which
    augmentation to train with: never one that another trained here clearly beats
    (`pba.verdict.recommend`)."""
    groups = comparisons(runs)
    lines = []
    for (dataset, model), found in groups.items():
        where = f" ({model} on {dataset})" if len(groups) > 1 else ""
        for other, c in sorted(found.items(), key=lambda item: item[0] != BASELINE):
            if other != BASELINE:
                lines.append(f"Against {other}{where}: {c.outcome or 'no verdict'}, "
                             f"{c.describe()}.")
            elif c.outcome == BEATS:
                lines.append(f"**This search's schedule beats the baseline**{where}: "
                             f"{c.describe()}.")
            else:
                lines.append(f"**This search's schedule does not beat the baseline**{where}: "
                             f"{c.describe()}.")
        errors = {"pba": next(iter(found.values())).ours}
        errors |= {arm: c.theirs for arm, c in found.items() if arm in EFFORT}
        chosen = recommend(errors)
        vs_baseline = found[BASELINE].outcome if BASELINE in found else None
        lines.append(f"**Recommended{where}: {ARM_NAMES[chosen]}.** "
                     f"{advice(chosen, vs_baseline)}")
    return lines


def schedule_notes(schedule) -> list[str]:
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
    run = RunDir.open(run_dir)
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
    if doc.get("baseline_check"):
        lines.append(f"- {BaselineCheck.from_dict(doc['baseline_check']).describe()}")
    if cost.best_member is not None:
        lines.append(f"- best member {cost.best_member}: validation accuracy "
                     f"{cost.best_accuracy:.4f} (population median {cost.median_accuracy:.4f})")
    if (run.path / rundir.SCHEDULE).is_file():
        from pba.schedule import load_schedule

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
    from pba.schedule import load_schedule

    run = RunDir.open(run_dir)
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
    from pba.models import macs_per_image
    from pba.recipes import default_recipe
    from pba.train import images_per_epoch

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


def cost_line(cost: SearchCost) -> str:
    resumed = f", resumed {cost.processes - 1} time(s)" if cost.processes > 1 else ""
    return (f"cost: {duration(cost.wall_s)} wall on {', '.join(cost.devices) or '-'}; "
            f"{cost.member_epochs} member-epochs in {cost.rounds} rounds "
            f"({cost.epochs} epochs){resumed}")


def report(run_dir: str | Path, extra: Sequence[str | Path] = ()) -> str:
    """What `pba report` prints for a search: its summary, then its final models' test errors
    and the verdicts. (A `pba demo` directory has its own report: `pba.demo.demo_report`.)"""
    path = Path(run_dir)
    text = summary_markdown(path)
    runs = final_runs(path, extra)
    if runs:
        text += "\n## Final models\n\n" + results_table(runs) + "\n"
        text += "".join(f"\n{line}\n" for line in verdict(runs))
    else:
        text += (f"\nNo final models yet: `pba train` runs under {path / FINAL}/ or "
                 "named after DIR are shown here.\n")
    return text


def mean_sd(values: list[float]) -> str:
    """'47.11 ± 0.52' (one value: itself; none: '-')."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table of already formatted cells, without a trailing newline."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
