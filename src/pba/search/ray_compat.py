"""Every part of Ray Tune that the Ray backend uses without it being public API, and the Ray
releases they were tested with.

PBA's rounds under Tune (`pba.search.ray_tune.PBAPopulationBasedTraining`) read and set what
Tune's PopulationBasedTraining keeps to itself: its clock of the next synchronous perturbation
and each trial's state (the epoch it trained to, its last result and score; kept when Tune
restarts a failed trial), a trial's last result before Tune records it, a trial's last saved
checkpoint, and the controller's setting of a trial's status and its handling of a failed
trial (`drop_stale_failures`). Tune changes such names between
releases without notice, so `require_supported` refuses any other Ray before anything starts.
To support a new release: run tests/test_ray_backend.py with it, fix what these functions
touch, and add it to TESTED (and to the `ray` extra's range in pyproject.toml). Nothing else
in pba names a private part of Ray. Ray is not imported here: its objects come in as
arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pba.core.errors import UserError

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import PopulationBasedTraining

TESTED = ("2.60",)  # Ray release series (major.minor) the backend passed its tests with


def require_supported(version: str) -> None:
    """Refuse Ray `version` (`ray.__version__`) outside the tested release series."""
    if ".".join(version.split(".")[:2]) not in TESTED:
        supported = " or ".join(f"{series}.x" for series in TESTED)
        raise UserError(f"Ray {version} is installed, but the Ray backend works with Ray "
                       f"{supported} only: it relies on parts of Tune's PBT scheduler that are "
                       "not public API and change between releases. Install a tested Ray with "
                       "pip install 'pba[ray]', or search with another --engine")


def next_perturbation(scheduler: PopulationBasedTraining) -> int:
    """The epoch at which the synchronous PBT `scheduler` next exploits (every member waits)."""
    return scheduler._next_perturbation_sync


def trained_to(scheduler: PopulationBasedTraining, trial: Trial) -> int:
    """The last epoch `trial` reported to `scheduler`."""
    return scheduler._trial_state[trial].last_train_time


def pbt_state(scheduler: PopulationBasedTraining, trial: Trial) -> object | None:
    """`scheduler`'s record of `trial` (its last perturbation, epoch, result, score and
    checkpoint), None if the scheduler has not seen the trial yet."""
    return scheduler._trial_state.get(trial)


def set_pbt_state(scheduler: PopulationBasedTraining, trial: Trial, state: object) -> None:
    """Give `trial` the record `state` (from `pbt_state`) in `scheduler`."""
    scheduler._trial_state[trial] = state


def set_clock(scheduler: PopulationBasedTraining, perturbed: int, next_perturbation: int,
              trained: dict[Trial, int]) -> None:
    """Set `scheduler`'s clock: every trial went through the perturbation at epoch `perturbed`,
    and trained to the epoch `trained` gives it (trial: epoch); the next one is at epoch
    `next_perturbation`."""
    scheduler._next_perturbation_sync = next_perturbation
    for trial, epoch in trained.items():
        state = scheduler._trial_state[trial]
        state.last_perturbation_time, state.last_train_time = perturbed, epoch


def pause_at_perturbation(scheduler: PopulationBasedTraining, tune_controller: TuneController,
                          trial: Trial, result: dict, score: float) -> None:
    """Mark the pending `trial` paused at the next perturbation with its `result` and `score`
    (larger is better), as if it had reported them there in this run."""
    state = scheduler._trial_state[trial]
    state.last_result, state.last_score = result, score
    tune_controller._set_trial_status(trial, trial.PAUSED)


def set_last_result(trial: Trial, result: dict) -> None:
    """Give `trial` its `result` as its last one now (Tune does so only after the scheduler has
    seen it), without Tune's bookkeeping of a new result."""
    trial.run_metadata.last_result = result


def saved_result(trial: Trial) -> dict | None:
    """The metrics of `trial`'s last saved checkpoint, None if it has none."""
    saved = trial.run_metadata.checkpoint_manager.latest_checkpoint_result
    return None if saved is None else saved.metrics


def drop_stale_failures(tune_controller: TuneController) -> None:
    """Make `tune_controller` ignore a failure reported for a trial that has no actor. When a
    worker or node dies, every pending call to its actor fails: Tune restarts the trial on the
    first failure (FailureConfig), removing the actor, and would count each later one as a
    failure of the trial now waiting to restart, which Tune never retries: a member lost to
    one death, however large max_failures. A trial's own attempts always have an actor."""
    handle = tune_controller._process_trial_failure

    def process(trial: Trial, exception: Exception) -> None:
        if trial.status == trial.PENDING and trial not in tune_controller._trial_to_actor:
            return
        handle(trial, exception)

    tune_controller._process_trial_failure = process
