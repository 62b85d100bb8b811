"""`--budget`: durations, the planner (the regime fits the budget at the measured rates, values
given win, a budget too small is refused with the smallest that works, richer regimes for
larger budgets), refitting the final models' epochs, and `pba search --budget` on a folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from pba.budget import (
    Facts,
    Rates,
    batch_for,
    final_epochs_for,
    measure_rates,
    parse_duration,
    plan_run,
    refit_final_epochs,
    split_sizes,
)
from pba.budget.planner import (
    EVAL_SHARE,
    GOOD_EPOCHS,
    MIN_EPOCHS,
    MIN_FINAL_EPOCHS,
    MIN_VAL,
    budget_for_final_floor,
    scoring_share,
)
from pba.budget.power import power_statement
from pba.budget.regime import SAFETY
from pba.cli.main import main
from pba.core.errors import PBAError
from pba.training.loop import images_per_epoch

# About this machine's fp32 rates with two models at once (WRN-10-2 trains 2.5x slower).
RATES = {"wrn_10_1": Rates("wrn_10_1", (32, 32), 2, 470.0, 660.0),
         "wrn_10_2": Rates("wrn_10_2", (32, 32), 2, 187.0, 295.0)}
CIFAR = Facts(pool=50_000, test=10_000, own_val=None, batch_size=128, check_arms=0,
              final_models=10)
FOLDER = Facts(pool=1_920, test=480, own_val=None, batch_size=128, check_arms=5,
               final_models=10)


def colour_folder(root: Path, classes: int, per_class: int) -> None:
    """8 x 8 PNGs, class c a shade of channel c (plus noise, so the classes overlap a little)."""
    generator = torch.Generator().manual_seed(0)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 120, (8, 8, 3), generator=generator, dtype=torch.uint8)
            pixels[..., c] += 120
            Image.fromarray(pixels.numpy()).save(root / f"class_{c}" / f"{i}.png")


def plan(budget_s: float, facts: Facts = CIFAR, rates=RATES, **given):
    return plan_run(budget_s, 5.0, facts, rates, model="wrn_10_1", final_model="wrn_10_2",
                    given=given)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("12m", 720), ("1h", 3600),
                                               ("1.5h", 5400), ("45", 45), (" 15 min ", 900)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0m", "-5m", "12 parsecs", "m", "1h30m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(PBAError, match="positive duration"):
        parse_duration(text)


@pytest.mark.parametrize("facts", [CIFAR, FOLDER])
@pytest.mark.parametrize("minutes", [5, 15, 30, 60])
def test_the_chosen_regime_fits_the_budget_at_the_measured_rates(facts: Facts,
                                                                  minutes: int) -> None:
    chosen = plan(60 * minutes, facts)
    r = chosen.regime
    predicted = chosen.spent_s + sum(r.seconds(facts, RATES).values())
    assert predicted == pytest.approx(chosen.expected_s)
    assert predicted <= 60 * minutes * SAFETY
    # it fills the budget: one more epoch would not fit, or the epochs are at their cap
    floor = r.final_epochs if r.final_epochs > final_epochs_for(r.epochs, 0) else 0
    longer = r.__class__(**r.to_dict() | {"epochs": r.epochs + 1,
                                          "final_epochs": final_epochs_for(r.epochs + 1, floor)})
    assert (chosen.spent_s + sum(longer.seconds(facts, RATES).values()) > 60 * minutes * SAFETY
            or r.epochs >= 200)
    assert r.epochs >= MIN_EPOCHS and r.final_models == 10
    assert r.train_size + r.val_size <= facts.pool
    assert len(chosen.reasons) >= 5 and "expected" in chosen.describe()


def test_the_final_models_get_their_floor_where_the_budget_holds_it() -> None:
    # 15 minutes hold MIN_FINAL_EPOCHS beside a search: the final models get them, the
    # search the rest; 5 minutes do not, and the final models get what the budget holds
    # beside the shortest search.
    fifteen, five = plan(60 * 15).regime, plan(60 * 5).regime
    assert fifteen.final_epochs >= MIN_FINAL_EPOCHS and fifteen.epochs >= GOOD_EPOCHS
    assert fifteen.population == 8
    assert final_epochs_for(five.epochs, 0) < five.final_epochs < MIN_FINAL_EPOCHS
    # the most final epochs that fit beside the shortest search
    one_more = five.__class__(**five.to_dict() | {"epochs": MIN_EPOCHS,
                                                  "final_epochs": five.final_epochs + 1})
    assert 5.0 + sum(one_more.seconds(CIFAR, RATES).values()) > 60 * 5 * SAFETY
    # Without the floor the 15-minute search would have been longer and its models shorter.
    assert final_epochs_for(fifteen.epochs, 0) < fifteen.final_epochs


def test_a_larger_budget_buys_a_richer_regime() -> None:
    regimes = [plan(60 * m).regime for m in (5, 15, 30, 60)]
    work = [r.population * r.train_size * r.epochs for r in regimes]
    assert work == sorted(work) and work[0] < work[-1]
    # The demo's measured regime (8 x WRN-10-1 on 1,000 images, final WRN-10-2) once the
    # budget holds it with GOOD_EPOCHS or more.
    big = plan(60 * 60).regime
    assert big.population >= 8 and big.final_model == "wrn_10_2"
    assert big.epochs >= GOOD_EPOCHS
    small = plan(60 * 5).regime
    assert small.final_model == "wrn_10_1" or small.epochs < big.epochs


def test_a_faster_device_gets_a_richer_regime_in_the_same_budget() -> None:
    fast = {m: Rates(m, r.image_size, r.workers, 3.2 * r.train, 3.2 * r.evaluate)
            for m, r in RATES.items()}
    slow, quick = plan(900).regime, plan(900, rates=fast).regime
    assert quick.population * quick.train_size * quick.epochs > \
        slow.population * slow.train_size * slow.epochs


def test_values_given_win_and_the_rest_is_planned_around_them() -> None:
    chosen = plan(900, population=6, train_size=700, final_model="wrn_10_1")
    r = chosen.regime
    assert (r.population, r.train_size, r.final_model) == (6, 700, "wrn_10_1")
    assert chosen.expected_s <= 900
    assert sum("as given" in line for line in chosen.reasons) == 3
    fixed = plan(900, epochs=30, interval=5).regime
    assert (fixed.epochs, fixed.interval) == (30, 5)
    # Given values that overrun the budget still win; the plan says so.
    over = plan(300, epochs=150)
    assert over.regime.epochs == 150 and over.expected_s > 300
    assert "they win" in over.reasons[-1]


def test_a_budget_too_small_is_refused_with_the_smallest_that_works() -> None:
    with pytest.raises(PBAError, match="too small to learn anything") as info:
        plan(60)
    minutes = int(str(info.value).rsplit("--budget ", 1)[1].split("m")[0])
    assert plan(60 * minutes).regime.epochs >= MIN_EPOCHS
    with pytest.raises(PBAError):
        plan(60 * minutes - 60)


def test_unknown_values_cannot_be_planned_around() -> None:
    with pytest.raises(PBAError, match="cannot plan around"):
        plan(900, lr=0.2)


def test_sizes_leave_validation_images_and_keep_a_folders_own_val() -> None:
    assert split_sizes(1000, CIFAR) == (1000, 2000)
    train, val = split_sizes(1000, FOLDER)
    assert train == 1000 and val == 920 and train + val <= FOLDER.pool
    small = Facts(200, 50, None, 128, 0, 0)
    train, val = split_sizes(1000, small)
    assert (train, val) == (150, 50)
    own = Facts(300, 50, 40, 128, 0, 0)
    assert split_sizes(1000, own) == (300, 40)
    assert split_sizes(10, Facts(1, 1, None, 128, 0, 0)) is None


def test_small_training_sets_get_smaller_batches() -> None:
    assert batch_for(1000, 128) == 128  # the demo's regime: 7 steps an epoch
    assert batch_for(500, 128) == 64 and batch_for(250, 128) == 32
    assert batch_for(40, 128) == 16  # never below 16
    assert plan(900, FOLDER).regime.batch_size == batch_for(plan(900, FOLDER).regime.train_size,
                                                            128)
    assert plan(900, FOLDER, batch_size=128).regime.batch_size == 128  # given: kept


def test_a_baseline_check_is_counted_in_the_plan() -> None:
    checked = plan(900, FOLDER)
    unchecked = plan(900, FOLDER.__class__(**{**FOLDER.__dict__, "check_arms": 0}))
    assert "baseline_check" in checked.seconds and "baseline_check" not in unchecked.seconds
    assert checked.regime.epochs <= unchecked.regime.epochs


def test_refit_final_epochs_follows_the_time_left_within_bounds() -> None:
    regime = plan(1800).regime
    planned = refit_final_epochs(regime, CIFAR, RATES, regime.seconds(CIFAR, RATES)[
        "final_models"] / SAFETY, 1.0)
    assert abs(planned - regime.final_epochs) <= 1
    slower = refit_final_epochs(regime, CIFAR, RATES, regime.seconds(CIFAR, RATES)[
        "final_models"] / SAFETY, 1.2)
    assert slower < planned
    assert refit_final_epochs(regime, CIFAR, RATES, 1.0, 1.0) == -(-regime.final_epochs // 2)
    assert refit_final_epochs(regime, CIFAR, RATES, 1e9, 1.0) == round(regime.final_epochs * 1.6)


def test_rates_are_measured_on_this_device() -> None:
    rates = measure_rates("wrn_10_1", image_size=(16, 24), num_classes=3, batch_size=16,
                          device=torch.device("cpu"), precision="fp32", workers=2, steps=2)
    assert rates.image_size == (16, 24) and rates.workers == 2
    assert rates.train > 0 and rates.evaluate > 0


def test_paper_presets_and_resumes_refuse_a_budget(capsys) -> None:
    assert main(["search", "--preset", "paper-rcifar10", "--budget", "1h"]) == 2
    assert "--budget does not size it" in capsys.readouterr().err
    assert main(["search", "--resume", "nowhere", "--budget", "1h"]) == 2
    assert "drop --budget" in capsys.readouterr().err
    assert main(["search", "--budget", "soon"]) == 2
    assert "positive duration" in capsys.readouterr().err


def test_a_budgeted_search_records_its_plan(tmp_path: Path, capsys) -> None:
    colour_folder(tmp_path / "imgs", classes=3, per_class=30)
    out = tmp_path / "run"
    args = ["search", "--dataset", f"folder:{tmp_path / 'imgs'}", "--budget", "10m",
            "--epochs", "4", "--interval", "2", "--batch-size", "16", "--baseline", "flip",
            "--out", str(out), "--precision", "fp32", "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "of a budget of 10m" in printed
    config = json.loads((out / "config.json").read_text())
    budget = config["budget"]
    assert budget["budget_s"] == 600 and budget["rates"][0]["model"] == "wrn_10_1"
    assert budget["regime"]["epochs"] == 4 == config["search"]["epochs"]
    # 72 pool images: a quarter validates, the rest trains; the population the plan chose
    assert config["search"]["train_size"] == budget["regime"]["train_size"] == 54
    assert config["search"]["val_size"] == 18
    assert config["search"]["population"] == budget["regime"]["population"]
    assert any(line.startswith("training images 54") for line in budget["reasons"])


def test_a_demo_budget_too_small_is_refused_before_anything_is_written(tmp_path: Path,
                                                                      capsys) -> None:
    colour_folder(tmp_path / "imgs", classes=3, per_class=30)
    out = tmp_path / "demo"
    args = ["demo", "--dataset", f"folder:{tmp_path / 'imgs'}", "--budget", "5s", "--out",
            str(out), "--final-model", "wrn_10_1", "--precision", "fp32", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "too small to learn anything on this device" in err and "give --budget" in err
    assert not (out / "demo.json").exists()  # the same command with a larger budget starts anew
    assert main(["demo", "--budget", "15m", "--epochs", "0", "--out", str(out)]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err


def slower(factor: float) -> dict[str, Rates]:
    return {m: Rates(m, r.image_size, r.workers, r.train / factor, r.evaluate / factor)
            for m, r in RATES.items()}


def test_a_slower_device_keeps_the_final_models_epochs_and_shrinks_the_search() -> None:
    fast, slow = plan(60 * 15).regime, plan(60 * 15, rates=slower(1.2)).regime
    assert fast.final_epochs >= MIN_FINAL_EPOCHS and slow.final_epochs >= MIN_FINAL_EPOCHS
    assert MIN_EPOCHS <= slow.epochs < fast.epochs
    # Where the floor does not fit, the final models still get what the budget holds beside
    # the shortest search, not the search's epochs times FINAL_EPOCH_RATIO.
    slowest = plan(60 * 15, rates=slower(1.8)).regime
    assert slowest.epochs < fast.epochs
    assert final_epochs_for(slowest.epochs, 0) < slowest.final_epochs < MIN_FINAL_EPOCHS


def test_a_budget_below_the_floor_names_one_that_reaches_it() -> None:
    rates = slower(2.5)
    small = plan(60 * 15, rates=rates)
    assert small.regime.final_epochs < MIN_FINAL_EPOCHS
    need = budget_for_final_floor(5.0, CIFAR, rates, model="wrn_10_1", final_model="wrn_10_2")
    assert need is not None and need % 60 == 0
    # Planned again, that budget reaches the floor; a minute less does not.
    assert plan(need, rates=rates).regime.final_epochs >= MIN_FINAL_EPOCHS
    assert plan(need - 60, rates=rates).regime.final_epochs < MIN_FINAL_EPOCHS
    lines = power_statement(small.regime, need)
    assert f"{small.regime.final_epochs} epochs" in lines[0]
    assert "expect no clear difference" in lines[-1]
    assert f"--budget {round(need / 60)}m and a new --out" in lines[-1]
    assert "within the one where" in power_statement(plan(need, rates=rates).regime, None)[-1]
    assert power_statement(small.regime, None)[-1].endswith("no budget within a day reaches "
                                                            "it on this device")


@pytest.mark.parametrize("factor", [1, 1.5, 2.5])
def test_scoring_takes_at_most_its_share_of_a_search_round(factor: float) -> None:
    rates = slower(factor)
    r = plan(60 * 15, rates=rates).regime
    search = rates[r.model]
    per_round = r.interval * images_per_epoch(r.train_size, r.batch_size) / search.train
    scoring = r.val_size / search.evaluate
    assert r.val_size >= MIN_VAL
    assert scoring <= EVAL_SHARE / (1 - EVAL_SHARE) * per_round * 1.0001
    # Values given win: the split as asked, the rounds made longer instead.
    given = plan(60 * 15, rates=rates, val_size=2000).regime
    assert given.val_size == 2000


def test_scoring_share_cuts_the_split_then_lengthens_the_rounds() -> None:
    rates = Rates("wrn_10_1", (32, 32), 1, 1000.0, 3000.0)  # scoring 3x training's images/s
    # A round of 2 epochs of 448 images trains 0.9 s: 15% of a round lets 474 images score.
    assert scoring_share(2000, 10, 448, rates) == (2000, 10)
    assert scoring_share(2000, 3, 448, rates) == (711, 3)
    assert scoring_share(2000, 2, 448, rates) == (MIN_VAL, 3)
    assert scoring_share(2000, 2, 448, rates, fixed_interval=True) == (MIN_VAL, 2)


def test_a_plan_at_the_floor_keeps_it_when_the_search_ran_a_little_slow() -> None:
    regime = plan(60 * 15, rates=slower(1.2)).regime
    assert regime.final_epochs == MIN_FINAL_EPOCHS
    planned_s = regime.seconds(CIFAR, slower(1.2))["final_models"]
    # 4% slow: the margin would cost epochs, but the time left holds the floor without it.
    kept = refit_final_epochs(regime, CIFAR, slower(1.2), planned_s / SAFETY, 1.04)
    assert kept == MIN_FINAL_EPOCHS
    # 20% slow: the floor no longer fits in the time left, and the epochs follow it.
    assert refit_final_epochs(regime, CIFAR, slower(1.2), planned_s / SAFETY, 1.2) < kept
