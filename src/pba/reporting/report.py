"""The final models trained with a search's schedule, and what `pba report DIR` prints.

Final models are `pba train` run directories (config.json + result.json) under DIR/final/ or
named by the caller; those whose schedule is this search's are shown beside the others
(baselines, other schedules) of the same dataset and model, with the paper's PBA error where
it published one, and judged against them (`pba.core.verdict`). The report starts with the search's
summary (`pba.search.summary`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pba.core.errors import UserError
from pba.core.formatting import markdown_table, mean_sd
from pba.core.verdict import ARM_NAMES, BEATS, EFFORT, Comparison, advice, recommend
from pba.runs.training_run import CONFIG, read_result
from pba.search import rundir
from pba.search.rundir import SearchDir
from pba.search.summary import FINAL, summary_markdown

THIS_SEARCH = "pba (this search)"
BASELINE = "baseline"

# Test error (%) of the paper's PBA schedules (docs/algorithm.md §11), by (dataset, model).
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
    run = SearchDir.open(run_dir)
    ours = {(run.path / name).resolve() for name in (rundir.SCHEDULE, rundir.PBT_LOG)}
    optional = [run.path / FINAL, *also]
    found: list[Path] = []
    for place in [*optional, *map(Path, extra)]:
        if (place / CONFIG).is_file():
            found.append(place)
        elif place.is_dir():
            found += sorted(p.parent for p in place.glob(f"*/{CONFIG}"))
        elif place not in optional:
            raise UserError(f"{place} is neither a pba train run directory nor a folder of them")
    runs = [r for r in (_final_run(path, ours) for path in dict.fromkeys(found)) if r]
    if not runs and extra:
        raise UserError(f"no pba train runs in {', '.join(map(str, extra))}")
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
    (`pba.core.verdict.recommend`)."""
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


def report(run_dir: str | Path, extra: Sequence[str | Path] = ()) -> str:
    """What `pba report` prints for a search: its summary, then its final models' test errors
    and the verdicts. (A `pba demo` directory has its own report: `pba.demo.report.demo_report`.)"""
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
