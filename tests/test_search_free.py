"""The search-free schedule ('ramp') and what the demo does with it: its policies over the
epochs, the arm and `--arms`, the budget-aware default, the leaderboard, and the search's
variant flags (`--metric`, `--selection`), each changing what it claims and nothing else."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from pba.augmentation.policy import MAX_MAGNITUDE, MAX_PROBABILITY, SLOTS, Policy
from pba.augmentation.ramp import ramp_policy, ramp_schedule, ramp_strengths
from pba.augmentation.schedule import Schedule
from pba.budget.planner import MIN_FINAL_EPOCHS, plan_run
from pba.cli.main import main
from pba.core.errors import PBAError
from pba.core.options import RunOptions
from pba.core.timing import Stopwatch
from pba.core.verdict import EFFORT
from pba.data import load_dataset
from pba.demo import DEMO
from pba.demo.config import SEARCH_FREE, none_is_baseline, parse_arms
from pba.demo.pipeline import _new_demo, final_jobs
from pba.demo.results import leaderboard, render, results
from pba.ops.registry import DEFAULT_OPS
from pba.search import preset
from pba.training.augment import make_augment
from pba.training.recipes import Recipe
from test_budget import CIFAR, RATES


@pytest.mark.parametrize("epochs", [1, 2, 10, 37, 200])
def test_the_ramp_rises_linearly_from_nothing_to_the_strongest(epochs: int) -> None:
    schedule = ramp_schedule(epochs)
    assert len(schedule) == epochs and schedule.ops == DEFAULT_OPS
    entries = 2 * SLOTS * len(DEFAULT_OPS)
    for epoch, policy in enumerate(schedule):
        strength = 1.0 if epochs == 1 else epoch / (epochs - 1)
        # every op of both copies alike: all probabilities one level, all magnitudes one
        assert set(policy.values[0::2]) == {round(MAX_PROBABILITY * strength)}
        assert set(policy.values[1::2]) == {round(MAX_MAGNITUDE * strength)}
        assert len(policy.values) == entries
    if epochs > 1:
        assert schedule.policies[0] == Policy.zeros()  # the first epoch is not augmented
    assert schedule.policies[-1].values == (MAX_PROBABILITY, MAX_MAGNITUDE) * (entries // 2)
    strengths = [p.strength for p in schedule]
    assert strengths == sorted(strengths)  # never weaker later


def test_ramp_strengths_and_policies_refuse_what_is_out_of_range() -> None:
    assert ramp_strengths(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(PBAError, match="at least one epoch"):
        ramp_strengths(0)
    with pytest.raises(PBAError, match=r"in \[0, 1\]"):
        ramp_policy(1.5)
    # halfway: probability level 5, magnitude round(4.5) (Python rounds half to even)
    assert set(ramp_policy(0.5).values) == {5, 4}


@pytest.fixture(scope="module")
def cifar_data(data_dir: Path):
    return load_dataset("reduced_cifar10", data_dir, train_size=256, val_size=0)


def test_the_ramp_augment_is_the_ramp_schedule_applied_like_a_searched_one(cifar_data) -> None:
    recipe = Recipe(epochs=8, lr=0.1, weight_decay=0.0, batch_size=64)
    images = cifar_data.train.images
    ramp = make_augment("ramp", cifar_data, recipe)
    same = make_augment("pba", cifar_data, recipe, schedule=ramp_schedule(8))
    for epoch in (0, 3, 7):
        ours = ramp(images, epoch, torch.Generator().manual_seed(epoch))
        theirs = same(images, epoch, torch.Generator().manual_seed(epoch))
        assert torch.equal(ours, theirs)
    # Without a baseline: the first epoch leaves every image as it is, the last changes most.
    bare = make_augment("ramp", cifar_data, dataclasses.replace(recipe, baseline="none"))
    first = bare(images, 0, torch.Generator().manual_seed(1))
    last = bare(images, 7, torch.Generator().manual_seed(1))
    assert torch.equal(first, images)
    changed = (last != images).flatten(1).any(1).float().mean()
    # 80% of images get an op at full strength (docs/algorithm.md §3): 0.8 +- 4 sd of 256 draws
    assert abs(changed - 0.8) < 4 * (0.8 * 0.2 / len(images)) ** 0.5
    with pytest.raises(PBAError, match="only 'pba' uses one"):
        make_augment("ramp", cifar_data, recipe, schedule=Schedule((Policy.zeros(),)))


def test_arms_parse_counts_and_refuse_mistakes() -> None:
    assert parse_arms("pba,ramp,none:3", DEMO) == {"pba": 3, SEARCH_FREE: 3, "none": 3}
    assert parse_arms(" none , pba:5 ", DEMO) == {"pba": 5, "none": DEMO.seeds["none"]}
    for text, message in [("pba,mixup", "unknown arm 'mixup'"), ("pba,pba", "twice"),
                          ("pba:x", "ARM:SEEDS"), ("baseline,none", "needs seeds"),
                          ("pba,none:0", "at least one seed")]:
        with pytest.raises(PBAError, match=message):
            parse_arms(text, DEMO)


def test_the_demo_command_refuses_bad_arms_before_anything_runs(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--arms", "pba,published", "--no-progress"]) == 2
    assert "needs --reference" in capsys.readouterr().err
    assert main(["demo", "--out", str(out), "--arms", "trivialaugment", "--no-progress"]) == 2
    assert "'pba' arm needs seeds" in capsys.readouterr().err
    assert not out.exists()


def test_the_search_free_arm_gives_way_to_the_final_models_floor() -> None:
    # Ten final models and three optional ones (the ramp arm's): where all thirteen would
    # train fewer than the floor's epochs and ten reach it, the three are left out.
    facts = dataclasses.replace(CIFAR, final_models=13)
    budgets = [60 * m for m in range(6, 40)]
    left_out = []
    for budget in budgets:
        everything = plan_run(budget, 5.0, facts, RATES, model="wrn_10_1",
                              final_model="wrn_10_2")
        plan = plan_run(budget, 5.0, facts, RATES, model="wrn_10_1", final_model="wrn_10_2",
                        optional_final_models=3)
        fewer = plan_run(budget, 5.0, dataclasses.replace(facts, final_models=10), RATES,
                         model="wrn_10_1", final_model="wrn_10_2")
        if plan.facts.final_models == 10:
            left_out.append(budget)
            assert everything.regime.final_epochs < MIN_FINAL_EPOCHS
            assert plan.regime == fewer.regime
            assert plan.regime.final_epochs >= MIN_FINAL_EPOCHS
            assert "3 optional final models left out" in plan.reasons[-1]
        else:
            assert plan.facts.final_models == 13 and plan.regime == everything.regime
            assert (everything.regime.final_epochs >= MIN_FINAL_EPOCHS
                    or fewer.regime.final_epochs < MIN_FINAL_EPOCHS)
    assert left_out and left_out[-1] < budgets[-1]  # some budgets drop it, larger ones keep it


def test_the_leaderboard_gives_costs_and_marks_the_unbeaten_arms() -> None:
    arms = {"pba": [44.0, 44.5, 45.0], "ramp": [44.3, 44.8, 44.6], "baseline": [48.0, 48.5, 47.5],
            "trivialaugment": [44.1, 44.9, 44.4], "none": [58.0, 57.5, 58.2]}
    finished = {arm: dict(zip((1, 2, 3), errors, strict=True)) for arm, errors in arms.items()}
    costs = {"pba": {"search_s": 600.0, "train_s_per_model": 100.0},
             **{arm: {"search_s": 0.0, "train_s_per_model": 90.0} for arm in arms if
                arm != "pba"}}
    data = {"dataset": "reduced_cifar10", "model": "wrn_10_2", "epochs": 80,
            "train_images": 1000, "test_split": "the dataset's test split"}
    doc = results(finished, [{arm: [1, 2, 3] for arm in arms}], [1], data=data, plan={},
                  times={"search_s": 600.0, "final_models_s": 1400.0, "demo_wall_s": 1500.0},
                  costs=costs)
    board = doc["leaderboard"]
    assert [row["arm"] for row in board] == ["trivialaugment", "pba", "ramp", "baseline", "none"]
    assert set(board[0]) == {"arm", "mean", "std", "search_s", "train_s_per_model",
                             "beaten_by", "unbeaten"}
    unbeaten = {row["arm"] for row in board if row["unbeaten"]}
    assert unbeaten == {"pba", "ramp", "trivialaugment"}
    assert {row["arm"]: row["beaten_by"] for row in board}["none"] == [
        "pba", "ramp", "baseline", "trivialaugment"]
    assert board[1]["search_s"] == 600.0 and board[0]["search_s"] == 0.0
    assert doc["recommended"] == "trivialaugment"  # the cheapest unbeaten arm
    assert list(doc["verdicts"])[:3] == ["baseline", "trivialaugment", "ramp"]
    text = render(doc, "x")
    assert ("| augmentation | seeds | test error % | per seed | search | training per model | "
            "clearly beaten by |") in text
    assert "| **the searched schedule** | 3 | 44.50 ± 0.50 | 44.00, 44.50, 45.00 | 10m 00s | " \
           "1m 40s | - |" in text
    assert "| the baseline | 3 | 48.00 ± 0.50 | 48.00, 48.50, 47.50 | - | 1m 30s | the " \
           "searched schedule, the search-free schedule, TrivialAugment |" in text
    # an arm without costs (an older results.json) shows "?"
    assert leaderboard({"pba": doc["arms"]["pba"]}, {})[0]["search_s"] is None


def test_the_search_free_schedule_is_an_effort_between_trivialaugment_and_a_search() -> None:
    assert EFFORT.index("trivialaugment") < EFFORT.index(SEARCH_FREE) < EFFORT.index("pba")


CPU = RunOptions(device="cpu", precision="fp32", workers=1, progress=False)


@pytest.fixture(scope="module")
def unplanned() -> dict:
    """What a new demo without a budget runs, by the values it is given (reduced CIFAR-10)."""
    def new(**given) -> dict:
        demo, plan = _new_demo(DEMO, None, given, False, time.monotonic(), options=CPU,
                               watch=Stopwatch())
        assert plan is None
        return {"search": demo.search_config().to_dict(), "seeds": demo.seeds,
                "demo": {k: v for k, v in demo.to_dict().items() if k not in ("search", "seeds")}}
    return {"default": new(), "loss": new(metric="loss", selection="truncation"),
            "truncation": new(selection="truncation"),
            "arms": new(arms={"pba": 3, "none": 3})}


@pytest.mark.parametrize(("variant", "changed"), [
    ("loss", {"metric": "loss", "selection": "truncation"}),
    ("truncation", {"selection": "truncation"})])
def test_a_variant_flag_changes_the_search_it_names_and_nothing_else(
        unplanned: dict, variant: str, changed: dict) -> None:
    default, other = unplanned["default"], unplanned[variant]
    differ = {k: v for k, v in other["search"].items() if default["search"][k] != v}
    assert differ == changed
    assert other["seeds"] == default["seeds"] and other["demo"] == default["demo"]


def test_the_arms_flag_changes_the_arms_and_nothing_else(unplanned: dict) -> None:
    default, arms = unplanned["default"], unplanned["arms"]
    assert default["seeds"] == DEMO.seeds and SEARCH_FREE in default["seeds"]
    assert arms["seeds"] == {"pba": 3, "none": 3}
    assert arms["search"] == default["search"] and arms["demo"] == default["demo"]


def test_a_variant_that_the_search_cannot_run_is_refused() -> None:
    with pytest.raises(PBAError, match="significant"):
        _new_demo(DEMO, None, {"metric": "loss"}, False, time.monotonic(), options=CPU,
                  watch=Stopwatch())



def test_the_none_arm_trains_its_own_models_unless_the_baseline_arm_is_none(
        tmp_path: Path) -> None:
    # Decided on the data, the baseline is no augmentation: the baseline arm's models are the
    # none arm's; without a baseline arm, the none arm trains its own.
    search = preset("smoke").replace(baseline="none")
    both = dataclasses.replace(DEMO, seeds={"pba": 1, "baseline": 2, "none": 2})
    alone = dataclasses.replace(DEMO, seeds={"pba": 1, "none": 2})
    jobs = {name: {(j.arm, j.seed) for j in final_jobs(demo, search, tmp_path, None,
                                                        precision="fp32")}
            for name, demo in (("both", both), ("alone", alone))}
    assert jobs["both"] == {("pba", 1), ("baseline", 1), ("baseline", 2)}
    assert jobs["alone"] == {("pba", 1), ("none", 1), ("none", 2)}
    assert none_is_baseline(both, search) and not none_is_baseline(alone, search)
