"""What runs under Ray Tune: one population member as a function trainable, PBA's explore as
Tune's `custom_explore_fn`, and Tune's synchronous PBT adjusted to PBA's rounds.

Only `pba.search.ray_backend` imports this module (it imports Ray), after checking that a
supported Ray is installed. The parts of Tune that are not public API are reached through
`pba.search.ray_compat` alone.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.result import TRAINING_ITERATION
from ray.tune.schedulers import PopulationBasedTraining

from pba.augmentation.policy import Policy, explore
from pba.core.allocator import keep_freed_memory
from pba.core.precision import resolve_precision
from pba.data import DatasetSplits, ImageSet
from pba.ops.registry import DEFAULT_OPS, OpSet
from pba.search import ray_compat
from pba.search.members import init_member
from pba.search.pbt import score
from pba.search.presets import SearchConfig
from pba.search.ray_log import POLICY_KEY, ROWS_FILE, member_index
from pba.training.augment import make_augment
from pba.training.loop import epoch_by_epoch, images_per_epoch, load_checkpoint, save_checkpoint

# What Tune ranks members by: the search's validation metric signed so that larger is better
# (`pba.search.pbt.score`), -inf for a diverged member, nan at epochs without an evaluation.
METRIC = "score"
ROW = "pba"  # the report's key of the member's row: epoch, policy, training and validation
CHECKPOINT_FILE = "member.pt"


def evaluates_at(epoch: int, config: SearchConfig) -> bool:
    """Members are scored where PBT uses the score: at the end of every round (docs/algorithm.md §5:
    evaluating the validation split after every epoch would cost more than training)."""
    return epoch % config.interval == 0 or epoch == config.epochs


def train_member(
    config: dict, search: SearchConfig, data: DatasetSplits, device: str, precision: str
) -> None:
    """One member for Tune: train epoch by epoch with `pba.training.loop` under the policy in
    `config[POLICY_KEY]` in `precision` (resolved here, on the member's own device), reporting
    metrics and a checkpoint after every epoch.

    Tune restarts this function from a checkpoint after pausing the trial (its own checkpoint)
    and after an exploit (the cloned member's), with the explored policy in `config`. The
    policy is all the config holds (the rest comes through `tune.with_parameters`), so that
    Tune's policy logs read as the reference ones.
    """
    keep_freed_memory()  # Ray's worker process runs pba alone (pba.core.allocator)
    member = member_index(tune.get_context().get_trial_id())
    device = torch.device(device)
    recipe = search.recipe(resolve_precision(precision, device))
    state = init_member(search.model, data.num_classes, recipe, seed=search.seed,
                        member=member, device=device)
    round_losses: list[float] = []  # training losses since the last evaluation
    # Where this process took over the member: (member, epoch) of the checkpoint it loaded,
    # which is another member's after an exploit; recorded so that restarts can be checked.
    restored_from = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            extra = load_checkpoint(Path(path) / CHECKPOINT_FILE, state)
        round_losses = extra["round_losses"]
        restored_from = [extra["member"], state.epoch]
        if extra["member"] != member:
            # An exploit. As in the embedded engine, the clone must not replay its source's
            # data order and augmentations: it continues with a stream of its own.
            stream = np.random.SeedSequence([search.seed, member, state.epoch])
            state.generator.manual_seed(int(stream.generate_state(1)[0]))
    train_set, val_set = (ImageSet(s.images.to(device), s.labels.to(device))
                          for s in (data.train, data.val))
    policy = Policy(tuple(config[POLICY_KEY]), search.op_set())
    augment = make_augment("pba", data, recipe, schedule=policy)
    splits = {"val": val_set}
    for metrics in epoch_by_epoch(
            state, train_set, augment, recipe, mean=data.mean, std=data.std,
            evaluations=lambda epoch: splits if evaluates_at(epoch, search) else {}):
        round_losses.append(metrics["train_loss"])
        evaluation = {"accuracy": metrics.get("val_acc", math.nan),
                      "loss": metrics.get("val_loss", math.nan)}
        ranking = math.nan
        if "val_acc" in metrics:
            ranking = score(evaluation, float(np.mean(round_losses)), search.metric)
            ranking = -math.inf if math.isnan(ranking) else ranking  # exploited first
            round_losses = []
        row = {
            "member": member,
            "epoch": state.epoch,
            "policy": list(config[POLICY_KEY]),
            "train_loss": metrics["train_loss"],
            "train_acc": metrics["train_acc"],
            "images": images_per_epoch(len(train_set), recipe.batch_size),
            "time_s": metrics["time_s"],
            "val_accuracy": evaluation["accuracy"],
            "val_loss": evaluation["loss"],
            "finished_at": time.time(),
            # Which node and worker process trained it: a restart after a lost worker or node
            # shows as a new process, and a cluster's spread as several nodes.
            "node": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "restored_from": restored_from,
        }
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(Path(tmp) / CHECKPOINT_FILE, state,
                            {"member": member, "round_losses": round_losses})
            tune.report({METRIC: ranking, ROW: row},
                        checkpoint=tune.Checkpoint.from_directory(tmp))


class RecordRows(tune.Callback):
    """Appends every member's row (`train_member`'s report) to DIR/ray/members.jsonl as it
    arrives. Tune's own per-trial result files are not enough: a paused trial that resumes
    rewrites its file from a copy that may lag behind, and rows go missing."""

    def on_trial_result(self, iteration, trials, trial, result: dict, **info) -> None:
        # The storage directory is the run directory, on this (the driver's) machine.
        path = Path(trial.remote_experiment_path) / ROWS_FILE
        with path.open("a") as f:
            f.write(json.dumps({**result[ROW], "trial_id": trial.trial_id}) + "\n")


class MemberLost(Exception):  # noqa: N818 - an event, not a fault of the driver's code
    """A member failed more often than the search's FailureConfig allows (Tune marked its trial
    ERROR): `member` (population index), its `failures` and Tune's `error_file` of them."""

    def __init__(self, member: int, failures: int, error_file: str | None) -> None:
        super().__init__(f"member {member} failed {failures} time(s)")
        self.member, self.failures, self.error_file = member, failures, error_file


class StopOnLostMember(tune.Callback):
    """Ends the experiment as soon as a member is lost for good, by raising `MemberLost` out of
    `Tuner.fit`. Tune would go on without it, but synchronous PBT would then wait forever: the
    others are paused at the next perturbation, which only a result can start, and a search
    needs every member's rows. Tune calls this only past FailureConfig's bound (a failure it
    retries goes to `on_trial_recover`). Raising leaves every other trial as it was, paused or
    running, as a killed driver would: the experiment resumes with `Tuner.restore`, whereas
    Tune's own stop (a Stopper's stop_all) would mark the paused members finished."""

    def on_trial_error(self, iteration, trials, trial: Trial, **info) -> None:
        raise MemberLost(member_index(trial.trial_id), trial.num_failures, trial.error_file)


# A search where no member has reported for this long is stopped and reported, never waited on
# forever: STALL_FACTOR times the longest quiet spell between two results so far (an epoch of
# the slowest member, a perturbation's wait), and never less than STALL_FLOOR_S, which also
# covers the first results (processes starting, data arriving, no history yet).
STALL_FLOOR_S = 900.0
STALL_FACTOR = 10.0


def stall_limit(longest_quiet_s: float, floor_s: float = STALL_FLOOR_S,
                factor: float = STALL_FACTOR) -> float:
    """Seconds without any member's result after which the search counts as stalled."""
    return max(floor_s, factor * longest_quiet_s)


class MembersStalled(Exception):  # noqa: N818 - an event, not a fault of the driver's code
    """No member reported for `quiet_s` seconds, beyond the `limit_s` the search allows;
    `members` holds (member, Tune's status, last epoch reported) of each."""

    def __init__(self, members: list[tuple[int, str, int]], quiet_s: float,
                 limit_s: float) -> None:
        super().__init__(f"no member reported for {quiet_s:.0f} s")
        self.members, self.quiet_s, self.limit_s = members, quiet_s, limit_s


class StallWatch(tune.Callback):
    """Ends the experiment, by raising `MembersStalled` out of `Tuner.fit`, when no member has
    reported a result for `stall_limit` of the longest quiet spell seen: synchronous PBT waits
    for every member at each perturbation, so one member that makes no progress (a worker
    that hangs, a node that never comes back without failing) would hold the search for ever.
    Like `StopOnLostMember` it leaves the trials as they are, resumable."""

    def __init__(self, floor_s: float = STALL_FLOOR_S, factor: float = STALL_FACTOR,
                 clock=time.monotonic) -> None:
        self._floor, self._factor, self._clock = floor_s, factor, clock
        self._last: float | None = None
        self._longest = 0.0

    def on_step_begin(self, iteration, trials, **info) -> None:
        now = self._clock()
        if self._last is None:  # the first step: the clock starts here
            self._last = now
            return
        limit = stall_limit(self._longest, self._floor, self._factor)
        if now - self._last > limit:
            members = sorted((member_index(t.trial_id), str(t.status),
                              int((t.last_result or {}).get(TRAINING_ITERATION, 0)))
                             for t in trials)
            raise MembersStalled(members, now - self._last, limit)

    def on_trial_result(self, iteration, trials, trial: Trial, result: dict, **info) -> None:
        now = self._clock()
        if self._last is not None:
            self._longest = max(self._longest, now - self._last)
        self._last = now


class SeededExplore:
    """PBA's explore (`pba.augmentation.policy.explore`) applied to the policy in a trial config,
    drawing from
    a numpy Generator keyed by the search's seed and the epoch of the exploit."""

    def __init__(self, seed: int, ops: OpSet = DEFAULT_OPS) -> None:
        self.seed = seed
        self.ops = ops
        self.epoch = -1
        self.at_epoch(0)

    def at_epoch(self, epoch: int) -> None:
        """Key the draws of the exploits at `epoch` on (seed, epoch), so that they do not depend
        on what ran before: a restored experiment draws what an uninterrupted one would."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.rng = np.random.default_rng([self.seed, epoch])

    def __call__(self, config: dict) -> dict:
        policy = explore(Policy(tuple(config[POLICY_KEY]), self.ops), self.rng)
        return {**config, POLICY_KEY: policy.to_list()}


class PBAPopulationBasedTraining(PopulationBasedTraining):
    """Tune's synchronous PBT (every member stops at each perturbation, as in PBA's rounds),
    exploring with `SeededExplore` and no mutation of its own, with these adjustments:

    - Tune draws the member to clone from Python's `random`: it is seeded at every perturbation
      from (seed, epoch), like the explore draws.
    - Tune updates a trial's `last_result` only after this scheduler has seen the result, so
      the policy log would give the previous epoch for the member whose result completes a
      perturbation; the result is recorded first.
    - Tune would restart the paused members one after another (it offers the next one only
      once the previous one's actor is up); every paused member is offered at once.
    - A restored experiment comes with a fresh scheduler and without the policy logs (Tune
      restores only its .json and .pkl files); see `_settle_restored`.
    """

    def __init__(self, config: SearchConfig) -> None:
        self._explore = SeededExplore(config.seed, config.op_set())
        self._seed = config.seed
        self._interval = config.interval
        self._settled = False
        super().__init__(
            time_attr=TRAINING_ITERATION,
            metric=METRIC,
            mode="max",  # so Tune's score of a trial is its METRIC as it is
            perturbation_interval=config.interval,
            quantile_fraction=config.quantile,
            # No mutation of Tune's own: it would resample or shift the policy as one value.
            hyperparam_mutations={},
            custom_explore_fn=self._explore,
            log_config=True,
            synch=True,
        )

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        # Tune adds a trial again when it restarts it after a failure (FailureConfig), and the
        # stock scheduler then forgets the trial's place in the rounds: it would count the
        # restarted member's first epoch as a whole interval and perturb the population at an
        # epoch off the rounds. A known trial keeps its state: it goes on from its checkpoint,
        # repeats the epochs after it, and waits at the same perturbation as the others.
        known = ray_compat.pbt_state(self, trial)
        super().on_trial_add(tune_controller, trial)
        if known is not None:
            ray_compat.set_pbt_state(self, trial, known)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        epoch = result.get(TRAINING_ITERATION, 0)
        self._explore.at_epoch(epoch)
        random.seed(int(np.random.SeedSequence([self._seed, epoch]).generate_state(1)[0]))
        ray_compat.set_last_result(trial, result)
        return super().on_trial_result(tune_controller, trial, result)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        if not self._settled:  # Tune asks before it starts any trial, restored ones included
            self._settle_restored(tune_controller)
            ray_compat.drop_stale_failures(tune_controller)
            self._settled = True
        ahead = ray_compat.next_perturbation(self)
        paused = [t for t in tune_controller.get_trials() if t.status == Trial.PAUSED
                  and ray_compat.trained_to(self, t) < ahead]
        return min(paused, key=lambda t: ray_compat.trained_to(self, t), default=None)

    def _settle_restored(self, tune_controller) -> None:
        """Put the clock of a restored experiment back where it stopped: after the last
        perturbation every member went through, with the members that already reached the next
        one paused there with their scores, so that it happens as it would have; and bring
        back the policy logs, which the next exploits extend. A member goes on from its last
        saved checkpoint, which may be behind its last result: Tune does not save the
        checkpoint of a result it pauses the trial at."""
        trials = tune_controller.get_trials()
        saved = {t: ray_compat.saved_result(t) for t in trials}
        done = {t: r.get(TRAINING_ITERATION, 0) if r else 0 for t, r in saved.items()}
        if not any(done.values()):
            return
        low = min(done.values())
        synced = low - low % self._interval
        ahead = synced + self._interval
        ray_compat.set_clock(self, synced, ahead, done)
        for trial in trials:
            if done[trial] == ahead and trial.status == Trial.PENDING:
                ray_compat.pause_at_perturbation(self, tune_controller, trial, saved[trial],
                                                 saved[trial][METRIC])
        staging = Path(trials[0].local_experiment_path)
        for log in Path(trials[0].remote_experiment_path).glob("pbt_*.txt"):
            if not (staging / log.name).exists():
                staging.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, staging / log.name)
