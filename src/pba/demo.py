"""The whole user story in one call: search a schedule, train final models with it and with the
usual baselines on seeds the search did not use, and report whether it wins. `pba demo`.

    from pba.demo import DEMO, run_demo
    table = run_demo(DEMO, "runs/demo", reference="rcifar10_16_wrn.txt")
    run_demo(DEMO, "runs/demo", first_seed=11)    # the same search, judged on seeds 11, 12, ...
    mine = dataclasses.replace(DEMO, dataset="folder:photos")
    run_demo(mine, "runs/mine", budget=900)        # sized to 15 minutes here (pba.budget)

    DIR/demo.json            what the demo runs (DemoConfig), the published schedule's path, the
                             first seed of every set of final models, the processes' wall time,
                             the budget's plan and measurements and the final models' refit
    DIR/search/              the search's run directory (`pba.search.rundir`): schedule.json,
                             schedule.png, population.png, summary.md, ...
    DIR/final/ARM-seedK/     one `pba.run` directory per final model
    DIR/results.json         every arm's test errors, the verdicts, the recommended augmentation
                             (`pba.demo_results`)
    DIR/summary.md           the report: recommendation, verdicts, test errors, the search's cost

`pba report DIR` prints the same report. Every stage resumes: the search from its last round,
each final model from its last epoch; finished ones are kept. On a CPU the final models train
side by side, one per core with one torch thread each (`pba.parallel`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pba.atomic import write_text_atomic
from pba.data.datasets import data_root
from pba.errors import PBAError
from pba.lock import LOCK, owned
from pba.parallel import default_workers, map_parallel
from pba.report import FINAL, duration

if TYPE_CHECKING:
    from pba.budget import Plan, Regime
    from pba.search import SearchConfig

THIS_SCHEDULE = "pba"  # the arm trained with the search's own schedule
PUBLISHED = "published"
# The arms of the comparison, in the table's order: name -> `pba train --augment` mode.
ARMS = {THIS_SCHEDULE: "pba", "baseline": "baseline", "trivialaugment": "trivialaugment",
        PUBLISHED: "pba", "none": "none"}
# A demo directory: DEMO_FILE, the search in DEMO_SEARCH/, final models in FINAL/, RESULTS.
DEMO_FILE = "demo.json"
DEMO_SEARCH = "search"
RESULTS = "results.json"
DEFAULT_FIRST_SEED = 1  # the search's members derive their seeds from its seed 0


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: the search (a preset, its data and the changes to it), then every
    arm's final models in one recipe."""

    preset: str  # the search (pba.search.PRESETS)
    model: str  # of the final models
    epochs: int
    lr: float
    weight_decay: float
    seeds: dict[str, int]  # arm -> final models in a set of seeds (first, first + 1, ...)
    dataset: str | None = None  # None: the preset's
    search: dict = dataclasses.field(default_factory=dict)  # SearchConfig fields to change

    def __post_init__(self) -> None:
        unknown = set(self.seeds) - set(ARMS)
        if unknown:
            raise PBAError(f"unknown arm(s) {sorted(unknown)}; known: {', '.join(ARMS)}")
        if self.seeds.get(THIS_SCHEDULE, 0) < 1 or self.seeds.get("baseline", 0) < 1:
            raise PBAError("the demo compares its schedule with the baseline: both need seeds")

    def search_config(self) -> SearchConfig:
        from pba.search import preset

        dataset = {} if self.dataset is None else {"dataset": self.dataset}
        return preset(self.preset).replace(**self.search | dataset)

    def values(self) -> dict:
        """What it runs, by `pba.budget.PLANNED` name, and the searched "model"."""
        search = self.search_config()
        return {"model": search.model, "population": search.population,
                "epochs": search.epochs, "interval": search.interval,
                "train_size": search.train_size, "val_size": search.val_size,
                "batch_size": search.batch_size, "final_model": self.model,
                "final_epochs": self.epochs, "image_size": search.image_size}

    def final_models(self, reference: bool) -> int:
        """Final models in one set of seeds."""
        return sum(n for arm, n in self.seeds.items() if arm != PUBLISHED or reference)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> DemoConfig:
        """The config of demo.json (whose first seeds are kept beside it)."""
        try:
            return cls(**{key: value for key, value in doc.items() if key != "first_seed"})
        except TypeError as err:
            raise PBAError(f"not a demo config: {err}") from None


# Chosen by measurement on 2 CPU cores (README, "The main job"): the search's WRN-10-1 population
# on 1,000 images, the final models a WRN-10-2 on the same images ("search small, train large",
# as the paper did): the larger model overfits more, so a searched schedule pays off beyond the
# seeds' noise, where a WRN-10-1 final model gains little or nothing over the baseline. The
# schedule (50 search epochs) is stretched to the final models' 64. The published schedule's
# arm trains only when `reference` names it (one model more).
DEMO = DemoConfig(preset="quick", model="wrn_10_2", epochs=64, lr=0.1, weight_decay=5e-4,
                  seeds={THIS_SCHEDULE: 3, "baseline": 3, "trivialaugment": 3, PUBLISHED: 1,
                         "none": 1})
# How long `DEMO` takes, measured (README, "The main job").
DEMO_TIME = ("Without --budget, on 2 CPU cores about 12 minutes where the CPU has native bf16, "
             "38 where it has not (fp32); `make demo` gives it --budget 15m.")


@dataclass(frozen=True)
class FinalJob:
    """One final model: the arm, its seed and its `pba.run` config."""

    arm: str
    seed: int
    out: Path
    config: dict
    resume: bool  # the run directory exists: continue it


def run_demo(
    demo: DemoConfig,
    out: str | Path,
    *,
    reference: str | Path | None = None,
    first_seed: int | None = None,
    budget: float | None = None,
    given: Mapping[str, int | str] | None = None,
    device: str = "auto",
    precision: str = "auto",
    data_dir: str | Path | None = None,
    download: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> str:
    """Run (or continue) the demo in `out`; return its report (also DIR/summary.md, with
    DIR/results.json).

    `reference` is a published schedule (the PBT policy log rcifar10_16_wrn.txt) for the
    'published' arm, which is left out without it. `first_seed` starts a set of final models'
    seeds (default DEFAULT_FIRST_SEED): on a demo directory that has a search, another first
    seed reuses the search and trains that set beside the earlier ones, and the report judges
    each set and all together. `budget` (seconds) sizes a new demo's regime to end within it
    on this device (`pba.budget`), keeping the values of `given` (`pba.budget.PLANNED` names);
    without it the regime is `demo`'s with `given`, its images capped to the data's pool.
    A demo that exists continues as it was planned. `workers` members of the search, and
    final models, train at once (default: one per CPU core on a CPU, one on a GPU).
    """
    out = Path(out)
    _check_demo_dir(out)  # before the lock creates anything
    started = time.monotonic()
    with owned(out, "pba demo"):
        try:
            _run_demo(demo, out, reference, first_seed, budget, dict(given or {}), started,
                      device, precision, data_dir, download, workers, progress)
        finally:
            if (out / DEMO_FILE).is_file():
                _add_wall_time(out, time.monotonic() - started)
        return demo_report(out)


def _run_demo(
    demo: DemoConfig, out: Path, reference: str | Path | None, first_seed: int | None,
    budget: float | None, given: dict, started: float, device: str, precision: str,
    data_dir: str | Path | None, download: bool, workers: int | None, progress: bool,
) -> None:
    from pba import run as training_run
    from pba.search import SearchConfig, rundir
    from pba.search.rundir import RunDir
    from pba.search.runner import resume_search, run_search

    plan = None
    if (out / DEMO_FILE).is_file():
        _check_unchanged(_read_demo_file(out), demo, given, budget, progress)
    else:
        demo, plan = _new_demo(demo, budget, given, reference is not None, started,
                               device=device, precision=precision, data_dir=data_dir,
                               download=download, workers=workers, progress=progress)
    demo, reference, first_seeds = _demo_config(demo, out, reference, first_seed, plan,
                                                sorted(given))
    search = demo.search_config()
    search_dir = out / DEMO_SEARCH
    options = {"data_dir": data_dir, "download": download, "progress": progress,
               **({} if workers is None else {"workers": workers})}
    if not (search_dir / rundir.SCHEDULE).is_file():
        if (search_dir / rundir.CONFIG).is_file():
            _say(progress, f"pba demo 1/2: continuing the search in {search_dir}")
            resume_search(search_dir, **options)
        else:
            _say(progress, f"pba demo 1/2: searching a schedule ({search.population} x "
                           f"{search.model}, {search.epochs} epochs, {search.train_size} "
                           f"training images of {search.dataset})")
            # Where the data was found is recorded, so that a later `--first-seed` finds it
            # without the environment that located it.
            run_search(search, search_dir, preset=demo.preset, device=device,
                       precision=precision, budget=None if plan is None else plan.to_dict(),
                       **options | {"data_dir": data_root(data_dir)})
    doc = RunDir.open(search_dir).config()
    search = SearchConfig.from_dict(doc["search"])  # as it ran, whatever the preset is now
    data_dir = data_dir or doc.get("data_dir")
    demo = _refit(out, demo, started, progress)
    jobs = final_jobs(demo, search, out, reference, first_seeds, device=device,
                      precision=precision, data_dir=data_dir)
    todo = [job for job in jobs if training_run.read_result(job.out) is None]
    if todo:
        _say(progress, f"pba demo 2/2: {len(todo)} final models ({demo.model}, {demo.epochs} "
                       f"epochs) of {len(jobs)}")
        train_finals(todo, device=device, data_dir=data_dir, download=download,
                     workers=workers, progress=progress)


def _new_demo(
    demo: DemoConfig, budget: float | None, given: dict, reference: bool, started: float, *,
    device: str, precision: str, data_dir: str | Path | None, download: bool,
    workers: int | None, progress: bool,
) -> tuple[DemoConfig, Plan | None]:
    """A new demo's regime: planned for `budget` on this device, or `demo`'s with `given`
    (its images capped to the data's pool), and the plan."""
    from pba.budget import PLANNED, Regime, batch_for, data_facts, plan_budget, split_sizes
    from pba.data import load_dataset
    from pba.models import check_name
    from pba.progress import loading_bar

    check_name(str(given.get("final_model", demo.model)))
    # The searched model and the image size are chosen, not planned.
    chosen = {name: given[name] for name in ("model", "image_size") if name in given}
    demo = dataclasses.replace(demo, search=demo.search | chosen)
    given = {name: value for name, value in given.items() if name in PLANNED}
    search = demo.search_config()
    if budget is not None:
        plan = plan_budget(search, budget, started, final_model=demo.model,
                           final_models=demo.final_models(reference), given=given,
                           device=device, precision=precision, workers=workers,
                           data_dir=data_dir, download=download, progress=progress)
        return _with_regime(demo, plan.regime), plan
    data = load_dataset(search.dataset, data_dir, download=download,
                        image_size=search.image_size, progress=loading_bar(progress))
    facts = data_facts(search, data, demo.final_models(reference))
    sizes = split_sizes(int(given.get("train_size", search.train_size or facts.pool)), facts)
    if sizes is None:
        raise PBAError(f"{search.dataset} has too few images for a search")
    values = demo.values() | {"train_size": sizes[0], "val_size": sizes[1],
                              "batch_size": batch_for(sizes[0], search.batch_size)} | given
    values.pop("image_size")  # chosen, not planned: in `demo.search` already
    regime = Regime(final_models=facts.final_models, **values)
    return _with_regime(demo, regime), None


def _with_regime(demo: DemoConfig, regime: Regime) -> DemoConfig:
    return dataclasses.replace(demo, model=regime.final_model, epochs=regime.final_epochs,
                               search=demo.search | regime.search_changes())


def _check_unchanged(
    doc: dict, demo: DemoConfig, given: dict, budget: float | None, progress: bool
) -> None:
    """A demo that exists continues as it was planned: refuse values that differ from it."""
    stored = DemoConfig.from_dict(doc["demo"])
    values = stored.values()
    differ = [name for name, value in given.items() if values.get(name) != value]
    if demo.dataset not in (None, stored.search_config().dataset):
        differ.append("dataset")
    if differ:
        flags = ", ".join("--" + name.replace("_", "-") for name in differ)
        raise PBAError(f"this demo exists and continues as it was planned; {flags} differ "
                       "from it: drop them, or choose another --out")
    if budget is not None and doc.get("plan") is None:
        _say(progress, "pba demo: this demo was started without a budget; --budget is ignored")


def _refit(out: Path, demo: DemoConfig, started: float, progress: bool) -> DemoConfig:
    """Before the first final model of a budgeted demo: its epochs fitted to the time left,
    the search's own pace taken into account (`pba.budget.refit_final_epochs`)."""
    from pba import run as training_run
    from pba.budget import Facts, Rates, Regime, pace, refit_final_epochs

    doc = _read_demo_file(out)
    plan = doc.get("plan")
    if (plan is None or "refit" in doc or "final_epochs" in doc.get("given", ())
            or any((path / training_run.CONFIG).is_file()
                   for path in (out / FINAL).glob("*"))):
        return demo
    elapsed = doc["wall_s"] + time.monotonic() - started
    predicted = plan["seconds"]["search"] + plan["seconds"].get("baseline_check", 0.0)
    slowdown = pace(elapsed - plan["spent_before_plan_s"], predicted)
    regime = Regime(**plan["regime"])
    rates = {r["model"]: Rates(**r | {"image_size": tuple(r["image_size"])})
             for r in plan["rates"]}
    left = plan["budget_s"] - elapsed
    epochs = refit_final_epochs(regime, Facts(**plan["facts"]), rates, left, slowdown)
    if epochs != demo.epochs:
        _say(progress, f"pba demo: the search took {slowdown:.2f} x its predicted time; "
                       f"{duration(max(left, 0))} of the budget left, so the final "
                       f"models train {epochs} epochs instead of {demo.epochs}")
    demo = dataclasses.replace(demo, epochs=epochs)
    _write_demo_file(out, doc | {"demo": demo.to_dict(), "refit": {
        "planned_epochs": regime.final_epochs, "epochs": epochs, "search_slowdown": slowdown,
        "left_s": left}})
    return demo


def final_jobs(
    demo: DemoConfig, search: SearchConfig, out: Path, reference: Path | None,
    first_seeds: Sequence[int] = (DEFAULT_FIRST_SEED,), *, device: str, precision: str,
    data_dir: str | Path | None,
) -> list[FinalJob]:
    """Every final model of the demo, set by set of seeds, seeds interleaved within a set so
    that each arm's first seeds come first: a demo stopped early has the comparison's core."""
    from pba import run as training_run
    from pba.data.datasets import has_own_val
    from pba.search import rundir

    schedules = {THIS_SCHEDULE: out / DEMO_SEARCH / rundir.SCHEDULE, PUBLISHED: reference}
    jobs: dict[Path, FinalJob] = {}
    for arm, seed in (pair for first in first_seeds for pair in _set_order(demo, first)):
        if (arm == PUBLISHED and reference is None) or (arm == "none" and _baseline_is_none(
                search)):
            continue
        run_out = out / FINAL / f"{arm}-seed{seed}"
        if run_out in jobs:  # in two overlapping sets
            continue
        resume = (run_out / training_run.CONFIG).is_file()
        if resume:
            config = training_run.resumed_config(run_out)
        else:
            # The search's training images; a folder's own val/ comes along, unused.
            val_size = None if has_own_val(search.dataset) else 0
            given = {"dataset": search.dataset, "model": demo.model, "augment": ARMS[arm],
                     "seed": seed, "train_size": search.train_size, "val_size": val_size,
                     "epochs": demo.epochs, "lr": demo.lr,
                     "weight_decay": demo.weight_decay, "batch_size": search.batch_size,
                     "baseline": search.baseline, "cutout_size": search.cutout_size,
                     "precision": precision, "ops": search.ops,
                     "image_size": search.image_size}
            if ARMS[arm] == "pba":
                # A PBT policy log's length is taken to be the paper's search's.
                given["schedule"] = schedules[arm]
            config = training_run.new_config(given, device=device, data_dir=data_dir)
        jobs[run_out] = FinalJob(arm, seed, run_out, config, resume)
    return list(jobs.values())


def seed_set(demo: DemoConfig, first_seed: int) -> dict[str, list[int]]:
    """The seeds of each arm in the set that starts at `first_seed`."""
    return {arm: list(range(first_seed, first_seed + n)) for arm, n in demo.seeds.items()}


def _set_order(demo: DemoConfig, first_seed: int) -> list[tuple[str, int]]:
    """(arm, seed) of a set, the k-th seed of every arm before any arm's (k+1)-th."""
    seeds = seed_set(demo, first_seed)
    return [(arm, seeds[arm][k]) for k in range(max(demo.seeds.values()))
            for arm in ARMS if k < len(seeds.get(arm, ()))]


def demo_report(out: str | Path) -> str:
    """The report of the demo in `out` from its finished final models: writes results.json
    and summary.md, returns the summary's text (the verdicts and table, then the search)."""
    from pba import report
    from pba.demo_results import render, results
    from pba.run import read_result
    from pba.search import SearchConfig, rundir
    from pba.search.rundir import RunDir

    out = Path(out)
    doc = _read_demo_file(out)
    demo, first_seeds = DemoConfig.from_dict(doc["demo"]), doc["first_seeds"]
    search_dir = out / DEMO_SEARCH
    config = RunDir.open(search_dir).config()
    search = SearchConfig.from_dict(config["search"])
    finished: dict[str, dict[int, float]] = {}
    train_s, sizes, trained = 0.0, {}, 0
    for arm, seed in (pair for first in first_seeds for pair in _set_order(demo, first)):
        result = read_result(out / FINAL / f"{arm}-seed{seed}")
        if result is not None:
            finished.setdefault(arm, {})[seed] = result["test_error"]
            train_s += result.get("train_time_s", 0.0)
            trained += 1
            sizes = {"train_images": result.get("train_images", search.train_size),
                     "test_images": result.get("test_images")}
    sets = [seed_set(demo, first) for first in first_seeds]
    if _baseline_is_none(search):
        # The baseline decided on the data is no augmentation: its models are that arm's.
        finished["none"] = finished.get("baseline", {})
        sets = [s | {"none": s["baseline"]} for s in sets]
    size = config.get("images", {}).get("size")
    data = {"dataset": search.dataset, "model": demo.model, "epochs": demo.epochs,
            "train_images": sizes.get("train_images", search.train_size),
            "image_size": size, "baseline": search.settled_baseline().describe(),
            "test_split": test_split(search.dataset, sizes.get("test_images"))}
    times = {"search_s": report.search_cost(search_dir).wall_s, "final_models_s": train_s,
             "final_models": trained, "demo_wall_s": doc.get("wall_s", 0.0)}
    if doc.get("plan"):
        times |= {"budget_s": doc["plan"]["budget_s"],
                  "expected_s": doc["plan"]["expected_s"]}
    plan = {"demo": demo.to_dict(), "search": search.to_dict(), "reference": doc["reference"],
            "budget": doc.get("plan"), "refit": doc.get("refit")}
    document = results(finished, sets, first_seeds, data=data, plan=plan, times=times)
    write_text_atomic(out / RESULTS, json.dumps(document, indent=2) + "\n")
    lines = render(document, f"PBA demo {out}").splitlines()
    lines += ["", "## The search"]
    lines += report.summary_markdown(search_dir).splitlines()[1:]  # without its title
    lines += ["", f"Plots: `{search_dir / rundir.PLOT}` (the schedule), "
              f"`{search_dir / rundir.POPULATION_PLOT}` (the population)."]
    text = "\n".join(lines).rstrip("\n") + "\n"
    write_text_atomic(out / rundir.SUMMARY, text)
    return text


def _baseline_is_none(search: SearchConfig) -> bool:
    return not search.settled_baseline().parts


def test_split(dataset: str, images: int | None) -> str:
    """Which images the final models are tested on, in words."""
    from pba.data.datasets import FOLDER_PREFIX, FOLDER_TEST_FRACTION
    from pba.data.sources import TORCHVISION_PREFIX

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


def is_demo_dir(path: str | Path) -> bool:
    return (Path(path) / DEMO_FILE).is_file()


def train_finals(
    jobs: list[FinalJob], *, device: str, data_dir: str | Path | None, download: bool,
    workers: int | None, progress: bool,
) -> None:
    """Train (or resume) `jobs`, `workers` at once (`pba.parallel`; default: one per CPU
    core, one on a GPU), under one progress bar. They share one dataset and recipe shape."""
    import threading

    from tqdm import tqdm

    from pba import run as training_run
    from pba.data import load_dataset
    from pba.device import resolve_device
    from pba.progress import loading_bar

    first = jobs[0].config
    data = load_dataset(first["dataset"], data_dir or first["data_dir"],
                        train_size=first["train_size"], val_size=first["val_size"],
                        download=download, image_size=first["image_size"],
                        progress=loading_bar(progress))
    workers = workers or default_workers(len(jobs), resolve_device(device))
    bar = tqdm(total=sum(_images(job, job.config["epochs"]) for job in jobs),
               initial=sum(_images(job, _epochs_done(job)) for job in jobs), unit="img",
               unit_scale=True, dynamic_ncols=True, disable=not progress,
               desc=f"final models 0/{len(jobs)}")
    lock = threading.Lock()
    done = 0

    def on_images(images: int) -> None:
        with lock:
            bar.update(images)

    def train(job: FinalJob) -> None:
        nonlocal done
        result = training_run.fit(job.config, job.out, resume=job.resume, device=device,
                                  data=data, progress=False, on_images=on_images)
        with lock:
            done += 1
            bar.set_description(f"final models {done}/{len(jobs)}")
            if progress:
                bar.write(f"{job.arm} seed {job.seed}: test error {result['test_error']:.2f}% "
                          f"({result['train_time_s']:.0f} s)")

    with bar:
        map_parallel(train, jobs, workers)


def _demo_config(
    demo: DemoConfig, out: Path, reference: str | Path | None, first_seed: int | None,
    plan: Plan | None = None, given: Sequence[str] = (),
) -> tuple[DemoConfig, Path | None, list[int]]:
    """The demo in `out`, its published schedule and the first seed of each set of final
    models: those it started with (plus `first_seed` and `reference` when they are new), or
    `demo` and `reference` for a new directory (recorded with its `plan` and the names of the
    values the user `given`)."""
    _check_demo_dir(out)
    path = out / DEMO_FILE
    if reference is not None:
        reference = Path(reference).resolve()
        if not reference.is_file():
            raise PBAError(f"no published schedule at {reference}")
    if path.is_file():
        doc = _read_demo_file(out)
        stored = DemoConfig.from_dict(doc["demo"])
        first_seeds = doc["first_seeds"]
        if first_seed is not None and first_seed not in first_seeds:
            first_seeds = [*first_seeds, first_seed]
        if reference is not None and doc["reference"] not in (None, str(reference)):
            raise PBAError(f"{out} compares with the published schedule {doc['reference']}; "
                           f"it cannot take {reference} as well")
        reference = reference if doc["reference"] is None else Path(doc["reference"])
        _write_demo_file(out, doc | {"first_seeds": first_seeds, "reference": None if
                                     reference is None else str(reference)})
        return stored, reference, first_seeds
    first_seeds = [DEFAULT_FIRST_SEED if first_seed is None else first_seed]
    _write_demo_file(out, {"demo": demo.to_dict(), "reference": None if reference is None
                           else str(reference), "first_seeds": first_seeds, "wall_s": 0.0,
                           "plan": None if plan is None else plan.to_dict(),
                           "given": list(given)})
    return demo, reference, first_seeds


def _read_demo_file(out: Path) -> dict:
    """demo.json, with the first seeds of a demo written before --first-seed."""
    path = out / DEMO_FILE
    try:
        doc = json.loads(path.read_text())
        DemoConfig.from_dict(doc["demo"])
        doc.setdefault("first_seeds", [doc["demo"].get("first_seed", DEFAULT_FIRST_SEED)])
        if "reference" not in doc:
            raise KeyError("reference")
    except (ValueError, KeyError, TypeError, AttributeError, PBAError):
        raise PBAError(f"{path} is not a pba demo record (changed by hand?)") from None
    return doc


def _write_demo_file(out: Path, doc: dict) -> None:
    write_text_atomic(out / DEMO_FILE, json.dumps(doc, indent=2) + "\n")


def _add_wall_time(out: Path, seconds: float) -> None:
    """Count a demo process's wall time in demo.json (the report's time is their sum)."""
    doc = _read_demo_file(out)
    _write_demo_file(out, doc | {"wall_s": doc.get("wall_s", 0.0) + seconds})


def _check_demo_dir(out: Path) -> None:
    """`out` must be a demo directory, or new (empty, or holding only a lock)."""
    if (out / DEMO_FILE).is_file() or not out.exists():
        return
    if not out.is_dir() or any(p.name != LOCK for p in out.iterdir()):
        raise PBAError(f"{out} exists and holds no demo; choose another --out")


def _images(job: FinalJob, epochs: int) -> int:
    """Training images of `epochs` of the job."""
    from pba.train import images_per_epoch

    return epochs * images_per_epoch(job.config["train_size"], job.config["batch_size"])


def _epochs_done(job: FinalJob) -> int:
    """Epochs a resumed job will not train again (metrics.jsonl has one line per epoch)."""
    from pba import run as training_run

    path = job.out / training_run.METRICS
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, flush=True)
