"""`run_demo`: the demo's pipeline. A new demo's regime (planned for a budget, or the default's
capped to the data), the search, the final models' epochs refitted to the time the search left,
every arm's final models, then the report (`pba.demo.report`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pba.budget import (
    PLANNED,
    Facts,
    Plan,
    Rates,
    Regime,
    batch_for,
    data_facts,
    pace,
    plan_budget,
    refit_final_epochs,
    split_sizes,
)
from pba.core.errors import UserError
from pba.core.formatting import duration
from pba.core.options import DEFAULTS, RunOptions
from pba.core.timing import LOADING, Stopwatch
from pba.data import load_dataset
from pba.data.datasets import data_root, has_own_val
from pba.demo.config import (
    ARMS,
    DEFAULT_FIRST_SEED,
    PUBLISHED,
    SEARCH_FREE,
    THIS_SCHEDULE,
    VARIANTS,
    DemoConfig,
    none_is_baseline,
    set_order,
)
from pba.demo.record import (
    DEMO_FILE,
    DEMO_SEARCH,
    FINAL,
    DemoDir,
    add_wall_time,
    check_demo_dir,
    open_demo,
    read_demo_file,
    write_demo_file,
)
from pba.demo.report import demo_report
from pba.models import check_name
from pba.reporting.progress import loading_bar
from pba.reporting.recorders import search_recorders
from pba.runs import training_run
from pba.runs.final_models import Arm, FinalJob, FinalSettings, final_job, train_finals
from pba.search import SearchConfig, rundir
from pba.search.rundir import SearchDir
from pba.search.runner import resume_search, run_search


def run_demo(
    demo: DemoConfig,
    out: str | Path,
    *,
    reference: str | Path | None = None,
    first_seed: int | None = None,
    budget: float | None = None,
    given: Mapping[str, int | str] | None = None,
    options: RunOptions = DEFAULTS,
) -> str:
    """Run (or continue) the demo in `out`; return its report (also DIR/summary.md, with
    DIR/results.json).

    `reference` is a published schedule (the PBT policy log rcifar10_16_wrn.txt) for the
    'published' arm, which is left out without it. `first_seed` starts a set of final models'
    seeds (default DEFAULT_FIRST_SEED): on a demo directory that has a search, another first
    seed reuses the search and trains that set beside the earlier ones, and the report judges
    each set and all together. `budget` (seconds) sizes a new demo's regime to end within it
    on this device (`pba.budget`), keeping the values of `given` (`pba.budget.PLANNED` names,
    the searched "model", "image_size", the search's VARIANTS and the "arms"); without it the
    regime is `demo`'s with `given`, its images capped to the data's pool. A demo that exists
    continues as it was planned. `options` say where and how it trains (`pba.core.options`):
    `options.workers` members of the search, and final models, train at once.
    """
    out = Path(out)
    check_demo_dir(out)  # before the lock creates anything
    started, watch = time.monotonic(), Stopwatch()
    with DemoDir(out).owned("pba demo"):
        try:
            _run_demo(demo, out, reference=reference, first_seed=first_seed, budget=budget,
                      given=dict(given or {}), started=started, watch=watch, options=options)
        finally:
            if (out / DEMO_FILE).is_file():
                add_wall_time(out, time.monotonic() - started, watch.breakdown())
        return demo_report(out)


def _run_demo(
    demo: DemoConfig, out: Path, *, reference: str | Path | None, first_seed: int | None,
    budget: float | None, given: dict, started: float, watch: Stopwatch, options: RunOptions,
) -> None:
    plan = None
    options = options.starting()
    say = options.progress
    if (out / DEMO_FILE).is_file():
        _check_unchanged(read_demo_file(out), demo, given, budget, say)
    else:
        demo, plan = _new_demo(demo, budget, given, reference is not None, started,
                               options=options, watch=watch)
    demo, reference, first_seeds = open_demo(demo, out, reference, first_seed, plan,
                                             sorted(given))
    search = demo.search_config()
    search_dir = out / DEMO_SEARCH
    recorders = search_recorders(progress=say)
    if not (search_dir / rundir.SCHEDULE).is_file():
        if (search_dir / rundir.CONFIG).is_file():
            _say(say, f"pba demo 1/2: continuing the search in {search_dir}")
            # on the device and in the precision it started with
            resume_search(search_dir, options=options.replace(device=None, precision=None),
                          recorders=recorders, watch=watch)
        else:
            _say(say, f"pba demo 1/2: searching a schedule ({search.population} x "
                      f"{search.model}, {search.epochs} epochs, {search.train_size} "
                      f"training images of {search.dataset})")
            # Where the data was found is recorded, so that a later `--first-seed` finds it
            # without the environment that located it.
            run_search(search, search_dir,
                       options=options.replace(data_dir=data_root(options.data_dir)),
                       preset=demo.preset, recorders=recorders, watch=watch,
                       budget=None if plan is None else plan.to_dict())
    doc = SearchDir.open(search_dir).config()
    search = SearchConfig.from_dict(doc["search"])  # as it ran, whatever the preset is now
    options = options.replace(data_dir=options.data_dir or doc.get("data_dir"))
    demo = _refit(out, demo, started, say)
    jobs = final_jobs(demo, search, out, reference, first_seeds, precision=options.precision)
    todo = [job for job in jobs if not training_run.TrainingDir(job.out).is_finished()]
    if todo:
        _say(say, f"pba demo 2/2: {len(todo)} final models ({demo.model}, {demo.epochs} "
                  f"epochs) of {len(jobs)}")
        train_finals(todo, options=options, watch=watch)


def _new_demo(
    demo: DemoConfig, budget: float | None, given: dict, reference: bool, started: float, *,
    options: RunOptions, watch: Stopwatch,
) -> tuple[DemoConfig, Plan | None]:
    """A new demo's regime: planned for `budget` on this device, or `demo`'s with `given`
    (its images capped to the data's pool), and the plan."""
    check_name(str(given.get("final_model", demo.model)))
    # The searched model, the image size and the search's variants are chosen, not planned.
    chosen = {name: given[name] for name in ("model", "image_size", *VARIANTS) if name in given}
    demo = dataclasses.replace(demo, search=demo.search | chosen,
                               seeds=given.get("arms", demo.seeds))
    # Unless the arms are given, the search-free arm gives way to the final models' floor.
    optional = 0 if "arms" in given else demo.seeds.get(SEARCH_FREE, 0)
    given = {name: value for name, value in given.items() if name in PLANNED}
    search = demo.search_config()
    if budget is not None:
        everything = demo.final_models(reference)
        plan = plan_budget(search, budget, started, final_model=demo.model,
                           final_models=everything, optional_final_models=optional,
                           given=given, options=options, watch=watch)
        if plan.facts.final_models < everything:
            demo = dataclasses.replace(demo, seeds={arm: n for arm, n in demo.seeds.items()
                                                    if arm != SEARCH_FREE})
        return _with_regime(demo, plan.regime), plan
    with watch.phase(LOADING):
        data = load_dataset(search.dataset, options.data_dir, download=options.download,
                            image_size=search.image_size,
                            progress=loading_bar(options.progress))
    facts = data_facts(search, data, demo.final_models(reference))
    sizes = split_sizes(int(given.get("train_size", search.train_size or facts.pool)), facts)
    if sizes is None:
        raise UserError(f"{search.dataset} has too few images for a search")
    values = demo.values() | {"train_size": sizes[0], "val_size": sizes[1],
                              "batch_size": batch_for(sizes[0], search.batch_size)} | given
    # The rest is chosen, not planned: in `demo` already.
    regime = Regime(final_models=facts.final_models,
                    **{name: values[name] for name in ("model", *PLANNED)})
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
        raise UserError(f"this demo exists and continues as it was planned; {flags} differ "
                       "from it: drop them, or choose another --out")
    if budget is not None and doc.get("plan") is None:
        _say(progress, "pba demo: this demo was started without a budget; --budget is ignored")


def _refit(out: Path, demo: DemoConfig, started: float, progress: bool) -> DemoConfig:
    """Before the first final model of a budgeted demo: its epochs fitted to the time left,
    the search's own pace taken into account (`pba.budget.refit_final_epochs`)."""
    doc = read_demo_file(out)
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
    write_demo_file(out, doc | {"demo": demo.to_dict(), "refit": {
        "planned_epochs": regime.final_epochs, "epochs": epochs, "search_slowdown": slowdown,
        "left_s": left}})
    return demo


def final_jobs(
    demo: DemoConfig, search: SearchConfig, out: Path, reference: Path | None,
    first_seeds: Sequence[int] = (DEFAULT_FIRST_SEED,), *, precision: str,
) -> list[FinalJob]:
    """Every final model of the demo, set by set of seeds, seeds interleaved within a set so
    that each arm's first seeds come first: a demo stopped early has the comparison's core."""
    # The search's training images; a folder's own val/ comes along, unused.
    settings = FinalSettings(
        search.dataset, demo.model, demo.epochs, demo.lr, demo.weight_decay, search.batch_size,
        val_size=None if has_own_val(search.dataset) else 0, baseline=search.baseline,
        train_size=search.train_size, cutout_size=search.cutout_size, precision=precision,
        ops=search.ops, image_size=search.image_size)
    # A PBT policy log's length is taken to be the paper's search's.
    arms = {arm: Arm(augment) for arm, augment in ARMS.items()}
    arms[THIS_SCHEDULE] = Arm(ARMS[THIS_SCHEDULE], out / DEMO_SEARCH / rundir.SCHEDULE)
    arms[PUBLISHED] = Arm(ARMS[PUBLISHED], reference)
    jobs: dict[Path, FinalJob] = {}
    for arm, seed in (pair for first in first_seeds for pair in set_order(demo, first)):
        if (arm == PUBLISHED and reference is None) or (arm == "none" and none_is_baseline(
                demo, search)):
            continue
        run_out = out / FINAL / f"{arm}-seed{seed}"
        if run_out not in jobs:  # else in an overlapping set already
            jobs[run_out] = final_job(arm, seed, run_out, settings, arms[arm])
    return list(jobs.values())


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, flush=True)
