"""`pba search --engine ray`: the population as Ray Tune trials, on one machine or a cluster.

    from pba.search import preset
    from pba.search.ray_backend import run_ray_search
    result = run_ray_search(preset("quick"), "runs/quick-ray", gpus_per_member=0.25)

Each member is a Tune trial running `pba.training.loop`'s training function epoch by epoch
(`ray_tune.train_member`); Tune's synchronous PopulationBasedTraining does the exploit (the
bottom quantile restores a top member's checkpoint) and calls PBA's explore. Members share GPUs
by asking for a fraction of one. Ray is imported only here, when this backend is asked for.

The run directory is the embedded engine's (`pba.search.rundir`): config.json, and at the end
population.jsonl (rebuilt from Tune's results and its PBT log, the same events and keys),
schedule.json, schedule_pbt_log.txt, schedule.png and summary.md. Tune's experiment lives in
DIR/ray/ (trials, checkpoints, the policy logs pbt_policy_*.txt and pbt_global.txt) beside
DIR/ray/backend.json (how it runs); resuming restores it with `Tuner.restore`. schedule.json
is the best member's Tune policy log read by `pba.augmentation.schedule.parse_pbt_log`.

A member whose worker process or node dies, or whose training raises, is restarted by Tune from
its last checkpoint, up to `max_failures` times (Tune's FailureConfig); past that the search
stops, resumable, with a RunStopped naming the member (`pba.search.ray_tune.StopOnLostMember`).
The training and validation images go into Ray's object store once (`ray.put`); every member
reads them from there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pba.augmentation.policy import Policy
from pba.augmentation.schedule import Schedule, parse_pbt_log
from pba.core.device import resolve_device
from pba.core.errors import RunStopped, UserError
from pba.core.lock import owned
from pba.core.options import AS_STARTED, DEFAULTS, RunOptions
from pba.core.precision import PRECISIONS, resolve_precision
from pba.data import DatasetSplits, ImageSet
from pba.search import rundir
from pba.search.events import Evaluate, Start, Train
from pba.search.lineage import Lineage
from pba.search.pbt import SearchState
from pba.search.presets import SearchConfig
from pba.search.ray_log import (
    BACKEND_FILE,
    EXPERIMENT,
    POLICY_KEY,
    ROWS_FILE,
    in_time_order,
    is_ray_run,
    population_events,
    read_log,
)
from pba.search.recorder import Recorder, Recorders
from pba.search.request import PLACED_BY_RAY
from pba.search.rundir import SearchDir, SearchResult
from pba.search.setup import load_search_data, run_record, settle_baseline

INSTALL_HINT = "the Ray backend needs Ray Tune: pip install 'pba[ray]'"
MAX_FAILURES = 3  # restarts per member: a lost worker or node, not a bug that fails every time


@dataclass(frozen=True)
class RaySettings:
    """Where and with what a Ray search runs. `address` None starts a local Ray instance."""

    address: str | None = None
    cpus_per_member: float = 1.0
    gpus_per_member: float = 0.0
    precision: str = "auto"  # resolved by each member on the device it trains on
    # Restarts of each member from its last checkpoint after a failure; Tune counts them over
    # the member's whole life, resumes included. Searches from before the setting get this.
    max_failures: int = MAX_FAILURES

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; known: "
                           f"{', '.join(PRECISIONS)}")
        if not self.cpus_per_member > 0:
            raise UserError(f"--cpus-per-member must be > 0, got {self.cpus_per_member}")
        # Ray shares a GPU by fractions of one; above one it hands out whole GPUs.
        if self.gpus_per_member < 0 or (self.gpus_per_member > 1 and self.gpus_per_member % 1):
            raise UserError("--gpus-per-member must be a fraction of one GPU (0.25: four members "
                           f"share it), 0 or a whole number, got {self.gpus_per_member}")
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) or (
                self.max_failures < 0):
            raise UserError(f"--max-failures must be a whole number >= 0, got {self.max_failures}")

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_member > 0 else "cpu"


def run_ray_search(
    config: SearchConfig,
    out: str | Path,
    *,
    options: RunOptions = DEFAULTS,
    preset: str | None = None,
    address: str | None = None,
    cpus_per_member: float = 1.0,
    gpus_per_member: float = 0.0,
    max_failures: int = MAX_FAILURES,
    skip_unreadable: bool = False,
    recorders: Sequence[Recorder] = (),
) -> SearchResult:
    """Search from scratch into the new run directory `out` with Ray Tune: on the Ray cluster
    at `address`, else on a Ray instance started on this machine (unless this process already
    joined one with `ray.init`). Each member asks Ray for `cpus_per_member` CPUs and
    `gpus_per_member` GPUs (0.25: four members share a GPU; 0: members train on CPUs) and
    trains in `options.precision`, resolved where it trains
    (`pba.core.precision.resolve_precision`); Ray places the members, so `options.device` and
    `options.workers` are refused. A member that fails (its worker or node lost) restarts from
    its last checkpoint up to `max_failures` times; one more failure stops the search,
    resumable."""
    started = time.time()
    options = options.starting()
    _refuse_placement(options)
    if config.selection != "truncation":
        raise UserError(f"--engine ray selects with Tune's PBT scheduler, which truncates: give "
                       f"--selection truncation (not {config.selection}) or another engine")
    settings = RaySettings(address, cpus_per_member, gpus_per_member, options.precision,
                           max_failures)
    SearchDir.check_new(out)
    _require_ray(settings)
    # Until a member has reported, a failed start (a bad address) leaves nothing behind.
    with owned(out, "pba search --engine ray"), SearchDir.discarded_on_failure(
            out, (f"{EXPERIMENT}/{ROWS_FILE}",)):
        heard = Recorders(recorders)
        data = load_search_data(config, options.data_dir, options.download, skip_unreadable,
                                heard.loading)
        here = resolve_device("cpu" if gpus_per_member == 0 else "auto")  # the check runs here
        config, check = settle_baseline(config, data, device=here,
                                        precision=resolve_precision(options.precision, here),
                                        progress=heard.verbose)
        # The embedded engine's config.json, the device being where members train.
        run = SearchDir.create(out, run_record(
            config, data, check, preset=preset, device=settings.device, engine="ray",
            precision=options.precision, data_dir=options.data_dir,
            skip_unreadable=skip_unreadable))
        run.write_text(f"{EXPERIMENT}/{BACKEND_FILE}", json.dumps(asdict(settings)) + "\n")
        return _run(run, config, settings, data, started, heard)


def resume_ray_search(
    out: str | Path,
    *,
    options: RunOptions = AS_STARTED,
    address: str | None = None,
    recorders: Sequence[Recorder] = (),
) -> SearchResult:
    """Continue the Ray search in `out` (`Tuner.restore`): every member from its last
    checkpoint. `address` and `options.data_dir` (None) are those it was started with; the
    resources per member, the precision and the failures allowed stay the search's, so
    `options` may change only where the data is and whether to download it."""
    started = time.time()
    _refuse_placement(options)
    if options.precision is not None:
        raise UserError("a Ray search resumes in the precision it started with; leave the "
                       "precision out")
    SearchDir.open(out)  # before the lock creates anything
    with owned(out, "pba search --resume"):
        return _resume(out, address, options, Recorders(recorders), started)


def _refuse_placement(options: RunOptions) -> None:
    if options.device not in (None, "auto") or options.workers is not None:
        raise UserError(PLACED_BY_RAY)


def _resume(out: str | Path, address: str | None, options: RunOptions, heard: Recorders,
            started: float) -> SearchResult:
    run = SearchDir.open(out)
    if not is_ray_run(run.path):
        raise UserError(f"{run.path} was not searched with Ray: resume it with `pba search "
                       f"--resume {run.path}`, which continues with its own engine")
    if (run.path / rundir.SCHEDULE).is_file():
        raise UserError(f"the search in {run.path} already finished (its schedule is "
                       f"{run.path / rundir.SCHEDULE}); there is nothing to resume")
    doc = run.config()
    try:
        config = SearchConfig.from_dict(doc["search"])
        stored = json.loads((run.path / EXPERIMENT / BACKEND_FILE).read_text())
        settings = RaySettings(**stored)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{run.path}: config.json or {EXPERIMENT}/{BACKEND_FILE} is not valid "
                       f"({err})") from None
    if address is not None:
        settings = dataclasses.replace(settings, address=address)
    _require_ray(settings)
    options = options.continuing(doc)
    data = load_search_data(config, options.data_dir, options.download,
                            doc.get("skip_unreadable", False), heard.loading)
    return _run(run, config, settings, data, started, heard)


def _require_ray(settings: RaySettings) -> None:
    if settings.address is None and "ray" not in sys.modules:
        # The Ray instance started here serves this process alone: without cluster support
        # (as on Windows and macOS) Ray uses and listens on 127.0.0.1 only. Read at import.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    from pba.search.ray_compat import require_supported

    require_supported(ray.__version__)  # before Tune is imported: another Ray's may not import
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None


def _run(run: SearchDir, config: SearchConfig, settings: RaySettings, data: DatasetSplits,
         started: float, heard: Recorders) -> SearchResult:
    """Tune's own output shows the members' progress (with a verbose recorder); the
    recorders hear of the search when it has finished: Tune's rounds are read afterwards."""
    try:
        return _run_tune(run, config, settings, data, started, heard)
    finally:
        heard.close()


def _run_tune(run: SearchDir, config: SearchConfig, settings: RaySettings, data: DatasetSplits,
              started: float, heard: Recorders) -> SearchResult:
    from pba.search.ray_tune import MemberLost, MembersStalled

    resume = f"pba search --resume {run.path}"
    with _ray_session(settings) as device:
        tuner, restored = _tuner(run, config, settings, data, heard.verbose)
        epoch = 0
        if restored:  # the members go on from the last round every one of them finished
            done = min((r.metrics.get("epoch", 0) for r in tuner.get_results()), default=0)
            epoch = done - done % config.interval
        # The precision as asked for: each member resolves 'auto' on its own device.
        run.append([Start(started, epoch // config.interval, epoch, device,
                           settings.precision)])
        try:
            grid = tuner.fit()
        except Exception as err:
            lost, stalled = _cause(err, MemberLost), _cause(err, MembersStalled)
            if lost is not None:
                raise RunStopped(lost_member_message(run.path, lost.member, lost.failures,
                                                     lost.error_file)) from None
            if stalled is not None:
                raise RunStopped(stalled_message(run.path, stalled.members, stalled.quiet_s,
                                                 stalled.limit_s)) from None
            raise
    failed = [r for r in grid if r.error is not None]
    if failed:
        raise RunStopped(f"{len(failed)} member(s) failed, the first with: "
                       f"{str(failed[0].error).strip().splitlines()[-1]}; fix the cause and "
                       f"continue with: {resume}")
    if any(r.metrics.get("training_iteration", 0) < config.epochs for r in grid):
        # Tune ends the run early, saving its state, on Ctrl+C (SIGINT).
        raise RunStopped(f"the search stopped before its last epoch; continue it with: {resume}")
    return _write_run(run, config, heard)


def _cause(err: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`err` or the exception of type `kind` it arose from: Tune wraps what its callbacks raise
    in a TuneError of the traceback."""
    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, kind):
        seen = seen.__cause__ or seen.__context__
    return seen


def lost_member_message(run_dir: Path, member: int, failures: int,
                        error_file: str | None) -> str:
    """What a search stopped for a member lost past --max-failures says: who, what is kept,
    and how to go on."""
    why = f" (Tune's record of the errors: {error_file})" if error_file else ""
    return (f"member {member} failed {failures} time(s), more than --max-failures allows: its "
            f"worker process or node was lost, or its training raised{why}. The search "
            f"stopped, since synchronous PBT needs every member at each exploit. Kept: the run "
            f"directory {run_dir}, with Tune's experiment and every member's last checkpoints "
            f"in {run_dir / EXPERIMENT}. Fix the cause (a node back, enough memory) and "
            f"continue with: pba search --resume {run_dir}")


def stalled_message(run_dir: Path, members: list[tuple[int, str, int]], quiet_s: float,
                    limit_s: float) -> str:
    """What a search stopped for making no progress says: every member's state, what is
    kept, and how to go on."""
    where = ", ".join(f"member {m} {status.lower()} at epoch {epoch}"
                      for m, status, epoch in members)
    return (f"no member reported a result for {quiet_s / 60:.0f} min, more than the "
            f"{limit_s / 60:.0f} min this search allows (ten times its longest quiet spell, at "
            f"least 15 min): {where}. Synchronous PBT waits for every member at each exploit, "
            f"so the search stopped instead of waiting for ever. Kept: the run directory "
            f"{run_dir}, with every member's last checkpoints in {run_dir / EXPERIMENT}. Check "
            f"the Ray logs of the members that did not move (a hung worker, a node without "
            f"resources), then continue with: pba search --resume {run_dir}")


def members_data(data: DatasetSplits) -> DatasetSplits:
    """What members train and rank on: `data` without its test images (the test split is the
    final models' business, and it would go to every member's process)."""
    return dataclasses.replace(data, test=ImageSet(data.test.images[:0], data.test.labels[:0]))


def _write_run(run: SearchDir, config: SearchConfig, heard: Recorder) -> SearchResult:
    """The finished experiment's events into population.jsonl, then the embedded engine's
    outputs, with the schedule read from the best member's Tune policy log."""
    experiment = run.path / EXPERIMENT
    rows = read_log(experiment / ROWS_FILE)
    rounds = population_events(config, rows, read_log(experiment / "pbt_global.txt"))
    starts = [e for e in run.events() if isinstance(e, Start)]
    # The log so far holds only start events; it is rewritten with the rounds in time order.
    (run.path / rundir.LOG).unlink()
    run.append(in_time_order(starts, rounds))

    last = rounds[-1]
    ops = config.op_set()
    state = SearchState(
        config=config.pbt(),
        policies=[Policy(e.policy, ops) for e in last if isinstance(e, Train)],
        rng=np.random.default_rng(config.seed),  # unused: Tune made the draws
        lineage=Lineage.replay(config.population, [e for block in rounds for e in block], ops),
        epoch=config.epochs,
        round=len(rounds),
        scores=[e.score for e in last if isinstance(e, Evaluate)],
    )
    best = state.best()
    trial_id = next(r["trial_id"] for r in rows if r["member"] == best)
    policy_log = experiment / f"pbt_policy_{trial_id}.txt"
    # A member that never cloned another has no policy log: it kept the initial policy.
    schedule = (parse_pbt_log(policy_log.read_text(), config.epochs, ops)
                if policy_log.is_file() else Schedule.constant(Policy.zeros(ops), config.epochs))
    schedule = run.save_schedule(state, schedule, best)
    heard.finished(run, state, schedule, best)
    return SearchResult(run.path, schedule, best, last[-1].best_accuracy)


@contextmanager
def _ray_session(settings: RaySettings) -> Iterator[str]:
    """Join the cluster at `settings.address`, or start Ray on this machine, unless this process
    is already connected; yield a description of the resources for the event log. Members'
    output stays in Ray's logs (their failures come back through Tune)."""
    import logging

    import ray

    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=settings.address or "local", include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"join the Ray cluster at {settings.address}" if settings.address else (
                "start Ray on this machine")
            root = err
            while root.__cause__ is not None:  # Ray wraps why it failed (e.g. a missing token)
                root = root.__cause__
            why = "" if root is err else f" ({str(root).strip().splitlines()[-1][:300]})"
            raise UserError(f"cannot {where}: {err}{why}") from None
    try:
        total = ray.cluster_resources()
        for kind, need in (("CPU", settings.cpus_per_member), ("GPU", settings.gpus_per_member)):
            if need > total.get(kind, 0):
                raise UserError(f"each member asks for {need:g} {kind}s but the Ray cluster has "
                               f"{total.get(kind, 0):g}")
        yield (f"ray {settings.address or 'local'}: {len(ray.nodes())} node(s), "
               f"{total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs; per member "
               f"{settings.cpus_per_member:g} CPUs, {settings.gpus_per_member:g} GPUs")
    finally:
        if started_here:
            ray.shutdown()


def _tuner(run: SearchDir, config: SearchConfig, settings: RaySettings, data: DatasetSplits,
           progress: bool) -> tuple[object, bool]:
    """A new Tune experiment in DIR/ray, or the one there restored (then True)."""
    import ray
    from ray import tune

    from pba.search.ray_tune import (
        PBAPopulationBasedTraining,
        RecordRows,
        StallWatch,
        StopOnLostMember,
        train_member,
    )

    # Into the object store once: Tune ships the trainable to every member (again at each
    # restart), and what it captures travels with it; the reference alone does.
    images = ray.put(members_data(data))
    trainable = member_trainable(train_member, config, settings, images)
    experiment = run.path.resolve() / EXPERIMENT
    if tune.Tuner.can_restore(str(experiment)):
        return tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True,
                                  resume_errored=True), True
    tuner = tune.Tuner(
        trainable,
        param_space={POLICY_KEY: Policy.zeros(config.op_set()).to_list()},
        tune_config=tune.TuneConfig(scheduler=PBAPopulationBasedTraining(config),
                                    num_samples=config.population, reuse_actors=True),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=str(experiment.parent),
            # Stopping at the last epoch keeps PBT from exploiting after it.
            stop={"training_iteration": config.epochs},
            # An exploit restores the source's checkpoint of the perturbation epoch, and the
            # source may train up to an interval further (then it waits at the next one)
            # before every clone has restored it: that checkpoint and the interval's after it.
            # Epochs a restored or restarted member repeats come before the exploit that needs
            # them. Tune writes a checkpoint before it deletes the oldest, so a member holds
            # one more for a moment: the disk peaks below (interval + 2) x population
            # checkpoints (tests/test_ray_failures.py, benchmarks/ray_disk.py).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=config.interval + 1),
            # A restored experiment keeps it (Tuner.restore reads the run config it saved).
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            callbacks=[RecordRows(), StopOnLostMember(), StallWatch()],
            verbose=1 if progress else 0,
        ),
    )
    return tuner, False


def member_trainable(train_member, config: SearchConfig, settings: RaySettings, images):
    """Tune's trainable for one member: `train_member` with the search, its resources and the
    object reference `images` (of `members_data`), which each member resolves from the object
    store; the trainable itself stays small whatever the dataset."""
    from ray import tune

    return tune.with_resources(
        tune.with_parameters(train_member, search=config, data=images, device=settings.device,
                             precision=settings.precision),
        {"cpu": settings.cpus_per_member, "gpu": settings.gpus_per_member},
    )
