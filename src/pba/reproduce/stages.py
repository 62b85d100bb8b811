"""The stages of `pba reproduce`, each a directory of the run: the search, then a final model per
arm. What a stage's child process runs to start or continue it (what `pba search` and
`pba train` would call with the same settings), and how far it has got."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pba.core.errors import PBAError
from pba.core.options import AS_STARTED, RunOptions
from pba.reporting.recorders import search_recorders
from pba.reproduce.plan import FINALS, REFERENCE_EPOCHS, SEARCH_PRESET, ReproductionPlan
from pba.runs import training_run
from pba.runs.final_models import Arm, FinalJob, final_job
from pba.search import SearchConfig, preset, rundir
from pba.search.cost import cost_line, search_cost
from pba.search.rundir import SearchDir
from pba.search.runner import resume_search, run_search


@dataclass(frozen=True)
class Stage:
    name: str
    path: Path
    resume_point: str  # rewritten at every point the stage can resume from
    checkpoints: str  # glob, relative to path: what a resume needs besides the logs


def stage(out: Path, name: str) -> Stage:
    """Stage `name` of the run in `out`."""
    if name == "search":
        return Stage(name, out / name, rundir.STATE, f"{rundir.CHECKPOINTS}/*/*.pt")
    return Stage(name, out / name, training_run.METRICS, training_run.CHECKPOINT)


def is_done(s: Stage) -> bool:
    """Whether the stage's run directory says it has finished."""
    run = SearchDir(s.path) if s.name == "search" else training_run.TrainingDir(s.path)
    return run.is_finished()


@dataclass(frozen=True)
class StageJob:
    """What a stage's child process runs, `target(*args)`, and how it is announced."""

    target: Callable[..., None]
    args: tuple
    what: str


def stage_job(
    s: Stage, plan: ReproductionPlan, data_file: Path, reference: Path, device: str
) -> StageJob:
    """The library call that starts or continues stage `s`."""
    if s.name == "search":
        if (s.path / rundir.CONFIG).is_file():
            return StageJob(_search, (s.path, None, device),
                            "resuming from its last complete round")
        changes = {"dataset": f"npz:{data_file}", **plan.search_changes}
        return StageJob(_search, (s.path, preset(SEARCH_PRESET).replace(**changes), device),
                        f"new search, preset {SEARCH_PRESET} with {_settings(changes)}")
    job = final_job(s.name, None, s.path, plan.final_settings(data_file),
                    final_arm(s.name, s.path.parent, reference))
    if job.resume:
        return StageJob(_train, (job, device), "resuming from its last checkpoint")
    return StageJob(_train, (job, device), f"new training, {_settings(job.given)}")


def final_arm(name: str, out: Path, reference: Path) -> Arm:
    """The arm of final stage `name` of the run in `out`."""
    augment = FINALS[name][1]
    if name == "pba_search":  # our JSON schedule knows its length
        return Arm(augment, str(out / "search" / rundir.SCHEDULE))
    if name == "pba_reference":
        return Arm(augment, str(reference), REFERENCE_EPOCHS)
    return Arm(augment)


def _settings(settings: Mapping[str, object]) -> str:
    return ", ".join(f"{key} {value}" for key, value in settings.items())


def _search(out: Path, config: SearchConfig | None, device: str) -> None:
    """A search stage's child: a new search with `config`, or (None) the one in `out` resumed.
    Without a progress bar: the parent prints the cost at every round."""
    recorders = search_recorders(progress=False)
    if config is None:
        result = resume_search(out, options=AS_STARTED.replace(device=device),
                               recorders=recorders)
    else:
        result = run_search(config, out, options=RunOptions(device=device),
                            preset=SEARCH_PRESET, recorders=recorders)
    print(f"best member {result.best_member}: validation accuracy {result.best_accuracy:.4f}")


def _train(job: FinalJob, device: str) -> None:
    """A training stage's child: `job`'s run, new or resumed. It prints a line per epoch
    itself."""
    result = training_run.fit(job.config(device=device), job.out,
                              options=RunOptions(device=device), resume=job.resume)
    print(f"test error {result['test_error']:.2f}% ({job.out / training_run.RESULT})")


def restart_if_unresumable(s: Stage) -> None:
    """A stage carried here without its checkpoints cannot continue where it stopped."""
    if not s.path.exists() or any(s.path.glob(s.checkpoints)):
        return
    if s.name == "search":  # resume_search needs the members' checkpoints
        print(f"[reproduce] {s.name}: no checkpoints here; starting it over", flush=True)
        shutil.rmtree(s.path)
    elif (s.path / training_run.METRICS).is_file():  # a resumed fit starts at epoch 0
        print(f"[reproduce] {s.name}: no checkpoint here; starting it over", flush=True)


def progress_printer(s: Stage) -> Callable[[], None] | None:
    """The search's progress at each round (its child prints none); the training prints a
    line per epoch itself."""
    if s.name != "search":
        return None

    def show() -> None:
        try:
            print(f"[reproduce] search: {cost_line(search_cost(s.path))}", flush=True)
        except (PBAError, OSError) as err:  # a display only: never stop the watch over it
            print(f"[reproduce] search: progress unreadable ({err})", flush=True)

    return show
