"""The Ray backend when things die: a member whose worker process is killed comes
back from its last checkpoint; past --max-failures the search stops, resumable, instead of
waiting forever; a SIGKILLed driver resumes with Tune's PBT; a worker node removed from a real
two-node cluster mid-search; the checkpoints kept stay bounded while every exploit finds its
source's; the dataset goes to the cluster by reference. Data comes from PBA_DATA_DIR (set by
conftest); nothing is downloaded. Every search is the smoke preset's size."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pba.augmentation.schedule import load_schedule
from pba.core.errors import PBAError, RunStopped
from pba.reporting.recorders import search_recorders
from pba.search import preset
from pba.search.events import to_json
from pba.search.ray_backend import RaySettings, resume_ray_search, run_ray_search
from pba.search.ray_log import PeakCheckpointBytes, read_log
from pba.search.rundir import SearchDir

SMOKE = preset("smoke")
OUTPUTS = {"config.json", "population.jsonl", "schedule.json", "schedule_pbt_log.txt",
           "schedule.png", "summary.md"}
NEED_RAY = "the Ray backend's extra is not installed (pip install -e '.[ray]')"
REPO = Path(__file__).resolve().parents[1]


def quiet() -> dict:
    """The recorders `pba search --no-progress` passes (summary.md and the plot among them)."""
    return {"recorders": search_recorders(progress=False)}


# ---- helpers ---------------------------------------------------------------------------------


def rows_of(run: Path) -> list[dict]:
    return read_log(run / "ray" / "members.jsonl")


@contextmanager
def watching(run: Path, when: Callable[[list[dict]], bool], then: Callable[[list[dict]], None],
             every: float = 0.1) -> Iterator[dict]:
    """Poll the members' rows of the run in `run`; the first time `when(rows)` holds, call
    `then(rows)` (once). Yields a dict that gets 'rows' (those seen when it fired)."""
    fired: dict = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every):
            rows = rows_of(run)
            if rows and when(rows):
                fired["rows"] = rows
                then(rows)
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        stop.set()
        thread.join()


@contextmanager
def deadline(seconds: float) -> Iterator[dict]:
    """Interrupt this process (SIGINT: Tune saves its state and returns) if the block runs
    longer than `seconds`, so that a search that would wait forever fails the test instead of
    hanging the suite. Yields a dict that gets 'expired' when it fired."""
    state: dict = {}
    timer = threading.Timer(seconds, lambda: (state.setdefault("expired", True),
                                              os.kill(os.getpid(), signal.SIGINT)))
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def events_of(run: Path) -> list[dict]:
    return [to_json(e) for e in SearchDir.open(run).events()]


def assert_complete(run: Path, config=SMOKE) -> list[dict]:
    """The run directory of a finished search: every output, every round, the full schedule."""
    assert OUTPUTS <= {p.name for p in run.iterdir()}
    events = events_of(run)
    rounds = [e["round"] for e in events if e["event"] == "round"]
    assert rounds == list(range(config.pbt().rounds))
    assert len(load_schedule(run / "schedule.json")) == config.epochs
    for number in rounds:  # every member trained and was evaluated in every round
        trained = {e["member"] for e in events if e["event"] == "train" and e["round"] == number}
        assert trained == set(range(config.population)), number
    return events


def schema(events: list[dict]) -> dict[str, set[tuple[str, ...]]]:
    keys: dict[str, set[tuple[str, ...]]] = {}
    for event in events:
        keys.setdefault(event["event"], set()).add(tuple(sorted(event)))
    return keys


def clone_rows(rows: list[dict]) -> list[dict]:
    """Rows trained from another member's checkpoint: the clones of an exploit."""
    return [r for r in rows if r["restored_from"] and r["restored_from"][0] != r["member"]]


# ---- without Ray -----------------------------------------------------------------------------


def test_a_search_that_makes_no_progress_is_stopped_and_reported() -> None:
    pytest.importorskip("ray", reason=NEED_RAY)
    from types import SimpleNamespace

    from pba.search.ray_backend import stalled_message
    from pba.search.ray_tune import STALL_FLOOR_S, MembersStalled, StallWatch, stall_limit

    assert stall_limit(1.0) == STALL_FLOOR_S and stall_limit(1e4) == 1e5
    now = [0.0]
    watch = StallWatch(floor_s=5.0, factor=10.0, clock=lambda: now[0])
    trials = [SimpleNamespace(trial_id=f"abc_{m:05d}", status=status,
                              last_result={"training_iteration": epoch})
              for m, status, epoch in [(0, "PAUSED", 4), (1, "RUNNING", 3), (2, "PAUSED", 4)]]
    watch.on_step_begin(0, trials)  # the clock starts
    for _ in range(5):  # a result every 2 s: the longest quiet spell is 2 s, the limit 20 s
        now[0] += 2.0
        watch.on_trial_result(0, trials, trials[0], {})
        watch.on_step_begin(0, trials)
    now[0] += 19.0
    watch.on_step_begin(0, trials)  # slow, not stalled
    now[0] += 2.0
    with pytest.raises(MembersStalled) as stalled:
        watch.on_step_begin(0, trials)
    assert stalled.value.members == [(0, "PAUSED", 4), (1, "RUNNING", 3), (2, "PAUSED", 4)]
    assert stalled.value.quiet_s == 21.0 and stalled.value.limit_s == 20.0
    text = stalled_message(Path("runs/x"), stalled.value.members, 1800.0, 900.0)
    assert "member 1 running at epoch 3" in text and "for 30 min" in text
    assert text.endswith("continue with: pba search --resume runs/x")


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_max_failures_must_be_a_whole_number(bad) -> None:
    with pytest.raises(PBAError, match="--max-failures"):
        RaySettings(max_failures=bad)


def test_a_search_stored_without_the_setting_gets_the_default() -> None:
    # backend.json of a search from before --max-failures existed.
    stored = {"address": None, "cpus_per_member": 1.0, "gpus_per_member": 0.0,
              "precision": "auto"}
    assert RaySettings(**stored).max_failures == 3


def test_the_cli_threads_max_failures_and_resume_keeps_it(monkeypatch, tmp_path: Path) -> None:
    from pba.cli.main import build_parser
    from pba.cli.search_cmd import run
    from pba.search import ray_backend

    class Called(Exception):
        pass

    def record(config, out, **options):  # the backend as the CLI calls it; nothing runs
        raise Called(options)

    monkeypatch.setattr(ray_backend, "run_ray_search", record)
    args = build_parser().parse_args(["search", "--engine", "ray", "--preset", "smoke",
                                      "--out", str(tmp_path / "r"), "--max-failures", "5"])
    with pytest.raises(Called) as called:
        run(args)
    assert called.value.args[0]["max_failures"] == 5
    (tmp_path / "old" / "ray").mkdir(parents=True)
    (tmp_path / "old" / "ray" / "backend.json").write_text("{}")
    args = build_parser().parse_args(["search", "--resume", str(tmp_path / "old"),
                                      "--max-failures", "5"])
    with pytest.raises(PBAError, match="--resume keeps .*--max-failures"):
        run(args)
    sub = subprocess.run([sys.executable, "-m", "pba.cli.main", "search", "--help"],
                         capture_output=True, text=True, cwd=REPO)
    assert "--max-failures" in sub.stdout and "ignore it" in " ".join(sub.stdout.split())


# ---- on a two-node cluster (first: it needs Ray not yet started in this process) --------------


def test_a_worker_node_lost_mid_search_and_the_search_finishes(tmp_path: Path) -> None:
    """A real cluster of two nodes (separate raylets and object stores) on this machine:
    members train on both; the worker node is removed once a member there finished a round;
    its members come back on the head node from their checkpoints."""
    ray = pytest.importorskip("ray", reason=NEED_RAY)
    pytest.importorskip("ray.tune", reason=NEED_RAY)
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized(), "run this test before the module's local Ray starts"
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        head = cluster.head_node.node_id
        assert ray.get_runtime_context().get_node_id() == head  # the driver stays up
        out = tmp_path / "run"
        removed: dict = {}

        def remove_worker(rows: list[dict]) -> None:
            removed["time"] = time.time()
            cluster.remove_node(worker)

        with deadline(300) as late, watching(out, lambda rows: any(
                r["node"] == worker.node_id and r["epoch"] >= SMOKE.interval for r in rows),
                remove_worker):
            run_ray_search(SMOKE, out, preset="smoke", **quiet())
        assert not late and removed
        assert_complete(out)
        rows = rows_of(out)
        assert {r["node"] for r in rows} == {head, worker.node_id}  # members ran on both
        # A member the worker node trained went on on the head after the removal, from a
        # checkpoint (not from scratch).
        moved = {r["member"] for r in rows if r["node"] == worker.node_id} & {
            r["member"] for r in rows if r["node"] == head and r["finished_at"] > removed["time"]}
        assert moved
        assert all(r["restored_from"] is not None for r in rows
                   if r["member"] in moved and r["finished_at"] > removed["time"] + 1)
    finally:
        ray.shutdown()
        cluster.shutdown()


# ---- on a local Ray instance -----------------------------------------------------------------


def test_a_member_whose_worker_dies_comes_back_from_its_checkpoint(local_ray,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "run"
    killed: list[int] = []

    def kill_member_1(rows: list[dict]) -> None:  # mid-round: it is training epoch 4 now
        pid = next(r["pid"] for r in rows if r["member"] == 1 and r["epoch"] == 3)
        killed.append(pid)
        kill(pid)

    with deadline(240) as late, watching(out, lambda rows: any(
            r["member"] == 1 and r["epoch"] == 3 for r in rows), kill_member_1):
        run_ray_search(SMOKE, out, preset="smoke", **quiet())
    assert not late and killed
    events = assert_complete(out)
    assert [e["event"] for e in events].count("start") == 1  # no resume was needed
    rows = rows_of(out)
    after = [r for r in rows if r["member"] == 1 and r["pid"] != killed[0]
             and r["epoch"] > 3]
    # A new process took member 1 over from a checkpoint of its own (or of the member it
    # cloned at epoch 4), not from scratch.
    assert after and after[0]["restored_from"] is not None
    assert after[0]["restored_from"][1] >= 2
    assert {r["epoch"] for r in rows if r["member"] == 1} == set(range(1, SMOKE.epochs + 1))


def test_past_max_failures_the_search_stops_with_how_to_resume(local_ray,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "run"

    def kill_member_2(rows: list[dict]) -> None:
        kill(next(r["pid"] for r in rows if r["member"] == 2 and r["epoch"] == 1))

    with deadline(240) as late, watching(out, lambda rows: any(
            r["member"] == 2 and r["epoch"] == 1 for r in rows), kill_member_2):
        with pytest.raises(RunStopped) as stopped:
            run_ray_search(SMOKE, out, preset="smoke", max_failures=0, **quiet())
    # Stopped by the lost member, not by the deadline: synchronous PBT did not wait for it.
    assert not late, "the search waited for a member that could not come back"
    message = " ".join(str(stopped.value).split())
    assert "member 2 failed 1 time(s)" in message
    assert f"Kept: the run directory {out}" in message and str(out / "ray") in message
    assert message.endswith(f"continue with: pba search --resume {out}")
    assert not (out / "schedule.json").exists()
    with deadline(240) as late:
        resume_ray_search(out, **quiet())
    assert not late
    events = assert_complete(out)
    assert [e["event"] for e in events].count("start") == 2


@pytest.fixture(scope="module")
def uninterrupted(local_ray, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    run_ray_search(SMOKE, out, preset="smoke", **quiet())
    return out


def test_a_killed_driver_resumes_with_pbt(uninterrupted: Path, tmp_path: Path) -> None:
    """`pba search --engine ray` SIGKILLed once an exploit's clone has trained, then resumed
    with `pba search --resume`: the same outputs as a search never interrupted, and Tune's PBT
    still exploits after the resume."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pba.cli.main", "search", "--no-progress"]
    driver = subprocess.Popen([*command, "--engine", "ray", "--preset", "smoke", "--out",
                               str(out)], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen: list[dict] = []
        limit = time.monotonic() + 240
        # After the first exploit (epoch 2), once a clone trained from its source's weights.
        while not clone_rows(seen):
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < limit, "no exploit within 240 s"
            time.sleep(0.1)
            seen = rows_of(out)
        driver.kill()  # SIGKILL: no handler runs, Tune saves nothing more
        driver.wait()
        killed_at = time.time()
        reached: dict[int, int] = {}
        for row in rows_of(out):
            reached[row["member"]] = max(reached.get(row["member"], 0), row["epoch"])
        before = min(reached.values())  # every member had trained this far
        assert before < 2 * SMOKE.interval  # so the second exploit had not happened
        assert not (out / "schedule.json").exists()
        resumed = subprocess.run([*command, "--resume", str(out)], env=env, timeout=300,
                                 capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
    finally:
        for group in (driver.pid,):  # what Ray left behind of the killed driver's session
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
    events = assert_complete(out)
    assert [e["event"] for e in events].count("start") == 2
    whole = events_of(uninterrupted)
    assert schema(events) == schema(whole)
    assert {p.name for p in out.iterdir()} == {p.name for p in uninterrupted.iterdir()}
    assert len(load_schedule(out / "schedule.json")) == len(load_schedule(
        uninterrupted / "schedule.json"))
    config, whole_config = (json.loads((d / "config.json").read_text())
                            for d in (out, uninterrupted))
    assert config["search"] == whole_config["search"]
    # PBT after the resume (a FIFO scheduler would never exploit): an exploit at the round's
    # end after the kill, and clones that trained from their source's checkpoint since.
    exploits = [e for e in events if e["event"] == "exploit"]
    assert any(e["epoch"] > before for e in exploits), exploits
    assert [e["epoch"] for e in exploits] == [e["epoch"] for e in events_of(uninterrupted)
                                              if e["event"] == "exploit"]
    later = [r for r in clone_rows(rows_of(out)) if r["finished_at"] > killed_at]
    assert any(r["restored_from"][1] > before for r in later), later


def test_checkpoints_stay_bounded_and_late_exploits_find_theirs(local_ray,
                                                                tmp_path: Path) -> None:
    """The checkpoints on disk peak within (interval + 2) x population x one checkpoint; on
    two CPUs a source trains on while its clones wait, and the exploits late in the search
    restore the source's checkpoint of the exploit's epoch (Tune still kept it)."""
    config = SMOKE.replace(epochs=8)  # exploits at 2, 4 and 6
    out = tmp_path / "run"
    with PeakCheckpointBytes(out / "ray") as disk:
        run_ray_search(config, out, preset="smoke", **quiet())
    peak = [disk.peak]
    one = max(p.stat().st_size for p in (out / "ray").glob("*/checkpoint_*/member.pt"))
    bound = (config.interval + 2) * config.population * one
    print(f"peak checkpoint bytes {peak[0]} <= bound {bound} (one checkpoint: {one})")
    assert 0 < peak[0] <= bound, (peak[0], bound)
    events = assert_complete(out, config)
    rows = rows_of(out)
    exploits = [e for e in events if e["event"] == "exploit"]
    assert max(e["epoch"] for e in exploits) == 6
    for exploit in exploits:  # each clone trained on from its source's weights at that epoch
        clone = [r for r in rows if r["member"] == exploit["target"]
                 and r["epoch"] == exploit["epoch"] + 1]
        assert clone[-1]["restored_from"] == [exploit["source"], exploit["epoch"]], exploit


def test_the_dataset_goes_to_members_by_reference(local_ray) -> None:
    import ray
    import torch

    from pba.data import DatasetSplits, ImageSet
    from pba.search.ray_backend import member_trainable, members_data
    from pba.search.ray_tune import train_member

    def images(n: int) -> ImageSet:
        return ImageSet(torch.randint(0, 255, (n, 3, 32, 32), dtype=torch.uint8,
                                      generator=torch.Generator().manual_seed(n)),
                        torch.zeros(n, dtype=torch.int64))

    data = DatasetSplits("synthetic", images(20_000), images(1000), images(5000), 10,
                         (0.5,) * 3, (0.25,) * 3, None)  # 61 MB of training images
    members = members_data(data)
    assert len(members.test) == 0 and members.train is data.train and members.val is data.val
    reference = ray.put(members)
    trainable = member_trainable(train_member, SMOKE, RaySettings(), reference)
    # What Tune ships to each member (and again at each restart) is small...
    assert len(ray.cloudpickle.dumps(trainable)) < 1_000_000
    # ...and the members read the images whole from the object store.
    got = ray.get(reference)
    assert torch.equal(got.train.images, data.train.images) and len(got.test) == 0
