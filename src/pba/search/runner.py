"""Running a search into a run directory, and resuming one: what `pba search` calls.

    from pba.search import preset
    from pba.search.runner import run_search
    result = run_search(preset("quick"), "runs/quick")
    result.schedule.save("my_schedule.json")
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pba.atomic import write_text_atomic
from pba.baseline_check import BaselineCheck, settle
from pba.data import DatasetSplits, load_dataset
from pba.data.datasets import PAPER_SEED
from pba.device import resolve_device
from pba.errors import PBAError
from pba.lock import owned
from pba.plot import plot_population, plot_schedule
from pba.precision import resolve_precision
from pba.schedule import Schedule
from pba.search import rundir
from pba.search.events import Event, Exploit, Start
from pba.search.local import LocalEngine
from pba.search.pbt import ENGINES, PBT, Engine, SearchState, require_validation
from pba.search.presets import SearchConfig
from pba.search.rundir import RunDir
from pba.search.vectorized import VectorizedEngine
from pba.tensorboard import TensorBoardLog, require_tensorboard


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    schedule: Schedule  # the best final member's, one policy per search epoch
    best_member: int
    best_accuracy: float  # its validation accuracy at the end


def run_search(
    config: SearchConfig,
    out: str | Path,
    *,
    preset: str | None = None,
    device: str = "auto",
    engine: str = "auto",
    precision: str = "auto",
    workers: int | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
    skip_unreadable: bool = False,
    progress: bool = True,
    tensorboard: bool = False,
    compile: bool = False,
    budget: dict | None = None,
) -> SearchResult:
    """Search from scratch into the new run directory `out`. `engine` is one of ENGINES,
    `precision` one of `pba.precision.PRECISIONS`; `workers` members train at once with the
    local engine (default: one per CPU core, one on a GPU); `skip_unreadable` leaves an image
    folder's unreadable files out (their count goes into config.json); `tensorboard` also logs
    every round to DIR/tensorboard (`pba.tensorboard`); `compile` hands the vectorized engine's
    network and step to `torch.compile` (CUDA only). `budget` is the plan that sized `config`
    (`pba.budget.Plan.to_dict`), recorded in config.json."""
    started = time.time()
    RunDir.check_new(out)  # before minutes of data loading
    if tensorboard:
        require_tensorboard()
    with owned(out, "pba search"), RunDir.discarded_on_failure(out):
        settings = _settings(config, device, engine, precision, workers, compile)
        data = load_search_data(config, data_dir, download, skip_unreadable, progress)
        config, check = settle_baseline(config, data, device=settings.device,
                                        precision=settings.precision, workers=workers,
                                        progress=progress)
        if data_dir is not None:
            data_dir = Path(data_dir).resolve()  # so that a resume from elsewhere finds it
        run = RunDir.create(out, {
            "preset": preset, "search": config.to_dict(), "device": device,
            "engine": engine, "precision": precision,
            "data_dir": None if data_dir is None else str(data_dir),
            "skip_unreadable": skip_unreadable,
            "images": images_record(data),
            "baseline_check": None if check is None else check.to_dict(),
            **({} if budget is None else {"budget": budget}),
        })
        return _run(run, config, settings.build(config, data), settings.device, started,
                    progress, tensorboard)


def resume_search(
    out: str | Path,
    *,
    device: str | None = None,
    engine: str | None = None,
    precision: str | None = None,
    workers: int | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
    progress: bool = True,
    tensorboard: bool = False,
    compile: bool = False,
) -> SearchResult:
    """Continue the search in `out` from its last complete round (reading the data as it
    started: with `skip_unreadable` if it did). `device`, `engine`,
    `precision` and `data_dir` default to those it was started with (both engines read each
    other's checkpoints, so a search may change engine or precision when it resumes);
    `workers`, `tensorboard` and `compile` as in `run_search`."""
    started = time.time()
    RunDir.open_unfinished(out)  # before the lock creates anything
    if tensorboard:
        require_tensorboard()
    with owned(out, "pba search --resume"):
        return _resume(out, device, engine, precision, workers, data_dir, download, progress,
                       tensorboard, compile, started)


def _resume(
    out: str | Path, device: str | None, engine: str | None, precision: str | None,
    workers: int | None, data_dir: str | Path | None, download: bool, progress: bool,
    tensorboard: bool, compile: bool, started: float,
) -> SearchResult:
    run = RunDir.open_unfinished(out)  # again: another owner may have finished it meanwhile
    doc = run.config()
    try:
        config = SearchConfig.from_dict(doc["search"])
    except (KeyError, TypeError) as err:
        raise PBAError(f"{run.path}: config.json has no valid search config ({err})") from None
    if data_dir is None:
        data_dir = doc.get("data_dir")
    settings = _settings(config, device or doc.get("device", "auto"),
                         engine or doc.get("engine", "auto"),
                         # runs from before --precision trained the CPU's way: fp32
                         precision or doc.get("precision", "fp32"), workers, compile)
    data = load_search_data(config, data_dir, download, doc.get("skip_unreadable", False),
                            progress)
    return _run(run, config, settings.build(config, data), settings.device, started, progress,
                tensorboard)


def choose_engine(engine: str, model: str, device: torch.device) -> type[Engine]:
    """The engine class for `engine` (one of ENGINES). 'auto' trains WRN populations packed into
    one network on a GPU (benchmarks/search_speed.py) and members in turn otherwise."""
    if engine == "ray":
        raise PBAError("the ray engine runs through pba.search.ray_backend.run_ray_search")
    if engine not in ENGINES:
        raise PBAError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    packable = model.startswith("wrn_")
    if engine == "vectorized" and not packable:
        raise PBAError(f"the vectorized engine packs WRN models only, not {model!r}: use "
                       "--engine local")
    if engine == "vectorized" or (engine == "auto" and packable and device.type == "cuda"):
        return VectorizedEngine
    return LocalEngine


def load_search_data(
    config: SearchConfig, data_dir: str | Path | None, download: bool,
    skip_unreadable: bool = False, progress: bool = False,
) -> DatasetSplits:
    """The search's data: the paper's split whatever the search's seed (a seed varies the
    search, not the data), with a validation split to rank members on; a bar for a long
    load with `progress`."""
    from pba.progress import loading_bar

    data = load_dataset(config.dataset, data_dir, train_size=config.train_size,
                        val_size=config.val_size, seed=PAPER_SEED, download=download,
                        image_size=config.image_size, skip_unreadable=skip_unreadable,
                        progress=loading_bar(progress))
    require_validation(data)
    return data


def images_record(data: DatasetSplits) -> dict:
    """config.json's "images": how many the search trains and ranks on, how many unreadable
    files it left out, and their size (height, width), which schedule.json records too."""
    return {"train": len(data.train), "val": len(data.val), "skipped": len(data.skipped),
            "size": list(data.train.images.shape[-2:])}


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


def settle_baseline(
    config: SearchConfig, data: DatasetSplits, *, device: torch.device, precision: str,
    workers: int | None = None, progress: bool = True,
) -> tuple[SearchConfig, BaselineCheck | None]:
    """`config` with the baseline its members train with decided on `data` (a check on image
    folders, `pba.baseline_check`), as config.json records it, and the check if one ran."""
    baseline, check = settle(config.baseline, config.cutout_size, data, model=config.model,
                             recipe=config.recipe(precision), seed=config.seed, device=device,
                             workers=workers, progress=progress)
    return config.replace(baseline=str(baseline), cutout_size=baseline.cutout_size), check


def _settings(
    config: SearchConfig, device: str, engine: str, precision: str, workers: int | None,
    compile: bool = False,
) -> _EngineSettings:
    resolved = resolve_device(device)
    engine_class = choose_engine(engine, config.model, resolved)
    precision = resolve_precision(precision, resolved)
    config.recipe(precision)
    options = {}
    if workers is not None:
        if engine_class is not LocalEngine:
            raise PBAError("--workers is for the local engine; the vectorized one trains "
                           "every member in one network")
        if workers < 1:
            raise PBAError(f"--workers must be >= 1, got {workers}")
        options["workers"] = workers
    if compile:
        if engine_class is not VectorizedEngine or resolved.type != "cuda":
            raise PBAError("--compile is for the vectorized engine on a GPU (--engine "
                           "vectorized --device cuda): on a CPU torch.compile took minutes and "
                           "gave no speed-up")
        options["compile"] = True
    if resolved.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    return _EngineSettings(engine_class, resolved, precision, options)


def _run(
    run: RunDir, config: SearchConfig, engine: Engine, device: torch.device,
    started: float, progress: bool, tensorboard: bool,
) -> SearchResult:
    state = run.restore(config.pbt(), engine)
    run.append([Start(started, state.round, state.epoch, _device_name(device, engine),
                       engine.recipe.precision)])
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(_Progress(config, engine.images_per_epoch, state,
                                            enabled=progress))
        board = stack.enter_context(TensorBoardLog(run.path)) if tensorboard else None
        engine.progress = bar.update

        def record(state: SearchState, events: list[Event]) -> None:
            run.commit(state, events, engine)
            bar.round_done(state, events)
            if board is not None:
                board.search_round(events)

        PBT(engine, state, record).run()
    best = state.best()
    schedule = state.lineage.schedule(best)
    write_outputs(run, state, schedule, best)
    run.mark_finished(state)
    from pba.report import search_cost  # not at the top: pba.report imports pba.search

    return SearchResult(run.path, schedule, best, search_cost(run.path).best_accuracy)


def write_outputs(run: RunDir, state: SearchState, schedule: Schedule, best: int) -> None:
    """schedule.json (with the baseline and image size it was searched with), the PBT policy
    log, the plots and summary.md."""
    from pba.report import summary_markdown

    doc = run.config()
    baseline = SearchConfig.from_dict(doc["search"]).settled_baseline()
    schedule = dataclasses.replace(schedule, baseline=str(baseline),
                                   cutout_size=baseline.cutout_size,
                                   image_size=doc["images"].get("size"))
    schedule.save(run.path / rundir.SCHEDULE)
    write_text_atomic(run.path / rundir.PBT_LOG, state.lineage.pbt_log(best))
    plot_schedule(schedule, run.path / rundir.PLOT,
                  f"PBA schedule of {run.path} (member {best}, {len(schedule)} epochs)")
    plot_population(run.events(), run.path / rundir.POPULATION_PLOT,
                    f"PBA population of {run.path}: {state.config.population} members, "
                    f"{state.round} rounds",
                    [step.member for step in state.lineage.history(best)])
    write_text_atomic(run.path / rundir.SUMMARY, summary_markdown(run.path))


def _device_name(device: torch.device, engine: Engine) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    workers = getattr(engine, "workers", 1)
    if workers > 1:
        threads = max(1, torch.get_num_threads() // workers)
        return f"cpu ({workers} members at once, torch threads: {threads} each)"
    return f"cpu (torch threads: {torch.get_num_threads()})"


class _Progress:
    """A tqdm bar over all images the search trains on (so its rate is images/s and its ETA the
    search's), titled with the round and epoch, showing the last round's best and median
    validation accuracy; one printed line per round, for logs."""

    def __init__(self, config: SearchConfig, images_per_epoch: int, state: SearchState,
                 *, enabled: bool) -> None:
        self.rounds = config.pbt().rounds
        self.epochs, self.interval = config.epochs, config.interval
        per_epoch = config.population * images_per_epoch
        self.bar = tqdm(total=per_epoch * config.epochs, initial=per_epoch * state.epoch,
                        unit="img", unit_scale=True, dynamic_ncols=True, disable=not enabled,
                        desc=self._title(state))
        self.enabled = enabled

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def update(self, images: int) -> None:
        self.bar.update(images)

    def round_done(self, state: SearchState, events: list[Event]) -> None:
        summary = events[-1]  # the Round
        self.bar.set_description(self._title(state))
        self.bar.set_postfix(best=f"{summary.best_accuracy:.3f}",
                             median=f"{summary.median_accuracy:.3f}")
        if self.enabled:
            exploited = sum(isinstance(e, Exploit) for e in events)
            self.bar.write(
                f"round {state.round}/{self.rounds} epoch {state.epoch}/{self.epochs}: best "
                f"{summary.best_accuracy:.4f} (member {summary.best_member}) median "
                f"{summary.median_accuracy:.4f}, {exploited} exploited, "
                f"{summary.images / summary.seconds:.0f} img/s"
            )

    def _title(self, state: SearchState) -> str:
        """The round under way and the epochs it trains."""
        end = min(state.epoch + self.interval, self.epochs)
        current = min(state.round + 1, self.rounds)
        return f"round {current}/{self.rounds} (to epoch {end}/{self.epochs})"
