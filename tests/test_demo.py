"""`pba demo` at smoke size on real CIFAR-10: the search, final models of every arm in worker
processes, the report with its verdicts and recommendation, results.json, both plots, a demo
killed among its final models that continues where it stopped, and another set of seeds on the
same search. Also the verdicts, the recommendation and the summary sentences on their own."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pba.augmentation.policy import Policy
from pba.augmentation.schedule import Schedule
from pba.cli.main import main
from pba.core.errors import PBAError
from pba.core.options import RunOptions
from pba.core.verdict import BEATS, UNCLEAR, WORSE, Comparison, recommend
from pba.demo import DEMO, DemoConfig, run_demo, seed_set
from pba.demo.results import render, results
from pba.reporting.report import THIS_SEARCH, FinalRun, comparisons, verdict
from pba.search.summary import schedule_notes

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "rcifar10_16_wrn.txt"
SMOKE_DEMO = DemoConfig(preset="smoke", model="wrn_10_1", epochs=2, lr=0.1, weight_decay=5e-4,
                        seeds={"pba": 2, "ramp": 1, "baseline": 2, "trivialaugment": 2,
                               "published": 1, "none": 1})
ARM_DIRS = {"pba-seed1", "pba-seed2", "ramp-seed1", "baseline-seed1", "baseline-seed2",
            "trivialaugment-seed1", "trivialaugment-seed2", "published-seed1", "none-seed1"}
QUIET = RunOptions(progress=False)
FP32 = QUIET.replace(precision="fp32", workers=2)
DEMO_SCRIPT = (
    "import sys; from pba.demo import DemoConfig, run_demo; "
    "from pba.core.options import RunOptions; "
    "run_demo(DemoConfig(**eval(sys.argv[1])), sys.argv[2], "
    "options=RunOptions(precision='fp32', workers=2, progress=False))"
)


def start_demo(demo: DemoConfig, out: Path, log: Path) -> subprocess.Popen:
    config = repr(demo.to_dict())
    with log.open("w") as stderr:
        return subprocess.Popen([sys.executable, "-c", DEMO_SCRIPT, config, str(out)],
                                stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)


@pytest.mark.slow
def test_killed_demo_on_a_folder_continues_and_reports(tmp_path: Path, capsys,
                                                       cifar_folder: str) -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"no published schedule at {REFERENCE}")
    # A user's folder (its baseline named, to skip the check: test_baseline covers it).
    demo = dataclasses.replace(SMOKE_DEMO, dataset=cifar_folder, search={"baseline": "crop,flip"})
    out = tmp_path / "demo"
    proc = start_demo(demo, out, tmp_path / "stderr.txt")
    deadline = time.monotonic() + 300
    first = None
    while first is None:
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        assert time.monotonic() < deadline
        done = sorted((out / "final").glob("*/result.json"))
        first = done[0] if done else None
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the demo and its worker processes
    proc.wait()
    kept = first.read_text()
    assert len(list((out / "final").glob("*/result.json"))) < len(ARM_DIRS)

    # Started without the published schedule, continued with it: its arm joins.
    text = run_demo(demo, out, reference=REFERENCE, options=FP32)
    assert {p.name for p in (out / "final").iterdir()} == ARM_DIRS
    assert all((out / "final" / d / "result.json").is_file() for d in ARM_DIRS)
    assert first.read_text() == kept  # a finished final model is not trained again
    for plot in ("schedule.png", "population.png"):
        assert (out / "search" / plot).read_bytes().startswith(b"\x89PNG")
    assert (out / "summary.md").read_text() == text
    for name, seeds in [("the searched schedule", 2), ("the baseline", 2),
                        ("TrivialAugment", 2), ("the published schedule", 1),
                        ("no augmentation", 1), ("the search-free schedule", 1)]:
        assert f"| {name} | {seeds} |" in text or f"| **{name}** | {seeds} |" in text
    assert "- against the baseline: **" in text and "- against TrivialAugment: **" in text
    assert "**Recommended: " in text
    assert "member-epochs" in text  # the search's cost
    configs = [json.loads((out / "final" / d / "config.json").read_text()) for d in ARM_DIRS]
    assert {c["seed"] for c in configs} == {1, 2} and {c["train_size"] for c in configs} == {256}
    assert {c["precision"] for c in configs} == {"fp32"}

    results = json.loads((out / "results.json").read_text())
    assert set(results["arms"]) == {"pba", "ramp", "baseline", "trivialaugment", "published",
                                    "none"}
    board = {row["arm"]: row for row in results["leaderboard"]}
    assert set(board) == set(results["arms"]) and board["pba"]["search_s"] > 0
    assert board["ramp"]["search_s"] == 0 and board["published"]["search_s"] is None
    assert all(row["train_s_per_model"] > 0 for row in board.values())
    assert results["arms"]["pba"]["seeds"] == [1, 2] == results["arms"]["trivialaugment"]["seeds"]
    errors = {arm: a["test_errors"] for arm, a in results["arms"].items()}
    for arm, a in results["arms"].items():
        assert len(a["test_errors"]) == len(a["seeds"]) and a["mean"] == pytest.approx(
            sum(a["test_errors"]) / len(a["test_errors"]))
        assert a["test_errors"] == [json.loads((out / "final" / f"{arm}-seed{s}" / "result.json")
                                               .read_text())["test_error"] for s in a["seeds"]]
    assert results["recommended"] == recommend(errors)
    assert list(results["verdicts"])[:2] == ["baseline", "trivialaugment"]
    assert {v["outcome"] for v in results["verdicts"].values()} <= {BEATS, UNCLEAR, WORSE}
    assert [s["first_seed"] for s in results["seed_sets"]] == [1]
    assert results["plan"]["search"]["population"] == 4 and results["times"]["search_s"] > 0
    assert results["data"]["dataset"] == cifar_folder and results["data"]["image_size"] == [32, 32]
    assert results["data"]["test_split"] == ("20% of the folder's images held out before any "
                                             "training (128 images)")
    assert f"{cifar_folder} training images (32x32); tested on 20% of the folder's" in text

    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out == text
    # A finished demo is only reported again; another demo's settings cannot take it over.
    assert run_demo(demo, out, options=QUIET).split("## The search")[1] == \
        text.split("## The search")[1]
    assert main(["demo", "--out", str(out / "search"), "--no-progress"]) == 2
    assert "holds no demo" in capsys.readouterr().err

    # Another set of seeds: the same search, new final models beside the first ones.
    search_log = (out / "search" / "population.jsonl").read_text()
    text = run_demo(demo, out, first_seed=11, options=FP32)
    assert (out / "search" / "population.jsonl").read_text() == search_log
    assert first.read_text() == kept
    assert {"pba-seed11", "pba-seed12", "none-seed11"} <= {p.name for p in
                                                          (out / "final").iterdir()}
    results = json.loads((out / "results.json").read_text())
    assert results["arms"]["pba"]["seeds"] == [1, 2, 11, 12]
    assert [s["first_seed"] for s in results["seed_sets"]] == [1, 11]
    assert results["seed_sets"][1]["arms"]["baseline"]["seeds"] == [11, 12]
    assert "## By set of seeds" in text and "| 11-12 |" in text and "| 1-2 |" in text
    other = tmp_path / "other.txt"
    other.write_text(REFERENCE.read_text())
    with pytest.raises(PBAError, match="cannot take"):
        run_demo(demo, out, reference=other, options=QUIET)
    with pytest.raises(PBAError, match="--epochs differ"):
        run_demo(demo, out, given={"epochs": 9}, options=QUIET)


def runs(errors: dict[str, list[float]], epochs: int = 100) -> list[FinalRun]:
    return [FinalRun(Path(f"{arm}{i}"), "reduced_cifar10", "wrn_10_1", arm, e, epochs)
            for arm, values in errors.items() for i, e in enumerate(values)]


def test_verdict_says_plainly_whether_the_schedule_beats_the_baseline() -> None:
    wins = runs({THIS_SEARCH: [44.0, 44.5, 45.0], "baseline": [48.0, 48.5, 47.5],
                 "trivialaugment": [45.0, 44.6, 45.2]})
    found = comparisons(wins)[("reduced_cifar10", "wrn_10_1")]
    assert list(found) == ["trivialaugment", "baseline"]  # the table's order
    vs_base, vs_ta = found["baseline"], found["trivialaugment"]
    assert vs_base.gain == pytest.approx(3.5)
    # sd 0.5 on both sides, 3 seeds each: the standard error is sqrt(0.25/3 + 0.25/3).
    assert vs_base.standard_error == pytest.approx((0.5 / 3) ** 0.5)
    assert vs_base.outcome == BEATS and vs_ta.outcome == UNCLEAR
    lines = verdict(wins)
    assert lines[0].startswith("**This search's schedule beats the baseline**: 44.50% against "
                               "48.00% test error, 3.50 points better, more than two standard")
    assert lines[1].startswith("Against trivialaugment: no clear difference, ")
    # As good as TrivialAugment, which needs no search: that is the recommendation.
    assert lines[2].startswith("**Recommended: TrivialAugment.**")

    noisy = runs({THIS_SEARCH: [44.0, 47.0, 45.0], "baseline": [46.0, 45.0, 47.5]})
    assert "does not beat the baseline" in " ".join(verdict(noisy))
    assert "**Recommended: the baseline.**" in " ".join(verdict(noisy))
    loses = runs({THIS_SEARCH: [50.0, 50.5], "baseline": [48.0, 48.2], "none": [49.0]})
    text = " ".join(verdict(loses))
    assert "does not beat the baseline**: 50.25% against 48.10% test error, 2.15 points worse" \
        in text
    assert "**Recommended: the baseline.** The searched schedule is worse than the baseline" \
        in text
    single = runs({THIS_SEARCH: [44.0], "baseline": [48.0]})
    assert "too few for a standard error" in " ".join(verdict(single))
    # Runs of another length are not compared.
    assert comparisons(runs({THIS_SEARCH: [44.0]}) + runs({"baseline": [40.0]}, 50)) == {}


def test_a_single_seed_borrows_the_other_sides_variance() -> None:
    c = Comparison((50.0,), (44.0, 45.0, 46.0))
    # variance 1 from the three seeds, standing for both sides: sqrt(1/1 + 1/3)
    assert c.standard_error == pytest.approx((4 / 3) ** 0.5)
    assert c.outcome == WORSE and c.gain == pytest.approx(-5.0)
    assert Comparison((50.0,), (44.0,)).outcome is None


def test_recommendation_is_the_cheapest_arm_that_nothing_beats() -> None:
    clear = {"none": [60.0], "baseline": [50.0, 50.5, 49.5], "trivialaugment": [49.0, 49.5, 50.0],
             "pba": [45.0, 45.5, 44.5]}
    assert recommend(clear) == "pba"
    # The schedule within noise of TrivialAugment: TrivialAugment, which needs no search.
    assert recommend(clear | {"pba": [48.5, 49.5, 48.0]}) == "trivialaugment"
    # Everything within noise of no augmentation: none (never worse than doing nothing).
    assert recommend({"none": [50.0], "baseline": [49.0, 51.0, 50.5],
                      "pba": [49.5, 50.0, 52.0]}) == "none"
    # A schedule that hurts is never recommended, even when it is the only augmentation.
    assert recommend({"none": [40.0, 40.5, 39.5], "pba": [45.0, 44.0, 46.0]}) == "none"
    with pytest.raises(ValueError):
        recommend({"pba": []})


def test_schedule_notes_flag_a_schedule_that_never_augments() -> None:
    zero = Schedule.constant(Policy.zeros(), 10)
    assert "never augmented" in schedule_notes(zero)[0]
    strong = Policy.zeros().replace("Rotate", probability=5, magnitude=3)
    growing = Schedule((Policy.zeros(),) * 4 + (strong,) * 6)
    (note,) = schedule_notes(growing)
    assert "augments on 6 of 10 epochs and grows" in note


def test_demo_refuses_a_config_without_the_comparison() -> None:
    with pytest.raises(PBAError, match="arm needs seeds"):
        DemoConfig(preset="smoke", model="wrn_10_1", epochs=2, lr=0.1, weight_decay=0,
                   seeds={"baseline": 3, "trivialaugment": 3})
    with pytest.raises(PBAError, match="unknown arm"):
        DemoConfig(preset="smoke", model="wrn_10_1", epochs=2, lr=0.1, weight_decay=0,
                   seeds={"pba": 1, "baseline": 1, "mixup": 1})


def test_results_judge_each_set_of_seeds_and_all_together() -> None:
    finished = {"pba": {1: 44.0, 2: 44.5, 3: 45.0, 11: 44.2, 12: 44.8, 13: 45.1},
                "baseline": {1: 48.0, 2: 48.5, 3: 47.5, 11: 47.9, 12: 48.4, 13: 48.8},
                "trivialaugment": {1: 44.1, 2: 44.9, 3: 44.4},  # set 11's not trained yet
                "none": {1: 58.0, 11: 57.5}}
    data = {"dataset": "reduced_cifar10", "model": "wrn_10_2", "epochs": 80,
            "train_images": 1000, "test_split": "the dataset's test split (10,000 images)"}
    times = {"search_s": 600.0, "final_models_s": 1200.0, "demo_wall_s": 1500.0}
    doc = results(finished, [seed_set(DEMO, 1), seed_set(DEMO, 11)], [1, 11], data=data,
                  plan={}, times=times)
    assert doc["arms"]["pba"]["seeds"] == [1, 2, 3, 11, 12, 13]
    assert doc["arms"]["trivialaugment"]["seeds"] == [1, 2, 3]
    assert doc["arms"]["none"] == {"seeds": [1, 11], "test_errors": [58.0, 57.5],
                                   "mean": 57.75, "std": pytest.approx(0.3536, abs=1e-4)}
    assert doc["verdicts"]["baseline"]["outcome"] == BEATS
    assert doc["verdicts"]["trivialaugment"]["outcome"] == UNCLEAR
    assert doc["recommended"] == "trivialaugment"  # as good, and no search needed
    first, second = doc["seed_sets"]
    assert first["arms"]["pba"]["seeds"] == [1, 2, 3] and first["recommended"] == "trivialaugment"
    assert "trivialaugment" not in second["verdicts"] and second["recommended"] == "pba"
    text = render(doc, "PBA demo x")
    assert text.startswith("# PBA demo x\n\n**Recommended: TrivialAugment.**")
    assert "- against the baseline: **beats**" in text
    assert "| 1-3 | beats: +3.50" in text and "| 11-13 | beats: " in text
    assert "| **TrivialAugment** | 3 | 44.47 ± 0.40 | 44.10, 44.90, 44.40 |" in text


def test_advice_after_two_sets_of_seeds_says_whether_each_agreed() -> None:
    data = {"dataset": "reduced_cifar10", "model": "wrn_10_1", "epochs": 80,
            "train_images": 1000, "test_split": "the dataset's test split (10,000 images)"}
    times = {"search_s": 600.0, "final_models_s": 1200.0, "demo_wall_s": 1500.0}
    sets = [{"pba": [1, 2, 3], "baseline": [1, 2, 3]},
            {"pba": [11, 12, 13], "baseline": [11, 12, 13]}]
    clear = {"pba": {1: 44.0, 2: 44.5, 3: 45.0, 11: 44.2, 12: 44.8, 13: 45.1},
             "baseline": {1: 48.0, 2: 48.5, 3: 47.5, 11: 47.9, 12: 48.4, 13: 48.8}}
    one = results(clear, sets[:1], [1], data=data, plan={}, times=times)
    both = results(clear, sets, [1, 11], data=data, plan={}, times=times)
    assert one["recommended"] == both["recommended"] == "pba"
    assert "--first-seed" in one["advice"]  # one set: check it on new seeds
    assert "on each of the 2 sets of seeds" in both["advice"]
    # The second set alone is a tie with the baseline: together pba still wins, but the
    # advice must not claim it held on each set, nor send the user to --first-seed again.
    split = clear | {"pba": clear["pba"] | {11: 48.0, 12: 48.9, 13: 47.6}}
    doc = results(split, sets, [1, 11], data=data, plan={}, times=times)
    assert [s["recommended"] for s in doc["seed_sets"]] == ["pba", "baseline"]
    assert doc["recommended"] == "pba"
    assert "the sets of seeds recommend it in 1 of 2" in doc["advice"]
    assert "--first-seed" not in doc["advice"]
