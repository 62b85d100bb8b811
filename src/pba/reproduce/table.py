"""The results of `pba reproduce`: results.json and results.md, the test errors beside the
paper's, from the run directories and progress.json (the wall time and devices of the
processes that ran each stage, which the run directories do not hold)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from pba.core.directory import RunDirectory
from pba.core.formatting import duration, markdown_table
from pba.data import DatasetSplits
from pba.reporting.report import PAPER_PBA_ERROR
from pba.reproduce.plan import DATASET, FINAL_MODEL, FINALS, PBA_STAGES, ReproductionPlan
from pba.reproduce.stages import is_done, stage
from pba.runs import training_run
from pba.search import rundir
from pba.search.cost import cost_line, search_cost
from pba.search.rundir import SearchDir

PAPER_SEARCH_GPU_HOURS = 5.0  # docs/algorithm.md §11: about 5 GPU-hours on a Titan XP
PROGRESS = "progress.json"  # per stage: wall time and devices of the processes that ran it
RESULTS_MD, RESULTS_JSON = "results.md", "results.json"


class ReproductionDir(RunDirectory):
    kind = "reproduction"

    def resume_hint(self) -> str:
        return f"the same `pba reproduce run --out {self.path}` command"

    def kept(self) -> str:
        return "the stages finished before it are kept, and each stage's last resume point"


def record_process(out: Path, name: str, wall_s: float, device: str) -> None:
    """Add one process's wall time and device to stage `name` in progress.json."""
    path = out / PROGRESS
    progress = json.loads(path.read_text()) if path.is_file() else {}
    entry = progress.setdefault(name, {"wall_s": 0.0, "processes": 0, "devices": []})
    entry["wall_s"] += wall_s
    entry["processes"] += 1
    if device not in entry["devices"]:
        entry["devices"].append(device)
    ReproductionDir(out).write_json(PROGRESS, progress)


def write_results(
    out: Path, plan: ReproductionPlan, data: DatasetSplits, stages: Sequence[str]
) -> str:
    """results.json and results.md from the run directories; returns the markdown."""
    doc = results(out, plan, data, stages)
    ReproductionDir(out).write_json(RESULTS_JSON, doc)
    table = results_markdown(doc)
    ReproductionDir(out).write_text(RESULTS_MD, table)
    return table


def results(
    out: Path, plan: ReproductionPlan, data: DatasetSplits, stages: Sequence[str]
) -> dict:
    """What results.json holds: the data, the search's cost, a row per final model."""
    progress = json.loads((out / PROGRESS).read_text()) if (out / PROGRESS).is_file() else {}
    paper_error = PAPER_PBA_ERROR[(DATASET, FINAL_MODEL)]
    search_dir = out / "search"
    search = {"status": "not started", "paper_gpu_hours": PAPER_SEARCH_GPU_HOURS}
    if (search_dir / rundir.CONFIG).is_file():
        cost = search_cost(search_dir)
        config = SearchDir.open(search_dir).config()["search"]
        search |= {
            "status": "done" if is_done(stage(out, "search")) else
            f"{cost.epochs}/{config['epochs']} epochs",
            "config": config,
            "wall_s": cost.wall_s,
            "gpu_hours": cost.wall_s / 3600,
            "devices": list(cost.devices),
            "processes": cost.processes,
            "best_val_accuracy": cost.best_accuracy,
            "summary": cost_line(cost),
        }
    rows = []
    for name, (label, _) in FINALS.items():
        result = training_run.read_result(out / name) or {}
        metrics = out / name / training_run.METRICS
        rows.append({
            "stage": name,
            "augmentation": label,
            "test_error": result.get("test_error"),
            "paper_test_error": paper_error if name in PBA_STAGES else None,
            "search_gpu_hours": search.get("gpu_hours") if name == "pba_search" else None,
            "paper_search_gpu_hours": PAPER_SEARCH_GPU_HOURS if name in PBA_STAGES else None,
            "train_time_s": result.get("train_time_s"),
            "wall_s": progress.get(name, {}).get("wall_s"),
            "devices": progress.get(name, {}).get("devices", []),
            "epochs_done": len(metrics.read_text().splitlines()) if metrics.is_file() else 0,
            "epochs": plan.recipe.epochs,
            "status": "done" if result else "pending" if name in stages else "not selected",
        })
    return {
        "dry_run": plan.dry_run,
        "dataset": DATASET,
        "data": {"train": len(data.train), "val": len(data.val) if data.val else 0,
                 "test": len(data.test), "mean": data.mean, "std": data.std, "fill": data.fill},
        "search": search,
        "final": {"model": plan.final_model, **dataclasses.asdict(plan.recipe)},
        "rows": rows,
    }


def results_markdown(doc: dict) -> str:
    """results.md: the test errors beside the paper's, from `results`' document."""
    final, data, search = doc["final"], doc["data"], doc["search"]

    def num(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    title = f"# Reduced CIFAR-10, {final['model']}: test error (%)"
    if doc["dry_run"]:
        title += " — DRY RUN (CPU-sized; not comparable with the paper's figures)"
    search_line = f"- search ({search['status']})"
    if "config" in search:
        c = search["config"]
        search_line += (f": {c['population']} x {c['model']}, {c['epochs']} epochs, interval "
                        f"{c['interval']}, lr {c['lr']}, wd {c['weight_decay']}; "
                        f"{search['summary']}; {search['gpu_hours']:.2f} GPU-hours")
    table = markdown_table(
        ("augmentation", "test error %", "paper %", "search GPU-h", "paper search GPU-h",
         "training time", "epochs", "device"),
        [[row["augmentation"], num(row["test_error"], ".2f"),
          num(row["paper_test_error"], ".2f"), num(row["search_gpu_hours"], ".2f"),
          num(row["paper_search_gpu_hours"], "g"),
          "—" if row["train_time_s"] is None else duration(row["train_time_s"]),
          f"{row['epochs_done']}/{row['epochs']}", ", ".join(row["devices"]) or "—"]
         for row in doc["rows"]],
    )
    lines = [
        title,
        "",
        f"- data: {doc['dataset']}, {data['train']} training images (the paper's split), "
        f"{data['val']} validation images for the search (the paper: the other 46,000), "
        f"{data['test']} test images",
        search_line + f" (paper: about {PAPER_SEARCH_GPU_HOURS:g} GPU-hours on a Titan XP)",
        f"- final models: {final['model']}, {final['epochs']} epochs, lr {final['lr']}, weight "
        f"decay {final['weight_decay']}, batch {final['batch_size']}, baseline "
        f"{final['baseline'] or 'the dataset default'}; one run each",
        "",
        table,
        "",
        "Test error of one run each (final epoch). Training time: the epochs' own time, without "
        "start-up and evaluation. '—': not run yet, or no figure in the paper's text that this "
        "project relies on.",
    ]
    return "\n".join(lines) + "\n"
