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

from pba.errors import PBAError
from pba.search import rundir
from pba.search.presets import SearchConfig
from pba.search.rundir import RunDir

FINAL = "final"  # DIR/final/NAME: where summary.md suggests training final models
THIS_SEARCH = "pba (this search)"

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


def search_cost(run_dir: str | Path) -> SearchCost:
    run = RunDir.open(run_dir)
    wall, devices, processes, rounds, member_epochs = 0.0, [], 0, 0, 0
    start = last = None
    for event in run.events():
        kind = event["event"]
        if kind == "start":
            processes += 1
            start = event["time"]
            if event["device"] not in devices:
                devices.append(event["device"])
        elif kind == "train":
            member_epochs += event["epochs"][1] - event["epochs"][0]
        elif kind == "round":
            rounds += 1
            wall += event["time"] - start
            start, last = event["time"], event
    return SearchCost(
        wall_s=wall,
        devices=tuple(devices),
        processes=processes,
        rounds=rounds,
        epochs=last["epoch"] if last else 0,
        member_epochs=member_epochs,
        best_member=last["best_member"] if last else None,
        best_accuracy=last["best_accuracy"] if last else None,
        median_accuracy=last["median_accuracy"] if last else None,
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


def final_runs(run_dir: str | Path, extra: Sequence[str | Path] = ()) -> list[FinalRun]:
    """The training runs under DIR/final/ and in `extra` (run directories, or directories of
    them), labelled against this search's schedule."""
    run = RunDir.open(run_dir)
    ours = {(run.path / name).resolve() for name in (rundir.SCHEDULE, rundir.PBT_LOG)}
    found: list[Path] = []
    for place in [run.path / FINAL, *map(Path, extra)]:
        if (place / "config.json").is_file():
            found.append(place)
        elif place.is_dir():
            found += sorted(p.parent for p in place.glob("*/config.json"))
        elif place != run.path / FINAL:
            raise PBAError(f"{place} is neither a pba train run directory nor a folder of them")
    runs = [r for r in (_final_run(path, ours) for path in dict.fromkeys(found)) if r]
    if not runs and extra:
        raise PBAError(f"no pba train runs in {', '.join(map(str, extra))}")
    return runs


def _final_run(path: Path, ours: set[Path]) -> FinalRun | None:
    try:
        config = json.loads((path / "config.json").read_text())
        result = json.loads((path / "result.json").read_text()) if (
            path / "result.json").is_file() else {}
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not {"dataset", "model", "augment"} <= set(config):
        return None  # a search, or something else that keeps a config.json
    augment = config["augment"]
    if augment == "pba":
        schedule = Path(config.get("schedule") or "")
        augment = THIS_SEARCH if schedule.resolve() in ours else f"pba ({schedule.name})"
    return FinalRun(path, config["dataset"], config["model"], augment,
                    result.get("test_error"), config.get("epochs", 0))


def results_table(runs: Sequence[FinalRun]) -> str:
    """Markdown: test error (mean +- sd over runs) per dataset, model and augmentation."""
    groups: dict[tuple[str, str, str], list[FinalRun]] = {}
    for r in sorted(runs, key=lambda r: (r.dataset, r.model, r.augment != "baseline",
                                         r.augment)):
        groups.setdefault((r.dataset, r.model, r.augment), []).append(r)
    lines = ["| dataset | model | augmentation | epochs | runs | test error % | paper PBA % |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (dataset, model, augment), members in groups.items():
        errors = [r.test_error for r in members if r.test_error is not None]
        paper = PAPER_PBA_ERROR.get((dataset, model)) if augment.startswith("pba") else None
        unfinished = len(members) - len(errors)
        epochs = ", ".join(sorted({str(r.epochs) for r in members}))
        lines.append(
            f"| {dataset} | {model} | {augment} | {epochs} | {len(errors)}"
            f"{f' (+{unfinished} unfinished)' if unfinished else ''} | {_mean_sd(errors)} | "
            f"{'' if paper is None else f'{paper:.2f}'} |"
        )
    return "\n".join(lines)


def summary_markdown(run_dir: str | Path) -> str:
    """A search's summary: what ran, its cost, its outcome and how to use the schedule."""
    run = RunDir.open(run_dir)
    doc = run.config()
    config = SearchConfig.from_dict(doc["search"])
    cost = search_cost(run.path)
    sizes = f"{doc['images']['train']} train / {doc['images']['val']} validation"
    lines = [
        f"# PBA search {run.path.name}" + (f" (preset {doc['preset']})" if doc["preset"] else ""),
        "",
        f"- search: {config.population} x {config.model} on {config.dataset} ({sizes} images),"
        f" {config.epochs} epochs, interval {config.interval}, quantile {config.quantile}, "
        f"metric validation {config.metric}; lr {config.lr}, weight decay "
        f"{config.weight_decay}, batch {config.batch_size}, cutout "
        f"{'on' if config.cutout else 'off'}, seed {config.seed}",
        f"- {cost_line(cost)}",
    ]
    if cost.best_member is not None:
        lines.append(f"- best member {cost.best_member}: validation accuracy "
                     f"{cost.best_accuracy:.4f} (population median {cost.median_accuracy:.4f})")
    if (run.path / rundir.SCHEDULE).is_file():
        from pba.schedule import load_schedule

        schedule = load_schedule(run.path / rundir.SCHEDULE)
        policies = schedule.policies
        changes = sum(a != b for a, b in zip(policies, policies[1:], strict=False))
        lines += [
            f"- schedule: `{rundir.SCHEDULE}` ({len(schedule)} epochs, {changes} policy changes"
            f" along the best member's lineage), `{rundir.PBT_LOG}` (Ray Tune PBT policy log; "
            f"give it --schedule-epochs {len(schedule)}), `{rundir.PLOT}`",
            f"- final policy: {schedule.policies[-1]}",
            "",
            "Train a model with it (then `pba report` shows its test error):",
            "",
            f"    pba train --dataset {config.dataset} --model wrn_28_10 --augment pba "
            f"--schedule {run.path / rundir.SCHEDULE} --out {run.path / FINAL / 'wrn_28_10'}",
        ]
    return "\n".join(lines) + "\n"


def cost_line(cost: SearchCost) -> str:
    resumed = f", resumed {cost.processes - 1} time(s)" if cost.processes > 1 else ""
    return (f"cost: {_duration(cost.wall_s)} wall on {', '.join(cost.devices) or '-'}; "
            f"{cost.member_epochs} member-epochs in {cost.rounds} rounds "
            f"({cost.epochs} epochs){resumed}")


def report(run_dir: str | Path, extra: Sequence[str | Path] = ()) -> str:
    """What `pba report` prints: the search's summary and its final models' test errors."""
    text = summary_markdown(run_dir)
    runs = final_runs(run_dir, extra)
    if runs:
        text += "\n## Final models\n\n" + results_table(runs) + "\n"
    else:
        text += (f"\nNo final models yet: `pba train` runs under {Path(run_dir) / FINAL}/ or "
                 "named after DIR are shown here.\n")
    return text


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"
