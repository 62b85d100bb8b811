"""`pba search --preset smoke` on the CPU with real CIFAR-10: every output, a search killed
mid-round and resumed, and a diverged member replaced. Data comes from PBA_DATA_DIR (set by
conftest to ../shared/data); nothing is downloaded."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pba.augmentation.schedule import load_schedule
from pba.cli.main import main
from pba.core.errors import PBAError
from pba.data import DatasetSplits, ImageSet
from pba.data.datasets import default_baseline
from pba.reporting.recorders import search_recorders
from pba.search import preset, runner
from pba.search.events import from_json
from pba.search.lineage import Lineage
from pba.search.local import LocalEngine
from pba.search.presets import SearchConfig
from pba.search.runner import choose_engine, run_search
from pba.search.vectorized import VectorizedEngine
from pba.training.augment import make_augment
from pba.training.loop import init_state, load_checkpoint
from pba.training.recipes import Recipe

SMOKE = preset("smoke")
PBA = [sys.executable, "-m", "pba.cli.main"]
OUTPUTS = {"config.json", "population.jsonl", "state.json", "checkpoints", "schedule.json",
           "schedule_pbt_log.txt", "schedule.png", "population.png", "summary.md"}


def search(*args: str) -> subprocess.CompletedProcess:
    # fp32: the resumed search must equal the uninterrupted one bit for bit.
    return subprocess.run([*PBA, "search", "--no-progress", "--precision", "fp32", *args],
                          capture_output=True,
                          text=True, timeout=300)


def replayable(events: list[dict]) -> list[dict]:
    """The events a resumed search must reproduce: all but process starts, without timings."""
    return [{k: v for k, v in e.items() if k not in ("seconds", "time", "phases")}
            for e in events if e["event"] != "start"]


def logged(run: Path) -> list[dict]:
    """The events of the search in `run`, as population.jsonl holds them."""
    return [json.loads(line) for line in (run / "population.jsonl").open()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search") / "smoke"
    done = search("--preset", "smoke", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "best member" in done.stdout
    return out


def test_smoke_search_writes_every_output(smoke_run: Path, cifar_images) -> None:
    assert OUTPUTS <= {p.name for p in smoke_run.iterdir()}
    config = json.loads((smoke_run / "config.json").read_text())
    # The dataset's baseline, settled and written down.
    settled = SMOKE.replace(baseline="crop,flip,cutout", cutout_size=16)
    assert SearchConfig.from_dict(config["search"]) == settled and config["preset"] == "smoke"

    schedule = load_schedule(smoke_run / "schedule.json")
    assert len(schedule) == SMOKE.epochs
    assert load_schedule(smoke_run / "schedule_pbt_log.txt", SMOKE.epochs) == schedule
    events = logged(smoke_run)
    kinds = [e["event"] for e in events]
    rounds = SMOKE.epochs // SMOKE.interval
    assert kinds.count("train") == kinds.count("evaluate") == SMOKE.population * rounds
    assert kinds.count("round") == rounds and kinds.count("start") == 1
    assert kinds.count("exploit") == kinds.count("explore") == rounds - 1  # 1 of 4 each time
    best = next(e for e in reversed(events) if e["event"] == "round")["best_member"]
    assert Lineage.replay(SMOKE.population, map(from_json, events)).schedule(best) == schedule

    last = smoke_run / "checkpoints" / f"round-{rounds:04d}"
    assert sorted(p.name for p in last.iterdir()) == [
        *(f"member-{m:02d}.pt" for m in range(4)), "round.json"]
    assert sorted(p.name for p in last.parent.iterdir()) == [  # the newest two rounds
        f"round-{rounds - 1:04d}", f"round-{rounds:04d}"]
    state = init_state(SMOKE.model, 10, SMOKE.recipe(), seed=0, device="cpu")
    assert load_checkpoint(last / f"member-{best:02d}.pt", state)["round"] == rounds
    assert state.epoch == SMOKE.epochs
    for plot in ("schedule.png", "population.png"):
        assert (smoke_run / plot).read_bytes().startswith(b"\x89PNG")
    summary = (smoke_run / "summary.md").read_text()
    assert "schedule.json" in summary and "precision fp32" in summary
    # On a CPU the next step is the search's own regime, with the time it takes here.
    assert f"--model {SMOKE.model} --augment pba" in summary and "wrn_28_10" not in summary
    assert f"--train-size {SMOKE.train_size} --val-size 0 --epochs {SMOKE.epochs}" in summary
    assert "About " in summary and "training images/s" in summary

    # The schedule drives `pba train --augment pba` as it is (stretched to the run's length).
    images = ImageSet(cifar_images[:64], torch.zeros(64, dtype=torch.int64))
    data = DatasetSplits("reduced_cifar10", images, None, images, 10, (0.5,) * 3, (0.25,) * 3,
                         default_baseline("reduced_cifar10"))
    augment = make_augment("pba", data, Recipe(epochs=200, lr=0.05, weight_decay=5e-3),
                           schedule=schedule)
    assert augment(images.images, 199, torch.Generator().manual_seed(0)).shape == (64, 3, 32, 32)


def test_report_and_refusals_of_a_finished_search(smoke_run: Path, capsys) -> None:
    assert main(["report", str(smoke_run)]) == 0
    out = capsys.readouterr().out
    assert f"{SMOKE.population * SMOKE.epochs} member-epochs" in out and "cpu" in out
    assert main(["search", "--resume", str(smoke_run)]) == 2
    assert "already finished" in capsys.readouterr().err
    assert main(["search", "--preset", "smoke", "--out", str(smoke_run)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_killed_search_resumes_to_the_same_result(smoke_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    with (tmp_path / "stderr.txt").open("w") as stderr:
        proc = subprocess.Popen([*PBA, "search", "--no-progress", "--precision", "fp32",
                                 "--preset", "smoke", "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 240
        while not (out / "state.json").exists():  # the first round's commit
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # now inside round 2
        proc.wait()
    assert json.loads((out / "state.json").read_text())["round"] < SMOKE.epochs // SMOKE.interval

    # Without --precision: the search goes on in the fp32 it started with, whatever the
    # machine's auto is (the schedules below are equal only in fp32).
    done = subprocess.run([*PBA, "search", "--no-progress", "--resume", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {e["precision"] for e in logged(out) if e["event"] == "start"} == {"fp32"}
    schedule = load_schedule(out / "schedule.json")
    assert len(schedule) == SMOKE.epochs
    # On the CPU a resumed search is the uninterrupted one, event for event.
    assert schedule == load_schedule(smoke_run / "schedule.json")
    resumed, whole = (logged(d) for d in (out, smoke_run))
    assert replayable(resumed) == replayable(whole)
    assert [e["event"] for e in resumed].count("start") == 2


class DivergingEngine(LocalEngine):
    """Member 1's weights turn to nan after the first round's training."""

    def train(self, policies, epochs):
        stats = super().train(policies, epochs)
        if self.members[1].epoch == epochs:
            with torch.no_grad():
                for p in self.members[1].model.parameters():
                    p.fill_(math.nan)
        return stats


def test_diverged_member_is_replaced(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runner, "LocalEngine", DivergingEngine)
    config = SMOKE.replace(epochs=4, train_size=128, val_size=128)
    result = run_search(config, tmp_path / "nan", recorders=search_recorders(progress=False))
    assert len(result.schedule) == 4
    events = logged(tmp_path / "nan")
    evaluated = next(e for e in events if e["event"] == "evaluate" and e["member"] == 1)
    assert evaluated["loss"] is None and evaluated["score"] is None  # nan, written as null
    assert any(e["event"] == "exploit" and e["target"] == 1 and e["round"] == 0 for e in events)
    retrained = [e for e in events if e["event"] == "train" and e["member"] == 1]
    assert math.isfinite(retrained[-1]["loss"])
    final = [e for e in events if e["event"] == "evaluate" and e["round"] == 1]
    assert all(e["loss"] is not None and math.isfinite(e["loss"]) for e in final)


def test_engine_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_engine("auto", "wrn_40_2", cpu) is LocalEngine
    assert choose_engine("auto", "wrn_40_2", cuda) is VectorizedEngine
    assert choose_engine("auto", "shake_shake_26_2x32d", cuda) is LocalEngine
    assert choose_engine("vectorized", "wrn_10_1", cpu) is VectorizedEngine
    with pytest.raises(PBAError, match="packs WRN models only"):
        choose_engine("vectorized", "shake_shake_26_2x32d", cpu)
    with pytest.raises(PBAError, match="unknown engine"):
        choose_engine("fast", "wrn_10_1", cpu)


def test_vectorized_engine_runs_the_smoke_search_from_the_cli(tmp_path):
    out = tmp_path / "vec"
    assert main(["search", "--preset", "smoke", "--engine", "vectorized", "--epochs", "4",
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["engine"] == "vectorized"
    assert len(load_schedule(out / "schedule.json")) == 4
