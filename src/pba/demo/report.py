"""The demo's report, from its finished final models: results.json (`pba.demo.results`) and
summary.md, the verdicts and the table followed by the search's summary."""

from __future__ import annotations

import statistics
from pathlib import Path

from pba.data.datasets import FOLDER_PREFIX, FOLDER_TEST_FRACTION
from pba.data.sources import TORCHVISION_PREFIX
from pba.demo.config import (
    PUBLISHED,
    THIS_SCHEDULE,
    DemoConfig,
    none_is_baseline,
    seed_set,
    set_order,
)
from pba.demo.record import DEMO_SEARCH, FINAL, RESULTS, DemoDir, read_demo_file
from pba.demo.results import render, results
from pba.runs.training_run import read_result
from pba.search import SearchConfig, rundir
from pba.search.cost import search_cost
from pba.search.rundir import SearchDir
from pba.search.summary import summary_markdown


def demo_report(out: str | Path) -> str:
    """The report of the demo in `out` from its finished final models: writes results.json
    and summary.md, returns the summary's text (the verdicts and table, then the search)."""
    out = Path(out)
    doc = read_demo_file(out)
    demo, first_seeds = DemoConfig.from_dict(doc["demo"]), doc["first_seeds"]
    search_dir = out / DEMO_SEARCH
    config = SearchDir.open(search_dir).config()
    search = SearchConfig.from_dict(config["search"])
    finished: dict[str, dict[int, float]] = {}
    train_times: dict[str, list[float]] = {}
    sizes: dict = {}
    for arm, seed in (pair for first in first_seeds for pair in set_order(demo, first)):
        result = read_result(out / FINAL / f"{arm}-seed{seed}")
        if result is not None:
            finished.setdefault(arm, {})[seed] = result["test_error"]
            train_times.setdefault(arm, []).append(result.get("train_time_s", 0.0))
            sizes = {"train_images": result.get("train_images", search.train_size),
                     "test_images": result.get("test_images")}
    sets = [seed_set(demo, first) for first in first_seeds]
    shared = none_is_baseline(demo, search)
    if shared:
        # The baseline decided on the data is no augmentation: its models are that arm's.
        finished["none"] = finished.get("baseline", {})
        sets = [s | {"none": s["baseline"]} for s in sets]
    size = config.get("images", {}).get("size")
    data = {"dataset": search.dataset, "model": demo.model, "epochs": demo.epochs,
            "train_images": sizes.get("train_images", search.train_size),
            "image_size": size, "baseline": search.settled_baseline().describe(),
            "test_split": test_split(search.dataset, sizes.get("test_images"))}
    search_s = search_cost(search_dir).wall_s
    times = {"search_s": search_s,
             "final_models_s": sum(sum(t) for t in train_times.values()),
             "final_models": sum(len(t) for t in train_times.values()),
             "demo_wall_s": doc.get("wall_s", 0.0), "breakdown": doc.get("time")}
    # What each arm costs: the search only ours needs (a published one's is not known here).
    costs = {arm: {"search_s": search_s if arm == THIS_SCHEDULE else None if arm == PUBLISHED
                   else 0.0, "train_s_per_model": statistics.mean(t)}
             for arm, t in train_times.items()}
    if doc.get("plan"):
        times |= {"budget_s": doc["plan"]["budget_s"],
                  "expected_s": doc["plan"]["expected_s"]}
    plan = {"demo": demo.to_dict(), "search": search.to_dict(), "reference": doc["reference"],
            "budget": doc.get("plan"), "refit": doc.get("refit")}
    if shared:  # the baseline's models, as above
        costs["none"] = costs.get("baseline", {})
    document = results(finished, sets, first_seeds, data=data, plan=plan, times=times,
                       costs=costs)
    DemoDir(out).write_json(RESULTS, document)
    lines = render(document, f"PBA demo {out}").splitlines()
    lines += ["", "## The search"]
    lines += summary_markdown(search_dir).splitlines()[1:]  # without its title
    lines += ["", f"Plots: `{search_dir / rundir.PLOT}` (the schedule), "
              f"`{search_dir / rundir.POPULATION_PLOT}` (the population)."]
    text = "\n".join(lines).rstrip("\n") + "\n"
    DemoDir(out).write_text(rundir.SUMMARY, text)
    return text


def test_split(dataset: str, images: int | None) -> str:
    """Which images the final models are tested on, in words."""
    count = "" if images is None else f" ({images:,} images)"
    if dataset.startswith(TORCHVISION_PREFIX):
        return (f"the dataset's test split, or {FOLDER_TEST_FRACTION:.0%} of its images held "
                f"out before any training where it has none{count}")
    if not dataset.startswith(FOLDER_PREFIX):
        return f"the dataset's test split{count}"
    if (Path(dataset[len(FOLDER_PREFIX):]) / "test").is_dir():
        return f"the folder's test/{count}"
    return (f"{FOLDER_TEST_FRACTION:.0%} of the folder's images held out before any "
            f"training{count}")
