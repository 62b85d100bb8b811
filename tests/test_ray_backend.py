"""The Ray Tune backend (`pba search --engine ray`): the smoke preset on a local Ray instance,
interrupted as Ctrl+C would and resumed, against the embedded engine's run directory; and the
parts that need no Ray (events rebuilt from Tune's rows and policy log, settings, the hint to
install the extra). Data comes from PBA_DATA_DIR (set by conftest); nothing is downloaded."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pba.augmentation.policy import Policy, explore
from pba.augmentation.schedule import load_schedule, parse_pbt_log
from pba.core.errors import PBAError
from pba.core.options import RunOptions
from pba.reporting.recorders import search_recorders
from pba.search import preset
from pba.search.events import from_json, to_json
from pba.search.lineage import Lineage
from pba.search.presets import SearchConfig
from pba.search.ray_backend import RaySettings, resume_ray_search, run_ray_search
from pba.search.ray_log import POLICY_KEY, is_ray_run, population_events
from pba.search.rundir import SearchDir
from pba.search.runner import run_search

SMOKE = preset("smoke")
OUTPUTS = {"config.json", "population.jsonl", "schedule.json", "schedule_pbt_log.txt",
           "schedule.png", "summary.md"}
NEED_RAY = "the Ray backend's extra is not installed (pip install -e '.[ray]')"


# ---- without Ray ------------------------------------------------------------------------


def test_nothing_imports_ray_unless_the_backend_runs() -> None:
    code = ("import sys, pba.search.ray_backend; from pba.cli.main import build_parser; "
            "build_parser(); sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(PBAError, match=r"pip install 'pba\[ray\]'"):
        run_ray_search(SMOKE, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cpus, gpus", [(0, 0), (1, -0.5), (1, 1.5)])
def test_resources_per_member_are_checked(cpus: float, gpus: float) -> None:
    with pytest.raises(PBAError, match="per-member"):
        RaySettings(cpus_per_member=cpus, gpus_per_member=gpus)


def test_fractional_gpus_train_members_on_cuda() -> None:
    assert RaySettings(gpus_per_member=0.25).device == "cuda"
    assert RaySettings(gpus_per_member=2).device == "cuda"
    assert RaySettings().device == "cpu"


class FakeTune:
    """What Tune records of a synchronous PBT run, for a scripted population: each member's
    rows and the policy-log lines, with Tune's rule that a target's pbt_policy file becomes
    its source's file plus the new line."""

    def __init__(self, config: SearchConfig) -> None:
        self.config = config
        self.policies = [Policy.zeros().to_list()] * config.population
        self.rows: list[dict] = []
        self.global_log: list[list] = []
        self.policy_logs: dict[int, list[list]] = {}

    def train_to(self, end: int, accuracy: list[float]) -> None:
        for member, policy in enumerate(self.policies):
            for epoch in range(end - self.config.interval + 1, end + 1):
                evaluated = epoch == end
                self.rows.append({
                    "member": member, "epoch": epoch, "policy": policy, "train_loss": 1.0,
                    "train_acc": 0.5, "images": 256, "time_s": 1.0,
                    "val_accuracy": accuracy[member] if evaluated else math.nan,
                    "val_loss": 1.0 if evaluated else math.nan,
                    "finished_at": 1000.0 + epoch, "trial_id": f"x_0000{member}"})

    def exploit(self, target: int, source: int, epoch: int, rng) -> None:
        new = explore(Policy(tuple(self.policies[source])), rng).to_list()
        line = [f"{target}@perturbed[]", str(source), epoch, epoch,
                {POLICY_KEY: self.policies[source]}, {POLICY_KEY: new}]
        self.global_log.append(line)
        self.policy_logs[target] = [*self.policy_logs.get(source, []), line]
        self.policies[target] = new


def test_events_rebuilt_from_tune_match_its_policy_log() -> None:
    import numpy as np

    config = SMOKE.replace(epochs=6, interval=2)
    tune = FakeTune(config)
    rng = np.random.default_rng(0)
    tune.train_to(2, [0.9, 0.5, 0.4, 0.1])
    tune.exploit(3, 0, 2, rng)
    tune.train_to(4, [0.2, 0.5, 0.4, 0.8])
    tune.exploit(0, 3, 4, rng)
    # A trial restored from an older checkpoint reports epoch 5 twice; the later row counts.
    stale = {**tune.rows[-1], "epoch": 5, "member": 1, "train_loss": 99.0}
    tune.rows.append(stale)
    tune.train_to(6, [0.7, 0.5, 0.4, 0.6])

    rounds = [[to_json(e) for e in block]
              for block in population_events(config, tune.rows, tune.global_log)]
    assert [e["event"] for e in rounds[0]] == (
        ["train"] * 4 + ["evaluate"] * 4 + ["exploit", "explore", "round"])
    assert [e["event"] for e in rounds[-1]] == ["train"] * 4 + ["evaluate"] * 4 + ["round"]
    exploit = next(e for e in rounds[1] if e["event"] == "exploit")
    assert (exploit["target"], exploit["source"], exploit["epoch"]) == (0, 3, 4)
    assert exploit["source_score"] == 0.8
    assert next(e for e in rounds[2] if e["event"] == "train" and e["member"] == 1)["loss"] == 1.0
    assert rounds[-1][-1]["best_member"] == 0
    events = [from_json(e) for block in rounds for e in block]
    lineage = Lineage.replay(config.population, events)
    for member, lines in tune.policy_logs.items():
        text = "".join(json.dumps(line) + "\n" for line in lines)
        assert parse_pbt_log(text, config.epochs) == lineage.schedule(member)


def test_a_diverged_population_is_reported() -> None:
    tune = FakeTune(SMOKE)
    tune.train_to(SMOKE.interval, [math.nan] * SMOKE.population)
    with pytest.raises(PBAError, match="diverged"):
        population_events(SMOKE.replace(epochs=SMOKE.interval), tune.rows, [])


# ---- on a local Ray instance ---------------------------------------------------------------


def interrupt_after(rows: Path, epoch: int, done: threading.Event) -> threading.Thread:
    """Send this process SIGINT (what Ctrl+C sends; Tune then saves its state and stops) once a
    member has reported `epoch`."""

    def watch() -> None:
        while not done.wait(0.2):
            lines = rows.read_text().splitlines() if rows.is_file() else []
            if any(json.loads(line)["epoch"] >= epoch for line in lines if line.endswith("}")):
                os.kill(os.getpid(), signal.SIGINT)
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def ray_run(local_ray, tmp_path_factory) -> Path:
    """The smoke search with Ray, stopped after the first exploit and resumed."""
    out = tmp_path_factory.mktemp("ray") / "smoke"
    done = threading.Event()
    interrupt_after(out / "ray" / "members.jsonl", SMOKE.interval + 1, done)
    with pytest.raises(PBAError, match="continue it with: pba search --resume"):
        run_ray_search(SMOKE, out, preset="smoke", recorders=search_recorders(progress=False))
    done.set()
    assert is_ray_run(out) and not (out / "schedule.json").exists()
    result = resume_ray_search(out, recorders=search_recorders(progress=False))
    assert result.run_dir == out and len(result.schedule) == SMOKE.epochs
    return out


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("embedded") / "smoke"
    run_search(SMOKE, out, options=RunOptions(device="cpu"), preset="smoke",
               recorders=search_recorders(progress=False))
    return out


def test_ray_search_finishes_with_a_full_legal_schedule(ray_run: Path) -> None:
    events = [to_json(e) for e in SearchDir.open(ray_run).events()]
    assert [e["event"] for e in events].count("start") == 2  # started, then resumed
    assert any(e["event"] == "exploit" for e in events)
    schedule = load_schedule(ray_run / "schedule.json")  # checks every value's range
    assert len(schedule) == SMOKE.epochs
    best = [e for e in events if e["event"] == "round"][-1]["best_member"]
    # The schedule is Tune's policy log of the best member, and it agrees with the events.
    assert schedule == Lineage.replay(SMOKE.population, map(from_json, events)).schedule(best)
    assert schedule == load_schedule(ray_run / "schedule_pbt_log.txt", SMOKE.epochs)
    rounds = [e["round"] for e in events if e["event"] == "round"]
    assert rounds == list(range(SMOKE.pbt().rounds))


def test_both_backends_write_the_same_files_and_schema(ray_run: Path, embedded_run: Path) -> None:
    assert OUTPUTS <= {p.name for p in ray_run.iterdir()}
    assert OUTPUTS <= {p.name for p in embedded_run.iterdir()}
    ray_config, embedded_config = (json.loads((d / "config.json").read_text())
                                   for d in (ray_run, embedded_run))
    assert ray_config.keys() == embedded_config.keys()
    assert ray_config["search"] == embedded_config["search"]

    def keys(run: Path) -> dict[str, set[tuple[str, ...]]]:
        schema: dict[str, set[tuple[str, ...]]] = {}
        for event in map(to_json, SearchDir.open(run).events()):
            schema.setdefault(event["event"], set()).add(tuple(sorted(event)))
        return schema

    ray_keys, embedded_keys = keys(ray_run), keys(embedded_run)
    for kind in ("start", "train", "evaluate", "round"):
        assert ray_keys[kind] == embedded_keys[kind], kind
    for kind in ("exploit", "explore"):  # every smoke search exploits; checked to be sure
        assert ray_keys[kind] == embedded_keys.get(kind, ray_keys[kind]), kind
    assert (len(load_schedule(ray_run / "schedule.json"))
            == len(load_schedule(embedded_run / "schedule.json")) == SMOKE.epochs)


def test_a_finished_or_foreign_run_is_not_resumed_with_ray(ray_run: Path,
                                                          embedded_run: Path) -> None:
    with pytest.raises(PBAError, match="already finished"):
        resume_ray_search(ray_run)
    with pytest.raises(PBAError, match="not searched with Ray"):
        resume_ray_search(embedded_run)
