"""Running a search into a run directory, and resuming one, with the local or the vectorized
engine (Ray: `ray_backend`). The search draws nothing: progress bars, plots, summary.md and
TensorBoard are recorders (`pba.search.recorder`) passed in by the application.

    from pba.search import preset
    from pba.search.runner import run_search
    result = run_search(preset("quick"), "runs/quick")
    result.schedule.save("my_schedule.json")
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from pba.core.device import resolve_device
from pba.core.errors import UserError
from pba.core.lock import owned
from pba.core.options import AS_STARTED, DEFAULTS, RunOptions
from pba.core.precision import resolve_precision
from pba.core.timing import BASELINE_CHECK, CHECKPOINTS, LOADING, REPORTING, Stopwatch
from pba.data import DatasetSplits
from pba.search.events import Event, Finish, Start
from pba.search.local import LocalEngine
from pba.search.pbt import ENGINES, PBT, Engine, SearchState
from pba.search.presets import SearchConfig
from pba.search.recorder import Recorder, Recorders
from pba.search.rundir import SearchDir, SearchResult
from pba.search.setup import load_search_data, run_record, settle_baseline
from pba.search.vectorized import VectorizedEngine


def run_search(
    config: SearchConfig,
    out: str | Path,
    *,
    options: RunOptions = DEFAULTS,
    preset: str | None = None,
    engine: str = "auto",
    skip_unreadable: bool = False,
    recorders: Sequence[Recorder] = (),
    compile: bool = False,
    budget: dict | None = None,
    watch: Stopwatch | None = None,
) -> SearchResult:
    """Search from scratch into the new run directory `out`. `options` say where and how it
    trains (`pba.core.options`: device, precision, data location, download; `workers` members
    train at once with the local engine: default one per CPU core, one on a GPU). `engine` is
    one of ENGINES; `skip_unreadable` leaves an image folder's unreadable files out (their
    count goes into config.json); `recorders` hear of the search's progress
    (`pba.reporting.recorders.search_recorders`: bars, plots, summary.md, TensorBoard;
    `options.progress` is theirs to honour); `compile` hands the vectorized engine's network
    and step to `torch.compile` (CUDA only). `budget` is the plan that sized `config`
    (`pba.budget.Plan.to_dict`), recorded in config.json. `watch` times the search's phases
    (`pba.core.timing`; a caller's watch also counts them in its own total)."""
    started, watch = time.time(), _fresh_lap(watch)
    options = options.starting()
    SearchDir.check_new(out)  # before minutes of data loading
    heard = Recorders(recorders)
    with owned(out, "pba search"), SearchDir.discarded_on_failure(out):
        settings = _settings(config, options, engine, compile)
        with watch.phase(LOADING):
            data = load_search_data(config, options.data_dir, options.download,
                                    skip_unreadable, heard.loading)
        with watch.phase(BASELINE_CHECK):
            config, check = settle_baseline(config, data, device=settings.device,
                                            precision=settings.precision,
                                            workers=options.workers, progress=heard.verbose)
        run = SearchDir.create(out, run_record(
            config, data, check, preset=preset, device=options.device, engine=engine,
            precision=options.precision, data_dir=options.data_dir,
            skip_unreadable=skip_unreadable, budget=budget))
        with watch.phase(LOADING):  # the members' networks
            search_engine = settings.build(config, data)
        return _run(run, config, search_engine, settings.device, started, heard, watch)


def resume_search(
    out: str | Path,
    *,
    options: RunOptions = AS_STARTED,
    engine: str | None = None,
    recorders: Sequence[Recorder] = (),
    compile: bool = False,
    watch: Stopwatch | None = None,
) -> SearchResult:
    """Continue the search in `out` from its last complete round (reading the data as it
    started: with `skip_unreadable` if it did). A device, precision or data_dir of None in
    `options`, and an `engine` of None, are those it started with (both engines read each
    other's checkpoints, so a search may change engine or precision when it resumes);
    `recorders`, `compile` and `watch` as in `run_search`."""
    started = time.time()
    SearchDir.open_unfinished(out)  # before the lock creates anything
    with owned(out, "pba search --resume"):
        return _resume(out, options, engine, Recorders(recorders), compile, started,
                       _fresh_lap(watch))


def _resume(
    out: str | Path, options: RunOptions, engine: str | None, heard: Recorders,
    compile: bool, started: float, watch: Stopwatch,
) -> SearchResult:
    run = SearchDir.open_unfinished(out)  # again: another owner may have finished it meanwhile
    doc = run.config()
    try:
        config = SearchConfig.from_dict(doc["search"])
    except (KeyError, TypeError) as err:
        raise UserError(f"{run.path}: config.json has no valid search config ({err})") from None
    options = options.continuing(doc)
    settings = _settings(config, options, engine or doc.get("engine", "auto"), compile)
    with watch.phase(LOADING):
        data = load_search_data(config, options.data_dir, options.download,
                                doc.get("skip_unreadable", False), heard.loading)
        search_engine = settings.build(config, data)
    return _run(run, config, search_engine, settings.device, started, heard, watch)


def _fresh_lap(watch: Stopwatch | None) -> Stopwatch:
    """`watch` (a new one if None) with its lap begun now: the search's first round counts
    only what the search timed."""
    watch = watch or Stopwatch()
    watch.lap()
    return watch


def choose_engine(engine: str, model: str, device: torch.device) -> type[Engine]:
    """The engine class for `engine` (one of ENGINES). 'auto' trains WRN populations packed into
    one network on a GPU (benchmarks/search_speed.py) and members in turn otherwise."""
    if engine == "ray":
        raise UserError("the ray engine runs through pba.search.ray_backend.run_ray_search")
    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    packable = model.startswith("wrn_")
    if engine == "vectorized" and not packable:
        raise UserError(f"the vectorized engine packs WRN models only, not {model!r}: use "
                       "--engine local")
    if engine == "vectorized" or (engine == "auto" and packable and device.type == "cuda"):
        return VectorizedEngine
    return LocalEngine


@dataclass(frozen=True)
class _EngineSettings:
    """How a search trains on this machine, checked before any data is read."""

    engine_class: type[Engine]
    device: torch.device
    precision: str  # resolved
    options: dict

    def build(self, config: SearchConfig, data: DatasetSplits) -> Engine:
        return self.engine_class(data, config.model, config.recipe(self.precision),
                                 config.population, seed=config.seed, device=self.device,
                                 **self.options)


def _settings(
    config: SearchConfig, options: RunOptions, engine: str, compile: bool = False,
) -> _EngineSettings:
    resolved = resolve_device(options.device)
    engine_class = choose_engine(engine, config.model, resolved)
    precision = resolve_precision(options.precision, resolved)
    config.recipe(precision)
    engine_options = {}
    if options.workers is not None:  # at least 1: RunOptions checks it
        if engine_class is not LocalEngine:
            raise UserError("--workers is for the local engine; the vectorized one trains "
                           "every member in one network")
        engine_options["workers"] = options.workers
    if compile:
        if engine_class is not VectorizedEngine or resolved.type != "cuda":
            raise UserError("--compile is for the vectorized engine on a GPU (--engine "
                           "vectorized --device cuda): on a CPU torch.compile took minutes and "
                           "gave no speed-up")
        engine_options["compile"] = True
    if resolved.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    return _EngineSettings(engine_class, resolved, precision, engine_options)


def _run(
    run: SearchDir, config: SearchConfig, engine: Engine, device: torch.device,
    started: float, heard: Recorders, watch: Stopwatch,
) -> SearchResult:
    with watch.phase(LOADING):  # the members' checkpoints, when it resumes
        state = run.restore(config.pbt(), engine)
    run.append([Start(started, state.round, state.epoch, _device_name(device, engine),
                       engine.recipe.precision)])
    try:
        heard.started(run, state, engine.images_per_epoch)
        engine.progress = heard.trained

        def record(state: SearchState, events: list[Event]) -> None:
            with watch.phase(CHECKPOINTS):
                run.commit(state, events, engine)
            with watch.phase(REPORTING):
                heard.round_done(state, events)

        PBT(engine, state, record, watch).run()
        best = state.best()
        with watch.phase(CHECKPOINTS):
            schedule = run.save_schedule(state, state.lineage.schedule(best), best)
        # Logged before the reports, so that summary.md counts the whole search.
        run.append([Finish(time.time(), watch.lap())])
        heard.finished(run, state, schedule, best)
    finally:
        heard.close()
    run.mark_finished(state)
    return SearchResult(run.path, schedule, best, run.last_round().best_accuracy)


def _device_name(device: torch.device, engine: Engine) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    workers = getattr(engine, "workers", 1)
    if workers > 1:
        threads = max(1, torch.get_num_threads() // workers)
        return f"cpu ({workers} members at once, torch threads: {threads} each)"
    return f"cpu (torch threads: {torch.get_num_threads()})"
